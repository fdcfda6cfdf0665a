"""A linear-Gaussian hierarchical VAE with an exact log p(x): a teaching and verification model.

Everything in this model is linear and Gaussian, so the quantities the paper can only bound are
available in closed form:

* generative model (top-down, sec. 3.2): ``p(z_L) = N(0, I)``,
  ``p(z_i | z_{i+1}) = N(A_i z_{i+1} + a_i, diag(s_i))``, ``p(x | z_1) = N(W z_1 + b, diag(s_x))``;
* inference model (bottom-up, eq. 2): ``q(z_1 | x) = N(B_1 x + c_1, diag(e_1))``,
  ``q(z_i | z_{i-1}) = N(B_i z_{i-1} + c_i, diag(e_i))``.

x is Gaussian, so :meth:`LinearGaussianHVAE.log_marginal` computes ``log p(x)`` exactly by
propagating means and covariances down the chain. :meth:`~LinearGaussianHVAE.expected_bound`
computes the exact expectation of every single-sample bound that :class:`~hvaelab.model.HVAE`'s
forward pass estimates (ELBO eq. 1, L>k eq. 5 with the mean-forwarding encoder of appendix D,
L<l of appendix E), for either way of taking the prior latents (samples or means).

The class reuses :meth:`HVAE.forward` and :meth:`HVAE.encode_means` unchanged and only overrides
the network hooks, so checking its Monte Carlo bounds against these closed forms checks the real
bound logic of the package (see ``tests/test_bounds.py``). It has no skip connections.

Because the generative model is a Markov chain ``x <- z_1 <- ... <- z_L``, the true posterior
factorises bottom-up exactly, ``p(z | x) = p(z_1 | x) prod_i p(z_i | z_{i-1})``, with linear
conditional means and constant covariances. ``inference="optimal"`` uses these exact linear maps
and the best diagonal variances ``1 / diag(precision)``: the global optimum of the ELBO over the
inference parameters. Its importance weights can be heavy-tailed (a diagonal q is narrower than a
correlated posterior), so ``set_optimal_inference(var_scale=2)`` offers an over-dispersed variant
for which eq. (9) converges quickly. With ``axis_aligned=True`` those conditionals are themselves
diagonal, so the optimal q is the exact posterior and every single-sample ELBO equals ``log p(x)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .distributions import Gaussian
from .hvae import HVAE
from .likelihoods import Likelihood

_LOG_2PI = math.log(2.0 * math.pi)
INFERENCE_MODES = ("optimal", "random")

# An affine function of the standard-normal noise of a pass: value = eps @ T.T + t, where T is
# (d, N) (the same for every example) and t is (B, d).
_Affine = tuple[Tensor, Tensor]


class DiagonalGaussianLikelihood(Likelihood):
    """``p(x | params) = N(mean, diag(exp(log_var)))`` over real vectors x of shape (B, D).

    ``params = [mean, log_var]`` has shape (B, 2D): the mean, then the log-variance.
    """

    def num_params(self, channels: int) -> int:
        if channels < 1:
            raise ValueError(f"channels must be >= 1; got {channels}.")
        return 2 * channels

    def _split(self, params: Tensor) -> Gaussian:
        if params.dim() != 2 or params.shape[1] % 2:
            raise ValueError(
                "params must have shape (B, 2D) (mean then log-variance); "
                f"got {tuple(params.shape)}"
            )
        mean, log_var = params.chunk(2, dim=1)
        return Gaussian(mean, log_var.exp())

    def log_prob(self, params: Tensor, x: Tensor) -> Tensor:
        return self._split(params).log_prob(x)

    def mean(self, params: Tensor) -> Tensor:
        """The mean of x (real-valued; there is no [0, 1] image space for this model)."""
        return self._split(params).mean

    def sample(self, params: Tensor, generator: torch.Generator | None = None) -> Tensor:
        return self._split(params).sample(generator=generator)

    def to_model_space(self, x01: Tensor) -> Tensor:
        """Identity: x is already a real vector."""
        return x01


@dataclass(frozen=True)
class LinearGaussianConfig:
    """Shape and initialisation of a :class:`LinearGaussianHVAE`."""

    x_dim: int = 6  # D, the dimension of x
    latent_dims: tuple[int, ...] = (4, 3, 2)  # d_1..d_L
    seed: int = 0  # seed of the random parameters
    inference: str = "optimal"  # "optimal" (see module docstring) or "random"
    axis_aligned: bool = False  # make the true posterior's conditionals diagonal (q exact)
    skip: bool = False  # no skip connections (read by HVAE helpers)
    likelihood: str = "gaussian"

    def __post_init__(self) -> None:
        if self.x_dim < 1 or not self.latent_dims or min(self.latent_dims) < 1:
            raise ValueError(
                f"x_dim and every latent dimension must be >= 1 and there must be at least one "
                f"latent layer; got x_dim={self.x_dim}, latent_dims={self.latent_dims}"
            )
        if self.inference not in INFERENCE_MODES:
            raise ValueError(f"inference must be one of {INFERENCE_MODES}, got {self.inference!r}")

    @property
    def n_layers(self) -> int:
        return len(self.latent_dims)

    @property
    def in_shape(self) -> tuple[int]:
        return (self.x_dim,)


@dataclass
class _Chain:
    """``p(level_i | z_{i+1}) = N(F[i] z_{i+1} + f[i], diag(var[i]))`` for i < L (level 0 is x,
    ``F[0] = W``) and the marginal moments ``m[i], C[i]`` of every level i in 0..L."""

    F: list[Tensor]
    f: list[Tensor]
    var: list[Tensor]
    m: list[Tensor]
    C: list[Tensor]


class LinearGaussianHVAE(HVAE):
    """Bottom-up hierarchical VAE with linear-Gaussian layers and closed-form ``log p(x)``.

    x has shape (B, D) and dtype float64 (see :meth:`prepare`); ``shapes[i] = (d_i,)``.
    Parameters are float64; variances are stored as log-variances.
    """

    def __init__(
        self,
        x_dim: int = 6,
        latent_dims: tuple[int, ...] = (4, 3, 2),
        *,
        seed: int = 0,
        inference: str = "optimal",
        axis_aligned: bool = False,
    ) -> None:
        nn.Module.__init__(self)  # HVAE.__init__ builds the conv networks: not wanted here
        cfg = LinearGaussianConfig(x_dim, tuple(latent_dims), seed, inference, axis_aligned)
        self.config = cfg
        dims = [cfg.x_dim, *cfg.latent_dims]
        self.shapes = [(d,) for d in dims]
        self.likelihood = DiagonalGaussianLikelihood()
        L = cfg.n_layers
        g = torch.Generator().manual_seed(seed)

        def randn(*shape: int) -> Tensor:
            return torch.randn(*shape, generator=g, dtype=torch.float64)

        def log_uniform(n: int, lo: float, hi: float) -> nn.Parameter:
            u = torch.rand(n, generator=g, dtype=torch.float64)
            return nn.Parameter(math.log(lo) + u * (math.log(hi) - math.log(lo)))

        def weight(rows: int, cols: int) -> Tensor:
            if not axis_aligned:
                return randn(rows, cols) / math.sqrt(cols)
            # "rectangular diagonal": keeps every covariance of the chain diagonal
            w = torch.zeros(rows, cols, dtype=torch.float64)
            n = min(rows, cols)
            w[range(n), range(n)] = 0.5 + torch.rand(n, generator=g, dtype=torch.float64)
            return w

        # Generative parameters; list index i - 1 holds layer i.
        self.A = nn.ParameterList(nn.Parameter(weight(dims[i], dims[i + 1])) for i in range(1, L))
        self.a = nn.ParameterList(nn.Parameter(0.3 * randn(dims[i])) for i in range(1, L))
        self.log_s = nn.ParameterList(log_uniform(dims[i], 0.2, 1.0) for i in range(1, L))
        if axis_aligned:  # orthogonal columns and an isotropic noise: W^T diag(s_x)^-1 W diagonal
            q, _ = torch.linalg.qr(randn(dims[0], dims[0]))
            n = min(dims[0], dims[1])
            w = torch.zeros(dims[0], dims[1], dtype=torch.float64)
            w[:, :n] = q[:, :n] * (0.5 + torch.rand(n, generator=g, dtype=torch.float64))
            self.W = nn.Parameter(w)
            self.log_sx = nn.Parameter(torch.full((dims[0],), math.log(0.2), dtype=torch.float64))
        else:
            self.W = nn.Parameter(weight(dims[0], dims[1]))
            self.log_sx = log_uniform(dims[0], 0.1, 1.0)
        self.b = nn.Parameter(0.3 * randn(dims[0]))
        # Inference parameters: q(z_i | z_{i-1}) with z_0 = x.
        self.Bq = nn.ParameterList(
            nn.Parameter(randn(dims[i], dims[i - 1]) / math.sqrt(dims[i - 1]))
            for i in range(1, L + 1)
        )
        self.cq = nn.ParameterList(nn.Parameter(0.3 * randn(dims[i])) for i in range(1, L + 1))
        self.log_e = nn.ParameterList(log_uniform(dims[i], 0.2, 1.0) for i in range(1, L + 1))
        if inference == "optimal":
            self.set_optimal_inference()

    # ------------------------------------------------------------------------ HVAE hooks
    def _x_skip(self, x: Tensor) -> None:
        return None

    def _bottom_up_input(
        self, i: int, below: Tensor, below2: Tensor | None, x_skip: Tensor | None
    ) -> Tensor:
        return below

    def _posterior(self, i: int, h: Tensor) -> Gaussian:
        mean = h @ self.Bq[i - 1].T + self.cq[i - 1]
        return Gaussian(mean, self.log_e[i - 1].exp().expand_as(mean))

    def _prior(self, i: int, z_up: Tensor, z_up2: Tensor | None) -> Gaussian:
        mean = z_up @ self.A[i - 1].T + self.a[i - 1]
        return Gaussian(mean, self.log_s[i - 1].exp().expand_as(mean))

    def _likelihood_params(self, z1: Tensor, z2: Tensor | None) -> Tensor:
        mean = z1 @ self.W.T + self.b
        return torch.cat([mean, self.log_sx.expand_as(mean)], dim=1)

    @property
    def _dtype(self) -> torch.dtype:
        return self.W.dtype

    def prepare(self, x: Tensor) -> Tensor:
        """Cast x to the model's dtype (x is already a real vector)."""
        return self.likelihood.to_model_space(x).to(self._dtype)

    def check_input(self, x: Tensor) -> None:
        D = self.config.x_dim
        if x.dim() != 2 or x.shape[1] != D:
            raise ValueError(f"expected a batch of shape (N, {D}), got {tuple(x.shape)}")
        if x.dtype != self._dtype:
            raise TypeError(
                f"expected dtype {self._dtype} (the model's), got {x.dtype}: use model.prepare(x)"
            )

    def initialize(self, x: Tensor) -> None:
        """Nothing is initialised from data in this model."""

    # ------------------------------------------------------------------ exact quantities
    def _chain(self) -> _Chain:
        """The generative chain and the marginal moments of every level (index 0 is x)."""
        L = self.n_layers
        F, f = [self.W, *self.A], [self.b, *self.a]
        var = [self.log_sx.exp(), *(v.exp() for v in self.log_s)]
        d_top = self.shapes[L][0]
        m = [torch.zeros(d_top, dtype=self._dtype)]  # built top-down, reversed below
        C = [torch.eye(d_top, dtype=self._dtype)]
        for i in range(L - 1, -1, -1):
            m.append(F[i] @ m[-1] + f[i])
            C.append(F[i] @ C[-1] @ F[i].T + torch.diag(var[i]))
        return _Chain(F, f, var, m[::-1], C[::-1])

    def log_marginal(self, x: Tensor) -> Tensor:
        """Exact ``log p(x)`` per example, shape (B,): x ~ N(m_x, C_x) (float64)."""
        self.check_input(x)
        ch = self._chain()
        dist = torch.distributions.MultivariateNormal(ch.m[0], covariance_matrix=ch.C[0])
        return dist.log_prob(x)

    @torch.no_grad()
    def set_optimal_inference(self, var_scale: float = 1.0) -> None:
        """Set q to the ELBO-optimal bottom-up posterior (module docstring): exact linear
        conditional means of ``p(z_i | z_{i-1})`` (``z_0 = x``) and variances
        ``var_scale / diag(precision)``.

        ``var_scale > 1`` gives an over-dispersed q (a looser ELBO) whose importance weights have
        light tails, so that the importance-weighted bound (eq. 9) converges quickly in S.
        """
        if not var_scale > 0:
            raise ValueError(f"var_scale must be positive, got {var_scale}")
        ch = self._chain()
        F, m, C = ch.F, ch.m, ch.C
        for i in range(1, self.n_layers + 1):
            # z_{i-1} = F[i-1] z_i + noise, z_i ~ N(m[i], C[i]); Cov(z_{i-1}) = C[i-1]
            gain = torch.linalg.solve(C[i - 1], F[i - 1] @ C[i]).T  # C_i F^T C_{i-1}^-1
            cov = C[i] - gain @ F[i - 1] @ C[i]
            self.Bq[i - 1].copy_(gain)
            self.cq[i - 1].copy_(m[i] - gain @ m[i - 1])
            prec_diag = torch.linalg.inv(cov).diagonal()
            self.log_e[i - 1].copy_(math.log(var_scale) - prec_diag.log())

    def expected_bound(
        self, x: Tensor, k: int = 0, l: int | None = None, prior: str = "sample"
    ) -> Tensor:
        """Exact expectation, shape (B,), of ``self(x, k=k, l=l, prior=prior).bound``.

        The pass takes z_{k+1}..z_top from the posterior (top = L, or l - 1 for L<l) through
        the mean-forwarding encoder below z_{k+1} (appendix D) and the rest from the prior,
        sampled (``prior="sample"``) or at its conditional means (``"mean"``). Every latent is
        then an affine function of standard-normal noise, and the expectation of each Gaussian
        log-density is ``-1/2 sum(log 2 pi v + E[r^2] / v)`` for its affine residual r.
        Differentiable in the parameters.
        """
        self.check_input(x)
        L = self.n_layers
        if not 0 <= k <= L:
            raise ValueError(f"k must be in 0..{L}, got {k}")
        if l is not None and not 1 <= l <= L + 1:
            raise ValueError(f"l must be in 1..{L + 1}, got {l}")
        if prior not in ("sample", "mean"):
            raise ValueError(f"prior must be 'sample' or 'mean', got {prior!r}")
        top = L if l is None else l - 1
        ch = self._chain()
        F, f, var = ch.F, ch.f, ch.var
        dims = [s[0] for s in self.shapes]
        offsets = [0]
        for d in dims[1:]:
            offsets.append(offsets[-1] + d)
        N, B = offsets[-1], x.shape[0]

        def noise(i: int, std: Tensor) -> Tensor:  # (d_i, N): std on layer i's noise block
            T = torch.zeros(dims[i], N, dtype=self._dtype)
            T[:, offsets[i - 1] : offsets[i]] = torch.diag(std)
            return T

        def affine(M: Tensor, u: _Affine, c: Tensor) -> _Affine:
            return M @ u[0], u[1] @ M.T + c

        def expected_log_normal(r: _Affine, v: Tensor) -> Tensor:
            sq = r[1].pow(2) + r[0].pow(2).sum(1)
            return -0.5 * (_LOG_2PI + v.log() + sq / v).sum(1)

        def minus(u: _Affine, w: _Affine) -> _Affine:
            return u[0] - w[0], u[1] - w[1]

        e = [torch.zeros(0)] + [v.exp() for v in self.log_e]
        z: dict[int, _Affine] = {}
        # Bottom-up: mean path d_0 = x, ..., d_k, then posterior samples for k+1..top.
        below: _Affine = (torch.zeros(dims[0], N, dtype=self._dtype), x)
        parent: dict[int, _Affine] = {}
        for i in range(1, top + 1):
            parent[i] = below
            mean = affine(self.Bq[i - 1], below, self.cq[i - 1])
            if i > k:
                z[i] = (mean[0] + noise(i, e[i].sqrt()), mean[1])
            below = z[i] if i > k else mean
        # Top-down: prior layers above top, then below k+1.
        prior_layers = [i for i in range(L, 0, -1) if i not in z]
        for i in prior_layers:
            if i == L:
                mean = (torch.zeros(dims[L], N, dtype=self._dtype), x.new_zeros(B, dims[L]))
                std = torch.ones(dims[L], dtype=self._dtype)
            else:
                mean = affine(F[i], z[i + 1], f[i])
                std = var[i].sqrt()
            z[i] = (mean[0] + noise(i, std), mean[1]) if prior == "sample" else mean
        # log p(x | z_1) + sum over posterior layers of log p(z_i | z_{i+1}) - log q(z_i | .)
        xa: _Affine = (torch.zeros(dims[0], N, dtype=self._dtype), x)
        total = expected_log_normal(minus(xa, affine(F[0], z[1], f[0])), var[0])
        for i in range(k + 1, top + 1):
            if i == L:
                total = total + expected_log_normal(z[i], torch.ones(dims[L], dtype=self._dtype))
            else:
                total = total + expected_log_normal(
                    minus(z[i], affine(F[i], z[i + 1], f[i])), var[i]
                )
            q_mean = affine(self.Bq[i - 1], parent[i], self.cq[i - 1])
            total = total - expected_log_normal(minus(z[i], q_mean), e[i])
        return total

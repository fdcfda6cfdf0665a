"""A linear-Gaussian model of BIVA's shape with an exact ``log p(x)``, for checking BIVA's bounds.

Layer i < L has a bottom-up and a top-down unit (``c_i`` dimensions each), the top layer one unit,
exactly as :class:`~hvaelab.model.BIVA`; every conditional is linear-Gaussian:

* generative: ``p(z_L) = N(0, I)``, ``p(z_i | z_>i) = N(A_i z_{i+1} + a_i, diag(s_i))`` over the
  concatenation ``z_i = [z_i^BU, z_i^TD]`` (the top-down path is ``t_i = z_{i+1}``), and
  ``p(x | z) = N(W z_1 + b, diag(s_x))``;
* inference: ``q(z_i^BU | .) = N(B_i d_i + c_i, diag(e_i))`` on the bottom-up path
  ``d_i = z_{i-1}^BU`` (``d_1 = x``; the whole top latent for i = L) and
  ``q(z_i^TD | x, z_>i) = N(T_i t_i + D_i d_i + u_i, diag(f_i))``.

x is Gaussian, so :meth:`LinearBIVA.log_marginal` is exact. The class overrides only BIVA's
network hooks and reuses :meth:`BIVA.forward` and :meth:`BIVA.encode_means` unchanged, so Monte
Carlo estimates of its L>k and L<l against the exact ``log p(x)`` check the real bound logic of
BIVA (``tests/test_biva.py``). Parameters are float64; variances are stored as log-variances.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .biva import BIVA
from .distributions import Gaussian
from .linear_gaussian import DiagonalGaussianLikelihood


@dataclass(frozen=True)
class LinearBIVAConfig:
    """Shape of a :class:`LinearBIVA` (read by BIVA's shared helpers)."""

    x_dim: int = 6
    unit_dims: tuple[int, ...] = (3, 2, 2)  # c_1..c_L: dimensions of each unit
    seed: int = 0
    skip: bool = False
    likelihood: str = "gaussian"

    def __post_init__(self) -> None:
        if self.x_dim < 1 or not self.unit_dims or min(self.unit_dims) < 1:
            raise ValueError(
                f"x_dim and every unit dimension must be >= 1 with at least one layer; got "
                f"x_dim={self.x_dim}, unit_dims={self.unit_dims}"
            )

    @property
    def n_layers(self) -> int:
        return len(self.unit_dims)

    @property
    def in_shape(self) -> tuple[int]:
        return (self.x_dim,)


class LinearBIVA(BIVA):
    """BIVA with linear-Gaussian conditionals and closed-form ``log p(x)`` (module docstring)."""

    def __init__(self, x_dim: int = 6, unit_dims: tuple[int, ...] = (3, 2, 2), seed: int = 0):
        nn.Module.__init__(self)  # BIVA.__init__ builds the conv networks: not wanted here
        cfg = LinearBIVAConfig(x_dim, tuple(unit_dims), seed)
        self.config = cfg
        L, c = cfg.n_layers, cfg.unit_dims
        self.units = [(x_dim,), *((c[i - 1],) for i in range(1, L + 1))]
        self.shapes = [(x_dim,), *((2 * c[i - 1],) for i in range(1, L)), (c[L - 1],)]
        self.likelihood = DiagonalGaussianLikelihood()
        dims = [s[0] for s in self.shapes]  # full layer dims, index 0 = x
        g = torch.Generator().manual_seed(seed)

        def randn(*shape: int, scale: float = 1.0) -> nn.Parameter:
            w = torch.randn(*shape, generator=g, dtype=torch.float64)
            return nn.Parameter(w * scale)

        def log_var(n: int, lo: float = 0.2, hi: float = 1.0) -> nn.Parameter:
            u = torch.rand(n, generator=g, dtype=torch.float64)
            return nn.Parameter(math.log(lo) + u * (math.log(hi) - math.log(lo)))

        # Generative: list index i - 1 holds layer i (i < L); W, b, log_sx for x.
        self.A = nn.ParameterList(
            randn(dims[i], dims[i + 1], scale=dims[i + 1] ** -0.5) for i in range(1, L)
        )
        self.a = nn.ParameterList(randn(dims[i], scale=0.3) for i in range(1, L))
        self.log_s = nn.ParameterList(log_var(dims[i]) for i in range(1, L))
        self.W = randn(dims[0], dims[1], scale=dims[1] ** -0.5)
        self.b = randn(dims[0], scale=0.3)
        self.log_sx = log_var(dims[0], 0.1, 1.0)
        # Inference: BU units of every layer (the top latent for i = L), TD units for i < L.
        below = [x_dim] + [c[i - 1] for i in range(1, L)]  # dim of d_i
        self.Bq = nn.ParameterList(
            randn(c[i - 1], below[i - 1], scale=below[i - 1] ** -0.5) for i in range(1, L + 1)
        )
        self.cq = nn.ParameterList(randn(c[i - 1], scale=0.3) for i in range(1, L + 1))
        self.log_e = nn.ParameterList(log_var(c[i - 1]) for i in range(1, L + 1))
        self.Tq = nn.ParameterList(
            randn(c[i - 1], dims[i + 1], scale=dims[i + 1] ** -0.5) for i in range(1, L)
        )
        self.Dq = nn.ParameterList(
            randn(c[i - 1], below[i - 1], scale=below[i - 1] ** -0.5) for i in range(1, L)
        )
        self.uq = nn.ParameterList(randn(c[i - 1], scale=0.3) for i in range(1, L))
        self.log_f = nn.ParameterList(log_var(c[i - 1]) for i in range(1, L))

    # ------------------------------------------------------------------ BIVA hooks
    def _x_skip(self, x: Tensor) -> None:
        return None

    def _bottom_up(self, i: int, below: Tensor, below2: Tensor | None, x_skip: Tensor | None):
        return below

    def _bu_posterior(self, i: int, d: Tensor) -> Gaussian:
        mean = d @ self.Bq[i - 1].T + self.cq[i - 1]
        return Gaussian(mean, self.log_e[i - 1].exp().expand_as(mean))

    def _top_down(self, j: int, z_j: Tensor, t_j: Tensor | None) -> Tensor:
        return z_j

    def _prior_td(self, i: int, t: Tensor) -> Gaussian:
        mean = t @ self.A[i - 1].T + self.a[i - 1]
        return Gaussian(mean, self.log_s[i - 1].exp().expand_as(mean))

    def _td_posterior(self, i: int, t: Tensor, d: Tensor) -> Gaussian:
        mean = t @ self.Tq[i - 1].T + d @ self.Dq[i - 1].T + self.uq[i - 1]
        return Gaussian(mean, self.log_f[i - 1].exp().expand_as(mean))

    def _output(self, t0: Tensor) -> Tensor:
        mean = t0 @ self.W.T + self.b
        return torch.cat([mean, self.log_sx.expand_as(mean)], dim=1)

    # ------------------------------------------------------------------ helpers
    def prepare(self, x: Tensor) -> Tensor:
        """Cast x to the model's dtype (x is already a real vector)."""
        return x.to(self.W.dtype)

    def check_input(self, x: Tensor) -> None:
        D = self.config.x_dim
        if x.dim() != 2 or x.shape[1] != D:
            raise ValueError(f"expected a batch of shape (N, {D}), got {tuple(x.shape)}")
        if x.dtype != self.W.dtype:
            raise TypeError(f"expected dtype {self.W.dtype} (the model's), got {x.dtype}")

    def initialize(self, x: Tensor) -> None:
        """Nothing is initialised from data in this model."""

    def inference_parameters(self) -> list[nn.Parameter]:
        """The parameters of q (for fitting the proposal with the generative model fixed)."""
        groups = (self.Bq, self.cq, self.log_e, self.Tq, self.Dq, self.uq, self.log_f)
        return [p for group in groups for p in group]

    def log_marginal(self, x: Tensor) -> Tensor:
        """Exact ``log p(x)`` per example, shape (B,), by propagating the chain's moments."""
        self.check_input(x)
        L = self.n_layers
        F = [self.W, *self.A]
        f = [self.b, *self.a]
        var = [self.log_sx.exp(), *(v.exp() for v in self.log_s)]
        m = torch.zeros(self.shapes[L][0], dtype=x.dtype)
        C = torch.eye(self.shapes[L][0], dtype=x.dtype)
        for i in range(L - 1, -1, -1):
            m, C = F[i] @ m + f[i], F[i] @ C @ F[i].T + torch.diag(var[i])
        return torch.distributions.MultivariateNormal(m, covariance_matrix=C).log_prob(x)

    @torch.no_grad()
    def draw(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """n samples of x from the generative model."""
        x = torch.zeros(n, self.config.x_dim, dtype=self.W.dtype)
        out = self.forward(x, k=self.n_layers, generator=generator)
        return self.likelihood.sample(out.params, generator=generator)

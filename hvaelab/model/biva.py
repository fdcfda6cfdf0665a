"""BIVA, the bidirectional-inference VAE (Maaløe et al., 2019; paper sec. 3.2, 5, appendix B.2).

Every layer i < L has two stochastic units, a bottom-up unit ``z_i^BU`` and a top-down unit
``z_i^TD``; the top layer has one unit. To keep the forward contract of :class:`HVAE` (one
:class:`LayerOutput` per layer with its KL, ``shapes[i]`` the shape of z_i), layer i's latent is
ONE tensor concatenating ``[z_i^BU, z_i^TD]`` along the channel (conv) or feature (dense) axis,
and its posterior and prior are one diagonal Gaussian over that concatenation, so ::

    LayerOutput.kl = log q(z_i^BU|.) + log q(z_i^TD|.) - log p(z_i^BU|z_>i) - log p(z_i^TD|z_>i)

Factorisation (``z_>i`` = both units of every layer above i, z_0^BU = x):

* generative, top-down: ``p(z_L) = N(0, I)``; a deterministic top-down path
  ``t_{i} = Stage_{i+1}(Embed(z_{i+1}) + t_{i+1})`` carries every latent above i (the skip
  connections of BIVA's generative model), and ``p(z_i^BU | z_>i)``, ``p(z_i^TD | z_>i)`` are one
  Gaussian head on ``t_i``; ``p(x | z) = p(x | t_0)``.
* inference: a bottom-up path ``d_i = Stage_i(Embed(z_{i-1}^BU) + Embed(z_{i-2}^BU))`` (with the
  HVAE's skip ``z_{i-2} -> z_i``, z_0 = x) gives ``q(z_i^BU | x, z_<i^BU)`` and, at the top,
  ``q(z_L | x, z_<L^BU)``; the top-down units ``q(z_i^TD | x, z_>i)`` come from the generative
  path t_i combined with the bottom-up features d_i.

L>k (eq. 5, appendix D). Layers ``z_<=k``, both their BU and TD units, come from the generative
model's conditional ``p(z_<=k | z_>k)``, sampled or at its means. The proposal
``q(z_>k | x)`` is BIVA's inference model with the bottom-up path below z_{k+1} used as a
deterministic encoder fed the posterior *means* of z_1^BU..z_k^BU (appendix D's
``d_k(x) = E[q(z_k | d_{k-1}(x))]``); above k the bottom-up path runs on sampled z^BU, and the
top-down units of layers > k are conditioned on t_i, which depends only on the sampled ``z_>k``.
Nothing of ``q(z_>k | x)`` therefore depends on a prior draw below k+1 (this is what makes eq. 19's
Jensen step valid: the proposal is a function of x alone). The KL terms are those of the layers
above k only, each computed in this very pass; layers <= k contribute nothing, so
``bound = log p(x|z) - sum_{i>k} [log q(z_i|.) - log p(z_i|z_>i)]`` = eq. 5's integrand.

L<l (appendix E, eqs. 20-21, with the project's correction in :mod:`hvaelab.bounds`). Layers
``z_>=l`` come from the prior top-down and ``z_<l`` from the posterior: the BU units through the
bottom-up path on samples from x, the TD units conditioned on the z above them, which includes
the prior draws of ``z_>=l`` (BIVA's inference model is conditioned on the latents above by
construction); the KL terms are those of the layers below l, and
``bound = log p(x|z) + sum_{i<l} [log p(z_i|z_>i) - log q(z_i|x, z_>i)]``. ``LLR^{>k}_{<l}`` of
eq. 21 is the difference of two such passes with common noise.

Presets (:data:`hvaelab.config.PRESETS`, ``biva-grey``, ``biva-natural``, ``biva-tiny``): B.2 and
table 4 disagree. Natural 32x32: table 4's strides 2-1-1-2-1-2-1-1-1-1 (an overall stride of 8,
as B.2 says) give 16x16 for the three convolutional latents (B.2's "16x16") and 4x4 features for
the dense ones, so both descriptions agree there. Grey 28x28: table 4's strides would go
28 -> 14 -> 7 -> 3.5 (the sixth stage's stride 2 does not divide 7, nor does an overall stride of
8 divide 28), so the grey preset strides 2-1-1-2-1-1-1-1-1-1 (overall 4): 14x14 conv latents like
the grey HVAE's z_1, 7x7 features below the dense latents. Channels of the conv latents: table
4's 10-8-6, per unit (z_1 holds 2 x 10 channels), because B.2's 8/16/32 repeats the natural
HVAE's latents verbatim (an apparent copy) whereas 10-8-6 continues table 4's decreasing pattern
of the dense latents (42, 40, ..., 30, also per unit; the top layer has one unit of 30).
Kernels: 5 then 3 (table 4 lists nine for ten stages). Three residual blocks per stage and 64
channels as the HVAE ("very similar to the HVAE"); ``channels`` and ``blocks_per_stage`` are
overridable for small CPU runs.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ..config import HVAEConfig
from .base import POSTERIOR, HierarchicalVAE, HVAEOutput, LayerOutput, bottom_up_network
from .distributions import Gaussian, GaussianHead
from .layers import Embed, ResBlock, Stage, WNConv2d
from .likelihoods import make_likelihood


def _double(shape: tuple[int, ...]) -> tuple[int, ...]:
    """Shape of a layer holding two units of ``shape`` concatenated along axis 0."""
    return (2 * shape[0], *shape[1:])


def cat_gaussians(a: Gaussian, b: Gaussian) -> Gaussian:
    """One diagonal Gaussian over ``[a, b]`` concatenated along dim 1."""
    return Gaussian(torch.cat([a.mean, b.mean], 1), torch.cat([a.var, b.var], 1))


@dataclass
class BIVACache:
    """BIVA's bottom-up path along the mean path, shared by every k and sample.

    ``d[i]`` are the bottom-up deterministic features of layer i and ``q[i]`` the bottom-up
    posterior ``q(z_i^BU | d_i)`` (the whole top latent for i = L), with every lower layer
    forwarding the mean of its BU unit (appendix D's d_k(x)); ``x_skip`` is the skip embedding of
    x into stage 2. The TD posteriors depend on the sampled z above and are computed in the pass.
    """

    d: dict[int, Tensor]
    q: dict[int, Gaussian]
    x_skip: Tensor | None
    x: Tensor

    def repeat(self, n: int) -> BIVACache:
        """Repeat each example n times (samples are laid out example-major)."""
        if n == 1:
            return self
        skip = None if self.x_skip is None else self.x_skip.repeat_interleave(n, 0)
        d = {i: t.repeat_interleave(n, 0) for i, t in self.d.items()}
        q = {i: g.repeat(n) for i, g in self.q.items()}
        return BIVACache(d, q, skip, self.x.repeat_interleave(n, 0))


class BIVA(HierarchicalVAE):
    """BIVA behind the forward contract of :class:`~hvaelab.model.base.HierarchicalVAE` (see
    the module docstring). ``units[i]`` is the shape of one unit of layer i, ``shapes[i]`` that
    of the whole z_i.
    """

    def __init__(self, config: HVAEConfig) -> None:
        super().__init__()
        self.config = cfg = config
        L, C, res, nb = cfg.n_layers, cfg.channels, cfg.resolutions(), cfg.blocks_per_stage
        units: list[tuple[int, ...]] = [tuple(cfg.in_shape)] + [
            cfg.latent_shape(i) for i in range(1, L + 1)
        ]
        self.units = units
        self.shapes = [units[0]] + [_double(units[i]) for i in range(1, L)] + [units[L]]
        opts = {"n_mixtures": cfg.n_mixtures} if cfg.likelihood == "dmol" else {}
        self.likelihood = make_likelihood(cfg.likelihood, **opts)

        # Bottom-up path: stage i maps z_{i-1}^BU (+ skip z_{i-2}^BU) at r_{i-1} to d_i at r_i,
        # the HVAE's inference network over one unit per layer.
        self.enc_embed, self.enc_skip, self.enc_stage, self.enc_head = bottom_up_network(cfg, units)
        # Top-down path: stage j maps Embed(z_j) + t_j at r_j to t_{j-1} at r_{j-1}.
        self.dec_embed = nn.ModuleList(Embed(self.shapes[j], C, res[j]) for j in range(1, L + 1))
        self.dec_stage = nn.ModuleList(
            Stage(C, cfg.kernels[j - 1], cfg.strides[j - 1], nb, up=True) for j in range(1, L + 1)
        )
        # p(z_i^BU, z_i^TD | z_>i) from t_i; q(z_i^TD | x, z_>i) from t_i and d_i (i < L).
        self.prior_head = nn.ModuleList(
            GaussianHead(C, res[i], self.shapes[i], cfg.min_var) for i in range(1, L)
        )
        self.td_block = nn.ModuleList(ResBlock(C, cfg.kernels[i - 1]) for i in range(1, L))
        self.td_head = nn.ModuleList(
            GaussianHead(C, res[i], units[i], cfg.min_var) for i in range(1, L)
        )
        self.out_head = WNConv2d(C, self.likelihood.num_params(cfg.in_shape[0]), 3)

    # ------------------------------------------------------------------ network hooks
    def _bottom_up(
        self, i: int, below: Tensor, below2: Tensor | None, x_skip: Tensor | None
    ) -> Tensor:
        """d_i from z_{i-1}^BU (and z_{i-2}^BU through the skip; z_0 = x)."""
        return self.enc_stage[i - 1](self._bottom_up_input(i, below, below2, x_skip))

    def _bu_posterior(self, i: int, d: Tensor) -> Gaussian:
        """q(z_i^BU | d_i); for i = L the posterior of the whole top latent."""
        return self.enc_head[i - 1](d)

    def _top_down(self, j: int, z_j: Tensor, t_j: Tensor | None) -> Tensor:
        """t_{j-1} from z_j and t_j (which carries every latent above j; None for j = L)."""
        h = self.dec_embed[j - 1](z_j)
        if t_j is not None:
            h = h + t_j
        return self.dec_stage[j - 1](h)

    def _prior_td(self, i: int, t: Tensor) -> Gaussian:
        """p(z_i^BU, z_i^TD | z_>i) as one Gaussian over the concatenation, i < L."""
        return self.prior_head[i - 1](t)

    def _td_posterior(self, i: int, t: Tensor, d: Tensor) -> Gaussian:
        """q(z_i^TD | x, z_>i) from the top-down features t_i and bottom-up features d_i."""
        return self.td_head[i - 1](self.td_block[i - 1](t + d))

    def _output(self, t0: Tensor) -> Tensor:
        """Parameters of p(x | z) from t_0."""
        return self.out_head(t0)

    # ------------------------------------------------------------------------- passes
    def encode_means(self, x: Tensor) -> BIVACache:
        """Run the bottom-up path forwarding the means of the BU units (appendix D's d_k(x))."""
        self.check_input(x)
        x_skip = self._x_skip(x)
        d: dict[int, Tensor] = {}
        q: dict[int, Gaussian] = {}
        zs: list[Tensor] = [x]
        for i in range(1, self.n_layers + 1):
            d[i] = self._bottom_up(i, zs[i - 1], zs[i - 2] if i >= 2 else None, x_skip)
            q[i] = self._bu_posterior(i, d[i])
            zs.append(q[i].mean)
        return BIVACache(d, q, x_skip, x)

    def forward(
        self,
        x: Tensor,
        k: int = 0,
        l: int | None = None,
        posterior: str = "sample",
        prior: str = "sample",
        eps: dict[int, Tensor] | None = None,
        generator: torch.Generator | None = None,
        cache: BIVACache | None = None,
    ) -> HVAEOutput:
        """One pass of BIVA on x (model space); arguments as :meth:`HVAE.forward`.

        ``eps[i]`` has the shape of the whole z_i: its first half drives the BU unit's posterior
        sample, its second half the TD unit's; a layer taken from the prior uses all of it.
        """
        L = self.n_layers
        source = self._sources(k, l, posterior, prior)
        self.check_input(x)
        B = x.shape[0]

        def noise(i: int, part: str = "all") -> Tensor | None:
            if eps is None:
                return None
            if part == "all" or i == L:
                return eps[i]
            c = self.units[i][0]
            return eps[i][:, :c] if part == "bu" else eps[i][:, c:]

        # Bottom-up: d_i and q(z_i^BU) up to the highest posterior layer; below z_{k+1} the path
        # forwards BU means (appendix D), above it posterior samples.
        needed = max([i for i in source if source[i] == POSTERIOR], default=0)
        d: dict[int, Tensor] = {}
        q_bu: dict[int, Gaussian] = {}
        z_bu: dict[int, Tensor] = {0: x}
        on_mean_path = cache is not None
        x_skip = cache.x_skip if cache is not None else None
        if cache is None and needed >= 2:
            x_skip = self._x_skip(x)
        for i in range(1, needed + 1):
            if on_mean_path:
                assert cache is not None
                d[i], q_bu[i] = cache.d[i], cache.q[i]
            else:
                d[i] = self._bottom_up(i, z_bu[i - 1], z_bu.get(i - 2), x_skip)
                q_bu[i] = self._bu_posterior(i, d[i])
            if source[i] == POSTERIOR and posterior == "sample":
                z_bu[i] = q_bu[i].sample(noise(i, "bu"), generator)
                on_mean_path = False
            else:
                z_bu[i] = q_bu[i].mean

        # Top-down: t_i, the priors, and z_i from the posterior (BU unit from above, TD unit
        # from t_i and d_i) or from the conditional prior.
        z: dict[int, Tensor] = {}
        layers: list[LayerOutput] = []
        t: Tensor | None = None
        for i in range(L, 0, -1):
            if i == L:
                p = Gaussian.standard((B, *self.shapes[L]), x)
            else:
                t = self._top_down(i + 1, z[i + 1], t)
                p = self._prior_td(i, t)
            q: Gaussian | None = None
            if source[i] == POSTERIOR:
                if i == L:
                    q, z[i] = q_bu[i], z_bu[i]
                else:
                    assert t is not None
                    q_td = self._td_posterior(i, t, d[i])
                    if posterior == "sample":
                        z_td = q_td.sample(noise(i, "td"), generator)
                    else:
                        z_td = q_td.mean
                    q, z[i] = cat_gaussians(q_bu[i], q_td), torch.cat([z_bu[i], z_td], 1)
                kl = q.log_prob(z[i]) - p.log_prob(z[i])
            else:
                z[i] = p.sample(noise(i), generator) if prior == "sample" else p.mean
                kl = torch.zeros(B, device=x.device, dtype=x.dtype)
            layers.append(LayerOutput(i, source[i], q, p, z[i], kl))
        params = self._output(self._top_down(1, z[1], t)).to(x.dtype)
        log_px = self.likelihood.log_prob(params, x)
        layers.reverse()
        return HVAEOutput(layers, log_px, params, k, l, self.likelihood)

"""The bottom-up hierarchical VAE of the paper (sec. 3.2, fig. 4, appendix B).

Inference is bottom-up, ``q(z|x) = q(z_1|x) prod_i q(z_i|z_{i-1})`` (eq. 2), generation is
top-down, ``p(x, z) = p(x|z_1) prod_i p(z_i|z_{i+1}) p(z_L)``, and skip connections feed
``z_{i-2}`` into the stage computing ``z_i`` in both networks (``z_0 = x``).

One forward pass serves every bound in :mod:`hvaelab.bounds`: ``k`` says how many of the lowest
latents come from the conditional prior (L>k, eq. 5) and ``l`` from which layer up the latents come
from the (unconditional) prior (L<l, appendix E). Layers that come from the prior contribute no
KL term; below ``z_{k+1}`` the inference network forwards posterior means (appendix D).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ..config import HVAEConfig
from .base import (
    POSTERIOR,
    HierarchicalVAE,
    HVAEOutput,
    LayerOutput,
    bottom_up_network,
)
from .distributions import Gaussian, GaussianHead
from .layers import Embed, Stage, WNConv2d
from .likelihoods import make_likelihood


@dataclass
class EncoderCache:
    """Posteriors along the mean path of the inference network, shared by every k and sample.

    ``q[i]`` is q(z_i | mean of z_{i-1}, ...) with every lower layer forwarding its mean, which is
    exactly what L>k uses for all layers up to k+1 (appendix D); ``x_skip`` is the skip embedding
    of x into stage 2. Computed once per batch by :meth:`HVAE.encode_means`.
    """

    q: dict[int, Gaussian]
    x_skip: Tensor | None
    x: Tensor

    def repeat(self, n: int) -> EncoderCache:
        """Repeat each example n times (samples are laid out example-major)."""
        if n == 1:
            return self
        skip = None if self.x_skip is None else self.x_skip.repeat_interleave(n, 0)
        q = {i: g.repeat(n) for i, g in self.q.items()}
        return EncoderCache(q, skip, self.x.repeat_interleave(n, 0))


class HVAE(HierarchicalVAE):
    """Bottom-up hierarchical VAE with skip connections (appendix B, table 4)."""

    def __init__(self, config: HVAEConfig) -> None:
        super().__init__()
        self.config = cfg = config
        L, C, res = cfg.n_layers, cfg.channels, cfg.resolutions()
        shapes: list[tuple[int, ...]] = [tuple(cfg.in_shape)] + [
            cfg.latent_shape(i) for i in range(1, L + 1)
        ]
        self.shapes = shapes
        opts = {"n_mixtures": cfg.n_mixtures} if cfg.likelihood == "dmol" else {}
        self.likelihood = make_likelihood(cfg.likelihood, **opts)

        # Inference network: stage i maps z_{i-1} (+ skip z_{i-2}) at r_{i-1} to q(z_i) at r_i.
        self.enc_embed, self.enc_skip, self.enc_stage, self.enc_head = bottom_up_network(
            cfg, shapes
        )
        # Generative network: stage j maps z_j (+ skip z_{j+1}) at r_j to level j-1 at r_{j-1}.
        self.dec_embed = nn.ModuleList(Embed(shapes[j], C, res[j]) for j in range(1, L + 1))
        self.dec_skip = nn.ModuleList(
            Embed(shapes[j + 1], C, res[j]) if cfg.skip and j + 1 <= L else nn.Identity()
            for j in range(1, L + 1)
        )
        self.dec_stage = nn.ModuleList(
            Stage(C, cfg.kernels[j - 1], cfg.strides[j - 1], cfg.blocks_per_stage, up=True)
            for j in range(1, L + 1)
        )
        # Prior heads p(z_i | z_{i+1}) for i = 1..L-1 come from stage i+1.
        self.prior_head = nn.ModuleList(
            GaussianHead(C, res[i], shapes[i], cfg.min_var) for i in range(1, L)
        )
        self.out_head = WNConv2d(C, self.likelihood.num_params(cfg.in_shape[0]), 3)

    # ------------------------------------------------------------------------- network hooks
    def _posterior(self, i: int, h: Tensor) -> Gaussian:
        """q(z_i | .) from the input of inference stage i."""
        return self.enc_head[i - 1](self.enc_stage[i - 1](h))

    def _dec(self, j: int, z_j: Tensor, z_up: Tensor | None) -> Tensor:
        h = self.dec_embed[j - 1](z_j)
        if self.config.skip and j + 1 <= self.n_layers:
            h = h + self.dec_skip[j - 1](z_up)
        return self.dec_stage[j - 1](h)

    def _prior(self, i: int, z_up: Tensor, z_up2: Tensor | None) -> Gaussian:
        """Conditional prior p(z_i | z_{i+1}) (z_{i+2} enters through the skip), i < L."""
        return self.prior_head[i - 1](self._dec(i + 1, z_up, z_up2))

    def _likelihood_params(self, z1: Tensor, z2: Tensor | None) -> Tensor:
        """Parameters of p(x | z_1) (z_2 enters through the skip)."""
        return self.out_head(self._dec(1, z1, z2))

    # ------------------------------------------------------------------------------ passes
    def encode_means(self, x: Tensor) -> EncoderCache:
        """Run the inference network forwarding posterior means (appendix D's d_k(x))."""
        self.check_input(x)
        x_skip = self._x_skip(x)
        q: dict[int, Gaussian] = {}
        zs: list[Tensor] = [x]
        for i in range(1, self.n_layers + 1):
            h = self._bottom_up_input(i, zs[i - 1], zs[i - 2] if i >= 2 else None, x_skip)
            q[i] = self._posterior(i, h)
            zs.append(q[i].mean)
        return EncoderCache(q, x_skip, x)

    def forward(
        self,
        x: Tensor,
        k: int = 0,
        l: int | None = None,
        posterior: str = "sample",
        prior: str = "sample",
        eps: dict[int, Tensor] | None = None,
        generator: torch.Generator | None = None,
        cache: EncoderCache | None = None,
    ) -> HVAEOutput:
        """One pass of the model on x (already in model space, see :meth:`prepare`).

        - ``k``: the k lowest latents z_1..z_k come from the conditional prior
          p(z_i | z_{i+1}) (L>k, eq. 5; k = 0 is the ordinary ELBO pass).
        - ``l``: if given, latents z_l..z_L come from the prior top-down (L<l, appendix E);
          l = L + 1 is the ordinary ELBO pass.
        - ``posterior``, ``prior``: "sample" or "mean" for the latents taken from each.
        - ``eps``: optional standard-normal noise per layer (shape of z_i), for common random
          numbers across passes; otherwise drawn from ``generator``.
        - ``cache``: :meth:`encode_means` of the same x, to share the inference network's mean
          path.
        """
        L = self.n_layers
        source = self._sources(k, l, posterior, prior)
        self.check_input(x)

        def noise(i: int) -> Tensor | None:
            return None if eps is None else eps[i]

        # Bottom-up: posteriors of the layers that need them (and of those below, as encoder).
        needed = max([i for i in source if source[i] == POSTERIOR], default=0)
        q: dict[int, Gaussian] = {}
        z_enc: dict[int, Tensor] = {0: x}
        on_mean_path = cache is not None
        x_skip = cache.x_skip if cache is not None else None
        if cache is None and needed >= 2:
            x_skip = self._x_skip(x)
        for i in range(1, needed + 1):
            if on_mean_path:
                assert cache is not None
                q[i] = cache.q[i]
            else:
                h = self._bottom_up_input(i, z_enc[i - 1], z_enc.get(i - 2), x_skip)
                q[i] = self._posterior(i, h)
            if source[i] == POSTERIOR and posterior == "sample":
                z_enc[i] = q[i].sample(noise(i), generator)
                on_mean_path = False
            else:  # prior layers below k+1 forward the posterior mode (appendix D)
                z_enc[i] = q[i].mean

        # Top-down: priors, and z from the posterior or the prior.
        z: dict[int, Tensor] = {}
        priors: dict[int, Gaussian] = {}
        layers: list[LayerOutput] = []
        for i in range(L, 0, -1):
            if i == L:
                priors[i] = Gaussian.standard((x.shape[0], *self.shapes[i]), x)
            else:
                priors[i] = self._prior(i, z[i + 1], z.get(i + 2))
            if source[i] == POSTERIOR:
                z[i] = z_enc[i]
                kl = q[i].log_prob(z[i]) - priors[i].log_prob(z[i])
            else:
                z[i] = (
                    priors[i].sample(noise(i), generator) if prior == "sample" else priors[i].mean
                )
                kl = torch.zeros(x.shape[0], device=x.device, dtype=x.dtype)
            layers.append(LayerOutput(i, source[i], q.get(i), priors[i], z[i], kl))
        params = self._likelihood_params(z[1], z.get(2))
        params = params.to(x.dtype)  # log p(x|z) in full precision, also under bf16 autocast
        log_px = self.likelihood.log_prob(params, x)
        layers.reverse()
        return HVAEOutput(layers, log_px, params, k, l, self.likelihood)

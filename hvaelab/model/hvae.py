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

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from ..config import HVAEConfig
from .distributions import Gaussian, GaussianHead
from .layers import Embed, Stage, WNConv2d, data_dependent_init
from .likelihoods import Likelihood, make_likelihood

POSTERIOR, PRIOR = "posterior", "prior"
_MODES = ("sample", "mean")


@dataclass
class LayerOutput:
    """What one stochastic layer z_i did in a forward pass."""

    index: int  # i in 1..L (1 = lowest)
    source: str  # "posterior" or "prior": where z_i was taken from
    posterior: Gaussian | None  # q(z_i | .); None where the pass did not need it (L<l top layers)
    prior: Gaussian  # p(z_i | z_{i+1}); N(0, I) for the top layer
    z: Tensor  # the value of z_i used by the generative model
    kl: Tensor  # (B,) single-sample log q(z_i|.) - log p(z_i|z_{i+1}); 0 when from the prior


@dataclass
class HVAEOutput:
    """Result of :meth:`HVAE.forward`: per-layer results plus the data likelihood."""

    layers: list[LayerOutput]
    log_px: Tensor  # (B,) log p(x | z_1)
    params: Tensor  # likelihood parameters (logits for Bernoulli)
    k: int
    l: int | None
    likelihood: Likelihood = field(repr=False)

    @property
    def kl(self) -> Tensor:
        """(B,) sum of the per-layer KL terms of the layers taken from the posterior."""
        return torch.stack([layer.kl for layer in self.layers]).sum(0)

    @property
    def bound(self) -> Tensor:
        """(B,) single-sample value of the bound this pass estimates (ELBO, L>k or L<l)."""
        return self.log_px - self.kl

    def reconstruction(self) -> Tensor:
        """The likelihood's mean image in [0, 1] (e.g. Bernoulli probabilities)."""
        return self.likelihood.mean(self.params)


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


def bottom_up_network(
    cfg: HVAEConfig, shapes: Sequence[tuple[int, ...]]
) -> tuple[nn.ModuleList, nn.ModuleList, nn.ModuleList, nn.ModuleList]:
    """The bottom-up network of appendix B, shared by the HVAE (its inference network) and
    BIVA (its bottom-up path): stage i maps z_{i-1} (+ skip z_{i-2}) at resolution r_{i-1} to a
    Gaussian over z_i of shape ``shapes[i]`` at r_i (``shapes[0]`` is the input's). Returns
    (``enc_embed``, ``enc_skip``, ``enc_stage``, ``enc_head``): the names are checkpoint keys."""
    L, C, res = cfg.n_layers, cfg.channels, cfg.resolutions()
    embed = nn.ModuleList(Embed(shapes[i - 1], C, res[i - 1]) for i in range(1, L + 1))
    skip = nn.ModuleList(
        Embed(shapes[i - 2], C, res[i - 1]) if cfg.skip and i >= 2 else nn.Identity()
        for i in range(1, L + 1)
    )
    stage = nn.ModuleList(
        Stage(C, cfg.kernels[i - 1], cfg.strides[i - 1], cfg.blocks_per_stage, up=False)
        for i in range(1, L + 1)
    )
    head = nn.ModuleList(GaussianHead(C, res[i], shapes[i], cfg.min_var) for i in range(1, L + 1))
    return embed, skip, stage, head


class HVAE(nn.Module):
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
        # A fitted second stage (hvaelab.second_stage.SecondStage), attached by load_model when
        # one is stored beside the checkpoint; not a parameter, not in the weights.
        self.second_stage = None

    # ----------------------------------------------------------------------------- helpers
    @property
    def n_layers(self) -> int:
        return self.config.n_layers

    def _has_skip(self, i: int) -> bool:
        return self.config.skip and i >= 2

    def _enc_input(self, i: int, below: Tensor, below2: Tensor | None, x_skip: Tensor | None):
        h = self.enc_embed[i - 1](below)
        if self._has_skip(i):
            h = h + (x_skip if (i == 2 and x_skip is not None) else self.enc_skip[i - 1](below2))
        return h

    def _posterior(self, i: int, h: Tensor) -> Gaussian:
        return self.enc_head[i - 1](self.enc_stage[i - 1](h))

    def _dec(self, j: int, z_j: Tensor, z_up: Tensor | None) -> Tensor:
        h = self.dec_embed[j - 1](z_j)
        if self.config.skip and j + 1 <= self.n_layers:
            h = h + self.dec_skip[j - 1](z_up)
        return self.dec_stage[j - 1](h)

    def _x_skip(self, x: Tensor) -> Tensor | None:
        """Skip embedding of x into inference stage 2 (None without skips)."""
        return self.enc_skip[1](x) if self._has_skip(2) else None

    def _prior(self, i: int, z_up: Tensor, z_up2: Tensor | None) -> Gaussian:
        """Conditional prior p(z_i | z_{i+1}) (z_{i+2} enters through the skip), i < L."""
        return self.prior_head[i - 1](self._dec(i + 1, z_up, z_up2))

    def _likelihood_params(self, z1: Tensor, z2: Tensor | None) -> Tensor:
        """Parameters of p(x | z_1) (z_2 enters through the skip)."""
        return self.out_head(self._dec(1, z1, z2))

    def prepare(self, x: Tensor) -> Tensor:
        """Map images in [0, 1] (binarized for Bernoulli) to the likelihood's input space."""
        return self.likelihood.to_model_space(x)

    def inputs(self, images, binarize: str = "fixed", seed: int = 0, generator=None):
        """The one door for images (:func:`hvaelab.model.inputs.model_inputs`): checked,
        binarized for Bernoulli models, on the model's device and in its input space."""
        from .inputs import model_inputs

        return model_inputs(self, images, binarize, seed, generator)  # type: ignore[arg-type]

    def check_input(self, x: Tensor) -> None:
        exp = tuple(self.config.in_shape)
        if x.dim() != 4 or tuple(x.shape[1:]) != exp:
            raise ValueError(
                f"expected a batch of shape (N, {exp[0]}, {exp[1]}, {exp[2]}), got {tuple(x.shape)}"
            )
        if not torch.is_floating_point(x):
            raise TypeError(f"expected a floating point tensor, got {x.dtype}")

    # ------------------------------------------------------------------------------ passes
    def encode_means(self, x: Tensor) -> EncoderCache:
        """Run the inference network forwarding posterior means (appendix D's d_k(x))."""
        self.check_input(x)
        x_skip = self._x_skip(x)
        q: dict[int, Gaussian] = {}
        zs: list[Tensor] = [x]
        for i in range(1, self.n_layers + 1):
            h = self._enc_input(i, zs[i - 1], zs[i - 2] if i >= 2 else None, x_skip)
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

        Args:
            k: the k lowest latents z_1..z_k come from the conditional prior p(z_i | z_{i+1})
                (L>k, eq. 5; k = 0 is the ordinary ELBO pass).
            l: if given, latents z_l..z_L come from the prior top-down (L<l, appendix E);
                l = L + 1 is the ordinary ELBO pass.
            posterior, prior: "sample" or "mean" for the latents taken from each.
            eps: optional standard-normal noise per layer (shape of z_i), for common random
                numbers across passes; otherwise drawn from ``generator``.
            cache: :meth:`encode_means` of the same x, to share the inference network's mean path.
        """
        L = self.n_layers
        if not 0 <= k <= L:
            raise ValueError(f"k must be in 0..{L}, got {k}")
        if l is not None and not 1 <= l <= L + 1:
            raise ValueError(f"l must be in 1..{L + 1}, got {l}")
        if posterior not in _MODES or prior not in _MODES:
            raise ValueError(f"posterior/prior must be 'sample' or 'mean', got {posterior}/{prior}")
        self.check_input(x)
        top = L if l is None else l - 1  # highest layer that may come from the posterior
        source = {i: PRIOR if (i <= k or i > top) else POSTERIOR for i in range(1, L + 1)}

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
                q[i] = cache.q[i]
            else:
                h = self._enc_input(i, z_enc[i - 1], z_enc.get(i - 2), x_skip)
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

    @torch.no_grad()
    def sample(
        self, n: int, generator: torch.Generator | None = None, mode: str = "mean"
    ) -> Tensor:
        """Draw n images from the model: z_L ~ N(0, I), then down the conditional priors.

        ``mode="mean"`` returns the likelihood's mean image, ``"sample"`` a sample of x.
        """
        ref = next(self.parameters())
        x_dummy = torch.zeros((n, *self.config.in_shape), device=ref.device, dtype=ref.dtype)
        out = self.forward(x_dummy, k=self.n_layers, generator=generator)
        if mode == "mean":
            return out.reconstruction()
        return self.likelihood.sample(out.params, generator=generator)

    def initialize(self, x: Tensor) -> None:
        """Data-dependent initialisation of all weight-normalised layers on a batch (table 4)."""
        data_dependent_init(self, x, k=0)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

"""What every hierarchical model of hvaelab shares: the forward contract and its helpers.

A model (:class:`~hvaelab.model.HVAE`, :class:`~hvaelab.model.BIVA`, and the closed-form test
models) has latent layers ``z_1..z_L`` (1 = lowest) and ONE forward pass that serves every bound
of :mod:`hvaelab.bounds`: ``forward(x, k, l, posterior, prior, eps, generator, cache)`` returns an
:class:`HVAEOutput` with one :class:`LayerOutput` per layer and its KL term, where ``k`` lowest
latents come from the conditional prior (L>k, eq. 5) and the latents from ``l`` up from the prior
top-down (L<l, appendix E). :class:`HierarchicalVAE` owns that contract's argument checks, the
one input door (:meth:`~HierarchicalVAE.inputs`), sampling and initialisation; the bottom-up
network of appendix B (the HVAE's inference network and BIVA's bottom-up path) is built by
:func:`bottom_up_network` and entered through :meth:`~HierarchicalVAE._bottom_up_input`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from ..config import HVAEConfig
from .distributions import Gaussian, GaussianHead
from .inputs import Binarization, ModelInput, model_inputs
from .layers import Embed, Stage, data_dependent_init
from .likelihoods import Likelihood

POSTERIOR, PRIOR = "posterior", "prior"
MODES = ("sample", "mean")  # how a latent is taken from its distribution


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
    """Result of a model's ``forward``: per-layer results plus the data likelihood."""

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


class HierarchicalVAE(nn.Module):
    """Base of every hvaelab model: the forward contract (see the module docstring).

    A subclass sets ``config`` (with ``n_layers``, ``in_shape``, ``skip``), ``shapes`` (``[x's
    shape, z_1's, ..., z_L's]``) and ``likelihood`` in its ``__init__``, and implements
    ``forward`` and ``encode_means``. ``second_stage`` is a fitted
    :class:`hvaelab.second_stage.SecondStage` attached by ``load_model`` when one is stored
    beside the checkpoint (not a parameter, not in the weights).
    """

    config: Any
    shapes: list[tuple[int, ...]]
    likelihood: Likelihood
    # the bottom-up network's parts, built by subclasses (their names are checkpoint keys)
    enc_embed: nn.ModuleList
    enc_skip: nn.ModuleList
    enc_stage: nn.ModuleList
    second_stage: Any = None

    # ------------------------------------------------------------------------- contract
    def forward(
        self,
        x: Tensor,
        k: int = 0,
        l: int | None = None,
        posterior: str = "sample",
        prior: str = "sample",
        eps: dict[int, Tensor] | None = None,
        generator: torch.Generator | None = None,
        cache: Any = None,
    ) -> HVAEOutput:
        """One pass (every model keeps this signature): the k lowest latents from the
        conditional prior (L>k, eq. 5), latents from l up from the prior (L<l); ``cache`` is
        :meth:`encode_means` of the same x."""
        raise NotImplementedError

    def encode_means(self, x: Tensor) -> Any:
        """The bottom-up path forwarding posterior means (appendix D's d_k(x)), for ``cache``."""
        raise NotImplementedError

    @property
    def n_layers(self) -> int:
        return self.config.n_layers

    def _sources(self, k: int, l: int | None, posterior: str, prior: str) -> dict[int, str]:
        """Check a pass's arguments; where each z_i comes from: the prior for i <= k (L>k) and
        for i >= l (L<l), the posterior otherwise."""
        L = self.n_layers
        if not 0 <= k <= L:
            raise ValueError(f"k must be in 0..{L}, got {k}")
        if l is not None and not 1 <= l <= L + 1:
            raise ValueError(f"l must be in 1..{L + 1}, got {l}")
        if posterior not in MODES or prior not in MODES:
            raise ValueError(f"posterior/prior must be 'sample' or 'mean', got {posterior}/{prior}")
        top = L if l is None else l - 1  # highest layer that may come from the posterior
        return {i: PRIOR if (i <= k or i > top) else POSTERIOR for i in range(1, L + 1)}

    # --------------------------------------------------------------- bottom-up network
    def _has_skip(self, i: int) -> bool:
        return self.config.skip and i >= 2

    def _x_skip(self, x: Tensor) -> Tensor | None:
        """Skip embedding of x into bottom-up stage 2 (None without skips)."""
        return self.enc_skip[1](x) if self._has_skip(2) else None

    def _bottom_up_input(
        self, i: int, below: Tensor, below2: Tensor | None, x_skip: Tensor | None
    ) -> Tensor:
        """Input of bottom-up stage i: z_{i-1} embedded, plus z_{i-2} through the skip (z_0 = x,
        whose skip embedding ``x_skip`` is computed once per batch)."""
        h = self.enc_embed[i - 1](below)
        if self._has_skip(i):
            h = h + (x_skip if (i == 2 and x_skip is not None) else self.enc_skip[i - 1](below2))
        return h

    # -------------------------------------------------------------------- the input door
    def prepare(self, x: Tensor) -> Tensor:
        """Map images in [0, 1] (binarized for Bernoulli) to the likelihood's input space."""
        return self.likelihood.to_model_space(x)

    def inputs(
        self,
        images: Tensor | np.ndarray,
        binarize: Binarization = "fixed",
        seed: int = 0,
        generator: torch.Generator | None = None,
    ) -> ModelInput:
        """The one door for images (:func:`hvaelab.model.inputs.model_inputs`): checked,
        binarized for Bernoulli models, on the model's device and in its input space."""
        return model_inputs(self, images, binarize, seed, generator)

    def check_input(self, x: Tensor) -> None:
        exp = tuple(self.config.in_shape)
        if x.dim() != 4 or tuple(x.shape[1:]) != exp:
            raise ValueError(
                f"expected a batch of shape (N, {exp[0]}, {exp[1]}, {exp[2]}), got {tuple(x.shape)}"
            )
        if not torch.is_floating_point(x):
            raise TypeError(f"expected a floating point tensor, got {x.dtype}")

    # ------------------------------------------------------------------------ the rest
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

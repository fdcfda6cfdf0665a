"""The one door into a model: what it eats, checked once, and how it is switched to evaluation.

:func:`model_inputs` takes images as users and datasets hold them — uint8 arrays (N,28,28),
floats in [0, 1] as (N,H,W) or (N,C,H,W) tensors or arrays — checks them against the model
(type, shape, finite, range) with one error type, :class:`hvaelab.data.InvalidInputError`,
binarizes them for
Bernoulli models (paper appendix A: dynamically for training, with a fixed content-keyed draw
for evaluation) and maps them to the likelihood's input space. Training, scoring, latent
reconstructions, layer correlations and the dashboards all enter here.

:func:`eval_mode` switches models to evaluation mode and restores each one's mode afterwards.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np
import torch
from torch import Tensor, nn

from ..config import HVAEConfig
from ..data.binarize import binarize as binarize_dynamic
from ..data.binarize import binarize_fixed, to_tensor
from ..data.errors import InvalidInputError

Binarization = Literal["fixed", "dynamic", "none"]


class InputModel(Protocol):
    """What the door needs of a model: its config (input shape, likelihood), a parameter (for
    the device and dtype) and its map into the likelihood's input space. Every
    :class:`hvaelab.model.base.HierarchicalVAE` is one; the door does not import the models
    (imports run one way: ``base`` -> ``inputs``)."""

    @property
    def config(self) -> HVAEConfig: ...

    def parameters(self, recurse: bool = True) -> Iterator[nn.Parameter]: ...

    def prepare(self, x: Tensor) -> Tensor: ...


@dataclass
class ModelInput:
    """A batch at the door: ``x01`` what the model sees in [0, 1] (binarized for Bernoulli
    models), ``x`` the same in the likelihood's input space (what ``forward`` takes)."""

    x01: Tensor
    x: Tensor


def _as_float01(model: InputModel, images: Tensor | np.ndarray, what: str, trusted: bool) -> Tensor:
    exp = tuple(model.config.in_shape)
    if isinstance(images, np.ndarray):
        images = to_tensor(images)  # uint8 0..255, floats in [0, 1] or bools; (N,28,28)
    if not isinstance(images, Tensor):
        raise InvalidInputError(
            f"{what} must be a torch.Tensor or a numpy array of images, got "
            f"{type(images).__name__}; convert images with hvaelab.data.to_tensor"
        )
    if not torch.is_floating_point(images):
        raise InvalidInputError(
            f"{what} must be float images in [0, 1], got dtype {images.dtype}; convert uint8 "
            "images with hvaelab.data.to_tensor (or pass the uint8 numpy array)"
        )
    if images.dim() == 3 and exp[0] == 1:
        images = images.unsqueeze(1)
    if images.dim() != 4 or tuple(images.shape[1:]) != exp or images.shape[0] == 0:
        raise InvalidInputError(
            f"{what}: expected a batch of shape (N, {exp[0]}, {exp[1]}, {exp[2]}) with N >= 1 "
            f"for this model, got {tuple(images.shape)}"
        )
    if trusted:  # values checked when they entered (to_tensor): no device sync per batch
        return images
    finite = torch.isfinite(images)
    if not bool(finite.all()):
        raise InvalidInputError(
            f"{what}: {int((~finite).sum())} values are NaN or infinite; images must be finite"
        )
    lo, hi = float(images.min()), float(images.max())
    if lo < 0 or hi > 1:
        raise InvalidInputError(
            f"{what} must be scaled to [0, 1], got values in [{lo:.3g}, {hi:.3g}]; divide "
            "0..255 images by 255"
        )
    return images


def model_inputs(
    model: InputModel,
    images: Tensor | np.ndarray,
    binarize: Binarization = "fixed",
    seed: int = 0,
    generator: torch.Generator | None = None,
    what: str = "images",
    trusted: bool = False,
) -> ModelInput:
    """Check ``images`` for ``model``, binarize them (Bernoulli models only) and move them to
    the model's device and dtype and into its input space.

    ``binarize``: ``"fixed"`` (evaluation: :func:`hvaelab.data.binarize_fixed` with ``seed``, the
    same bits for an image in any batch), ``"dynamic"`` (training: a fresh Bernoulli draw from
    ``generator``) or ``"none"`` (images already binary, or to be used as they are).
    ``trusted`` skips the value checks (finite, in [0, 1]) for batches of images that were
    checked on entry, as the training loop's (type and shape are still checked).
    """
    x01 = _as_float01(model, images, what, trusted)
    ref = next(model.parameters())
    x01 = x01.to(device=ref.device, dtype=ref.dtype)
    if model.config.likelihood == "bernoulli":
        if binarize == "fixed":
            x01 = binarize_fixed(x01, seed)
        elif binarize == "dynamic":
            x01 = binarize_dynamic(x01, generator)
        elif binarize != "none":
            raise ValueError(f"binarize must be 'fixed', 'dynamic' or 'none', got {binarize!r}")
    return ModelInput(x01, model.prepare(x01))


@contextmanager
def eval_mode(*models: nn.Module) -> Iterator[None]:
    """Put ``models`` in evaluation mode for the block and restore each one's mode after."""
    modes = [m.training for m in models]
    try:
        for m in models:
            m.eval()
        yield
    finally:
        for m, mode in zip(models, modes, strict=True):
            m.train(mode)

"""Images to model inputs: float tensors in [0, 1] and their binarizations (paper appendix A).

Training binarizes dynamically (a new Bernoulli draw every time); evaluation uses a fixed,
content-keyed binarization so an example gets the same bits in any batch, order or subset.
"""

from __future__ import annotations

import numpy as np
import torch

from ..noise import splitmix64 as _splitmix64
from .images import validate_images


def to_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 images -> float32 tensor in [0, 1]: grey (N,28,28) -> (N,1,28,28), colour
    (N,32,32,3) -> (N,3,32,32) (see :func:`hvaelab.data.validate_images` for what is accepted)."""
    arr = validate_images(images).astype(np.float32)
    arr /= 255.0
    if arr.ndim == 4:  # colour, channels last -> channels first
        return torch.from_numpy(np.ascontiguousarray(arr.transpose(0, 3, 1, 2)))
    return torch.from_numpy(arr).unsqueeze(1)


def _check_probs(x: torch.Tensor) -> None:
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise TypeError("binarization needs a float tensor in [0, 1] (use to_tensor(images))")
    if x.numel() and not bool(((x >= 0) & (x <= 1)).all()):
        raise ValueError("binarization needs values in [0, 1] (NaN is not allowed); use to_tensor")


def binarize(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Dynamic binarization for training: pixel ~ Bernoulli(x), resampled on every call."""
    _check_probs(x)
    return torch.bernoulli(x, generator=generator)


def binarize_fixed(x: torch.Tensor, seed: int = 0, chunk: int = 4096) -> torch.Tensor:
    """Deterministic binarization for evaluation.

    Each pixel's uniform draw is a hash of (the example's own pixel values, the pixel's
    position, ``seed``), so an example gets the same bits whatever batch, order or subset it
    comes in, on any machine: binarizing a subset equals subsetting the binarized whole.
    Identical examples get identical bits. ``x`` is (N, ...) with values in [0, 1].
    """
    _check_probs(x)
    if x.ndim == 0:
        raise ValueError("binarize_fixed needs a batch (N, ...), not a scalar")
    n = x.shape[0]
    if x.numel() == 0:
        return x.clone()
    p = x.detach().to("cpu", torch.float32).numpy().reshape(n, -1)
    out = np.empty(p.shape, dtype=np.float32)
    with np.errstate(over="ignore"):
        golden = np.uint64(0x9E3779B97F4A7C15)
        pix_key = _splitmix64(np.arange(p.shape[1], dtype=np.uint64) * golden)
        seed_key = _splitmix64(np.array([seed % 2**64], dtype=np.uint64))
        for a in range(0, n, chunk):
            block = p[a : a + chunk] + np.float32(0.0)  # -0.0 -> 0.0
            bits = block.view(np.uint32).astype(np.uint64)
            content = _splitmix64(bits ^ pix_key).sum(axis=1, dtype=np.uint64)
            key = _splitmix64(content ^ seed_key)
            r = _splitmix64(key[:, None] ^ pix_key[None, :])
            u = (r >> np.uint64(40)).astype(np.float32) * np.float32(2.0**-24)
            out[a : a + chunk] = u < block
    return torch.from_numpy(out).reshape(x.shape).to(dtype=x.dtype, device=x.device)

"""Keyed random numbers: every draw is a function of its key, not of a generator's history.

An example's draws come from a generator seeded with the example's key alone, so the same example
gets the same numbers in any batch, order, chunk or process. hvaelab keys

* scoring's importance samples by (the example's content and the seed, sample index): the
  common random numbers of sec. 4.2 (:func:`hvaelab.bounds.bound_samples`), so a score does not
  depend on the batch it was computed in (:func:`example_keys`);
* training's shuffling by (seed, epoch), its dynamic binarization and reparameterisation noise
  by (seed, epoch, example index) (:func:`train_keys`), so a run sharded over ``torchrun`` ranks
  sees exactly the pixels and the latent noise a single process sees, and a run resumed at
  another world size continues the same sequence (:mod:`hvaelab.distributed`).

Draws are made on the CPU and moved to the device. They are not what makes scoring slow: on the
project's 2-core CPU (the shipped 32-channel model, 128 FashionMNIST test images, S = 16, one
thread) drawing the noise took 0.12 s of 42.6 s, the model's passes the rest; a vectorised
32-bit integer hash of the same draws (2048 x 1592 normals) took 0.35 s against the per-key
generators' 0.026 s.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def splitmix64(z: np.ndarray) -> np.ndarray:
    """SplitMix64 finalizer, elementwise on uint64 (wrapping arithmetic)."""
    with np.errstate(over="ignore"):
        z = z + _GOLDEN
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def example_keys(x: Tensor, seed: int) -> list[int]:
    """A 63-bit key per example from its content and the seed (scoring's common random numbers)."""
    arr = x.detach().to("cpu", torch.float32).contiguous().numpy()
    keys = []
    for row in arr:
        h = hashlib.blake2b(row.tobytes(), digest_size=8, key=str(seed).encode())
        keys.append(int.from_bytes(h.digest(), "little") >> 1)
    return keys


# What training noise is for: each purpose has its own keys, hence independent draws.
TRAIN_PURPOSES = {"binarize": 1, "latent": 2, "shuffle": 3}


def train_keys(
    purpose: str, seed: int, epoch: int, index: Tensor | np.ndarray | list[int]
) -> list[int]:
    """A 63-bit key per training example for ``purpose`` ("binarize", "latent"; "shuffle" with
    index [0] for the epoch's permutation) in ``epoch`` (0-based; -1: the data-dependent
    initialisation) of a run seeded ``seed``; ``index`` is each example's position in the
    training set."""
    if purpose not in TRAIN_PURPOSES:
        raise ValueError(f"purpose must be one of {sorted(TRAIN_PURPOSES)}, got {purpose!r}")
    idx = np.asarray(torch.as_tensor(index).cpu(), dtype=np.int64)
    if idx.ndim != 1 or (idx < 0).any():
        raise ValueError("index must be non-negative example positions, shape (N,)")
    head = np.uint64(TRAIN_PURPOSES[purpose]) << np.uint64(56)
    with np.errstate(over="ignore"):
        run = splitmix64(np.array([head ^ np.uint64(seed % 2**56)], dtype=np.uint64))
        run = splitmix64(run ^ np.uint64(epoch % 2**64))
        k = splitmix64(run ^ idx.astype(np.uint64))
    return [int(v) for v in (k >> np.uint64(1))]


def _rows(keys: Sequence[int], samples: range, total: int, draw) -> Tensor:
    g = torch.Generator()
    rows = []
    for key in keys:
        for s in samples:
            g.manual_seed((key + 1_000_003 * s) % (2**63))
            rows.append(draw(total, generator=g))
    return torch.stack(rows) if rows else torch.zeros(0, total)


def keyed_noise(
    keys: Sequence[int],
    shapes: dict[int, tuple[int, ...]],
    samples: range = range(1),
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> dict[int, Tensor]:
    """Standard-normal noise per layer for samples ``samples`` of each keyed example.

    Returned tensors are laid out example-major, ``(B * len(samples), *shape)``, matching
    ``repeat_interleave``. Sample s of an example gets the same noise whatever the chunking.
    """
    sizes = {i: math.prod(s) for i, s in shapes.items()}
    flat = _rows(keys, samples, sum(sizes.values()), torch.randn)
    flat = flat.to(device=device, dtype=dtype)
    out, start = {}, 0
    for i in sorted(shapes):
        out[i] = flat[:, start : start + sizes[i]].reshape(-1, *shapes[i])
        start += sizes[i]
    return out


def keyed_uniform(
    keys: Sequence[int],
    shape: tuple[int, ...],
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """Uniform [0, 1) draws of ``shape`` for each keyed example, ``(B, *shape)``."""
    flat = _rows(keys, range(1), math.prod(shape), torch.rand)
    return flat.to(device=device, dtype=dtype).reshape(-1, *shape)


__all__ = [
    "TRAIN_PURPOSES",
    "example_keys",
    "keyed_noise",
    "keyed_uniform",
    "splitmix64",
    "train_keys",
]

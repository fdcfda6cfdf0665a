"""Synthetic OOD sets generated on demand: noise and constant images (no files, no downloads).

Each set is a pure function of its :class:`Synthetic` description (kind, size, seed), so every
machine builds the same images; ``NAME-inverted`` works for them as for every dataset.

=================  ==========================================================================
kind               image i
=================  ==========================================================================
``uniform``        every pixel drawn uniformly from 0..255
``bernoulli``      every pixel 0 or 255 with probability 1/2 each
``constant``       one grey level, drawn uniformly from 0..255, in every pixel
=================  ==========================================================================
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .images import IMAGE_SIZE

SYNTHETIC_KINDS = ("uniform", "bernoulli", "constant")


@dataclass(frozen=True)
class Synthetic:
    """A generated dataset: ``size`` images of ``kind`` from ``numpy.random.default_rng(seed)``."""

    kind: str
    size: int = 10_000
    seed: int = 0

    def __post_init__(self) -> None:
        if self.kind not in SYNTHETIC_KINDS:
            raise ValueError(f"synthetic kind must be one of {SYNTHETIC_KINDS}, got {self.kind!r}")
        if self.size < 1:
            raise ValueError(f"a synthetic set needs at least one image, got size={self.size}")

    def describe(self) -> str:
        return f"generated: {self.size} {self.kind} images, numpy default_rng({self.seed})"


def generate(spec: Synthetic) -> np.ndarray:
    """The images of ``spec`` as uint8 (size, 28, 28), read-only."""
    rng = np.random.default_rng(spec.seed)
    shape = (spec.size, IMAGE_SIZE, IMAGE_SIZE)
    if spec.kind == "uniform":
        out = rng.integers(0, 256, size=shape, dtype=np.uint8)
    elif spec.kind == "bernoulli":
        out = (rng.random(shape) < 0.5).astype(np.uint8) * np.uint8(255)
    else:
        levels = rng.integers(0, 256, size=spec.size, dtype=np.uint8)
        out = np.broadcast_to(levels[:, None, None], shape).copy()
    out.setflags(write=False)
    return out

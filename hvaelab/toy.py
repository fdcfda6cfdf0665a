"""A two-level toy where the likelihood's failure is visible by eye (the teaching page, sec. 2).

Havtorn et al. (2021, sec. 2 and appendix C) argue that an exact likelihood, not only a poorly
fitted one, can prefer out-of-distribution data: the likelihood is a sum of terms, and the terms
of the many low-level dimensions outweigh the few semantic ones. The toy makes that concrete with
an exact density whose two levels are explicit:

* a *semantic* coordinate ``s ~ N(0, 1)`` (what an image shows: a shirt or a shoe);
* ``D`` *detail* coordinates ``t_j | s ~ N(0, sigma(s)^2)``, ``sigma(s) = sigma0 * exp(a s)``,
  i.i.d. given ``s`` (the pixels' low-level texture: how much there is to describe depends on
  what the image shows, here more for larger ``s``).

So ``log p(s, t) = log N(s; 0, 1) + sum_j log N(t_j; 0, sigma(s)^2)``: a semantic term and a
detail term, like the top and the bottom of a hierarchical VAE's ELBO (eq. 4). The in-distribution
set is drawn from this very density (the model is *perfect*); the out-of-distribution set has a
semantic coordinate the training data almost never show (``s`` near ``ood_mean``, far on the
simple side) and details drawn from the model's own conditional, i.e. simple, well-described
details, like MNIST's black background. Its likelihood is nonetheless *higher* once ``D`` is large:
each detail coordinate gains ``-a * (s_ood - E[s])`` nats, the semantic term loses only a few,
and ``D`` multiplies the first (the paper's eq. 15-16: the high-dimensional levels dominate).
A score that keeps the semantic term alone separates the sets, which is what LLR>k does in the
real model by cancelling the data-space term (eqs. 7-8).

Every function is exact and vectorised in numpy; scores follow hvaelab's sign convention (higher =
more OOD).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

LOG_2PI = math.log(2.0 * math.pi)


@dataclass(frozen=True)
class ToyConfig:
    """The toy's density and its out-of-distribution set."""

    slope: float = 0.5  # a: log sigma(s) = log sigma0 + a * s (how details grow with s)
    sigma0: float = 0.5  # sigma(0): the details' spread for a typical semantic value
    n_detail: int = 1  # D: number of detail coordinates (only t_1 is drawn in the figure)
    ood_mean: float = -3.0  # the OOD set's semantic centre, in units of the in-set's std
    ood_std: float = 0.3  # the OOD set's semantic spread

    def __post_init__(self) -> None:
        if self.n_detail < 1:
            raise ValueError(f"n_detail must be >= 1, got {self.n_detail}")
        if not (self.sigma0 > 0 and self.ood_std > 0):
            raise ValueError(
                f"sigma0 and ood_std must be > 0, got {self.sigma0} and {self.ood_std}"
            )
        if not all(math.isfinite(v) for v in (self.slope, self.sigma0, self.ood_mean)):
            raise ValueError("slope, sigma0 and ood_mean must be finite")


@dataclass
class ToySet:
    """Points of one set: semantic coordinates ``s`` (N,) and details ``t`` (N, D)."""

    s: np.ndarray
    t: np.ndarray

    def __len__(self) -> int:
        return len(self.s)


@dataclass
class ToyTerms:
    """``log p(s, t)`` split into its two levels, per point, in nats."""

    semantic: np.ndarray  # log N(s; 0, 1)
    detail: np.ndarray  # sum_j log N(t_j; 0, sigma(s)^2)

    @property
    def log_density(self) -> np.ndarray:
        return self.semantic + self.detail


def detail_std(config: ToyConfig, s: np.ndarray) -> np.ndarray:
    """sigma(s) = sigma0 * exp(a s): the spread of each detail coordinate given ``s``."""
    return config.sigma0 * np.exp(config.slope * np.asarray(s, dtype=np.float64))


def sample(config: ToyConfig, n: int, ood: bool = False, seed: int = 0) -> ToySet:
    """``n`` points of the in-distribution set (drawn from the density itself) or of the OOD set
    (``s ~ N(ood_mean, ood_std^2)``, details from the density's own conditional). Seeded."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    rng = np.random.default_rng([seed, int(ood)])
    mean, std = (config.ood_mean, config.ood_std) if ood else (0.0, 1.0)
    s = mean + std * rng.standard_normal(n)
    t = detail_std(config, s)[:, None] * rng.standard_normal((n, config.n_detail))
    return ToySet(s=s, t=t)


def terms(config: ToyConfig, points: ToySet) -> ToyTerms:
    """The semantic and detail terms of ``log p(s, t)`` (exact)."""
    s = np.asarray(points.s, dtype=np.float64)
    t = np.asarray(points.t, dtype=np.float64)
    if t.ndim != 2 or t.shape != (len(s), config.n_detail):
        raise ValueError(f"t must have shape ({len(s)}, {config.n_detail}), got {t.shape}")
    log_sigma = math.log(config.sigma0) + config.slope * s
    semantic = -0.5 * (s**2 + LOG_2PI)
    z = t / np.exp(log_sigma)[:, None]
    detail = (-0.5 * (z**2 + LOG_2PI) - log_sigma[:, None]).sum(axis=1)
    return ToyTerms(semantic=semantic, detail=detail)


def log_density_grid(config: ToyConfig, s: np.ndarray, t1: np.ndarray) -> np.ndarray:
    """``log p(s, t_1)`` (one detail coordinate, the one the figure draws) on the grid
    ``s x t1``; shape (len(t1), len(s)), as plotly's heatmaps want it."""
    ss, tt = np.meshgrid(np.asarray(s, float), np.asarray(t1, float))
    grid = ToyConfig(config.slope, config.sigma0, 1, config.ood_mean, config.ood_std)
    out = terms(grid, ToySet(ss.ravel(), tt.ravel()[:, None])).log_density
    return out.reshape(ss.shape)


def scores(config: ToyConfig, points: ToySet) -> dict[str, np.ndarray]:
    """The two scores of the toy, higher = more OOD: ``"-log p"`` (the likelihood, all levels)
    and ``"-log p(s)"`` (the semantic level alone)."""
    parts = terms(config, points)
    return {"-log p": -parts.log_density, "-log p(s)": -parts.semantic}


__all__ = [
    "ToyConfig",
    "ToySet",
    "ToyTerms",
    "detail_std",
    "log_density_grid",
    "sample",
    "scores",
    "terms",
]

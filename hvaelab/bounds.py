"""Likelihood bounds of the paper, per example and per importance sample.

* ELBO, eq. (1): ``E_q[log p(x, z) - log q(z|x)]``.
* L>k, eq. (5): the k lowest latents from the conditional prior, ``z_{>k}`` from the posterior
  through the mean-forwarding encoder of appendix D. L>0 is the ELBO.
* L<l, appendix E (eq. 20 as corrected in the project notes):
  ``E_{p(z>=l) q(z<l|x)}[log p(x|z) + log p(z<l|z>=l) - log q(z<l|x)]``; L<(L+1) is the ELBO.
* Importance-weighted versions, eq. (9): log-mean-exp over S samples, ``logsumexp - log S``.

Every pass uses common random numbers: the standard-normal noise of layer i is the same in the
ELBO pass and in every L>k / L<l pass of the same sample, so that LLR>0 = 0 exactly and the
ratio's variance is reduced (sec. 4.2). The noise is keyed by each example's content and the
seed, so results do not depend on batch composition or order.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from .model import HierarchicalVAE
from .model.hvae import EncoderCache
from .noise import example_keys, keyed_noise

PRIOR_MODES = ("mean", "sample")


def log_mean_exp(values: Tensor, dim: int = -1) -> Tensor:
    """``log (1/S) sum_s exp(values_s)`` along ``dim`` (eq. 9), numerically stable."""
    return torch.logsumexp(values, dim=dim) - math.log(values.shape[dim])


def bits_per_dim(nats: Tensor | np.ndarray | float, n_dims: int):
    """Convert a log-likelihood (bound) in nats to bits per dimension, ``-nats / (D ln 2)``."""
    return -nats / (n_dims * math.log(2.0))


@dataclass
class BoundSamples:
    """Single-sample bound values, each of shape (B, S), in nats.

    ``gt[k]`` is L>k (``gt[0]`` the ELBO) and ``lt[l]`` is L<l for the requested k and l.
    """

    gt: dict[int, Tensor]
    lt: dict[int, Tensor] = field(default_factory=dict)

    @property
    def n_samples(self) -> int:
        return next(iter(self.gt.values())).shape[1]

    def mean(self, which: str, idx: int) -> Tensor:
        """Average of the single-sample estimates (an unbiased estimate of the bound)."""
        return getattr(self, which)[idx].mean(1)

    def iw(self, which: str, idx: int) -> Tensor:
        """Importance-weighted bound with S samples (eq. 9)."""
        return log_mean_exp(getattr(self, which)[idx], dim=1)


@torch.no_grad()
def bound_samples(
    model: HierarchicalVAE,
    x: Tensor,
    ks: Iterable[int] | None = None,
    ls: Iterable[int] = (),
    n_samples: int = 1,
    prior: str = "mean",
    seed: int = 0,
    max_rows: int = 2048,
    cache: EncoderCache | None = None,
) -> BoundSamples:
    """L>k for every k in ``ks`` (default 0..L) and L<l for ``ls``, for S samples each.

    x is a batch in model space (binarized for Bernoulli). ``prior`` says whether the latents
    below k+1 are the conditional priors' means (as the authors' code) or samples (eq. 5 as
    written; only then is L>k a stochastic lower bound). The mean path of the inference network
    is computed once (or taken from ``cache``) and shared by every k and sample; samples are
    processed in chunks of at most ``max_rows`` rows.
    """
    if prior not in PRIOR_MODES:
        raise ValueError(f"prior must be one of {PRIOR_MODES}, got {prior!r}")
    if n_samples < 1:
        raise ValueError(f"n_samples must be >= 1, got {n_samples}")
    L = model.n_layers
    ks = list(range(L + 1)) if ks is None else sorted(set(ks))
    ls = sorted(set(ls))
    if 0 not in ks:
        ks = [0, *ks]
    B = x.shape[0]
    cache = model.encode_means(x) if cache is None else cache
    keys = example_keys(x, seed)
    shapes = {i: model.shapes[i] for i in range(1, L + 1)}
    chunk = max(1, min(n_samples, max_rows // max(B, 1)))
    gt: dict[int, list[Tensor]] = {k: [] for k in ks}
    lt: dict[int, list[Tensor]] = {l_: [] for l_ in ls}
    fixed: dict[int, Tensor] = {}
    if prior == "mean" and L in ks:  # every latent is a prior mean: no noise, compute once
        fixed[L] = model(x, k=L, prior="mean", cache=cache).bound
    for s0 in range(0, n_samples, chunk):
        c = min(chunk, n_samples - s0)
        xr, cr = x.repeat_interleave(c, 0), cache.repeat(c)
        eps = keyed_noise(keys, shapes, range(s0, s0 + c), x.device, x.dtype)
        for k in fixed:
            gt[k].append(fixed[k][:, None].expand(B, c))
        for k in (k for k in ks if k not in fixed):
            out = model(xr, k=k, prior=prior if k > 0 else "sample", eps=eps, cache=cr)
            gt[k].append(out.bound.view(B, c))
        for l_ in ls:
            out = model(xr, l=l_, prior="sample", eps=eps, cache=cr)
            lt[l_].append(out.bound.view(B, c))
    return BoundSamples(
        gt={k: torch.cat(v, 1) for k, v in gt.items()},
        lt={l_: torch.cat(v, 1) for l_, v in lt.items()},
    )

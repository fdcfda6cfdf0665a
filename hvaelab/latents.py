"""Latent reconstructions and per-layer KL terms (paper sec. 2, figs. 1 and 3; sec. 4.1).

A *latent reconstruction* from layer k reconstructs x with the approximate posterior for the
latents above k and the conditional prior for the k lowest ones, ``z_{>k} ~ q(z_{>k}|x)``,
``z_{<=k} ~ p(z_{<=k}|z_{>k})``, then takes the likelihood's mean ``E[x|z_1]`` (the same pass as
L>k, eq. 5; k = 0 is the ordinary reconstruction). The higher k, the more the reconstruction falls
into a mode of the training distribution, which is what makes OOD inputs reconstruct badly.

:func:`layer_kl` gives the per-layer terms of the KL in eq. (4), whose sum is dominated by the
high-dimensional lowest latents (sec. 4.1, appendix C).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from .model import HierarchicalVAE, eval_mode, model_inputs
from .noise import example_keys, keyed_noise

MODES = ("mean", "sample")


@dataclass
class LatentReconstructions:
    """Latent reconstructions of N inputs from K layers (figs. 1, 3).

    ``images[j]`` reconstructs ``inputs`` with the ``ks[j]`` lowest latents from the conditional
    prior; ``log_px[j]`` is ``log p(x | z)`` of those latents in nats.
    """

    ks: list[int]
    inputs: Tensor  # (N, C, H, W) in [0, 1]: the model's input (binarized for Bernoulli)
    images: Tensor  # (K, N, C, H, W) likelihood means in [0, 1]
    log_px: Tensor  # (K, N) log p(x | z) in nats
    mode: str  # "mean" or "sample"

    def __len__(self) -> int:
        return self.inputs.shape[0]


def concat_reconstructions(recs: Sequence[LatentReconstructions]) -> LatentReconstructions:
    """Stack the inputs of several results (e.g. in-distribution above OOD) into one."""
    if not recs:
        raise ValueError("concat_reconstructions needs at least one LatentReconstructions")
    ks, mode = recs[0].ks, recs[0].mode
    for r in recs[1:]:
        if r.ks != ks or r.mode != mode:
            raise ValueError(
                f"cannot stack reconstructions with ks/mode {r.ks}/{r.mode!r} onto "
                f"{ks}/{mode!r}; compute them with the same ks and mode"
            )
    return LatentReconstructions(
        ks=list(ks),
        inputs=torch.cat([r.inputs for r in recs]),
        images=torch.cat([r.images for r in recs], dim=1),
        log_px=torch.cat([r.log_px for r in recs], dim=1),
        mode=mode,
    )


def _check_ks(model: HierarchicalVAE, ks: Iterable[int] | None) -> list[int]:
    L = model.n_layers
    if ks is None:
        return list(range(L + 1))
    ks = [int(k) for k in ks]
    bad = [k for k in ks if not 0 <= k <= L]
    if not ks or bad:
        raise ValueError(f"ks must be a non-empty list of layers in 0..{L}, got {ks}")
    return ks


def _batches(n: int, batch_size: int) -> Iterable[slice]:
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    return (slice(i, min(i + batch_size, n)) for i in range(0, n, batch_size))


@torch.no_grad()
def latent_reconstructions(
    model: HierarchicalVAE,
    x01: Tensor | np.ndarray,
    ks: Iterable[int] | None = None,
    mode: str = "mean",
    seed: int = 0,
    binarize_seed: int = 0,
    batch_size: int = 256,
) -> LatentReconstructions:
    """Reconstruct x from each layer k in ``ks`` (default 0..L): z_{>k} from q, z_{<=k} from p.

    ``mode="mean"`` takes every latent (posterior and conditional prior) as its distribution's
    mean, so the result is deterministic. ``mode="sample"`` samples them with noise keyed by each
    example's content and ``seed`` (reproducible, independent of batching) and the same noise for
    every k (common random numbers). As in L>k, the inference network forwards posterior means
    below z_{k+1} (appendix D). Bernoulli inputs are binarized with ``binarize_seed``.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    ks = _check_ks(model, ks)
    with eval_mode(model):
        door = model_inputs(model, x01, "fixed", binarize_seed, what="x01")
        inputs, x = door.x01, door.x
        shapes = {i: model.shapes[i] for i in range(1, model.n_layers + 1)}
        images: list[list[Tensor]] = [[] for _ in ks]
        log_px: list[list[Tensor]] = [[] for _ in ks]
        for sl in _batches(x.shape[0], batch_size):
            xb = x[sl]
            cache = model.encode_means(xb)
            eps = None
            if mode == "sample":
                keys = example_keys(xb, seed)
                eps = keyed_noise(keys, shapes, range(1), xb.device, xb.dtype)
            for j, k in enumerate(ks):
                out = model(xb, k=k, posterior=mode, prior=mode, eps=eps, cache=cache)
                images[j].append(out.reconstruction().cpu())
                log_px[j].append(out.log_px.cpu())
    return LatentReconstructions(
        ks=ks,
        inputs=inputs.cpu(),
        images=torch.stack([torch.cat(v) for v in images]),
        log_px=torch.stack([torch.cat(v) for v in log_px]),
        mode=mode,
    )


@torch.no_grad()
def layer_kl(
    model: HierarchicalVAE,
    x01: Tensor,
    n_samples: int = 1,
    seed: int = 0,
    per_dim: bool = False,
    binarize_seed: int = 0,
    batch_size: int = 256,
) -> Tensor:
    """(N, L) per-layer KL terms ``log q(z_i|.) - log p(z_i|z_{i+1})`` of the ELBO pass (eq. 4).

    Column i-1 is layer z_i; single-sample terms are averaged over ``n_samples`` samples whose
    noise is keyed like :func:`hvaelab.bounds.bound_samples` (the same seed gives the same
    samples, so the row sums equal ``log p(x|z) - ELBO`` of that function). With ``per_dim``
    each term is divided by dim(z_i), which shows the per-dimension rates behind sec. 4.1.
    """
    if n_samples < 1:
        raise ValueError(f"n_samples must be >= 1, got {n_samples}")
    L = model.n_layers
    shapes = {i: model.shapes[i] for i in range(1, L + 1)}
    with eval_mode(model):
        x = model_inputs(model, x01, "fixed", binarize_seed, what="x01").x
        rows: list[Tensor] = []
        for sl in _batches(x.shape[0], batch_size):
            xb = x[sl]
            B = xb.shape[0]
            keys = example_keys(xb, seed)
            cache = model.encode_means(xb)
            total = torch.zeros(B, L, dtype=torch.float64)
            chunk = max(1, min(n_samples, 2048 // B))
            for s0 in range(0, n_samples, chunk):
                c = min(chunk, n_samples - s0)
                eps = keyed_noise(keys, shapes, range(s0, s0 + c), xb.device, xb.dtype)
                out = model(xb.repeat_interleave(c, 0), k=0, eps=eps, cache=cache.repeat(c))
                kl = torch.stack([layer.kl for layer in out.layers], dim=1)  # (B*c, L)
                total += kl.view(B, c, L).sum(1).double().cpu()
            rows.append((total / n_samples).float())
    kl = torch.cat(rows)
    if per_dim:
        dims = torch.tensor([math.prod(shapes[i]) for i in range(1, L + 1)], dtype=kl.dtype)
        kl = kl / dims
    return kl


def layer_kl_per_dim(
    model: HierarchicalVAE, x01: Tensor, n_samples: int = 1, seed: int = 0
) -> Tensor:
    """(N, L) per-layer KL terms divided by dim(z_i) (nats per latent dimension)."""
    return layer_kl(model, x01, n_samples=n_samples, seed=seed, per_dim=True)


__all__ = [
    "LatentReconstructions",
    "concat_reconstructions",
    "latent_reconstructions",
    "layer_kl",
    "layer_kl_per_dim",
]

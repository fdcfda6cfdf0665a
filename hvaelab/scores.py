"""OOD scores of the paper for datasets and single inputs (secs. 4.2 and 5).

Sign convention, used everywhere in hvaelab: a HIGHER score means MORE out-of-distribution.
Bounds (ELBO, L>k, L<l) are log-likelihoods in nats and enter as scores negated (-L, which is
bits/dim up to a constant factor); likelihood ratios (LLR>k) enter as they are.
"""

from __future__ import annotations

import hashlib

import torch
from torch import Tensor


def binarize_keyed(x01: Tensor, seed: int = 0) -> Tensor:
    """Fixed binarization for evaluation: each pixel is 1 with probability x (paper sec. 5).

    The random bits of each example are keyed by its content and ``seed``, so an image is
    binarized the same way alone, in any batch and in any dataset.
    """
    if x01.numel() and (x01.min() < 0 or x01.max() > 1):
        raise ValueError("binarize_keyed expects images scaled to [0, 1]")
    arr = x01.detach().to("cpu", torch.float32).contiguous()
    out = torch.empty_like(arr)
    g = torch.Generator()
    for i, row in enumerate(arr):
        h = hashlib.blake2b(row.numpy().tobytes(), digest_size=8, key=f"bin{seed}".encode())
        g.manual_seed(int.from_bytes(h.digest(), "little") >> 1)
        out[i] = (torch.rand(row.shape, generator=g) < row).float()
    return out.to(device=x01.device, dtype=x01.dtype)

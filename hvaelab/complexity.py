"""Input complexity (Serrà et al., ICLR 2020, https://openreview.net/forum?id=SyxIWpVYvr).

The OOD score of Serrà et al. subtracts a generic lossless compressor's code length from the
model's:

    S(x) = -log2 p(x) - L(x),

with ``L(x)`` the length in bits of x compressed losslessly. hvaelab's compressor is PNG through
Pillow (compression level 9) of the image exactly as the model sees it: for a Bernoulli model
the binarized image, stored as a 1-bit PNG; otherwise the 8-bit image. ``-log2 p(x)`` is
replaced by its bound ``-ELBO / ln 2`` (``-ELBO_S`` when S > 1). Higher S = more OOD: simple
inputs that the model finds likely only because they are simple (low ``L(x)``) stop scoring as
in-distribution. :mod:`hvaelab.score_names` names the score ``IC`` (``IC_S``).
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image


def png_bits(images01: np.ndarray, binary: bool) -> np.ndarray:
    """Length in bits of each image's PNG (``images01``: (N, C, H, W) in [0, 1], C = 1 or 3).

    ``binary`` images (values 0 and 1 only) are written as 1-bit PNGs, others as 8-bit.
    """
    x = np.asarray(images01)
    if x.ndim != 4 or x.shape[1] not in (1, 3):
        raise ValueError(f"expected images of shape (N, 1 or 3, H, W), got {x.shape}")
    if binary and not np.isin(x, (0, 1)).all():
        raise ValueError("binary=True needs images whose pixels are all 0 or 1")
    out = np.empty(len(x), dtype=np.float64)
    for i, img in enumerate(x):
        u8 = np.rint(np.clip(img, 0, 1) * 255).astype(np.uint8)
        if u8.shape[0] == 1:
            pil = Image.fromarray(u8[0], "L")
            if binary:
                pil = pil.convert("1", dither=Image.Dither.NONE)
        else:
            pil = Image.fromarray(np.moveaxis(u8, 0, -1), "RGB")
        buf = io.BytesIO()
        pil.save(buf, format="PNG", optimize=True, compress_level=9)
        out[i] = 8.0 * buf.tell()
    return out

"""File formats of the natural-image sets of the paper: CIFAR binary records and SVHN MATLAB files.

Images come out as uint8 arrays (N, 32, 32, 3), rows top to bottom, channels R, G, B, the way
image libraries hold them; labels as int64 (N,).

* **CIFAR-10 / CIFAR-100, binary version** (https://www.cs.toronto.edu/~kriz/cifar.html; no
  pickle): a file is a sequence of records, each ``label_bytes`` label bytes (CIFAR-10: 1, the
  class 0..9; CIFAR-100: 2, the coarse class 0..19 then the fine class 0..99) followed by 3,072
  pixel bytes: 1,024 red, then 1,024 green, then 1,024 blue, each plane row-major 32x32.
  CIFAR-100's label here is the fine class.
* **SVHN cropped digits** (http://ufldl.stanford.edu/housenumbers/, ``train_32x32.mat``,
  ``test_32x32.mat``): MATLAB v5 files read with SciPy, ``X`` of shape (32, 32, 3, N) and ``y``
  of shape (N, 1) with digits 1..10, where 10 means the digit 0.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO

import numpy as np

from .errors import DataFormatError

SIDE = 32
PIXELS = SIDE * SIDE * 3  # bytes of one CIFAR record's image
COLOUR_SHAPE = (SIDE, SIDE, 3)


def _cifar_records(raw: bytes, label_bytes: int, where: str) -> tuple[np.ndarray, np.ndarray]:
    record = label_bytes + PIXELS
    if len(raw) == 0 or len(raw) % record:
        raise DataFormatError(
            f"{where}: {len(raw)} bytes is not a whole number of {record}-byte CIFAR records "
            f"({label_bytes} label byte(s) + {PIXELS} pixels); the file is truncated or not a "
            "CIFAR binary file"
        )
    rows = np.frombuffer(raw, dtype=np.uint8).reshape(-1, record)
    labels = rows[:, label_bytes - 1].astype(np.int64)  # CIFAR-100: the fine label (2nd byte)
    planes = rows[:, label_bytes:].reshape(-1, 3, SIDE, SIDE)  # R, G, B planes, row-major
    return np.ascontiguousarray(planes.transpose(0, 2, 3, 1)), labels


def read_cifar_bin(
    paths: Sequence[str | Path], label_bytes: int, n_classes: int
) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, 32, 32, 3) and labels (N,) of CIFAR binary files, concatenated in order."""
    if label_bytes not in (1, 2):
        raise ValueError(f"CIFAR records have 1 or 2 label bytes, not {label_bytes}")
    images, labels = [], []
    for p in paths:
        img, lab = _cifar_records(Path(p).read_bytes(), label_bytes, str(p))
        if lab.max() >= n_classes:
            raise DataFormatError(
                f"{p}: label {int(lab.max())} is not a class of this dataset (0..{n_classes - 1}); "
                "is it the file of another CIFAR version?"
            )
        images.append(img)
        labels.append(lab)
    return np.concatenate(images), np.concatenate(labels)


def cifar_bin_bytes(
    images: np.ndarray, labels: np.ndarray, coarse: np.ndarray | None = None
) -> bytes:
    """The CIFAR binary encoding of images (N, 32, 32, 3) uint8 and labels (with ``coarse``:
    CIFAR-100's two label bytes, coarse first). The inverse of :func:`read_cifar_bin`."""
    images = np.asarray(images, dtype=np.uint8)
    if images.shape[1:] != COLOUR_SHAPE:
        raise ValueError(f"expected images of shape (N, 32, 32, 3), got {images.shape}")
    heads = [np.asarray(labels, dtype=np.uint8)[:, None]]
    if coarse is not None:
        heads.insert(0, np.asarray(coarse, dtype=np.uint8)[:, None])
    planes = images.transpose(0, 3, 1, 2).reshape(len(images), PIXELS)
    return np.concatenate([*heads, planes], 1).tobytes()


def read_svhn_mat(path: str | Path | BinaryIO) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, 32, 32, 3) and labels (N,) in 0..9 of an SVHN ``*_32x32.mat`` file (a path or
    an open binary file)."""
    from scipy.io import loadmat

    try:
        source = path if hasattr(path, "read") else str(path)
        mat = loadmat(source, variable_names=("X", "y"))
    except (ValueError, TypeError, OSError, NotImplementedError, IndexError, EOFError) as e:
        # scipy fails on damaged files with any of these (IndexError for a short header)
        raise DataFormatError(f"{path}: not a readable MATLAB v5 file ({e!r})") from None
    x, y = mat.get("X"), mat.get("y")
    if x is None or y is None:
        raise DataFormatError(f"{path}: an SVHN file holds variables X and y; found {sorted(mat)}")
    if x.dtype != np.uint8 or x.ndim != 4 or x.shape[:3] != COLOUR_SHAPE:
        raise DataFormatError(
            f"{path}: X should be uint8 of shape (32, 32, 3, N), found {x.dtype} {x.shape}"
        )
    y = np.asarray(y).reshape(-1).astype(np.int64)
    if len(y) != x.shape[3] or y.min() < 1 or y.max() > 10:
        raise DataFormatError(
            f"{path}: y should hold N = {x.shape[3]} digits labelled 1..10 (10 is the digit 0)"
        )
    return np.ascontiguousarray(x.transpose(3, 0, 1, 2)), np.where(y == 10, 0, y)


def svhn_mat_bytes(images: np.ndarray, labels: np.ndarray) -> bytes:
    """An SVHN-format MATLAB v5 file of images (N, 32, 32, 3) and digits 0..9 (stored 1..10)."""
    from scipy.io import savemat

    images = np.asarray(images, dtype=np.uint8)
    if images.shape[1:] != COLOUR_SHAPE:
        raise ValueError(f"expected images of shape (N, 32, 32, 3), got {images.shape}")
    y = np.asarray(labels, dtype=np.uint8)
    buf = io.BytesIO()
    savemat(buf, {"X": images.transpose(1, 2, 3, 0), "y": np.where(y == 0, 10, y)[:, None]})
    return buf.getvalue()

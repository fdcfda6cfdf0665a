"""Shipped image samples: a few test images per dataset, so dashboards work with no data."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..artifacts import atomic_write, read_safetensors
from .errors import DataFormatError
from .images import validate_images


def save_samples(path: str | Path, sets: dict[str, np.ndarray]) -> Path:
    """Write a few uint8 images per dataset ((N,28,28) grey or (N,32,32,3) colour) to one
    safetensors file, atomically."""
    from safetensors.numpy import save

    path = Path(path)
    arrays = {name: np.ascontiguousarray(validate_images(a, name)) for name, a in sets.items()}
    return atomic_write(path, save(arrays, metadata={"format": "hvaelab-samples"}))


def load_samples(path: str | Path) -> dict[str, np.ndarray]:
    """Read image samples written by :func:`save_samples` (dataset name -> uint8 images)."""
    hint = "write them with `hvaelab tables --checkpoint NAME`"
    try:
        meta, arrays = read_safetensors(path, "image samples", hint, "samples")
    except ValueError as e:
        raise DataFormatError(str(e)) from e
    if meta.get("format") != "hvaelab-samples":
        raise DataFormatError(f"{path} is not an hvaelab samples file")
    return arrays

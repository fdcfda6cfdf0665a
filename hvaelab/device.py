"""Which device computations run on: ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"``..."""

from __future__ import annotations

import torch


def resolve_device(name: str | torch.device = "auto") -> torch.device:
    """``"auto"`` -> the first CUDA GPU if there is one, else the CPU; other names as given."""
    if isinstance(name, torch.device):
        return name
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return torch.device(name)
    except RuntimeError as e:
        raise ValueError(f"unknown device {name!r} ({e}); use auto, cpu or cuda") from None

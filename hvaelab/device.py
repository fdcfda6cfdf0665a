"""Where and in which precision computations run: devices, bf16 support, the hardware record.

``"auto"`` picks CUDA when available, else the CPU. Mixed precision (bf16 autocast) is used for
training only where the hardware computes bf16 natively: CUDA GPUs with bf16, CPUs with
AVX-512 BF16 or AMX (oneDNN's bf16 kernels); elsewhere bf16 would be emulated and slower, so
``precision="auto"`` trains in float32 there.
"""

from __future__ import annotations

import os
import platform
from typing import Any

import torch

PRECISIONS = ("auto", "fp32", "bf16")


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


def bf16_native(device: torch.device) -> bool:
    """Whether ``device`` computes bf16 in hardware (CUDA bf16; CPU AVX-512 BF16 or AMX)."""
    if device.type == "cuda":
        return bool(torch.cuda.is_bf16_supported())
    if device.type == "cpu":
        try:
            return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
        except (AttributeError, RuntimeError):
            return False
    return False


def resolve_precision(name: str, device: torch.device) -> str:
    """``"auto"`` -> ``"bf16"`` where the hardware has it, else ``"fp32"``; others as given."""
    if name not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {name!r}")
    if name == "auto":
        return "bf16" if bf16_native(device) else "fp32"
    return name


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def hardware(device: torch.device) -> dict[str, Any]:
    """What a run ran on, for a checkpoint's card."""
    info: dict[str, Any] = {
        "device": str(device),
        "name": device_name(device),
        "bf16_native": bf16_native(device),
        "torch": torch.__version__,
        "python": platform.python_version(),
    }
    if device.type == "cpu":
        info["cpu_capability"] = torch.backends.cpu.get_cpu_capability()
        info["threads"] = torch.get_num_threads()
        info["cores"] = os.cpu_count()
    return info

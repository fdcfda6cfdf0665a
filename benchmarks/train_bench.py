"""Training-step speed and bf16 quality, measured with the real engine (hvaelab.train.Trainer).

Part 1: seconds per step and images per second at batch 128 for fp32 eager, bf16 autocast,
bf16 + channels_last and a compiled step (torch.compile; CUDA graphs on a GPU), at the paper's
width (64 channels) and the shipped width (32), each as a ratio to fp32 eager measured in this
same run. The goal for the paper's model on a CPU with AVX-512 BF16 or AMX: >= 1.8x.

Part 2: fp32 and bf16 trained for the same few epochs on a subset from one seed, their test
ELBOs printed next to the spread of two fp32 seeds (does bf16 cost quality?).

    .venv/bin/python benchmarks/train_bench.py [--steps 3] [--epochs 2] [--subset 2048]
    .venv/bin/python benchmarks/train_bench.py --preset biva-grey --widths 64 32 24 --epochs 0

A benchmark, not a test: it prints, it never asserts. The machine's load is printed before and
after, since other work on a 2-core machine changes every number.
"""

from __future__ import annotations

import argparse
import os
import time

import torch

from hvaelab.device import bf16_native, device_name, resolve_device
from hvaelab.train import TrainConfig, Trainer, monitor


def _load() -> str:
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "n/a"


def _trainer(args, channels: int, precision: str, compile_: bool, n_train: int, seed=0):
    cfg = TrainConfig(
        dataset=args.dataset,
        ood=(),
        preset=args.preset,
        model_overrides={"channels": channels},
        batch_size=args.batch,
        train_examples=n_train,
        val_examples=args.val,
        precision=precision,
        compile=compile_,
        device=args.device,
        data_dir=args.data_dir,
        seed=seed,
        epochs=max(args.epochs, 1),
    )
    return Trainer(cfg, log=lambda _s: None)


def time_steps(args, channels: int, precision: str, compile_: bool, channels_last: bool):
    """(first step incl. compilation, median seconds per later step) of one configuration."""
    tr = _trainer(args, channels, precision, compile_, args.batch)
    tr.initialize()
    if channels_last:
        tr.model.to(memory_format=torch.channels_last)
    idx = torch.arange(args.batch)
    x, eps, scale = tr._prepare(idx), tr._latent_noise(idx), tr._scalar(1 / args.batch)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    beta, lam = tr._scalar(1.0), tr._scalar(0.0)
    sync = torch.cuda.synchronize if tr.device.type == "cuda" else (lambda: None)
    times = []
    for _ in range(args.steps + 1):
        t0 = time.perf_counter()
        loss, _ = tr._loss(x, eps, beta, lam, scale)
        tr.opt.zero_grad(set_to_none=True)
        loss.backward()
        tr.opt.step()
        sync()
        times.append(time.perf_counter() - t0)
    rest = sorted(times[1:])
    return times[0], rest[len(rest) // 2]


def quality(args, precision: str, seed: int) -> float:
    """Test bits/dim (ELBO) after ``args.epochs`` epochs on the first ``args.subset`` images."""
    tr = _trainer(args, args.quality_channels, precision, False, args.subset, seed)
    tr.initialize()
    for _ in range(args.epochs):
        tr.train_epoch()
    return monitor(tr.model, tr.val)[f"{args.dataset}/bpd"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="fashionmnist")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--steps", type=int, default=3, help="timed steps per configuration")
    ap.add_argument("--preset", default="hvae-grey", help="model preset (e.g. biva-grey)")
    ap.add_argument("--widths", type=int, nargs="+", default=[64, 32])
    ap.add_argument("--no-compile", action="store_true", help="skip the compiled step")
    ap.add_argument("--epochs", type=int, default=2, help="epochs of the quality runs (0: skip)")
    ap.add_argument("--subset", type=int, default=2048, help="training images of those runs")
    ap.add_argument("--val", type=int, default=1000, help="test images they are evaluated on")
    ap.add_argument("--quality-channels", type=int, default=32)
    args = ap.parse_args()
    device = resolve_device(args.device)
    print(
        f"device: {device} ({device_name(device)}), torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, {os.cpu_count()} cores, bf16 native: "
        f"{bf16_native(device)}, cpu capability: {torch.backends.cpu.get_cpu_capability()}"
    )
    print(f"load average before: {_load()}")
    configs = [("fp32 eager", "fp32", False, False), ("bf16", "bf16", False, False)]
    configs.append(("bf16 + channels_last", "bf16", False, True))
    if not args.no_compile:
        best = "bf16" if bf16_native(device) else "fp32"
        configs.append((f"{best} compiled", best, True, False))
    print(
        f"\nPart 1: one training step of {args.preset}, batch {args.batch} "
        f"(median of {args.steps} after one)"
    )
    print(f"{'width':>5}  {'configuration':<22} {'s/step':>8} {'img/s':>8} {'x fp32':>7}  first")
    for width in args.widths:
        base = None
        for label, precision, compile_, cl in configs:
            first, sec = time_steps(args, width, precision, compile_, cl)
            base = base or sec
            print(
                f"{width:>5}  {label:<22} {sec:8.3f} {args.batch / sec:8.1f} {base / sec:7.2f}"
                f"  {first:.1f} s"
            )
    if args.epochs:
        print(
            f"\nPart 2: {args.epochs} epochs on the first {args.subset} training images, "
            f"{args.quality_channels} channels; test bits/dim (ELBO) on {args.val} test images"
        )
        runs = {
            "fp32 seed 0": quality(args, "fp32", 0),
            "fp32 seed 1": quality(args, "fp32", 1),
            "bf16 seed 0": quality(args, "bf16", 0),
        }
        for k, v in runs.items():
            print(f"  {k:<12} {v:.4f} bits/dim")
        spread = abs(runs["fp32 seed 0"] - runs["fp32 seed 1"])
        diff = abs(runs["bf16 seed 0"] - runs["fp32 seed 0"])
        print(f"  |fp32 seed 0 - fp32 seed 1| = {spread:.4f};  |bf16 - fp32 (seed 0)| = {diff:.4f}")
    print(f"\nload average after: {_load()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

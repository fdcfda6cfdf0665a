"""The ONNX export: export time, file size, and onnxruntime against PyTorch in the same run.

Usage::

    python benchmarks/onnx_bench.py [--checkpoints fashionmnist fashionmnist-biva] [--dynamo]

For each checkpoint: the time to export the graph (TorchScript exporter, what
``hvaelab export-onnx`` uses; with ``--dynamo`` also torch's dynamo exporter, minutes for the
BIVA), the file's size, and the mean path (statistics, LLR>k and reconstructions for every k,
:mod:`hvaelab.mean_path`) of FashionMNIST test images at batch 1 (ms per input) and batch 128
(inputs per second), in onnxruntime and in PyTorch (the library's model: weight norm cached
between calls), with 1 and 2 threads, each the best of ``--reps`` interleaved repetitions
(on a shared machine other load only slows a run down). Ratios are onnxruntime / PyTorch
from this run; the CPU, its capability as PyTorch sees it and the versions are printed first.
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _seconds(fn) -> float:
    """Seconds one call of ``fn`` takes."""
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _dynamo_seconds(model) -> float:
    from hvaelab.onnx_export import export_graph

    t0 = time.perf_counter()
    export_graph(model, exporter="dynamo")
    return time.perf_counter() - t0


def bench(name: str, a: argparse.Namespace, x01) -> list[str]:
    import torch

    from hvaelab.checkpoint import load_model
    from hvaelab.mean_path import mean_path_outputs
    from hvaelab.onnx_export import OPSET, export_graph, onnx_session

    model = load_model(name).model
    t0 = time.perf_counter()
    data = export_graph(model)
    export_s = time.perf_counter() - t0
    lines = [
        f"{name} ({model.n_layers} layers, {model.num_parameters():,} parameters): exported "
        f"in {export_s:.1f} s (TorchScript exporter, opset {OPSET}), "
        f"{len(data) / 1e6:.1f} MB ({len(data) / 2**20:.1f} MiB)"
    ]
    if a.dynamo:
        lines.append(f"  dynamo exporter (--exporter dynamo): {_dynamo_seconds(model):.1f} s")
    with tempfile.TemporaryDirectory() as d:  # the file as a user has it
        path = Path(d) / f"{name}.onnx"
        path.write_bytes(data)
        sessions = {t: onnx_session(path, threads=t) for t in (1, 2)}
    x = x01.numpy()
    one, batch = x[: a.n1], x[: a.batch_size]

    def torch_run(xs, bs):
        with torch.no_grad():
            for i in range(0, len(xs), bs):
                mean_path_outputs(model, xs[i : i + bs])

    def ort_run(sess, xs, bs):
        for i in range(0, len(xs), bs):
            sess.run(None, {"x": xs[i : i + bs]})

    xt1, xtb = torch.from_numpy(one), torch.from_numpy(batch)
    res: dict[tuple[str, int, str], float] = {}
    for threads in (1, 2):
        torch.set_num_threads(threads)
        sess = sessions[threads]
        torch_run(xtb, a.batch_size)  # warm-up
        ort_run(sess, batch, a.batch_size)
        for _ in range(a.reps):  # interleaved: PyTorch, onnxruntime, PyTorch, ...
            for kind, fn in (
                ("torch1", lambda: torch_run(xt1, 1)),
                ("ort1", lambda: ort_run(sess, one, 1)),  # noqa: B023 - called in this loop
                ("torchB", lambda: torch_run(xtb, a.batch_size)),
                ("ortB", lambda: ort_run(sess, batch, a.batch_size)),  # noqa: B023
            ):
                key = (kind, threads, name)
                res[key] = min(res.get(key, float("inf")), _seconds(fn))
    for threads in (1, 2):
        t1 = res[("torch1", threads, name)] / len(one) * 1e3
        o1 = res[("ort1", threads, name)] / len(one) * 1e3
        tb = len(batch) / res[("torchB", threads, name)]
        ob = len(batch) / res[("ortB", threads, name)]
        lines.append(
            f"  {threads} thread{'s' if threads > 1 else ' '}: batch 1: onnxruntime {o1:6.2f} "
            f"ms/input, PyTorch {t1:6.2f} ms/input (onnxruntime {t1 / o1:.2f}x as fast); "
            f"batch {a.batch_size}: onnxruntime {ob:6.1f} inputs/s, PyTorch {tb:6.1f} "
            f"inputs/s ({ob / tb:.2f}x)"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoints", nargs="+", default=["fashionmnist", "fashionmnist-biva"])
    ap.add_argument("--n1", type=int, default=32, help="inputs timed one at a time")
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--reps", type=int, default=3, help="interleaved repetitions (best kept)")
    ap.add_argument("--dynamo", action="store_true", help="also time the dynamo exporter")
    ap.add_argument("--dataset", default="fashionmnist", help="test images timed")
    a = ap.parse_args(argv)

    import onnx
    import onnxruntime
    import torch

    from hvaelab.data import binarize_fixed, load_dataset, to_tensor

    print(
        f"CPU: {_cpu()}, {torch.get_num_threads()} threads available; PyTorch "
        f"{torch.__version__} (cpu capability: {torch.backends.cpu.get_cpu_capability()}), "
        f"onnxruntime {onnxruntime.__version__}, onnx {onnx.__version__}"
    )
    images = load_dataset(a.dataset, "test").images[: max(a.n1, a.batch_size)]
    x01 = binarize_fixed(to_tensor(images))
    for name in a.checkpoints:
        for line in bench(name, a, x01):
            print(line, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

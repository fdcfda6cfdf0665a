"""Training and scoring under torchrun (hvaelab.distributed): 2 CPU processes, gloo.

Every distributed run is compared with one process doing the same work in this test process:
the gradients of each step (the first, and a last batch that splits unevenly), the parameters a
few steps later, runs resumed at another world size, and sharded score tables.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from hvaelab import distributed as ddp
from hvaelab.cli import main as cli_main
from hvaelab.scores import load_tables, tables_path
from hvaelab.train import Trainer

WORKER = Path(__file__).resolve().parent / "distributed_worker.py"
_spec = importlib.util.spec_from_file_location("distributed_worker", WORKER)
worker = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(worker)


def torchrun(*args: str, nproc: int = 2, module: bool = False, check: bool = True):
    """Run ``torchrun --standalone --nproc_per_node nproc`` on the worker (or ``-m``)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HVAELAB_NO_DOWNLOAD": "1"}
    target = ["-m", *args] if module else [str(WORKER), *args]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    cmd += ["--nproc_per_node", str(nproc), *target]
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    if check and res.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed:\n{res.stdout}\n{res.stderr[-4000:]}")
    return res


def _close(a: torch.Tensor, b: torch.Tensor, rtol: float, what: str) -> None:
    """|a - b| <= rtol * max|b| elementwise (float32 sums in another order)."""
    scale = float(b.abs().max()) or 1.0
    err = float((a - b).abs().max())
    assert err <= rtol * scale, f"{what}: max |diff| {err:.3g} > {rtol} * {scale:.3g}"


def _single_weight_directions(params: dict[str, torch.Tensor]) -> set[str]:
    """Weight-norm directions ``v`` of filters with one weight (w = g v/|v| = g sign v): their
    gradient is zero up to rounding, and Adam turns rounding noise into steps of +-lr."""
    return {n for n, p in params.items() if n.endswith(".v") and p[0].numel() == 1}


TRAIN = [
    "train", "--preset", "hvae-tiny", "--dataset", "fashionmnist-fixture", "--ood",
    "--train-examples", "165", "--batch-size", "64", "--val-examples", "50",
    "--init-examples", "64", "--epochs", "2", "--lr", "1e-3", "--precision", "fp32",
    "--device", "cpu",
]  # fmt: skip


# ------------------------------------------------------------------------------- training
def test_gradients_then_parameters_equal_one_process_on_the_same_global_batches(tmp_path):
    torchrun("steps", str(tmp_path))
    grads2 = load_file(str(tmp_path / "grads.safetensors"))
    params2 = load_file(str(tmp_path / "params.safetensors"))
    grads1, params1 = worker.run_steps(Trainer(worker.step_config(), log=lambda _m: None))
    assert set(grads2) == set(grads1) and len(grads1) == 3 * len(params1)
    checked, noisy = [0, 0, 0], set()
    for step in range(3):  # step 0: the first batch; step 2: 37 examples, split 19 + 18
        g1 = {n: g for n, g in grads1.items() if n.startswith(f"step{step}/")}
        top = max(float(g.abs().max()) for g in g1.values())
        for name, g in g1.items():
            # Some gradients are zero up to rounding by construction (the weight-norm direction
            # of a filter with one weight): their rounding noise is all there is to compare.
            if float(g.abs().max()) < 1e-4 * top:
                if float(g.abs().max()) > 0:
                    noisy.add(name.split("/", 1)[1])
                continue
            _close(grads2[name], g, 1e-4, name)  # a sum or a per-rank mean: off by ~2x, ~3%
            checked[step] += 1
    # step 0 has beta = 0 (KL warm-up): only the layers below log p(x|z) have a gradient
    assert checked[0] > 10 and checked[1] >= len(params1) - 1 and checked[2] >= len(params1) - 1
    assert noisy == _single_weight_directions(params1)
    for name, p in params1.items():  # Adam ignores the gradient's scale: checked above
        if name not in noisy:
            _close(params2[name], p, 1e-4, name)


def test_uneven_last_batch_that_cannot_be_shared_is_refused(tmp_path):
    res = torchrun(
        "cli", str(tmp_path), *TRAIN, "--train-examples", "129", "--out", str(tmp_path / "m"),
        check=False,
    )  # fmt: skip
    assert res.returncode != 0  # torchrun reports a rank's failure as 1
    assert "cannot each take a share of every batch" in res.stderr
    assert not (tmp_path / "m.json").exists()


def _weights(stem: Path) -> dict[str, torch.Tensor]:
    return load_file(str(stem) + ".safetensors")


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory) -> Path:
    """Two epochs in one process: the run the distributed ones must reproduce."""
    out = tmp_path_factory.mktemp("ref") / "ref"
    assert cli_main([*TRAIN, "--out", str(out)]) == 0
    return out


def test_a_run_saved_at_world_size_2_resumes_at_1_and_the_reverse(tmp_path, reference_run):
    ref = _weights(reference_run)
    two_one, one_two = tmp_path / "two-one", tmp_path / "one-two"
    torchrun("cli", str(tmp_path), *TRAIN, "--until", "1", "--out", str(two_one))
    assert cli_main([*TRAIN, "--resume", "--out", str(two_one)]) == 0
    assert cli_main([*TRAIN, "--until", "1", "--out", str(one_two)]) == 0
    after_one = _weights(one_two)
    torchrun("cli", str(tmp_path), *TRAIN, "--resume", "--out", str(one_two))
    backend = {1: "none", 2: "gloo"}
    for stem, sizes in ((two_one, [2, 1]), (one_two, [1, 2])):
        card = json.loads(Path(f"{stem}.json").read_text())
        assert card["epochs_done"] == 2 and card["restarts"] == []  # exact resumes
        assert card["distributed"] == {"world_size": sizes[-1], "backend": backend[sizes[-1]]}
        hist = Path(f"{stem}.history.csv").read_text().splitlines()
        col = hist[0].split(",").index("world_size")
        assert [int(float(r.split(",")[col])) for r in hist[1:]] == sizes
        got = _weights(stem)
        for name, w in ref.items():
            if name not in _single_weight_directions(ref):
                _close(got[name], w, 1e-4, f"{stem.name}: {name}")
    # the second epoch moved the weights by far more than the tolerance above
    assert max(float((after_one[n] - w).abs().max() / w.abs().max()) for n, w in ref.items()) > 1e-2


def _history(stem: Path) -> list[dict[str, str]]:
    with open(f"{stem}.history.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_the_epochs_training_elbo_at_world_size_2_equals_world_size_1(tmp_path, reference_run):
    """Catches the epoch's training ELBO not all-reduced under torchrun (rank 0 recording its
    own share's sum over all n examples: about half the ELBO). The run at world size 2 sees the
    pixels and noise of the one-process run, its weights agree to 1e-4 (above), so each epoch's
    mean ELBO over all examples agrees to float32 summation order."""
    two = tmp_path / "two"
    torchrun("cli", str(tmp_path), *TRAIN, "--out", str(two))
    one, got = _history(reference_run), _history(two)
    assert [r["world_size"] for r in one] == ["1", "1"]
    assert [int(float(r["world_size"])) for r in got] == [2, 2]
    for a, b in zip(one, got, strict=True):
        for col in ("train/elbo", "train/bpd"):
            assert float(b[col]) == pytest.approx(float(a[col]), rel=1e-5), (a["epoch"], col)


# -------------------------------------------------------------------------------- scoring
SCORE = ["--in", "fashionmnist-fixture", "--ood", "mnist-fixture", "--limit", "150",
         "--batch-size", "32", "--device", "cpu"]  # fmt: skip


def test_sharded_tables_and_evaluate_equal_one_process(tmp_path, reference_run):
    one, two = tmp_path / "one", tmp_path / "two"
    for stem in (one, two):
        for suffix in (".safetensors", ".json"):
            shutil.copy(f"{reference_run}{suffix}", f"{stem}{suffix}")
    tables = ["tables", *SCORE, "--samples", "1", "3", "--samples-per-set", "0"]
    assert cli_main([*tables, "--checkpoint", str(one)]) == 0
    torchrun("cli", str(tmp_path), *tables, "--checkpoint", str(two))
    t1, t2 = load_tables(tables_path(one)), load_tables(tables_path(two))
    assert sorted(t1) == sorted(t2) and len(t1) == 4  # 2 sets x S in {1, 3}
    for key, t in t1.items():
        assert len(t) == 150 and set(t.columns) == set(t2[key].columns)
        for col, v in t.columns.items():
            np.testing.assert_allclose(t2[key].columns[col], v, rtol=1e-6, atol=1e-6,
                                       err_msg=f"{key} {col}")  # fmt: skip
    evaluate = ["evaluate", *SCORE, "--samples", "1", "--prior", "mean"]
    assert cli_main([*evaluate, "--checkpoint", str(one), "--out", str(tmp_path / "e1")]) == 0
    res = torchrun("cli", str(tmp_path), *evaluate, "--checkpoint", str(two), "--out",
                   str(tmp_path / "e2"))  # fmt: skip
    assert res.stdout.count("Table 2") <= 1  # rank 0 alone reports
    e1 = json.loads((tmp_path / "e1.json").read_text())
    e2 = json.loads((tmp_path / "e2.json").read_text())
    assert e1["table2"] and e1["table1"]
    for a, b in zip(e1["table2"], e2["table2"], strict=True):
        for k, v in a.items():
            if isinstance(v, float):
                assert b[k] == pytest.approx(v, rel=1e-6, abs=1e-9), k
            else:
                assert b[k] == v, k


def test_commands_that_do_not_shard_refuse_torchrun_clearly(tmp_path):
    res = torchrun("hvaelab", "info", module=True, check=False)
    assert res.returncode != 0
    assert "only train, tables, evaluate run under torchrun" in res.stderr


def test_single_process_is_world_one():
    d = ddp.current()
    assert (d.rank, d.world_size, d.backend, d.is_main, d.active) == (0, 1, "none", True, False)
    assert list(ddp.shard(5)) == [0, 1, 2, 3, 4]
    x = np.arange(6.0).reshape(3, 2)
    assert ddp.gather(x, ddp.owners(3)) is not None
    np.testing.assert_array_equal(ddp.gather(x, ddp.owners(3)), x)

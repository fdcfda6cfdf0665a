"""A write that fails leaves every file of the checkpoint as it was (issue 37, part 2).

``hvaelab tables``, ``hvaelab second-stage``, a training checkpoint (:meth:`Trainer.save`) and
``hvaelab copy`` each run once to count their renames and writes into the checkpoint's folder,
then once per rename and once per write with that one failing (an ``OSError(ENOSPC)`` half way
through the write; a failed ``os.replace``): every file is then as before, byte for byte (all
old, never a mix), no temporary file is left (the rows of unfinished tables,
``NAME.scores.partial.safetensors``, excepted) and the command says what failed in one line.
The checkpoint is a tiny one trained here.
"""

from __future__ import annotations

import errno
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from test_cli import run_cli

from hvaelab import artifacts
from hvaelab.artifacts import PARTIAL_SCORES
from hvaelab.train import TrainConfig, Trainer


@pytest.fixture(scope="module")
def pristine(tmp_path_factory, datasets) -> Path:
    """A tiny checkpoint with everything beside it: 1 of 2 epochs (training state, history),
    a second stage, score tables at S = 1 and samples; and ``half``, its float16 copy."""
    folder = tmp_path_factory.mktemp("faults")
    cfg = TrainConfig(
        dataset=datasets.fashionmnist,
        ood=(datasets.mnist,),  # the fixture's excerpt where the full MNIST is not found
        preset="hvae-tiny",
        train_examples=256,
        val_examples=64,
        epochs=2,
        batch_size=64,
    )
    Trainer(cfg, log=lambda _s: None).run(folder / "run", until=1)
    stem = str(folder / "run")
    stage = ["--n-fit", "96", "--n-select", "64", "--components", "1"]
    assert run_cli("second-stage", "--checkpoint", stem, *stage)[0] == 0
    tables = ["--in", datasets.fashionmnist, "--ood", datasets.mnist, "--limit", "32"]
    assert run_cli("tables", "--checkpoint", stem, *tables, "--samples-per-set", "4")[0] == 0
    assert run_cli("copy", stem, folder / "half", "--dtype", "float16")[0] == 0
    return folder


def cli(*argv) -> int:
    """``hvaelab ARGV``; a failure is one line on stderr, no traceback."""
    rc, _, err = run_cli(*argv)
    if rc != 0:
        assert rc == 2 and "Traceback" not in err, err
        line = err.strip().splitlines()[-1]  # after the command's progress lines
        assert line.startswith(f"hvaelab {argv[0]}: error: ") and "injected" in line, line
    return rc


def snapshot(folder: Path) -> dict[str, bytes]:
    return {
        p.name: p.read_bytes()
        for p in sorted(folder.iterdir())
        if p.is_file() and not p.name.endswith(PARTIAL_SCORES)
    }


class Faults:
    """Counts the renames and writes into ``folder``; makes the ``at``-th of one ``kind`` fail."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, folder: Path) -> None:
        self.folder = folder.resolve()
        self.arm(None, 0)
        replace, write = os.replace, artifacts.write_synced

        def failing_replace(src, dst, *a, **k):
            if self._hit("rename", dst):
                raise OSError(errno.EIO, "injected: the rename failed")
            return replace(src, dst, *a, **k)

        def failing_write(path, data):
            if self._hit("write", path):
                write(path, data[: len(data) // 2])
                raise OSError(errno.ENOSPC, "injected: No space left on device")
            return write(path, data)

        monkeypatch.setattr(os, "replace", failing_replace)
        monkeypatch.setattr(artifacts, "write_synced", failing_write)

    def arm(self, kind: str | None, at: int) -> None:
        self.kind, self.at, self.fired = kind, at, False
        self.seen = {"rename": 0, "write": 0}

    def _hit(self, kind: str, path) -> bool:
        if Path(path).resolve().parent != self.folder:
            return False
        self.seen[kind] += 1
        if kind == self.kind and self.seen[kind] == self.at:
            self.fired = True
            return True
        return False


def each_fault_leaves_all_as_before(
    monkeypatch, pristine: Path, tmp_path: Path, action: Callable[[Path], int]
) -> dict[str, int]:
    """Run ``action(folder)`` on a fresh copy of ``pristine`` once cleanly, then once per
    rename and per write with that one failing; returns how many of each there were."""
    folder = tmp_path / "ck"

    def fresh() -> dict[str, bytes]:
        shutil.rmtree(folder, ignore_errors=True)
        shutil.copytree(pristine, folder)
        return snapshot(folder)

    faults = Faults(monkeypatch, folder)
    before = fresh()
    assert action(folder) == 0
    counts = dict(faults.seen)
    assert snapshot(folder) != before  # the command changes files: a failure has a mix to make
    for kind in ("rename", "write"):
        assert counts[kind] >= 1, counts
        for at in range(1, counts[kind] + 1):
            before = fresh()
            faults.arm(kind, at)
            try:
                rc = action(folder)
            except OSError as e:
                assert "injected" in str(e), e
                rc = None
            assert faults.fired, (kind, at)
            assert rc != 0, (kind, at)
            after = snapshot(folder)
            assert sorted(after) == sorted(before), (kind, at)  # no file more (no temp), none less
            changed = [n for n in before if after[n] != before[n]]
            assert not changed, f"{kind} {at} of {counts[kind]} failing changed {changed}"
            faults.arm(None, 0)
    return counts


def test_tables(monkeypatch, pristine, tmp_path, datasets):
    argv = ["--in", datasets.fashionmnist, "--ood", datasets.mnist, "--limit", "32"]
    argv += ["--samples", "2", "--samples-per-set", "4"]  # new tables, card evaluation, samples
    counts = each_fault_leaves_all_as_before(
        monkeypatch,
        pristine,
        tmp_path,
        lambda folder: cli("tables", "--checkpoint", folder / "run", *argv),
    )
    assert counts["rename"] >= 3  # scores, card, samples (and the finished tables' progress)


def test_second_stage(monkeypatch, pristine, tmp_path):
    argv = ["--n-fit", "96", "--n-select", "64", "--components", "1", "--seed", "1"]
    each_fault_leaves_all_as_before(
        monkeypatch,
        pristine,
        tmp_path,
        lambda folder: cli("second-stage", "--checkpoint", folder / "run", *argv),
    )


def test_a_training_checkpoint(monkeypatch, pristine, tmp_path):
    def save(folder: Path) -> int:
        trainer = Trainer.resume(folder / "run", log=lambda _s: None)
        trainer.wall += 1.0  # new bytes in every file
        trainer.history[-1]["train/elbo"] -= 1.0
        trainer.save(folder / "run")
        return 0

    counts = each_fault_leaves_all_as_before(monkeypatch, pristine, tmp_path, save)
    assert counts == {"rename": 5, "write": 5}  # weights, card, history, state weights and card


def test_copy(monkeypatch, pristine, tmp_path):
    counts = each_fault_leaves_all_as_before(
        monkeypatch,
        pristine,
        tmp_path,
        lambda folder: cli("copy", folder / "run", folder / "half", "--replace"),
    )
    assert counts["rename"] >= 5  # weights, card, history, scores, samples, second stage

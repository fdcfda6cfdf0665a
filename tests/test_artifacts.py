"""Artifacts: one module names every file of a checkpoint, one helper writes every file."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from hvaelab.artifacts import Artifacts, atomic_write, write_csv


def test_every_file_of_a_checkpoint_has_one_name(tmp_path):
    a = Artifacts(tmp_path / "fmnist.v2")
    assert {role: p.name for role, p in a.files().items()} == {
        "weights": "fmnist.v2.safetensors",
        "card": "fmnist.v2.json",
        "state_weights": "fmnist.v2.state.safetensors",
        "state_card": "fmnist.v2.state.json",
        "history": "fmnist.v2.history.csv",
        "scores": "fmnist.v2.scores.safetensors",
        "partial_scores": "fmnist.v2.scores.partial.safetensors",
        "samples": "fmnist.v2.samples.safetensors",
        "second_stage": "fmnist.v2.second-stage.safetensors",
    }
    for p in a.files().values():  # any file of the family leads back to its stem
        assert Artifacts.of(p) == a
    assert Artifacts.of(tmp_path / "fmnist.v2") == a and a.name == "fmnist.v2"


def test_atomic_write_replaces_whole_files_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "card.json"
    atomic_write(path, "old")
    atomic_write(path, b"new")
    assert path.read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["card.json"]
    mode = path.stat().st_mode & 0o777
    umask = os.umask(0)
    os.umask(umask)
    assert mode == 0o666 & ~umask  # the usual mode, not a temporary file's 0600


def test_an_interrupted_write_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "scores.safetensors"
    atomic_write(path, b"complete old contents")

    def fail(*_a):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        atomic_write(path, b"new contents that never land")
    assert path.read_bytes() == b"complete old contents"
    assert [p.name for p in tmp_path.iterdir()] == ["scores.safetensors"]


def test_write_csv_takes_every_column_in_first_seen_order(tmp_path):
    path = write_csv(tmp_path / "h.csv", [{"epoch": 1, "a": 0.5}, {"epoch": 2, "b": None}])
    assert Path(path).read_text().splitlines() == ["epoch,a,b", "1,0.5,", "2,,"]

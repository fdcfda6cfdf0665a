"""Score tables in steps (hvaelab.partial_tables): a stopped table resumes to the table of one
uninterrupted run, and saved rows are only ever continued under the settings they were made
with."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hvaelab import partial_tables
from hvaelab.config import get_preset
from hvaelab.model import HVAE
from hvaelab.partial_tables import read_partial, score_dataset_in_steps
from hvaelab.scores import score_dataset

N = 40


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return HVAE(get_preset("hvae-tiny")).eval()


@pytest.fixture(scope="module")
def whole(model, datasets):
    """The table of one uninterrupted run (S = 2), scored in one call."""
    return score_dataset(model, datasets.fashionmnist, limit=N, n_samples=2)


class Stop(Exception):
    """Stands for the session's stop (a kill) in the middle of a table."""


@pytest.fixture
def counted(monkeypatch):
    """Counts the examples each step scores; ``stop_after`` steps, then raises :class:`Stop`."""
    calls: list[int] = []
    state = {"stop_after": None}
    real = partial_tables.score_tensor

    def step(model, images, **kw):
        if state["stop_after"] is not None and len(calls) == state["stop_after"]:
            raise Stop
        calls.append(images.shape[0])
        return real(model, images, **kw)

    monkeypatch.setattr(partial_tables, "score_tensor", step)
    return calls, state


def _run(model, datasets, path, logs, **kw):
    args = {"limit": N, "n_samples": 2, "batch_size": 16, "progress": False, "log": logs.append}
    return score_dataset_in_steps(
        model, datasets.fashionmnist, path, kw.pop("sha", "abc"), **{**args, **kw}
    )


def _assert_same_table(got, want):
    assert set(got.columns) == set(want.columns)
    for col, v in want.columns.items():  # other batch compositions: float32 rounding apart
        np.testing.assert_allclose(got.columns[col], v, rtol=1e-5, atol=1e-3, err_msg=col)


def test_a_stopped_table_resumes_after_its_saved_rows_to_the_uninterrupted_table(
    model, datasets, whole, counted, tmp_path
):
    calls, state = counted
    path, logs = tmp_path / "run.scores.partial.safetensors", []
    state["stop_after"] = 2
    with pytest.raises(Stop):
        _run(model, datasets, path, logs)
    saved = read_partial(path)[f"{datasets.fashionmnist}@S2"]
    assert len(saved) == 32 and calls == [16, 16]
    _assert_same_table(saved, whole.subset(np.arange(32)))

    calls.clear()
    state["stop_after"] = None
    got = _run(model, datasets, path, logs, resume=True, batch_size=5)  # another batch size
    assert calls == [5, 3]  # only the 8 examples after the saved 32
    assert f"resuming {datasets.fashionmnist}@S2 after 32 of {N} examples" in logs[-1]
    _assert_same_table(got, whole)
    assert got.meta["n"] == N and got.meta["indices"] == "seeded-subset-0"
    assert not path.exists()  # a finished table leaves the partial file


@pytest.mark.parametrize(
    "change, field",
    [({"seed": 1}, "seed"), ({"sha": "other"}, "weights_sha256"), ({"lt": False}, "lt")],
)
def test_saved_rows_made_under_other_settings_are_scored_again(
    model, datasets, counted, tmp_path, change, field
):
    calls, state = counted
    path, logs = tmp_path / "p.safetensors", []
    state["stop_after"] = 1
    with pytest.raises(Stop):
        _run(model, datasets, path, logs)
    assert len(read_partial(path)[f"{datasets.fashionmnist}@S2"]) == 16
    calls.clear()
    state["stop_after"] = None
    got = _run(model, datasets, path, logs, resume=True, **change)
    assert sum(calls) == N
    assert logs[-1] == f"not resuming {datasets.fashionmnist}@S2: its saved rows differ in {field}"
    kw = {k: v for k, v in change.items() if k != "sha"}
    want = score_dataset(
        model, datasets.fashionmnist, limit=N, n_samples=2, lt=kw.pop("lt", True), **kw
    )
    _assert_same_table(got, want)


def test_without_resume_saved_rows_are_not_used(model, datasets, counted, tmp_path):
    calls, state = counted
    path = tmp_path / "p.safetensors"
    state["stop_after"] = 1
    with pytest.raises(Stop):
        _run(model, datasets, path, [])
    calls.clear()
    state["stop_after"] = None
    _run(model, datasets, path, [])
    assert sum(calls) == N


def test_an_unreadable_partial_file_is_reported_and_its_rows_scored_again(
    model, datasets, whole, counted, tmp_path
):
    calls, _ = counted
    path, logs = tmp_path / "p.safetensors", []
    path.write_bytes(b"not safetensors at all")
    got = _run(model, datasets, path, logs, resume=True)
    assert logs[0].startswith(f"ignoring the saved progress in {path}: ")
    assert sum(calls) == N
    _assert_same_table(got, whole)
    assert not path.exists()


def test_other_tables_saved_rows_are_kept_when_one_finishes(model, datasets, counted, tmp_path):
    calls, state = counted
    path = tmp_path / "p.safetensors"
    state["stop_after"] = 1
    with pytest.raises(Stop):
        _run(model, datasets, path, [], n_samples=3)
    state["stop_after"] = None
    _run(model, datasets, path, [])
    assert list(read_partial(path)) == [f"{datasets.fashionmnist}@S3"]


def test_rows_without_l_lt_l_columns_are_not_kept_for_a_table_with_them(
    model, datasets, counted, tmp_path
):
    """Catches the ``lt`` setting of saved rows or a finished table taken as True whatever its
    columns: rows scored without L<l must be scored again for a table with them."""
    calls, state = counted
    key = f"{datasets.fashionmnist}@S2"
    path, logs = tmp_path / "p.safetensors", []
    state["stop_after"] = 1
    with pytest.raises(Stop):
        _run(model, datasets, path, logs, lt=False)
    calls.clear()
    state["stop_after"] = None
    got = _run(model, datasets, path, logs, resume=True)  # lt=True
    assert sum(calls) == N and logs[-1] == f"not resuming {key}: its saved rows differ in lt"
    assert any(c.startswith("L<") for c in got.columns)
    done = _run(model, datasets, path, logs, lt=False)
    calls.clear()
    again = _run(model, datasets, path, logs, resume=True, finished=done)
    assert again is not done and sum(calls) == N
    assert logs[-1] == f"scoring {key} again: the stored table differs in lt"


def test_a_finished_table_is_kept_only_when_its_settings_match(
    model, datasets, whole, counted, tmp_path
):
    calls, _ = counted
    path, logs = tmp_path / "p.safetensors", []
    done = _run(model, datasets, path, logs)
    calls.clear()
    assert _run(model, datasets, path, logs, resume=True, finished=done) is done
    assert calls == [] and logs[-1] == f"keeping {datasets.fashionmnist}@S2: already scored " + (
        "with these settings"
    )
    again = _run(model, datasets, path, logs, resume=True, finished=done, lt=False)
    assert sum(calls) == N and again is not done
    assert logs[-1] == f"scoring {datasets.fashionmnist}@S2 again: the stored table differs in lt"
    assert not any(c.startswith("L<") for c in again.columns)
    assert {c for c in done.columns if not c.startswith("L<")} == set(again.columns)

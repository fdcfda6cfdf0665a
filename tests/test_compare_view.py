"""Two models side by side (hvaelab.app.compare_view): the numbers are Table 1's and Table 2's,
every other model with the same test sets' tables can stand beside the page's model, and a model
without them says what to run."""

from __future__ import annotations

import numpy as np
import pytest

from hvaelab.app import resources
from hvaelab.app.compare_view import ModelComparison, comparison_figure, model_scores
from hvaelab.checkpoint import copy_checkpoint
from hvaelab.evaluate import evaluate_tables


@pytest.fixture
def folder(app_checkpoints, tmp_path, monkeypatch):
    """A checkpoint folder with the page's model, exported as HVAELAB_CHECKPOINTS, and the only
    place looked in (not the repository's checkpoints/, whose other models may have tables, nor the
    user cache)."""
    copy_checkpoint(app_checkpoints / "fashionmnist", tmp_path / "fashionmnist")
    monkeypatch.setenv("HVAELAB_CHECKPOINTS", str(tmp_path))
    monkeypatch.setattr("hvaelab.checkpoint._repo_checkpoints_dir", lambda: tmp_path / "none")
    monkeypatch.setattr("hvaelab.checkpoint._user_cache_dir", lambda: tmp_path / "none")
    resources.clear_caches()
    yield tmp_path
    resources.clear_caches()


def test_the_numbers_are_those_of_tables_1_and_2(app_checkpoints):
    tables = resources.load_score_tables("fashionmnist")
    s1 = {k: t for k, t in tables.items() if k.endswith("@S1")}
    want = evaluate_tables(s1, "fashionmnist")
    m = model_scores("fashionmnist", "fashionmnist", "mnist")
    rows = {r["score"]: r["auroc"] for r in want["table2"] if r["ood"] == "mnist"}
    assert m.elbo_auroc == pytest.approx(rows["-ELBO"], abs=1e-12)
    assert m.llr_auroc == pytest.approx({k: rows[f"LLR>{k}"] for k in (1, 2, 3)}, abs=1e-12)
    t1 = next(r for r in want["table1"] if r["dataset"] == "fashionmnist")
    assert m.bits_per_dim == pytest.approx(t1["log p(x)"], abs=1e-12)
    assert m.kind == "hvae" and m.n_layers == 3
    assert m.best_k == max(m.llr_auroc, key=m.llr_auroc.get)


def test_alone_the_page_says_how_to_get_a_second_model(folder):
    view = ModelComparison("fashionmnist")
    assert view.b_select.options == () and view.b_select.layout.display == "none"
    assert "hvaelab train --preset biva-grey" in view.status.value
    assert "hvaelab tables --checkpoint fashionmnist-biva" in view.status.value
    assert view.table.value.count("<tr>") == 2  # the header and model A
    assert len(view.slot.figure.data) == 1


def test_a_second_model_with_tables_stands_beside_the_first(folder):
    copy_checkpoint(folder / "fashionmnist", folder / "another")
    copy_checkpoint(folder / "fashionmnist", folder / "fashionmnist-biva")  # preferred first
    resources.clear_caches()
    view = ModelComparison("fashionmnist")
    assert view.b_select.options == ("fashionmnist-biva", "another")
    assert [m.name for m in view.models] == ["fashionmnist", "fashionmnist-biva"]
    a, b = view.models
    assert a.llr_auroc == b.llr_auroc and a.elbo_auroc == b.elbo_auroc  # the same weights
    assert view.table.value.count("<tr>") == 3 and view.status.value == ""
    view.b_select.value = "another"
    assert [m.name for m in view.models] == ["fashionmnist", "another"]
    fig = view.slot.figure
    assert [t.name for t in fig.data] == ["fashionmnist (HVAE)", "another (HVAE)"]
    for trace, m in zip(fig.data, view.models, strict=True):
        assert list(trace.x) == [0, 1, 2, 3]
        assert np.allclose(trace.y, [m.elbo_auroc, *m.llr_auroc.values()])


def test_a_model_without_tables_is_named_with_the_command_that_writes_them(folder):
    copy_checkpoint(folder / "fashionmnist", folder / "bare")
    (folder / "bare.scores.safetensors").unlink()
    resources.clear_caches()
    view = ModelComparison("fashionmnist")
    assert view.b_select.options == ()  # not offered: it has no tables
    view = ModelComparison("fashionmnist", checkpoint_b="bare")  # asked for by name
    assert "hvaelab tables --checkpoint bare" in view.status.value
    assert [m.name for m in view.models] == ["fashionmnist"]


def test_models_of_different_depth_share_the_k_axis(app_checkpoints):
    m = model_scores("fashionmnist", "fashionmnist", "mnist")
    deep = type(m)(**{**m.__dict__, "name": "deep", "kind": "biva", "n_layers": 10})
    deep.llr_auroc = {k: 0.5 + k / 40 for k in range(1, 11)}
    fig = comparison_figure([m, deep])
    assert list(fig.layout.xaxis.tickvals) == list(range(11))
    assert fig.layout.xaxis.ticktext[0] == "−ELBO"
    assert [len(t.x) for t in fig.data] == [4, 11]
    assert deep.best_k == 10 and fig.data[1].marker.size[10] > fig.data[1].marker.size[1]

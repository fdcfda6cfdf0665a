"""Paper-style evaluation (Tables 1 and 2) on hand-built score tables with known answers."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest

from hvaelab.evaluate import (
    bits_per_dim_rows,
    evaluate_tables,
    format_table1,
    format_table2,
    table2_rows,
    write_results,
)
from hvaelab.scores import ScoreTable, ood_scores

D = 784
L = 3


def _table(elbo, llr, dataset="fashionmnist", S=1, iw_shift=0.0) -> ScoreTable:
    """A table whose LLR>k are ``llr[:, k-1]``: L>k = elbo - LLR>k (all in nats)."""
    elbo = np.asarray(elbo, dtype=np.float64)
    cols = {"elbo": elbo}
    for k in range(1, L + 1):
        cols[f"L>{k}"] = elbo - llr[:, k - 1]
    if S > 1:  # importance-weighted bounds: a little tighter
        for name in list(cols):
            cols[name + "_iw"] = cols[name] + iw_shift
    meta = {"n_samples": S, "prior": "mean", "n_layers": L, "n_dims": D, "dataset": dataset}
    return ScoreTable(cols, meta)


def _in_dist(n=200, seed=0, **kw) -> ScoreTable:
    rng = np.random.default_rng(seed)
    return _table(rng.normal(-300, 10, n), rng.normal(50, 5, (n, L)), **kw)


def _rows_by_score(rows):
    return {r["score"]: r for r in rows}


def test_identical_sets_give_chance_auroc():
    ref = _in_dist()
    ood = _in_dist(dataset="mnist")  # the very same scores
    rows = _rows_by_score(table2_rows(ref, ood))
    for name in ood_scores(ref):
        assert rows[name]["auroc"] == pytest.approx(0.5), name
        assert rows[name]["n_in"] == rows[name]["n_ood"] == 200
    sel = rows["LLR select-k"]
    assert 0.3 < sel["auroc"] < 0.7
    assert sel["n_in"] == sel["n_ood"] == 100  # half of the in-distribution set is reference


def test_large_llr_shift_gives_perfect_llr_rows():
    rng = np.random.default_rng(1)
    ref = _in_dist()
    elbo, llr = rng.normal(-300, 10, 150), rng.normal(50, 5, (150, L))
    ood = _table(elbo, llr + 1000.0, "mnist")
    rows = _rows_by_score(table2_rows(ref, ood))
    for k in range(1, L + 1):
        r = rows[f"LLR>{k}"]
        assert r["auroc"] == 1.0 and r["fpr80"] == 0.0 and r["fpr95"] == 0.0
        assert r["auprc"] == pytest.approx(1.0)
        assert r["n_in"] == r["n_ood"] == 150  # the equal-size protocol
    assert abs(rows["-ELBO"]["auroc"] - 0.5) < 0.15  # the ELBO is not shifted
    assert rows["LLR select-k"]["auroc"] == 1.0
    for r in rows.values():
        assert r["S"] == 1 and r["prior"] == "mean"
    # a shift in the other direction is perfectly reversed (higher score = more OOD)
    low = _rows_by_score(table2_rows(ref, _table(elbo, llr - 1000.0, "mnist")))
    assert low["LLR>1"]["auroc"] == 0.0 and low["LLR>1"]["fpr80"] == 1.0


def test_select_k_catches_a_shift_in_one_llr_column_only():
    rng = np.random.default_rng(2)
    ref = _in_dist()
    llr = rng.normal(50, 5, (200, L))
    llr[:, 1] += 40.0  # only LLR>2 differs (8 standard deviations)
    ood = _table(rng.normal(-300, 10, 200), llr, "mnist")
    rows = _rows_by_score(table2_rows(ref, ood))
    assert rows["LLR>2"]["auroc"] > 0.99
    assert abs(rows["LLR>1"]["auroc"] - 0.5) < 0.15
    assert abs(rows["LLR>3"]["auroc"] - 0.5) < 0.15
    assert rows["LLR select-k"]["auroc"] > 0.95
    assert rows["LLR select-k"]["fpr80"] < 0.1


def test_table2_at_s_above_1_uses_importance_weighted_ratios():
    rng = np.random.default_rng(3)
    ref = _in_dist(S=4, iw_shift=0.5)
    ood = _table(rng.normal(-300, 10, 100), rng.normal(50, 5, (100, L)) + 500, "mnist", 4, 0.5)
    rows = _rows_by_score(table2_rows(ref, ood))
    assert "LLR_S select-k" in rows and "LLR select-k" not in rows
    for k in range(1, L + 1):
        assert rows[f"LLR_S>{k} iw-both"]["auroc"] == 1.0
        assert rows[f"LLR_S>{k} iw-elbo"]["auroc"] == 1.0
    assert rows["LLR_S select-k"]["auroc"] == 1.0
    assert {r["S"] for r in rows.values()} == {4}


def test_bits_per_dim_rows_by_hand():
    n = 10
    per = D * math.log(2)
    elbo = np.full(n, -1.5 * per)  # 1.5 bits/dim
    llr = np.tile([0.25 * per, 0.5 * per, -0.25 * per], (n, 1))
    t1 = _table(elbo, llr)
    (row,) = bits_per_dim_rows({"fashionmnist": t1})
    assert row["dataset"] == "fashionmnist" and row["S"] == 1
    assert row["log p(x)"] == pytest.approx(1.5)
    assert row["L>1"] == pytest.approx(1.75)  # -(elbo - llr) / (D ln 2)
    assert row["L>2"] == pytest.approx(2.0)
    assert row["L>3"] == pytest.approx(1.25)
    # at S > 1 the importance-weighted columns are used
    t4 = _table(elbo, llr, S=4, iw_shift=0.1 * per)
    (row4,) = bits_per_dim_rows({"fashionmnist": t4})
    assert row4["S"] == 4 and row4["log p(x)"] == pytest.approx(1.4)
    assert row4["L>1"] == pytest.approx(1.65)
    # a hand computation of the helper itself, per example
    assert np.allclose(t1.bits_per_dim("elbo"), -t1.columns["elbo"] / (D * math.log(2)))


def _tables():
    rng = np.random.default_rng(4)
    out = {}
    for S in (1, 4):
        out[f"fashionmnist@S{S}"] = _in_dist(seed=S, S=S, iw_shift=0.2)
        out[f"mnist@S{S}"] = _table(
            rng.normal(-280, 10, 120), rng.normal(70, 5, (120, L)), "mnist", S, 0.2
        )
    return out


def test_evaluate_tables_groups_by_s():
    res = evaluate_tables(_tables(), "fashionmnist")
    assert [(r["dataset"], r["S"]) for r in res["table1"]] == [
        ("fashionmnist", 1),
        ("mnist", 1),
        ("fashionmnist", 4),
        ("mnist", 4),
    ]
    t2 = res["table2"]
    assert {r["ood"] for r in t2} == {"mnist"}
    s1 = [r["score"] for r in t2 if r["S"] == 1]
    s4 = [r["score"] for r in t2 if r["S"] == 4]
    assert s1 == [*ood_scores(_tables()["fashionmnist@S1"]), "LLR select-k"]
    assert s4 == [*ood_scores(_tables()["fashionmnist@S4"]), "LLR_S select-k"]
    assert all(r["auroc"] > 0.9 for r in t2 if r["score"].startswith("LLR"))
    text = format_table2(t2)
    assert "OOD: mnist   S = 1" in text and "OOD: mnist   S = 4" in text
    assert "prior below k: mean" in text and "n = 120 + 120" in text
    assert "auroc" in text and "LLR_S select-k" in text
    t1 = format_table1(res["table1"])
    assert t1.splitlines()[0].split() == ["bits/dim", "log", "p(x)", "L>1", "L>2", "L>3"]
    assert len(t1.splitlines()) == 5 and "mnist (S=4)" in t1


def test_evaluate_tables_without_the_in_distribution_table_is_an_error():
    tables = _tables()
    with pytest.raises(ValueError, match="'cifar10' at S=1"):
        evaluate_tables(tables, "cifar10")
    del tables["fashionmnist@S4"]
    with pytest.raises(ValueError, match="in-distribution set 'fashionmnist' at S=4"):
        evaluate_tables(tables, "fashionmnist")


def test_write_results_writes_json_and_csv(tmp_path):
    res = evaluate_tables(_tables(), "fashionmnist")
    paths = write_results(res, tmp_path / "out" / "evaluate-run")
    assert paths == [tmp_path / "out" / "evaluate-run.json", tmp_path / "out" / "evaluate-run.csv"]
    assert json.loads(paths[0].read_text()) == json.loads(json.dumps(res))
    with open(paths[1], newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(res["table2"])
    assert rows[0]["ood"] == "mnist" and rows[0]["score"] == "-ELBO"
    assert float(rows[0]["auroc"]) == pytest.approx(res["table2"][0]["auroc"])
    assert {"auroc", "auprc", "fpr80", "S", "prior", "n_in", "n_ood"} <= set(rows[0])

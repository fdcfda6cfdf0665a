"""Paper-style evaluation from score tables: Table 1 (bits/dim) and Table 2 (OOD metrics).

Input: :class:`hvaelab.scores.ScoreTable` objects for the in-distribution test set and each OOD
test set, at one or more numbers of importance samples S. Output: plain rows (lists of dicts)
that the CLI prints and writes as CSV / JSON and that the dashboards show.

Besides every score of :func:`hvaelab.scores.ood_scores`, a ``select-k`` row implements the
per-example selection of k of the paper's sec. 5 ("Selection of k"): each input's LLR>k are
compared with the in-distribution reference for every k of the verdict's set
(:func:`hvaelab.verdict.verdict_ks`: below the highest active layer) and the k where it differs
the most decides (:func:`hvaelab.pvalues.select_k_scores`). To keep the reference and the evaluated
in-distribution examples apart, the in-distribution test set is split in two seeded halves; that
row therefore uses half of the in-distribution examples.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from .artifacts import atomic_write, write_csv
from .metrics import metrics_table, ood_metrics
from .pvalues import select_k_scores, split_reference
from .score_names import ScoreName, TableKey
from .scores import ScoreTable, ood_scores
from .verdict import kl_means, llr_verdict_names


def bits_per_dim_rows(tables: dict[str, ScoreTable]) -> list[dict[str, Any]]:
    """Table 1: average bits/dim of log p(x) (largest-S importance-weighted bound) and L>k."""
    rows = []
    for name, t in tables.items():
        iw = "_iw" if t.n_samples > 1 else ""
        row: dict[str, Any] = {
            "dataset": name,
            "S": t.n_samples,
            "log p(x)": float(t.bits_per_dim("elbo" + iw).mean()),
        }
        for k in range(1, t.n_layers + 1):
            row[f"L>{k}"] = float(t.bits_per_dim(f"L>{k}" + iw).mean())
        rows.append(row)
    return rows


def table2_rows(
    ref: ScoreTable, ood: ScoreTable, seed: int = 0, iw_form: str = "iw-both"
) -> list[dict[str, Any]]:
    """Table 2 for one OOD set: one row per score (AUROC, AUPRC, FPR80, ...), paper protocol."""
    s_in, s_ood = ood_scores(ref), ood_scores(ood)
    rows = metrics_table(s_in, s_ood, equal=True, seed=seed)
    S = ref.n_samples
    names = llr_verdict_names(ref.n_layers, S, iw_form, kl_means(ref.columns, ref.n_layers))
    ref_idx, eval_idx = split_reference(len(ref), 0.5, seed)
    ref_m = np.stack([s_in[n][ref_idx] for n in names], 1)
    in_score, _ = select_k_scores(ref_m, np.stack([s_in[n][eval_idx] for n in names], 1))
    ood_score, chosen = select_k_scores(ref_m, np.stack([s_ood[n] for n in names], 1))
    m = ood_metrics(in_score, ood_score, equal=True, seed=seed)
    rows.append({"score": str(ScoreName.select_k(S > 1)), **m.as_dict()})
    for r in rows:
        r["S"] = S
        r["prior"] = ref.meta.get("prior", "mean")
    return rows


def evaluate_tables(tables: dict[str, ScoreTable], in_name: str, seed: int = 0) -> dict[str, Any]:
    """All of Table 1 and, per OOD dataset and S, Table 2, from tables keyed ``DATASET@S<n>``."""
    by_s: dict[int, dict[str, ScoreTable]] = {}
    for key, t in tables.items():
        by_s.setdefault(t.n_samples, {})[t.meta.get("dataset", TableKey.parse(key).dataset)] = t
    out: dict[str, Any] = {"table1": [], "table2": []}
    for S in sorted(by_s):
        group = by_s[S]
        if in_name not in group:
            raise ValueError(f"no score table for the in-distribution set {in_name!r} at S={S}")
        out["table1"].extend(bits_per_dim_rows(group))
        for name, t in group.items():
            if name == in_name:
                continue
            for r in table2_rows(group[in_name], t, seed=seed):
                out["table2"].append({"ood": name, **r})
    return out


def format_table2(rows: list[dict[str, Any]], columns=("auroc", "auprc", "fpr80")) -> str:
    """Plain-text Table 2: rows grouped by OOD set and S."""
    lines = []
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["ood"], r["S"]), []).append(r)
    for (ood, S), rs in groups.items():
        w = max(len(r["score"]) for r in rs)
        lines.append(
            f"OOD: {ood}   S = {S}   (prior below k: {rs[0]['prior']}, "
            f"n = {rs[0]['n_in']} + {rs[0]['n_ood']})"
        )
        lines.append(f"  {'score':<{w}}  " + "  ".join(f"{c:>7}" for c in columns))
        for r in rs:
            lines.append(f"  {r['score']:<{w}}  " + "  ".join(f"{r[c]:7.3f}" for c in columns))
        lines.append("")
    return "\n".join(lines)


def format_table1(rows: list[dict[str, Any]]) -> str:
    """Plain-text Table 1: average bits/dim per dataset (and S) of log p(x) and each L>k."""
    keys = [k for k in rows[0] if k not in ("dataset", "S")]
    labels = [f"{r['dataset']} (S={r['S']})" for r in rows]
    w = max(len("bits/dim"), *map(len, labels))
    lines = [f"{'bits/dim':<{w}}  " + "  ".join(f"{k:>9}" for k in keys)]
    for label, r in zip(labels, rows, strict=True):
        lines.append(f"{label:<{w}}  " + "  ".join(f"{r[k]:9.3f}" for k in keys))
    return "\n".join(lines)


def write_results(results: dict[str, Any], stem: Path) -> list[Path]:
    """Write ``stem``.json (everything) and ``stem``.csv (Table 2 rows)."""
    stem.parent.mkdir(parents=True, exist_ok=True)
    jpath, cpath = stem.with_suffix(".json"), stem.with_suffix(".csv")
    atomic_write(jpath, json.dumps(results, indent=2))
    write_csv(cpath, results["table2"])
    return [jpath, cpath]

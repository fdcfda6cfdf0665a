"""Threshold-free OOD detection metrics (paper sec. 5 "Evaluation", Table 2).

Paper: Havtorn et al., "Hierarchical VAEs Know What They Don't Know", ICML 2021,
https://arxiv.org/abs/2102.08248

Sign convention (used everywhere in hvaelab): a HIGHER score means MORE out-of-distribution
and OOD examples are the POSITIVE class (label 1); in-distribution examples are label 0.
A score for which in-distribution data scores higher (e.g. a raw log-likelihood) must be
negated by the caller before it is passed here.

Definitions, with a detector that flags ``score >= t`` as OOD for a threshold ``t``:

- ``TPR(t) = #{ood >= t} / n_ood`` and ``FPR(t) = #{in >= t} / n_in``.
- AUROC: area under the ROC curve ``(FPR(t), TPR(t))``. Equivalently the probability that a
  random OOD score exceeds a random in-distribution score, ties counting 1/2
  (the Mann-Whitney U statistic). 0.5 is chance, 1.0 perfect, 0.0 perfectly reversed.
- AUPRC (what the paper reports): average precision with OOD as positive class,
  ``AP = sum_n (R_n - R_{n-1}) P_n`` over the distinct thresholds (as scikit-learn's
  ``average_precision_score``, which the tests check against; no trapezoidal interpolation).
  ``aupr_out`` is the same number;
  ``aupr_in`` treats in-distribution as positive and ranks by the negated score, as common OOD
  libraries also report it.
- FPR at TPR ``r`` (FPR80: r=0.8, FPR95: r=0.95): let ``t*`` be the LARGEST threshold with
  ``TPR(t*) >= r`` (the strictest detector that still catches at least a fraction ``r`` of the
  OOD examples). This is the ``m``-th largest OOD score with ``m = ceil(r * n_ood)``. The result
  is ``FPR(t*) = #{in >= t*} / n_in``: in-distribution scores tied with ``t*`` count as flagged
  (pessimistic tie handling). No interpolation between ROC points. This equals
  ``fpr[argmax(tpr >= r)]`` on scikit-learn's unthinned ROC curve, as in Ren et al. (2019).

All metrics depend only on the ranks of the scores, so they are invariant to strictly increasing
transforms; scores in nats (magnitudes around 1e4) are used as they are, never squashed through a
sigmoid.

Protocol (paper sec. 5): metrics use an equal number of in-distribution and OOD examples, all of
the smaller set plus a seeded random subset, without replacement, of the larger set
(:func:`equal_size`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np

__all__ = [
    "OODMetrics",
    "aupr_in",
    "aupr_out",
    "auprc",
    "auroc",
    "equal_size",
    "equal_size_indices",
    "format_metrics_table",
    "fpr_at_tpr",
    "metrics_table",
    "ood_metrics",
    "roc_curve",
]


def _check_scores(x: np.ndarray | Sequence[float] | object, name: str) -> np.ndarray:
    """Return ``x`` as a 1-D float64 array, raising ValueError naming ``name`` if it is bad."""
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(
            f"{name} must be a 1-D array of per-example scores, got shape {arr.shape}; "
            "flatten it or select one score column."
        )
    if arr.size == 0:
        raise ValueError(f"{name} is empty; at least one score is needed.")
    bad = ~np.isfinite(arr)
    if bad.any():
        idx = np.flatnonzero(bad)
        raise ValueError(
            f"{name} contains {idx.size} non-finite value(s) (NaN or inf), first at index "
            f"{idx[0]} ({arr[idx[0]]}); remove or fix these examples before computing metrics."
        )
    return arr


def _labelled(scores_in, scores_ood) -> tuple[np.ndarray, np.ndarray]:
    s_in = _check_scores(scores_in, "scores_in")
    s_ood = _check_scores(scores_ood, "scores_ood")
    return _pooled(s_in, s_ood)


def _pooled(s_in: np.ndarray, s_ood: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Labels (0 in-distribution, 1 OOD) and the scores of both sets, in one array each."""
    return np.concatenate([np.zeros(s_in.size), np.ones(s_ood.size)]), np.concatenate([s_in, s_ood])


def _sorted_curve(y: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`_curve` of labels and scores already sorted by decreasing score (ties in any
    order: only the counts at the end of each run of equal scores are kept)."""
    last = np.r_[np.flatnonzero(np.diff(s)), y.size - 1]  # the last index of each distinct score
    tps = np.cumsum(y)[last]
    return tps, 1 + last - tps, s[last]


def _curve(y: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """True and false positives at each distinct threshold, scores decreasing: ``(tps, fps,
    thresholds)`` (scikit-learn's ``_binary_clf_curve``, in numpy: one sort; importing
    scikit-learn took 1.5 s of every page kernel's start)."""
    order = np.argsort(s, kind="mergesort")[::-1]
    return _sorted_curve(y[order], s[order])


def _auroc_of(tps: np.ndarray, fps: np.ndarray) -> float:
    tpr, fpr = np.r_[0, tps] / tps[-1], np.r_[0, fps] / fps[-1]
    return float(np.trapezoid(tpr, fpr))


def _average_precision_of(tps: np.ndarray, fps: np.ndarray) -> float:
    precision, recall = tps / (tps + fps), tps / tps[-1]
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def _auroc(y: np.ndarray, s: np.ndarray) -> float:
    tps, fps, _ = _curve(y, s)
    return _auroc_of(tps, fps)


def _average_precision(y: np.ndarray, s: np.ndarray) -> float:
    tps, fps, _ = _curve(y, s)
    return _average_precision_of(tps, fps)


def auroc(scores_in, scores_ood) -> float:
    """Area under the ROC curve, OOD positive, higher score = more OOD."""
    y, s = _labelled(scores_in, scores_ood)
    return _auroc(y, s)


def auprc(scores_in, scores_ood) -> float:
    """Average precision with OOD as the positive class (the paper's AUPRC)."""
    y, s = _labelled(scores_in, scores_ood)
    return _average_precision(y, s)


def aupr_out(scores_in, scores_ood) -> float:
    """AUPR-Out: identical to :func:`auprc` (OOD positive)."""
    return auprc(scores_in, scores_ood)


def aupr_in(scores_in, scores_ood) -> float:
    """AUPR-In: average precision with in-distribution positive, ranked by the negated score."""
    y, s = _labelled(scores_in, scores_ood)
    return _average_precision(1.0 - y, -s)


def _check_rate(tpr: float) -> float:
    if not (isinstance(tpr, (int, float, np.floating)) and 0.0 < float(tpr) <= 1.0):
        raise ValueError(f"tpr must be a number in (0, 1], e.g. 0.8 for FPR80; got {tpr!r}.")
    return float(tpr)


def fpr_at_tpr(scores_in, scores_ood, tpr: float) -> float:
    """False positive rate at the strictest threshold reaching a true positive rate of ``tpr``.

    See the module docstring: threshold ``t*`` = the ``ceil(tpr * n_ood)``-th largest OOD score,
    result ``#{in >= t*} / n_in`` (ties with ``t*`` count as false positives).
    """
    rate = _check_rate(tpr)
    s_in = _check_scores(scores_in, "scores_in")
    s_ood = _check_scores(scores_ood, "scores_ood")
    return _fpr_of_sorted(s_in, np.sort(s_ood)[::-1], rate)


def _fpr_of_sorted(s_in: np.ndarray, ood_decreasing: np.ndarray, rate: float) -> float:
    # Small tolerance so that e.g. 0.8 * 10 -> 8, not 9, despite floating point.
    m = max(1, math.ceil(rate * ood_decreasing.size - 1e-9))
    return float(np.mean(s_in >= ood_decreasing[m - 1]))


def roc_curve(scores_in, scores_ood) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ROC curve for plotting: ``(fpr, tpr, thresholds)`` with thresholds decreasing."""
    y, s = _labelled(scores_in, scores_ood)
    tps, fps, thr = _curve(y, s)
    if tps.size > 2:  # only the corners of the curve (scikit-learn's drop_intermediate)
        keep = np.flatnonzero(np.r_[True, (np.diff(fps, 2) != 0) | (np.diff(tps, 2) != 0), True])
        tps, fps, thr = tps[keep], fps[keep], thr[keep]
    tps, fps, thr = np.r_[0, tps], np.r_[0, fps], np.r_[np.inf, thr]
    return fps / fps[-1], tps / tps[-1], thr


def equal_size_indices(n_in: int, n_ood: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Indices for the paper's equal-size protocol: all of the smaller set, a seeded subset
    (without replacement, sorted) of the larger. Returns ``(idx_in, idx_ood)``."""
    for name, n in (("n_in", n_in), ("n_ood", n_ood)):
        if int(n) != n or n < 1:
            raise ValueError(f"{name} must be a positive integer, got {n!r}.")
    n_in, n_ood = int(n_in), int(n_ood)
    m = min(n_in, n_ood)
    rng = np.random.default_rng(seed)
    idx_in, idx_ood = np.arange(n_in), np.arange(n_ood)
    if n_in > m:
        idx_in = np.sort(rng.choice(n_in, size=m, replace=False))
    elif n_ood > m:
        idx_ood = np.sort(rng.choice(n_ood, size=m, replace=False))
    return idx_in, idx_ood


def equal_size(scores_in, scores_ood, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Subsample the larger score set to the size of the smaller one (paper sec. 5)."""
    s_in = _check_scores(scores_in, "scores_in")
    s_ood = _check_scores(scores_ood, "scores_ood")
    idx_in, idx_ood = equal_size_indices(s_in.size, s_ood.size, seed)
    return s_in[idx_in], s_ood[idx_ood]


@dataclass
class OODMetrics:
    """Metrics for one score; ``n_in``/``n_ood`` are the numbers of examples actually used."""

    auroc: float
    auprc: float
    aupr_in: float
    aupr_out: float
    fpr80: float
    fpr95: float
    n_in: int
    n_ood: int

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)


def _metrics_unchecked(s_in: np.ndarray, s_ood: np.ndarray) -> OODMetrics:
    """Every metric from one sort of the pooled scores (the same numbers as :func:`auroc`,
    :func:`auprc`, :func:`aupr_in` and :func:`fpr_at_tpr`, each of which sorts on its own)."""
    y, s = _pooled(s_in, s_ood)  # checked by the callers
    order = np.argsort(s, kind="mergesort")
    y, s = y[order], s[order]  # increasing score
    tps, fps, _ = _sorted_curve(y[::-1], s[::-1])  # OOD positive, decreasing score
    ap = _average_precision_of(tps, fps)
    # AUPR-In ranks by the negated score with the labels flipped: increasing s is decreasing -s
    tps_in, fps_in, _ = _sorted_curve(1.0 - y, -s)
    ood_decreasing = s[::-1][y[::-1] == 1.0]
    return OODMetrics(
        auroc=_auroc_of(tps, fps),
        auprc=ap,
        aupr_in=_average_precision_of(tps_in, fps_in),
        aupr_out=ap,
        fpr80=_fpr_of_sorted(s_in, ood_decreasing, 0.8),
        fpr95=_fpr_of_sorted(s_in, ood_decreasing, 0.95),
        n_in=int(s_in.size),
        n_ood=int(s_ood.size),
    )


def ood_metrics(scores_in, scores_ood, equal: bool = True, seed: int = 0) -> OODMetrics:
    """All metrics for one score; ``equal=True`` applies the paper's equal-size protocol."""
    s_in = _check_scores(scores_in, "scores_in")
    s_ood = _check_scores(scores_ood, "scores_ood")
    if equal:
        s_in, s_ood = equal_size(s_in, s_ood, seed)
    return _metrics_unchecked(s_in, s_ood)


def _common_length(scores: Mapping[str, object], which: str) -> dict[str, np.ndarray]:
    if not scores:
        raise ValueError(f"{which} is an empty dict; pass at least one named score array.")
    arrays = {k: _check_scores(v, f"{which}[{k!r}]") for k, v in scores.items()}
    sizes = {k: a.size for k, a in arrays.items()}
    if len(set(sizes.values())) != 1:
        raise ValueError(
            f"all arrays in {which} must score the same examples (equal lengths), got {sizes}."
        )
    return arrays


def metrics_table(
    scores_in: Mapping[str, object],
    scores_ood: Mapping[str, object],
    equal: bool = True,
    seed: int = 0,
) -> list[dict[str, float | int | str]]:
    """One row per score name: ``{"score": name, **OODMetrics.as_dict()}``.

    All arrays in ``scores_in`` score the same in-distribution examples (likewise for
    ``scores_ood``), so one set of subset indices is drawn and shared by every row, making the
    rows directly comparable (Table 2 style). Keys must match; order follows ``scores_in``.
    """
    a_in = _common_length(scores_in, "scores_in")
    a_ood = _common_length(scores_ood, "scores_ood")
    if set(a_in) != set(a_ood):
        raise ValueError(
            "scores_in and scores_ood must have the same score names; "
            f"only in scores_in: {sorted(set(a_in) - set(a_ood))}, "
            f"only in scores_ood: {sorted(set(a_ood) - set(a_in))}."
        )
    n_in = next(iter(a_in.values())).size
    n_ood = next(iter(a_ood.values())).size
    if equal:
        idx_in, idx_ood = equal_size_indices(n_in, n_ood, seed)
    else:
        idx_in, idx_ood = np.arange(n_in), np.arange(n_ood)
    rows: list[dict[str, float | int | str]] = []
    for name in a_in:
        m = _metrics_unchecked(a_in[name][idx_in], a_ood[name][idx_ood])
        rows.append({"score": name, **m.as_dict()})
    return rows


def format_metrics_table(
    rows: Sequence[Mapping[str, object]],
    columns: Sequence[str] = ("auroc", "auprc", "fpr80"),
    digits: int = 3,
) -> str:
    """Plain-text table of :func:`metrics_table` rows (default columns as in paper Table 2)."""
    header = ["score", *columns]
    body = [
        [str(r["score"])] + [f"{float(r[c]):.{digits}f}" for c in columns]  # type: ignore[arg-type]
        for r in rows
    ]
    widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True))
        for line in [header, *body]
    ]
    return "\n".join(line.rstrip() for line in lines)

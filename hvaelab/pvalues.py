"""Per-example OOD decisions against an in-distribution reference (paper sec. 5, "Selection of k").

Paper: https://arxiv.org/abs/2102.08248. The ``LLR^{>k}`` scores of the in-distribution test set,
for every k, form an empirical reference distribution. A new input is OOD if for ANY k its score
differs significantly from the reference; if it differs for several k, the k for which it differs
the most is selected.

Empirical (conformal) p-value of a value ``v`` against a reference ``r_1..r_n``:

- ``upper``: ``p = (1 + #{r_i >= v}) / (n + 1)`` (large values are extreme;
  LLR^{>k} is high for OOD),
- ``lower``: ``p = (1 + #{r_i <= v}) / (n + 1)``,
- ``two-sided``: ``min(1, 2 * min(p_upper, p_lower))``.

If ``v`` is exchangeable with the reference, ``P(p <= a) <= a`` for every ``a``, so rejecting
when ``p < alpha`` has false positive rate at most ``alpha``. With K scores tested at once,
:func:`verdict` uses the Bonferroni correction ``p_k < fpr / K`` for any k, keeping the
in-distribution false positive rate at most ``fpr``.

:class:`SelectKScore` turns per-example selection of k into a continuous OOD score (higher = more
OOD) usable with :mod:`hvaelab.metrics`; see its docstring for the tie-breaking rule.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = [
    "TAILS",
    "SelectKScore",
    "Verdict",
    "empirical_pvalue",
    "select_k_scores",
    "split_reference",
    "verdict",
]

TAILS = ("upper", "lower", "two-sided")


def _check_tail(tail: str) -> str:
    if tail not in TAILS:
        raise ValueError(f"tail must be one of {TAILS}, got {tail!r}.")
    return tail


def _finite(x, name: str) -> np.ndarray:
    arr = np.asarray(x, dtype=np.float64)
    if arr.size == 0:
        raise ValueError(f"{name} is empty; at least one value is needed.")
    bad = ~np.isfinite(arr)
    if bad.any():
        raise ValueError(
            f"{name} contains {int(bad.sum())} non-finite value(s) (NaN or inf); "
            "remove or fix them first."
        )
    return arr


def _pvalue_sorted(sorted_ref: np.ndarray, values: np.ndarray, tail: str) -> np.ndarray:
    n = sorted_ref.size
    if tail in ("upper", "two-sided"):
        n_ge = n - np.searchsorted(sorted_ref, values, side="left")
        p_up = (1.0 + n_ge) / (n + 1.0)
        if tail == "upper":
            return p_up
    n_le = np.searchsorted(sorted_ref, values, side="right")
    p_lo = (1.0 + n_le) / (n + 1.0)
    if tail == "lower":
        return p_lo
    return np.minimum(1.0, 2.0 * np.minimum(p_up, p_lo))


def empirical_pvalue(reference, values, tail: str = "upper") -> np.ndarray:
    """Empirical p-values of ``values`` (any shape) against a 1-D ``reference``.

    O((n + N) log n) via ``np.searchsorted`` on the sorted reference. See the module docstring
    for the exact formulas; ties with reference values count as "at least as extreme".
    """
    _check_tail(tail)
    ref = _finite(reference, "reference")
    if ref.ndim != 1:
        raise ValueError(f"reference must be 1-D, got shape {ref.shape}.")
    vals = _finite(values, "values")
    return _pvalue_sorted(np.sort(ref), vals, tail)


def _tails_list(tails: str | Sequence[str], k: int) -> list[str]:
    out = [tails] * k if isinstance(tails, str) else list(tails)
    if len(out) != k:
        raise ValueError(f"need one tail per score column: got {len(out)} tails for {k} columns.")
    return [_check_tail(t) for t in out]


def _check_2d(x, name: str) -> np.ndarray:
    arr = _finite(x, name)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise ValueError(f"{name} must have shape (n_examples, K), got {arr.shape}.")
    return arr


def _check_pair(reference, values) -> tuple[np.ndarray, np.ndarray]:
    ref = _check_2d(reference, "reference")
    vals = _check_2d(values, "values")
    if ref.shape[1] != vals.shape[1]:
        raise ValueError(
            f"reference has {ref.shape[1]} score columns but values has {vals.shape[1]}; "
            "columns must be the same scores (e.g. LLR>k for the same k) in the same order."
        )
    return ref, vals


@dataclass
class Verdict:
    """Per-example decision. ``p_values`` is (N, K); ``decisive`` is the column with the smallest
    p-value (first on ties); an example is OOD when ``min_p < threshold = alpha / K``."""

    is_ood: np.ndarray
    p_values: np.ndarray
    decisive: np.ndarray
    min_p: np.ndarray
    alpha: float
    threshold: float


def verdict(reference, values, tails: str | Sequence[str] = "upper", fpr: float = 0.05) -> Verdict:
    """Flag inputs whose score differs significantly from the reference in ANY column.

    ``reference`` is (n_ref, K) in-distribution scores, ``values`` (N, K) new inputs, ``tails``
    one of :data:`TAILS` per column (or one for all). Bonferroni: OOD iff some ``p_k < fpr / K``.
    """
    if not 0.0 < fpr < 1.0:
        raise ValueError(f"fpr must be in (0, 1), e.g. 0.05; got {fpr!r}.")
    ref, vals = _check_pair(reference, values)
    k = ref.shape[1]
    tail_list = _tails_list(tails, k)
    p: np.ndarray = np.empty(vals.shape, dtype=np.float64)
    for j, tail in enumerate(tail_list):
        p[:, j] = _pvalue_sorted(np.sort(ref[:, j]), vals[:, j], tail)
    decisive = np.argmin(p, axis=1)
    min_p = p[np.arange(p.shape[0]), decisive]
    threshold = fpr / k
    return Verdict(
        is_ood=min_p < threshold,
        p_values=p,
        decisive=decisive,
        min_p=min_p,
        alpha=float(fpr),
        threshold=float(threshold),
    )


class SelectKScore:
    """Per-example selection of k as a continuous OOD score (higher = more OOD).

    Fit on in-distribution reference scores (n_ref, K), e.g. ``LLR^{>k}`` for K values of k.
    For a new input with empirical p-values ``p_k`` (tail per column, "upper" by default):

    - primary term ``P = max_k -log p_k`` (the k where the input differs the most),
    - ``chosen_k`` = the column attaining ``P``; among tied columns the one with the largest
      directional z-score ``z_k = s_k (v_k - mean_k) / std_k`` (``s_k`` = +1 upper, -1 lower;
      two-sided uses ``|.|``), mean/std of the reference column,
    - score ``= P + w * u(z_chosen)`` with ``u(z) = 1/2 + arctan(asinh(z)) / pi`` in (0, 1) and
      ``w = 1/2 * log((n + 1) / n)``, half the smallest gap between distinct values of ``P``.

    So the score orders inputs by ``P`` first; the z-score only breaks ties, which empirical
    p-values create at the extremes (every input beyond the whole reference gets
    ``p = 1 / (n + 1)``): among those, the one further out scores higher. ``asinh`` keeps
    ``u`` resolvable in float64 for very large z (scores in nats can be huge).
    """

    def __init__(self, tails: str | Sequence[str] = "upper") -> None:
        self.tails = tails
        self._sorted: np.ndarray | None = None

    def fit(self, reference) -> SelectKScore:
        ref = _check_2d(reference, "reference")
        if ref.shape[0] < 2:
            raise ValueError(f"reference needs at least 2 examples per column, got {ref.shape[0]}.")
        self.tail_list = _tails_list(self.tails, ref.shape[1])
        self._sorted = np.sort(ref, axis=0)
        self.mean_ = ref.mean(axis=0)
        std = ref.std(axis=0)
        self.std_ = np.where(std > 0, std, 1.0)
        self.n_ref = ref.shape[0]
        self.weight = 0.5 * np.log((self.n_ref + 1.0) / self.n_ref)
        return self

    def score(self, values) -> tuple[np.ndarray, np.ndarray]:
        """Return ``(score, chosen_k)``, both shape (N,)."""
        if self._sorted is None:
            raise RuntimeError("SelectKScore.score called before fit(reference).")
        vals = _check_2d(values, "values")
        k = self._sorted.shape[1]
        if vals.shape[1] != k:
            raise ValueError(f"fit on {k} score columns but values has {vals.shape[1]}.")
        neglogp = np.empty(vals.shape)
        z = (vals - self.mean_) / self.std_
        for j, tail in enumerate(self.tail_list):
            neglogp[:, j] = -np.log(_pvalue_sorted(self._sorted[:, j], vals[:, j], tail))
            z[:, j] = {
                "upper": z[:, j],
                "lower": -z[:, j],
                "two-sided": np.abs(z[:, j]),
            }[tail]
        primary = neglogp.max(axis=1)
        # Columns attaining the max (exact equality: p-values are ratios of small integers).
        z_at_max = np.where(neglogp == primary[:, None], z, -np.inf)
        chosen = np.argmax(z_at_max, axis=1)
        z_chosen = z_at_max[np.arange(vals.shape[0]), chosen]
        u = 0.5 + np.arctan(np.arcsinh(z_chosen)) / np.pi
        return primary + self.weight * u, chosen


def select_k_scores(reference, values, tails: str | Sequence[str] = "upper"):
    """Functional form of :class:`SelectKScore`: returns ``(score (N,), chosen_k (N,))``."""
    return SelectKScore(tails).fit(reference).score(values)


def split_reference(n: int, fraction: float = 0.5, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Seeded disjoint split of ``range(n)`` into ``(ref_idx, eval_idx)`` (both sorted).

    Fit the reference on ``ref_idx`` of the in-distribution test scores and evaluate on
    ``eval_idx``, so in-distribution evaluation examples are never part of their own reference.
    """
    if int(n) != n or n < 2:
        raise ValueError(f"n must be an integer >= 2, got {n!r}.")
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"fraction must be in (0, 1), got {fraction!r}.")
    n = int(n)
    n_ref = min(n - 1, max(1, round(fraction * n)))
    perm = np.random.default_rng(seed).permutation(n)
    return np.sort(perm[:n_ref]), np.sort(perm[n_ref:])

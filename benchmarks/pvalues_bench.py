"""How fast empirical p-values are: N values against a reference of n scores, every tail.

Usage::

    .venv/bin/python benchmarks/pvalues_bench.py [--n 20000] [--reps 5]

Times :func:`hvaelab.pvalues.empirical_pvalue` (sort the reference once, then binary search) on
n = N = 20,000 standard-normal values, the size of a full test set scored against another, and
prints the best of ``--reps`` runs against the target (0.5 s for the two-sided p-values of 20k
values, the budget of one dashboard update) and against a baseline measured in this process on
the same data: the direct count ``#{r_i >= v}`` over all pairs (O(n N), in blocks). Prints, never
asserts: the unit tests check the p-values, this script how fast they come.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hvaelab.pvalues import TAILS, empirical_pvalue  # noqa: E402

TARGET_S = 0.5  # two-sided p-values of 20k values against 20k references


def naive_pvalue(reference: np.ndarray, values: np.ndarray, tail: str) -> np.ndarray:
    """The definition (see hvaelab.pvalues), counted pair by pair in blocks of rows."""
    n, out = reference.size, np.empty(values.size)
    for a in range(0, values.size, 1024):
        v = values[a : a + 1024, None]
        up = (1.0 + (reference[None, :] >= v).sum(1)) / (n + 1.0)
        lo = (1.0 + (reference[None, :] <= v).sum(1)) / (n + 1.0)
        out[a : a + 1024] = {"upper": up, "lower": lo}.get(
            tail, np.minimum(1.0, 2.0 * np.minimum(up, lo))
        )
    return out


def best_of(reps: int, fn) -> tuple[float, np.ndarray]:
    """Fastest wall-clock time of ``reps`` calls (other load only ever slows a run down)."""
    best, result = float("inf"), None
    for _ in range(reps):
        t0 = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t0)
    return best, result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=20_000, help="reference size = number of values")
    ap.add_argument("--reps", type=int, default=5, help="repetitions (best kept)")
    a = ap.parse_args(argv)

    rng = np.random.default_rng(0)
    ref, vals = rng.normal(size=a.n), rng.normal(size=a.n)
    target = TARGET_S  # set for n = 20,000
    print(f"empirical_pvalue: {a.n:,} values against {a.n:,} references, best of {a.reps}")
    print(
        f"{'tail':<10} {'time ms':>9} {'target ms':>10} {'ratio':>6} "
        f"{'naive ms':>9} {'speed-up':>9}  agrees"
    )
    for tail in TAILS:
        t, p = best_of(a.reps, lambda tail=tail: empirical_pvalue(ref, vals, tail))
        t_naive, p_naive = best_of(1, lambda tail=tail: naive_pvalue(ref, vals, tail))
        agrees = bool(np.allclose(p, p_naive, rtol=0, atol=1e-12))
        print(
            f"{tail:<10} {t * 1e3:9.2f} {target * 1e3:10.0f} {t / target:6.3f} "
            f"{t_naive * 1e3:9.1f} {t_naive / t:8.0f}x  {agrees}"
            + ("" if t <= target else "  (over target)")
        )
    print("(ratio = time / target; speed-up = naive pairwise count / empirical_pvalue)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

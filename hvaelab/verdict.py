"""Which scores decide "out of distribution" (paper sec. 5, "Selection of k"), in one place.

Every verdict in hvaelab (``hvaelab score``, the pages, :class:`~hvaelab.detector.HVAEDetector`,
the mean-path report and the ONNX sidecar) takes its scores from :func:`verdict_names`. One sign
convention: higher = more OOD, upper-tail empirical p-values against an in-distribution reference
the detector was not fitted on (the test set; :mod:`hvaelab.pvalues`). Two rules:

``"llr"`` (the paper's, sec. 5)
    OOD iff ``p(LLR>k) < fpr / K`` for some k of the verdict's set (Bonferroni over its K scores).
    The set is ``k = 1 .. A-1``, where A is the highest *active* latent layer: the highest
    ``z_i`` whose KL term (eq. 1) averages at least :data:`ACTIVE_KL_NATS` nats over the
    in-distribution reference. At ``k >= A`` (``k = L`` included) the bound L>k (eq. 5) takes
    every informative latent from the conditional prior: none of x's own features enter it, and
    at the means its reconstruction is one and the same image for every input (a template, not
    a feature level of x), so the ratio ELBO - L>k no longer asks "is x in-distribution at the
    levels above k". This is decided from in-distribution data only: for the shipped HVAE all
    three layers are active (mean KL 11.3, 4.1, 9.5 nats on the FashionMNIST test set), so
    K = 2 (LLR>1, LLR>2); the BIVA's z6..z10 have collapsed (< 0.05 nats, against 1.3-8.5 for
    z1..z5), so K = 4 (LLR>1..LLR>4). The per-example selection of k uses the same set.

``"second-stage"`` (beyond the paper, :mod:`hvaelab.second_stage`)
    OOD iff ``p(second-stage) < fpr``: one score, no correction.

``"auto"`` (the default everywhere)
    the strongest calibrated detector the checkpoint has: the second stage where one is fitted
    (its column is in the reference), else the paper's ``"llr"``. Both are calibrated the same
    way: on held-out FashionMNIST training images they flag the nominal rate (the docs'
    "reproducing the paper" page quotes the measurement, ``benchmarks/verdict_calibration.py``).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

import numpy as np

from .score_names import SECOND_STAGE_COLUMN, ScoreName

__all__ = [
    "ACTIVE_KL_NATS",
    "RULES",
    "active_layer",
    "describe",
    "kl_means",
    "llr_verdict_names",
    "resolve_rule",
    "verdict_ks",
    "verdict_names",
]

ACTIVE_KL_NATS = 0.1  # a layer is active when its KL term averages at least this (nats)
RULES = ("auto", "second-stage", "llr")


def kl_means(columns: Mapping[str, np.ndarray], n_layers: int) -> list[float] | None:
    """Each layer's mean KL term (``kl1..klL`` columns of a score table or mean-path
    statistics), or None where the columns are missing (a table written before they existed)."""
    names = [f"kl{i}" for i in range(1, n_layers + 1)]
    if not all(n in columns for n in names):
        return None
    return [float(np.mean(np.asarray(columns[n], dtype=np.float64))) for n in names]


def active_layer(n_layers: int, means: Sequence[float] | None = None) -> int:
    """The highest active latent layer A (1-based): the highest ``i`` with mean KL at least
    :data:`ACTIVE_KL_NATS`; ``n_layers`` when the means are unknown."""
    if means is None:
        return n_layers
    if len(means) != n_layers:
        raise ValueError(f"{len(means)} KL means for a {n_layers}-layer model")
    active = [i + 1 for i, m in enumerate(means) if m >= ACTIVE_KL_NATS]
    return max(active) if active else 0


def verdict_ks(n_layers: int, means: Sequence[float] | None = None) -> list[int]:
    """The k of the paper's verdict: ``1 .. A-1`` (see the module docstring)."""
    top = active_layer(n_layers, means)
    if top < 2:
        raise ValueError(
            f"the likelihood-ratio verdict needs at least two active latent layers; this model "
            f"has {top} (of {n_layers}): L>k with k >= {max(top, 1)} takes every informative "
            "latent from the prior"
        )
    return list(range(1, top))


def llr_verdict_names(
    n_layers: int,
    n_samples: int = 1,
    iw_form: str = "iw-both",
    means: Sequence[float] | None = None,
) -> list[str]:
    """Names of the LLR>k the paper's verdict is taken over (k of :func:`verdict_ks`)."""
    return [str(ScoreName.llr(k, n_samples > 1, iw_form)) for k in verdict_ks(n_layers, means)]


def resolve_rule(rule: str, available: Collection[str]) -> str:
    """``"auto"`` -> ``"second-stage"`` where its scores are ``available``, else ``"llr"``; an
    explicit rule is checked against what is available."""
    if rule not in RULES:
        raise ValueError(f"verdict rule must be one of {RULES}, got {rule!r}")
    has_stage = SECOND_STAGE_COLUMN in available
    if rule == "auto":
        return "second-stage" if has_stage else "llr"
    if rule == "second-stage" and not has_stage:
        raise ValueError(
            "this checkpoint has no second stage (or its reference lacks the score): fit one "
            "with `hvaelab second-stage`, then `hvaelab tables`, or use the verdict rule 'llr'"
        )
    return rule


def verdict_names(
    rule: str,
    n_layers: int,
    available: Collection[str],
    n_samples: int = 1,
    iw_form: str = "iw-both",
    means: Sequence[float] | None = None,
) -> tuple[str, list[str]]:
    """``(resolved rule, the scores it decides over)`` for a reference with scores
    ``available``."""
    resolved = resolve_rule(rule, available)
    if resolved == "second-stage":
        return resolved, [SECOND_STAGE_COLUMN]
    return resolved, llr_verdict_names(n_layers, n_samples, iw_form, means)


def describe(rule: str, names: Sequence[str], fpr: float) -> str:
    """The rule in plain words, as the pages and the CLI print it."""
    if rule == "second-stage":
        return f"second stage (beyond the paper): OOD when its p-value < {fpr:g}"
    shown = ", ".join(names)
    return (
        f"the paper's likelihood ratios {shown} (Bonferroni): OOD when one has p < "
        f"{fpr:g}/{len(names)}"
    )

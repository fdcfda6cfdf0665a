"""Tests for hvaelab.pvalues: empirical p-values, Bonferroni verdicts, per-example k selection."""

import numpy as np
import pytest

from hvaelab import metrics as M
from hvaelab import pvalues as P

REF = np.array([1.0, 2.0, 3.0, 4.0])  # n = 4, so p-values are multiples of 1/5


def test_upper_pvalue_hand_computed():
    p = P.empirical_pvalue(REF, [0.0, 2.0, 2.5, 4.0, 10.0], "upper")
    # #{ref >= v}: 4, 3 (tie counts), 2, 1, 0
    np.testing.assert_allclose(p, [5 / 5, 4 / 5, 3 / 5, 2 / 5, 1 / 5])


def test_lower_pvalue_hand_computed():
    p = P.empirical_pvalue(REF, [0.0, 2.0, 2.5, 4.0, 10.0], "lower")
    # #{ref <= v}: 0, 2, 2, 4, 4
    np.testing.assert_allclose(p, [1 / 5, 3 / 5, 3 / 5, 5 / 5, 5 / 5])


def test_two_sided_pvalue_hand_computed():
    p = P.empirical_pvalue(REF, [0.0, 2.5, 10.0, 3.0], "two-sided")
    # 2 * min(upper, lower): 2*1/5, min(1, 2*3/5), 2*1/5, 2*min(3/5, 4/5) capped
    np.testing.assert_allclose(p, [0.4, 1.0, 0.4, 1.0])


def test_pvalue_keeps_shape_on_large_inputs():
    # its speed (20k values against 20k references, target 0.5 s): benchmarks/pvalues_bench.py
    rng = np.random.default_rng(0)
    ref, vals = rng.normal(size=20_000), rng.normal(size=(20_000,))
    p = P.empirical_pvalue(ref, vals, "two-sided")
    assert p.shape == vals.shape and (p > 0).all() and (p <= 1).all()
    assert P.empirical_pvalue(REF, np.zeros((2, 3))).shape == (2, 3)


def test_pvalue_validation():
    with pytest.raises(ValueError, match="tail"):
        P.empirical_pvalue(REF, [1.0], "left")
    with pytest.raises(ValueError, match="reference.*non-finite"):
        P.empirical_pvalue([1.0, np.nan], [1.0])
    with pytest.raises(ValueError, match="values.*non-finite"):
        P.empirical_pvalue(REF, [np.inf])


def test_verdict_flags_and_names_column():
    rng = np.random.default_rng(0)
    ref = rng.normal(size=(999, 3))  # min possible p = 1/1000 < 0.05 / 3
    vals = np.zeros((3, 3))
    vals[1, 2] = 100.0  # beyond the reference in column 2 only
    vals[2, 0] = -100.0  # beyond it on the low side of column 0 (upper tail: not extreme)
    v = P.verdict(ref, vals, tails=["upper", "upper", "upper"], fpr=0.05)
    np.testing.assert_array_equal(v.is_ood, [False, True, False])
    assert v.decisive[1] == 2
    assert v.min_p[1] == pytest.approx(1 / 1000)
    assert v.threshold == pytest.approx(0.05 / 3) and v.alpha == 0.05
    assert v.p_values.shape == (3, 3)
    # With a lower tail on column 0 the low outlier is flagged and column 0 named.
    v2 = P.verdict(ref, vals, tails=["lower", "upper", "upper"])
    assert v2.is_ood[2] and v2.decisive[2] == 0
    assert v2.is_ood[1] and v2.decisive[1] == 2
    assert not v2.is_ood[0]


def test_verdict_false_positive_rate_on_in_distribution():
    rng = np.random.default_rng(1)
    k, fpr = 4, 0.05
    ref = rng.normal(size=(5000, k))
    vals = rng.normal(size=(20_000, k))
    v = P.verdict(ref, vals, tails=["upper", "lower", "two-sided", "upper"], fpr=fpr)
    # Independent columns: 1 - (1 - fpr/K)^K ~= 0.049; Bonferroni keeps it <= fpr (+ noise).
    rate = v.is_ood.mean()
    assert 0.035 < rate < 0.06
    # Every column gets to decide some of the time.
    assert set(np.unique(v.decisive[v.is_ood])) == set(range(k))


def test_verdict_validation():
    ref = np.zeros((10, 2))
    with pytest.raises(ValueError, match="one tail per score column"):
        P.verdict(ref, np.zeros((1, 2)), tails=["upper"])
    with pytest.raises(ValueError, match="score columns"):
        P.verdict(ref, np.zeros((1, 3)))
    with pytest.raises(ValueError, match="fpr"):
        P.verdict(ref, np.zeros((1, 2)), fpr=5)
    with pytest.raises(ValueError, match="values.*non-finite"):
        P.verdict(ref, np.array([[0.0, np.nan]]))


def test_select_k_ranks_single_column_shift_above_unshifted():
    rng = np.random.default_rng(2)
    k = 3
    ref = rng.normal(size=(2000, k))
    clean = rng.normal(size=(300, k))
    shifted = []
    for j in range(k):
        x = rng.normal(size=(100, k))
        x[:, j] += 6.0  # shift only column j
        shifted.append(x)
    scorer = P.SelectKScore().fit(ref)
    s_clean, _ = scorer.score(clean)
    for j, x in enumerate(shifted):
        s_shift, chosen = scorer.score(x)
        assert M.auroc(s_clean, s_shift) > 0.99
        assert np.mean(chosen == j) > 0.95  # the shifted column is the one selected
    # Functional form matches the class.
    s_fn, c_fn = P.select_k_scores(ref, shifted[1])
    s_cls, c_cls = scorer.score(shifted[1])
    np.testing.assert_array_equal(s_fn, s_cls)
    np.testing.assert_array_equal(c_fn, c_cls)


def test_select_k_breaks_ties_beyond_reference():
    rng = np.random.default_rng(3)
    ref = rng.normal(size=(500, 2))
    # All beyond the reference maximum in some column: identical p-values 1/501.
    vals = np.array([[10.0, 0.0], [20.0, 0.0], [0.0, 15.0], [1e6, 0.0], [1e6 + 1e3, 0.0]])
    p = P.empirical_pvalue(ref[:, 0], vals[:, 0])
    assert p[0] == p[1] == p[3]  # the tie the secondary term has to break
    score, chosen = P.select_k_scores(ref, vals)
    np.testing.assert_array_equal(chosen, [0, 0, 1, 0, 0])
    assert score[0] < score[2] < score[1] < score[3] < score[4]
    # The tie-break never overrides the p-value ordering: an input inside the reference
    # (p > 1/501) scores below every input beyond it, however large its z in other columns.
    inside = np.array([[np.sort(ref[:, 0])[-2], 0.0]])  # second-largest reference value
    s_inside, _ = P.select_k_scores(ref, inside)
    assert s_inside[0] < score.min()
    # Its primary term is -log(3/501) (2 reference values >= it); the tie-break adds < w.
    w = 0.5 * np.log(501 / 500)
    assert 0 < s_inside[0] - (-np.log(3 / 501)) < w
    assert 0 < score.min() - np.log(501) < w


def test_select_k_tie_between_columns_picks_larger_z():
    ref = np.column_stack([np.arange(100.0), np.arange(100.0) * 10])  # different scales
    # Beyond both (same p-value): z0 = (200 - 49.5) / 28.9 ~ 5.2, z1 = (5000 - 495) / 289 ~ 15.6.
    _, chosen = P.select_k_scores(ref, np.array([[200.0, 5000.0], [900.0, 5000.0]]))
    np.testing.assert_array_equal(chosen, [1, 0])  # z0 = 29.5 in the second row


def test_select_k_lower_tail_breaks_ties_by_how_far_below_the_reference():
    """A lower-tail column: inputs below the whole reference share p = 1/(n+1); the one further
    below scores higher (its z-score enters negated). Catches the tail's sign dropped."""
    ref = np.column_stack([np.arange(100.0), np.arange(100.0)])
    vals = np.array([[-5.0, 50.0], [-500.0, 50.0], [150.0, 50.0]])
    score, chosen = P.select_k_scores(ref, vals, tails=["lower", "upper"])
    np.testing.assert_array_equal(chosen, [0, 0, 1])
    assert score[0] < score[1]  # both at p = 1/101 in column 0; -500 is further out
    assert score[2] < score[0]  # 150 is not extreme for a lower tail: column 1's p decides


def test_select_k_validation():
    with pytest.raises(RuntimeError, match="before fit"):
        P.SelectKScore().score(np.zeros((1, 2)))
    with pytest.raises(ValueError, match="at least 2"):
        P.SelectKScore().fit(np.zeros((1, 2)))
    with pytest.raises(ValueError, match="score columns"):
        P.SelectKScore().fit(np.zeros((5, 2))).score(np.zeros((1, 3)))


def test_split_reference_disjoint_and_seeded():
    ref_idx, eval_idx = P.split_reference(11, fraction=0.5, seed=0)
    assert np.intersect1d(ref_idx, eval_idx).size == 0
    np.testing.assert_array_equal(np.sort(np.r_[ref_idx, eval_idx]), np.arange(11))
    assert ref_idx.size in (5, 6)
    again, _ = P.split_reference(11, fraction=0.5, seed=0)
    np.testing.assert_array_equal(ref_idx, again)
    other, _ = P.split_reference(1000, fraction=0.3, seed=1)
    assert other.size == 300
    # the seed chooses the split (catches it ignored)
    seeded = [P.split_reference(1000, fraction=0.3, seed=s)[0] for s in (0, 1, 1)]
    assert not np.array_equal(seeded[0], seeded[1])
    np.testing.assert_array_equal(seeded[1], seeded[2])
    with pytest.raises(ValueError, match="fraction"):
        P.split_reference(10, fraction=1.0)
    with pytest.raises(ValueError, match="n must be"):
        P.split_reference(1)

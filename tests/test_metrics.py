"""Tests for hvaelab.metrics: hand-computed values, conventions, protocol, validation."""

import numpy as np
import pytest
from sklearn.metrics import roc_curve as sk_roc_curve

from hvaelab import metrics as M


def test_auroc_hand_computed():
    # Pairs (ood > in): 1.5 beats 0,1 (2 of 3); 3 beats all 3 -> 5/6.
    assert M.auroc([0, 1, 2], [1.5, 3]) == pytest.approx(5 / 6)


def test_auroc_perfect_reversed_ties():
    assert M.auroc([0, 1, 2], [3, 4]) == 1.0
    assert M.auroc([3, 4], [0, 1, 2]) == 0.0
    assert M.auroc([1, 1, 1], [1, 1]) == 0.5
    # Half the pairs tied, the rest won: 0.5 * 1 + 0.5 * 0.5.
    assert M.auroc([0, 1], [1, 2]) == pytest.approx(7 / 8)


def test_auprc_hand_computed():
    # Ranked: 3(ood) 2(in) 1.5(ood) 1 0 -> AP = 0.5 * 1 + 0.5 * 2/3.
    expected = 0.5 * 1 + 0.5 * (2 / 3)
    assert M.auprc([0, 1, 2], [1.5, 3]) == pytest.approx(expected)
    assert M.aupr_out([0, 1, 2], [1.5, 3]) == pytest.approx(expected)
    # In-positive ranked by -score: 0(in) 1(in) 1.5(ood) 2(in) 3(ood) -> 1/3*1 + 1/3*1 + 1/3*3/4.
    assert M.aupr_in([0, 1, 2], [1.5, 3]) == pytest.approx((1 + 1 + 0.75) / 3)


def test_fpr80_hand_counted():
    s_in = np.arange(10.0)  # 0..9
    s_ood = np.arange(10.0) + 5.5  # 5.5..14.5
    # 8 of 10 OOD must be caught: threshold = 8th largest OOD = 7.5; in >= 7.5: {8, 9} -> 0.2.
    assert M.fpr_at_tpr(s_in, s_ood, 0.8) == pytest.approx(0.2)
    # 95% of 10 -> ceil(9.5) = 10: threshold = 5.5; in >= 5.5: {6..9} -> 0.4.
    assert M.fpr_at_tpr(s_in, s_ood, 0.95) == pytest.approx(0.4)
    assert M.fpr_at_tpr(s_in, s_ood, 0.5) == 0.0  # threshold 10.5


def test_fpr_ties_count_as_false_positives():
    # 8th largest OOD score is 7.0; in-dist 7.0 is tied and counts as flagged.
    s_in = np.arange(10.0)
    s_ood = np.array([7.0] * 8 + [20.0, 21.0])
    assert M.fpr_at_tpr(s_in, s_ood, 0.8) == pytest.approx(0.3)  # {7, 8, 9}


def test_fpr_matches_sklearn_curve_convention():
    rng = np.random.default_rng(1)
    s_in = np.round(rng.normal(size=301), 1)  # rounding creates ties
    s_ood = np.round(rng.normal(1.0, size=257), 1)
    y = np.r_[np.zeros(s_in.size), np.ones(s_ood.size)]
    fpr, tpr, _ = sk_roc_curve(y, np.r_[s_in, s_ood], drop_intermediate=False)
    for r in (0.8, 0.95, 0.5):
        assert M.fpr_at_tpr(s_in, s_ood, r) == pytest.approx(fpr[np.argmax(tpr >= r)])


def test_fpr_bad_rate():
    with pytest.raises(ValueError, match="tpr"):
        M.fpr_at_tpr([0, 1], [2, 3], 80)


def test_scale_invariance_no_sigmoid():
    rng = np.random.default_rng(0)
    s_in, s_ood = rng.normal(size=200), rng.normal(0.3, size=150)
    base = M.ood_metrics(s_in, s_ood)
    big = M.ood_metrics(s_in * 1e4 + 3e4, s_ood * 1e4 + 3e4)
    assert big.as_dict() == pytest.approx(base.as_dict())
    assert 0.5 < base.auroc < 1.0


def test_roc_curve_shapes():
    fpr, tpr, thr = M.roc_curve([0, 1, 2], [1.5, 3])
    assert fpr[0] == 0 and tpr[-1] == 1 and fpr[-1] == 1
    assert fpr.shape == tpr.shape == thr.shape
    assert np.trapezoid(tpr, fpr) == pytest.approx(5 / 6)


def test_equal_size_sizes_and_determinism():
    s_in, s_ood = np.arange(100.0), np.arange(30.0) + 1000
    a_in, a_ood = M.equal_size(s_in, s_ood, seed=3)
    assert a_in.size == a_ood.size == 30
    np.testing.assert_array_equal(a_ood, s_ood)  # all of the smaller set
    assert np.unique(a_in).size == 30 and np.isin(a_in, s_in).all()  # without replacement
    b_in, _ = M.equal_size(s_in, s_ood, seed=3)
    c_in, _ = M.equal_size(s_in, s_ood, seed=4)
    np.testing.assert_array_equal(a_in, b_in)
    assert not np.array_equal(a_in, c_in)
    # The other direction: OOD is the larger set.
    x_in, x_ood = M.equal_size(s_ood, s_in)
    assert x_in.size == x_ood.size == 30
    np.testing.assert_array_equal(x_in, s_ood)


def test_ood_metrics_equal_flag():
    s_in, s_ood = np.arange(100.0), np.arange(30.0) + 50
    m = M.ood_metrics(s_in, s_ood)
    assert (m.n_in, m.n_ood) == (30, 30)
    full = M.ood_metrics(s_in, s_ood, equal=False)
    assert (full.n_in, full.n_ood) == (100, 30)
    assert full.auroc == pytest.approx(M.auroc(s_in, s_ood))
    assert full.aupr_out == full.auprc
    assert set(m.as_dict()) == {
        "auroc", "auprc", "aupr_in", "aupr_out", "fpr80", "fpr95", "n_in", "n_ood",
    }  # fmt: skip


def test_metrics_table_shared_indices():
    rng = np.random.default_rng(0)
    base_in, base_ood = rng.normal(size=500), rng.normal(1.0, size=120)
    # A monotone transform of the same score must give identical rows only if the same
    # subset is used for both.
    rows = M.metrics_table(
        {"a": base_in, "b": np.exp(base_in)},
        {"a": base_ood, "b": np.exp(base_ood)},
        seed=5,
    )
    assert [r["score"] for r in rows] == ["a", "b"]
    for key in ("auroc", "auprc", "fpr80", "fpr95", "aupr_in"):
        assert rows[0][key] == pytest.approx(rows[1][key])
    assert rows[0]["n_in"] == rows[0]["n_ood"] == 120
    assert rows[0]["auroc"] == pytest.approx(M.ood_metrics(base_in, base_ood, seed=5).auroc)
    text = M.format_metrics_table(rows)
    assert text.splitlines()[0].split() == ["score", "auroc", "auprc", "fpr80"]
    assert len(text.splitlines()) == 3


def test_metrics_table_mismatches():
    with pytest.raises(ValueError, match="same score names"):
        M.metrics_table({"a": [0, 1]}, {"b": [2, 3]})
    with pytest.raises(ValueError, match="equal lengths"):
        M.metrics_table({"a": [0, 1], "b": [0, 1, 2]}, {"a": [2, 3], "b": [2, 3]})


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_raises_naming_set(bad):
    with pytest.raises(ValueError, match="scores_ood.*non-finite"):
        M.auroc([0.0, 1.0], [2.0, bad])
    with pytest.raises(ValueError, match="scores_in.*non-finite"):
        M.ood_metrics([bad, 1.0], [2.0, 3.0])


def test_shape_and_empty_validation():
    with pytest.raises(ValueError, match="1-D"):
        M.auroc(np.zeros((2, 2)), [1.0])
    with pytest.raises(ValueError, match="scores_in is empty"):
        M.auprc([], [1.0])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_metrics_equal_scikit_learns_on_tied_and_untied_scores(seed):
    """hvaelab computes the metrics in numpy (one sort; the page kernels do not import
    scikit-learn); they equal scikit-learn's, ties included, and so does the ROC curve."""
    from sklearn import metrics as skm

    rng = np.random.default_rng(seed)
    for decimals in (0, 1, 8):  # many ties ... almost none
        s_in = np.round(rng.normal(size=401), decimals)
        s_ood = np.round(rng.normal(0.7, 1.3, size=233), decimals)
        y, s = np.r_[np.zeros(s_in.size), np.ones(s_ood.size)], np.r_[s_in, s_ood]
        assert M.auroc(s_in, s_ood) == pytest.approx(skm.roc_auc_score(y, s), abs=1e-12)
        assert M.auprc(s_in, s_ood) == pytest.approx(skm.average_precision_score(y, s), abs=1e-12)
        assert M.aupr_in(s_in, s_ood) == pytest.approx(
            skm.average_precision_score(1 - y, -s), abs=1e-12
        )
        ours, theirs = M.roc_curve(s_in, s_ood), skm.roc_curve(y, s)
        for a, b in zip(ours, theirs, strict=True):
            np.testing.assert_allclose(a, b, rtol=0, atol=1e-12)


@pytest.mark.parametrize("seed", [0, 1])
def test_ood_metrics_sort_once_and_equal_each_metric_on_its_own(seed):
    """ood_metrics (one sort for all metrics, as Table 2 and the explorer compute them) gives
    exactly the numbers of auroc, auprc, aupr_in and fpr_at_tpr, ties and sizes varied."""
    rng = np.random.default_rng(seed)
    for decimals, n_in, n_ood in ((0, 401, 233), (1, 50, 50), (8, 7, 300)):
        s_in = np.round(rng.normal(size=n_in), decimals)
        s_ood = np.round(rng.normal(0.7, 1.3, size=n_ood), decimals)
        m = M.ood_metrics(s_in, s_ood, equal=False)
        assert m.auroc == M.auroc(s_in, s_ood)
        assert m.auprc == m.aupr_out == M.auprc(s_in, s_ood)
        assert m.aupr_in == M.aupr_in(s_in, s_ood)
        assert (m.fpr80, m.fpr95) == (
            M.fpr_at_tpr(s_in, s_ood, 0.8),
            M.fpr_at_tpr(s_in, s_ood, 0.95),
        )
        assert m.aupr_in != m.auprc  # the two directions are not mixed up


def test_the_metrics_module_does_not_import_scikit_learn():
    import subprocess
    import sys

    code = "import sys, hvaelab.metrics, hvaelab.evaluate; print('sklearn' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"

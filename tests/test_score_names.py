"""Score names: one type owns names, parsing, labels, units, signs, tails and table keys."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hvaelab.score_names import (
    IW_FORMS,
    Family,
    ScoreName,
    TableKey,
    llr_names,
    table_scores,
)
from hvaelab.scores import ScoreTable, ood_scores

EVERY = [
    *table_scores(3, True, [1, 2, 3], ic=True, second_stage=True),
    ScoreName.select_k(),
    ScoreName.select_k(True),
]


def test_every_name_round_trips_through_text_and_slug():
    assert len(set(EVERY)) == len(EVERY) == len({str(n) for n in EVERY})
    for name in EVERY:
        assert ScoreName.parse(str(name)) == name
        assert ScoreName.from_slug(name.slug) == name
    assert ScoreName.llr(1).slug == "llr1" and ScoreName.elbo().slug == "elbo"  # history CSVs


@pytest.mark.parametrize(
    "text",
    [
        "ELBO",  # bounds are written negated
        "L>1",
        "-LLR>1",  # ratios are not
        "LLR>1 iw-both",  # S = 1 has no importance-weighting form
        "LLR_S>1",  # S > 1 needs one
        "LLR_S>1 iw-half",
        "second-stage_S",  # the second stage has no importance-weighted form
        "-IC",
        " IC",
        "-L<1_S",
        "-L>0",  # that is -ELBO
        "LLR>0",
        "-L_S>1",  # one spelling only
        "LLR_S>1<2",
        "WAIC",
        "",
    ],
)
def test_parse_refuses_what_is_not_a_canonical_name(text):
    with pytest.raises(ValueError, match="not a score name"):
        ScoreName.parse(text)


def test_of_family_picks_the_importance_weighted_form_when_s_above_1():
    assert str(ScoreName.of_family("ELBO", 2, 1, 1)) == "-ELBO"
    assert str(ScoreName.of_family("L>k", 0, 1, 4)) == "-ELBO_S"
    assert str(ScoreName.of_family("L>k", 2, 1, 4)) == "-L>2_S"
    assert str(ScoreName.of_family("LLR>k", 1, 1, 1)) == "LLR>1"
    assert str(ScoreName.of_family("LLR>k", 3, 1, 250)) == "LLR_S>3 iw-both"
    assert str(ScoreName.of_family("LLR>k", 3, 1, 250, "iw-elbo")) == "LLR_S>3 iw-elbo"
    assert str(ScoreName.of_family("LLR>k<l", 1, 2, 1)) == "LLR>1<2"
    assert str(ScoreName.of_family("L<l", 1, 2, 16)) == "-L<2"
    with pytest.raises(ValueError, match="unknown score family 'WAIC'"):
        ScoreName.of_family("WAIC", 1, 1, 1)


def test_sign_units_and_tails():
    for name in EVERY:
        bound = name.family in (Family.ELBO, Family.GT, Family.LT)
        assert name.is_bound == bound == str(name).startswith("-")
        assert name.sign == (-1 if bound else 1)
        per_dim = bound or name.family == Family.IC  # IC: a bound minus a code length
        assert name.unit == ("bits/dim" if per_dim else "nats")
    assert ScoreName.parse("LLR>2").tail == "upper"
    assert ScoreName.parse("LLR_S>1 iw-both").tail == "upper"
    assert ScoreName.parse("-ELBO").tail == "two-sided"
    assert ScoreName.parse("-L>2_S").tail == "two-sided"
    assert ScoreName.parse("LLR>1<2").tail == "two-sided"


def test_labels_in_paper_notation():
    assert ScoreName.parse("-ELBO").label() == "L>0"
    assert ScoreName.parse("-L>2_S").label() == "L_S>2"
    assert ScoreName.parse("LLR_S>1 iw-both").label() == "LLR_S>1 (iw-both)"
    assert ScoreName.parse("LLR>1<2").label(html_=True) == "LLR<sup>&gt;1&lt;2</sup>"
    assert ScoreName.parse("-L<3").label(html_=True) == "ℒ<sup>&lt;3</sup>"
    assert ScoreName.parse("LLR select-k").label(html_=True) == "LLR select-k"
    assert ScoreName.parse("LLR_S select-k").label(html_=True) == "LLR<sub>S</sub> select-k"
    assert ScoreName.parse("-ELBO").axis_title().startswith("−ℒ<sup>&gt;0</sup> in bits/dim")
    assert (
        ScoreName.parse("LLR>1").axis_title() == "LLR<sup>&gt;1</sup> in nats (higher = more OOD)"
    )
    v = np.array([100.0, 200.0])
    np.testing.assert_allclose(ScoreName.elbo().to_display(v, 784), v / (784 * math.log(2)))
    np.testing.assert_array_equal(ScoreName.llr(1).to_display(v, 784), v)


def _table(n_samples: int) -> ScoreTable:
    rng = np.random.default_rng(0)
    cols = {"elbo": -rng.uniform(200, 300, 5)}
    for c in ("L>1", "L>2", "L<1", "L<2"):
        cols[c] = cols["elbo"] - rng.uniform(1, 50, 5)
    for c in list(cols):
        cols[c + "_iw"] = cols[c] + rng.uniform(0, 2, 5)
    return ScoreTable(cols, {"n_samples": n_samples, "n_layers": 2, "n_dims": 784})


def test_values_follow_the_papers_equations():
    t = _table(4)
    c, s = t.columns, ood_scores(t)
    assert list(s) == [str(n) for n in table_scores(2, True, [1, 2])]
    np.testing.assert_array_equal(s["-ELBO"], -c["elbo"])
    np.testing.assert_array_equal(s["-ELBO_S"], -c["elbo_iw"])
    np.testing.assert_array_equal(s["-L>2"], -c["L>2"])
    np.testing.assert_array_equal(s["-L>2_S"], -c["L>2_iw"])
    np.testing.assert_array_equal(s["LLR>1"], c["elbo"] - c["L>1"])  # eq. 6
    np.testing.assert_array_equal(s["LLR_S>1 iw-elbo"], c["elbo_iw"] - c["L>1"])  # eq. 10
    np.testing.assert_array_equal(s["LLR_S>1 iw-both"], c["elbo_iw"] - c["L>1_iw"])
    np.testing.assert_array_equal(s["-L<2"], -c["L<2"])
    np.testing.assert_array_equal(s["LLR>2<1"], c["L<1"] - c["L>2"])  # eq. 21
    assert "-ELBO_S" not in ood_scores(_table(1))
    with pytest.raises(ValueError, match="needs a reference"):
        ScoreName.select_k().values(c)


def test_llr_names_and_table_keys():
    assert llr_names(3) == ["LLR>1", "LLR>2", "LLR>3"]
    assert llr_names(2, 5) == ["LLR_S>1 iw-both", "LLR_S>2 iw-both"]
    assert llr_names(2, 5, "iw-elbo") == ["LLR_S>1 iw-elbo", "LLR_S>2 iw-elbo"]
    assert IW_FORMS == ("iw-elbo", "iw-both")
    with pytest.raises(ValueError, match="iw_form"):
        llr_names(2, 5, "iw-none")
    assert str(TableKey("fashionmnist", 250)) == "fashionmnist@S250"
    assert TableKey.parse("mnist-testsplit@S1") == TableKey("mnist-testsplit", 1)
    for bad in ("fashionmnist", "@S1", "fashionmnist@S", "fashionmnist@Sx"):
        with pytest.raises(ValueError, match="DATASET@S<n>"):
            TableKey.parse(bad)


def test_input_complexity_and_the_second_stage_are_named_like_every_score():
    assert [str(n) for n in table_scores(1, True, ic=True, second_stage=True)][-3:] == [
        "IC",
        "IC_S",
        "second-stage",
    ]
    assert str(ScoreName.of_family("IC", n_samples=4)) == "IC_S"
    assert ScoreName.of_family("second-stage", n_samples=4) == ScoreName.second_stage()
    stage = ScoreName.second_stage()
    assert (stage.tail, stage.unit, stage.is_bound, stage.slug) == (
        "upper",
        "nats",
        False,
        "secondstage",
    )
    with pytest.raises(ValueError, match="no importance-weighted form"):
        ScoreName(Family.SECOND_STAGE, iw=True)
    assert stage.values({"second-stage": np.array([2.5])})[0] == 2.5
    assert ScoreName.ic(True).label(html_=True) == "IC<sub>S</sub>"

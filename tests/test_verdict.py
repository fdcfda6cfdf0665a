"""The verdict's rule (hvaelab.verdict): which LLR>k vote, and which detector decides by default."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hvaelab.scores import load_tables, ood_scores
from hvaelab.verdict import (
    ACTIVE_KL_NATS,
    active_layer,
    describe,
    kl_means,
    llr_verdict_names,
    resolve_rule,
    verdict_ks,
    verdict_names,
)

REPO_CHECKPOINTS = Path(__file__).resolve().parents[1] / "checkpoints"


def test_k_runs_below_the_top_active_layer():
    assert verdict_ks(3) == [1, 2]  # means unknown: every layer counts as active, k = L left out
    assert verdict_ks(3, [11.3, 4.1, 9.5]) == [1, 2]
    # collapsed layers on top (the BIVA's z6..z10) vote no more than k = L would
    biva = [8.5, 4.6, 1.3, 7.2, 3.6, 0.026, 0.026, 0.036, 0.043, 0.0055]
    assert active_layer(10, biva) == 5 and verdict_ks(10, biva) == [1, 2, 3, 4]
    # a collapsed layer in the middle does not end the set: a layer above it is active
    assert verdict_ks(4, [5.0, 0.0, 3.0, 0.0]) == [1, 2]
    assert active_layer(2, [ACTIVE_KL_NATS, ACTIVE_KL_NATS * 0.99]) == 1
    with pytest.raises(ValueError, match="at least two active latent layers"):
        verdict_ks(1)
    with pytest.raises(ValueError, match="at least two active"):
        verdict_ks(3, [2.0, 0.01, 0.01])
    with pytest.raises(ValueError, match="KL means"):
        active_layer(3, [1.0, 2.0])
    assert llr_verdict_names(3, 4, "iw-elbo") == ["LLR_S>1 iw-elbo", "LLR_S>2 iw-elbo"]


def test_kl_means_reads_the_columns_or_says_none():
    cols = {"kl1": np.array([1.0, 3.0]), "kl2": np.array([0.0, 0.5])}
    assert kl_means(cols, 2) == [2.0, 0.25]
    assert kl_means(cols, 3) is None


def test_auto_takes_the_second_stage_where_there_is_one():
    assert resolve_rule("auto", ["LLR>1", "second-stage"]) == "second-stage"
    assert resolve_rule("auto", ["LLR>1", "LLR>2"]) == "llr"
    assert resolve_rule("llr", ["LLR>1", "second-stage"]) == "llr"
    with pytest.raises(ValueError, match="no second stage"):
        resolve_rule("second-stage", ["LLR>1"])
    with pytest.raises(ValueError, match="one of"):
        resolve_rule("bonferroni", ["LLR>1"])
    assert verdict_names("auto", 3, {"second-stage": 0}) == ("second-stage", ["second-stage"])
    assert verdict_names("llr", 3, {"second-stage": 0}) == ("llr", ["LLR>1", "LLR>2"])
    assert describe("llr", ["LLR>1", "LLR>2"], 0.05).endswith("p < 0.05/2")
    assert describe("second-stage", ["second-stage"], 0.05).endswith("p-value < 0.05")


@pytest.mark.parametrize(
    ("name", "ks"), [("fashionmnist", [1, 2]), ("fashionmnist-biva", [1, 2, 3, 4])]
)
def test_the_shipped_checkpoints_vote_with_their_active_layers(name, ks):
    """Decided from the in-distribution test table alone: the KL of each layer."""
    table = load_tables(REPO_CHECKPOINTS / f"{name}.scores.safetensors")["fashionmnist@S1"]
    means = kl_means(table.columns, table.n_layers)
    assert verdict_ks(table.n_layers, means) == ks
    assert verdict_names("auto", table.n_layers, ood_scores(table), means=means)[0] == (
        "second-stage"
    )


def test_the_detector_the_cli_and_the_pages_share_the_rule(app_checkpoints):
    """HVAEDetector decides by the same rule as `hvaelab score` and the pages (score_inputs):
    the second stage by default, the paper's LLR>k by name."""
    from hvaelab.app import resources
    from hvaelab.detector import HVAEDetector

    garment = resources.load_shipped_samples()["fashionmnist"][:2]
    white = np.full((1, 28, 28), 255, np.uint8)
    x = np.concatenate([white, garment])
    det = HVAEDetector.from_checkpoint("fashionmnist")
    res = det.inputs(x)
    assert res.rule == "second-stage" and res.verdict_scores == ["second-stage"]
    assert det.verdict(x).tolist() == [True, False, False]
    paper = HVAEDetector.from_checkpoint("fashionmnist", rule="llr").inputs(x)
    assert paper.rule == "llr" and paper.verdict_scores == ["LLR>1", "LLR>2"]
    # the paper's verdict rides along with the default one, at the same FPR
    assert res.paper.is_ood.tolist() == paper.is_ood.tolist()
    with pytest.raises(ValueError, match="rule must be one of"):
        HVAEDetector("fashionmnist", rule="bonferroni")

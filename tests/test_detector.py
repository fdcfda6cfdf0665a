"""HVAEDetector: a thin fit/predict face over hvaelab.scores (the same numbers, not new ones)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from hvaelab.checkpoint import load_model
from hvaelab.data import InvalidInputError, to_tensor
from hvaelab.detector import HVAEDetector, NotFittedError
from hvaelab.metrics import auroc
from hvaelab.scores import ood_scores, save_tables, score_inputs, score_tensor, tables_path

REPO_CHECKPOINTS = Path(__file__).resolve().parents[1] / "checkpoints"


@pytest.fixture(scope="module")
def lm():
    return load_model(REPO_CHECKPOINTS / "fashionmnist")


@pytest.fixture(scope="module")
def fm(datasets) -> np.ndarray:
    """The first 200 FashionMNIST test images (uint8), real or fixture: the same pixels."""
    return datasets.images("fashionmnist")[:200]


@pytest.fixture(scope="module")
def mn(datasets) -> np.ndarray:
    return datasets.images("mnist")[:200]


@pytest.fixture(scope="module")
def stored(lm) -> HVAEDetector:
    """Fitted on the in-distribution test table stored beside the shipped checkpoint (10,000)."""
    det = HVAEDetector.from_checkpoint(lm.path, score="LLR>1")
    assert det.is_fitted and len(det.reference) == 10000
    assert det.reference.meta["dataset"] == "fashionmnist"
    return det


@pytest.fixture(scope="module")
def mixed(fm, mn) -> np.ndarray:
    """Eight in-distribution and eight MNIST images."""
    return np.concatenate([fm[:8], mn[:8]])


@pytest.fixture(scope="module")
def small_refs(lm, fm) -> dict:
    """Reference tables fitted on 32 FashionMNIST images, at S = 1 and 2."""
    return {S: HVAEDetector(lm, samples=S).fit(fm[100:132]).reference for S in (1, 2)}


# ------------------------------------------------------------------ the numbers of hvaelab.scores
@pytest.mark.parametrize(
    "samples, score",
    [(1, "LLR>1"), (1, "-ELBO"), (1, "LLR>2<1"), (2, "LLR_S>1 iw-both"), (2, "-L>2_S")],
)
def test_predict_is_the_named_ood_score_of_score_tensor(lm, small_refs, mixed, samples, score):
    det = HVAEDetector(lm.model, score=score, samples=samples).fit(small_refs[samples])
    x = mixed[::2]
    got = det.predict(x)
    direct = ood_scores(score_tensor(lm.model, x, n_samples=samples))[score]
    assert got.dtype == torch.float64 and got.shape == (len(x),)
    assert torch.equal(got, torch.from_numpy(direct))
    if samples == 1:  # float tensors in [0, 1] are the same images; __call__ is predict
        assert torch.equal(det(to_tensor(x)), got)


def test_fit_on_a_dataset_name_equals_fit_on_its_images(lm, datasets):
    by_name = HVAEDetector(lm.model).fit(datasets.fashionmnist, limit=40).reference
    imgs = datasets.images("fashionmnist")  # score_dataset's seeded subset, taken here by hand
    idx = np.sort(np.random.default_rng(0).choice(len(imgs), 40, replace=False))
    by_images = HVAEDetector(lm.model).fit(imgs[idx]).reference
    assert set(by_name.columns) == set(by_images.columns) and "L<1" in by_name.columns
    for col, v in by_images.columns.items():
        assert np.array_equal(by_name.columns[col], v), col
    assert by_name.meta["dataset"] == datasets.fashionmnist and by_name.meta["split"] == "test"


@pytest.mark.parametrize("score", ["LLR>1", "-ELBO", "LLR>2<1"])
def test_p_values_are_those_of_score_inputs(lm, stored, mixed, score):
    det = HVAEDetector(lm, score=score).fit(stored.reference)
    got = det.p_values(mixed)
    want = score_inputs(lm.model, mixed, stored.reference).p_values[score]
    assert got.dtype == torch.float64 and torch.equal(got, torch.from_numpy(want))
    assert ((got > 0) & (got <= 1)).all()
    if score == "LLR>1":  # upper tail: MNIST's large ratios are rare in FashionMNIST
        assert got[8:].mean() < got[:8].mean()


@pytest.mark.parametrize("fpr", [0.05, 0.3])
def test_verdict_is_that_of_score_inputs(lm, stored, mixed, fpr):
    got = stored.verdict(mixed, fpr=fpr)
    want = score_inputs(lm.model, mixed, stored.reference, fpr=fpr).is_ood
    assert got.dtype == torch.bool and torch.equal(got, torch.from_numpy(want))
    assert got[8:].sum() > got[:8].sum()  # MNIST is flagged more often
    # the verdict is over LLR>k for all k: it does not depend on the detector's score
    other = HVAEDetector(lm, score="-ELBO").fit(stored.reference)
    assert torch.equal(other.verdict(mixed, fpr=fpr), got)


def test_the_paper_phenomenon_through_the_detector(lm, stored, fm, mn):
    """FashionMNIST in, MNIST out, first 200 test images each: LLR>1 separates (and is larger
    for MNIST), the ELBO ranks MNIST as more likely (AUROC < 0.5)."""
    s_in, s_ood = stored.predict(fm), stored.predict(mn)
    assert s_ood.mean() > s_in.mean()
    assert auroc(s_in.numpy(), s_ood.numpy()) > 0.9
    elbo = HVAEDetector(lm, score="-ELBO").fit(stored.reference)
    assert auroc(elbo.predict(fm).numpy(), elbo.predict(mn).numpy()) < 0.5


# --------------------------------------------------------------------------------- stored tables
def test_from_checkpoint_refuses_a_table_of_other_weights(lm, stored, tmp_path):
    for suffix in (".json", ".safetensors"):
        shutil.copy(lm.path.with_name(lm.path.name + suffix), tmp_path / f"fm{suffix}")
    table = stored.reference.subset(np.arange(50))
    save_tables(tables_path(tmp_path / "fm"), [table])
    assert len(HVAEDetector.from_checkpoint(tmp_path / "fm").reference) == 50
    table.meta["weights_sha256"] = "0" * 64
    save_tables(tables_path(tmp_path / "fm"), [table])
    with pytest.raises(ValueError, match="other weights"):
        HVAEDetector.from_checkpoint(tmp_path / "fm")


def test_fit_table_checks_the_table_fits_the_detector(lm, stored, small_refs):
    with pytest.raises(ValueError, match="S=1 samples.*samples=2"):
        HVAEDetector(lm, score="LLR_S>1 iw-both", samples=2).fit(stored.reference)
    no_lt = stored.reference.subset(np.arange(10))
    no_lt.columns = {c: v for c, v in no_lt.columns.items() if not c.startswith("L<")}
    with pytest.raises(ValueError, match="no 'LLR>2<1'"):
        HVAEDetector(lm, score="LLR>2<1").fit_table(no_lt)
    with pytest.raises(TypeError, match="ScoreTable"):
        HVAEDetector(lm).fit_table({"elbo": np.zeros(3)})


# ---------------------------------------------------------------------------------------- errors
def test_unknown_score_names_list_the_valid_ones(lm):
    with pytest.raises(ValueError, match=r"unknown score 'LLR>9'.*valid scores: -ELBO, .*LLR>3"):
        HVAEDetector(lm.model, score="LLR>9")
    with pytest.raises(ValueError, match=r"needs samples > 1.*valid scores: .*LLR>1"):
        HVAEDetector(lm.model, score="LLR_S>1 iw-both")
    with pytest.raises(ValueError, match=r"valid scores: .*LLR_S>1 iw-elbo"):
        HVAEDetector(lm.model, score="ELBO", samples=4)
    with pytest.raises(ValueError, match="iw_form"):
        HVAEDetector(lm.model, iw_form="iw")


@pytest.mark.parametrize("samples", [0, -1, 1.5, True])
def test_samples_must_be_a_positive_integer(lm, samples):
    with pytest.raises(ValueError, match="samples must be a positive integer"):
        HVAEDetector(lm.model, samples=samples)


def test_scores_before_fit_are_a_clear_error(lm, fm):
    det = HVAEDetector(lm)
    assert not det.is_fitted and "not fitted" in repr(det)
    for method in (det.predict, det.p_values, det.verdict, det.inputs):
        with pytest.raises(NotFittedError, match=r"not fitted: call \.fit"):
            method(fm[:2])


def test_bad_inputs_get_the_library_errors(lm, stored, fm):
    with pytest.raises(InvalidInputError, match="28x28"):
        stored.predict(np.zeros((2, 30, 30), np.uint8))
    with pytest.raises(ValueError, match=r"scaled to \[0, 1\]"):
        stored.predict(to_tensor(fm[:2]) * 255.0)
    with pytest.raises(TypeError, match="numpy array"):
        stored.predict([fm[0]])
    with pytest.raises(ValueError, match=r"fpr must be in \(0, 1\)"):
        stored.verdict(fm[:2], fpr=0.0)
    with pytest.raises(ValueError, match="limit applies to a dataset name"):
        HVAEDetector(lm).fit(fm[:2], limit=1)
    with pytest.raises(TypeError, match="checkpoint name or path"):
        HVAEDetector(42)

"""The second stage (beyond the paper) and its inputs: mean-path statistics, the mixture, the
fit on training data only, storage, and the score wherever scores appear."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from hvaelab.artifacts import Artifacts
from hvaelab.checkpoint import load_model
from hvaelab.config import get_preset
from hvaelab.data import load_dataset
from hvaelab.detector import HVAEDetector
from hvaelab.example_stats import mean_path_stats, stat_names
from hvaelab.model import HVAE
from hvaelab.model.distributions import Gaussian
from hvaelab.scores import ood_scores, score_inputs, score_tensor
from hvaelab.second_stage import (
    SecondStage,
    SecondStageConfig,
    features,
    fit_features,
    fit_mixture,
    fit_second_stage,
    training_subsets,
)
from hvaelab.train import TrainConfig, Trainer

SMALL = SecondStageConfig(n_fit=160, n_select=64, components=(1, 2), seed=0)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, datasets):
    """A checkpoint of hvae-tiny trained briefly on 512 real FashionMNIST training images."""
    cfg = TrainConfig(
        preset="hvae-tiny",
        epochs=2,
        train_examples=512,
        val_examples=64,
        batch_size=64,
        init_examples=64,
        lr=1e-3,
        dataset=datasets.fashionmnist,
        ood=(),
        device="cpu",
    )
    stem = tmp_path_factory.mktemp("second-stage") / "tiny"
    Trainer(cfg, log=lambda _: None).run(stem)
    return stem


@pytest.fixture(scope="module")
def train_images(datasets) -> np.ndarray:
    return load_dataset(datasets.fashionmnist, "train").images[:400]


# ------------------------------------------------------------------------- statistics
def test_closed_form_kl_matches_torch():
    g = torch.Generator().manual_seed(0)
    q = Gaussian(torch.randn(5, 3, 4, 4, generator=g), torch.rand(5, 3, 4, 4, generator=g) + 0.1)
    p = Gaussian(torch.randn(5, 3, 4, 4, generator=g), torch.rand(5, 3, 4, 4, generator=g) + 0.1)
    ref = torch.distributions.kl_divergence(
        torch.distributions.Normal(q.mean, q.std), torch.distributions.Normal(p.mean, p.std)
    )
    torch.testing.assert_close(q.kl(p), ref.flatten(1).sum(1))
    assert torch.all(q.kl(q).abs() < 1e-6)


def test_statistics_are_deterministic_batch_independent_and_what_they_say():
    torch.manual_seed(0)
    model = HVAE(get_preset("hvae-tiny")).double().eval()
    x = (torch.rand(12, 1, 28, 28, generator=torch.Generator().manual_seed(1)) < 0.4).double()
    model.initialize(x)
    a = mean_path_stats(model, x)
    b = {k: torch.cat([mean_path_stats(model, x[i : i + 5])[k] for i in (0, 5, 10)]) for k in a}
    assert list(a) == stat_names(3)
    for k in a:
        torch.testing.assert_close(a[k], b[k])
    # rec>0 is log p(x|z) at the posterior means; the KLs are closed-form, so >= 0
    direct = model(x, k=0, posterior="mean", prior="mean")
    torch.testing.assert_close(a["rec>0"], direct.log_px)
    manual = [lay.posterior.kl(lay.prior) for lay in direct.layers]
    for i, kl in enumerate(manual, 1):
        torch.testing.assert_close(a[f"kl{i}"], kl)
        assert torch.all(kl >= 0)
    # rec>k takes z<=k from the conditional priors: it is the k-pass's log p(x|z) at the means
    torch.testing.assert_close(a["rec>2"], model(x, k=2, posterior="mean", prior="mean").log_px)


def test_features_are_log1p_of_positive_statistics_and_reject_nan():
    cols = {"rec>0": np.array([-10.0]), "kl1": np.array([3.0])}
    assert np.allclose(features(cols, 1), [[math.log(11.0), math.log(4.0)]])
    with pytest.raises(KeyError, match="missing"):
        features({"rec>0": np.zeros(1)}, 1)
    with pytest.raises(ValueError, match="NaN"):
        features({"rec>0": np.array([np.nan]), "kl1": np.ones(1)}, 1)


# ------------------------------------------------------------------------- the mixture
def test_em_recovers_a_two_cluster_mixture():
    rng = np.random.default_rng(0)
    a = rng.multivariate_normal([0, 0], [[1.0, 0.8], [0.8, 1.0]], 3000)
    b = rng.normal(6.0, 0.5, (1000, 2))
    mix, _ = fit_mixture(np.concatenate([a, b]), 2, 1e-6, 500, 1e-9, seed=0)
    order = np.argsort(mix.weights)
    assert np.allclose(mix.weights[order], [0.25, 0.75], atol=0.01)
    assert np.allclose(mix.means[order[0]], [6, 6], atol=0.05)
    assert np.allclose(mix.covariances[order[1]], [[1, 0.8], [0.8, 1]], atol=0.08)
    # the log density is a normalised mixture density: check it against a direct formula
    x = np.array([[0.3, -0.2]])
    direct = sum(
        w
        * math.exp(-0.5 * float((x[0] - m) @ np.linalg.inv(c) @ (x[0] - m)))
        / (2 * math.pi * math.sqrt(np.linalg.det(c)))
        for w, m, c in zip(mix.weights, mix.means, mix.covariances, strict=True)
    )
    assert mix.log_density(x)[0] == pytest.approx(math.log(float(direct)), rel=1e-9)


def test_held_out_training_data_chooses_the_component_count():
    rng = np.random.default_rng(1)

    def two(n):
        return np.concatenate([rng.normal(0, 1, (n, 3)), rng.normal(8, 1, (n, 3))])

    cfg = SecondStageConfig(n_fit=2, n_select=1, components=(1, 2, 4))
    bimodal = fit_features(two(600), two(300), cfg, n_layers=0)
    held = {c["components"]: c["heldout_loglik"] for c in bimodal.record["selection"]}
    assert bimodal.record["chosen_components"] == max(held, key=held.get) >= 2
    uni = fit_features(rng.normal(0, 1, (2000, 3)), rng.normal(0, 1, (2000, 3)), cfg, 0)
    assert len(uni.mixture.weights) == uni.record["chosen_components"]
    held = {c["components"]: c["heldout_loglik"] for c in uni.record["selection"]}
    assert held[uni.record["chosen_components"]] == max(held.values())


def test_a_feature_that_barely_varies_does_not_turn_float_noise_into_score():
    # like the KL of a collapsed latent layer: 1e-6 of spread, moved 1e-5 by float16 weights
    rng = np.random.default_rng(2)

    def feats(n):
        return np.concatenate([rng.normal(0, 1, (n, 2)), 0.03 + rng.normal(0, 1e-6, (n, 1))], 1)

    f_fit, f_sel, f_test = feats(3000), feats(1000), feats(200)
    moved = f_test + np.array([0.0, 0.0, 1e-5])
    swing = {}
    for min_std in (1e-3, 1e-9):
        cfg = SecondStageConfig(n_fit=2, n_select=1, components=(1, 2), min_std=min_std)
        stage = fit_features(f_fit, f_sel, cfg, n_layers=0)
        z = [(f - stage.feature_mean) / stage.feature_std for f in (f_test, moved)]
        swing[min_std] = np.abs(stage.mixture.log_density(z[0]) - stage.mixture.log_density(z[1]))
        assert stage.record["floored_features"] == ([2] if min_std == 1e-3 else [])
    assert swing[1e-3].max() < 0.1  # floored: the noise is noise
    assert swing[1e-9].min() > 10  # standardised by its own spread: the noise is the score
    with pytest.raises(ValueError, match="min_std must be > 0"):
        SecondStageConfig(min_std=0.0)


def test_training_subsets_are_seeded_disjoint_and_refuse_small_splits():
    a, b = training_subsets(1000, SMALL)
    assert len(a) == 160 and len(b) == 64 and not set(a) & set(b)
    a2, _ = training_subsets(1000, SMALL)
    assert np.array_equal(a, a2)
    other, _ = training_subsets(1000, SecondStageConfig(n_fit=160, n_select=64, seed=1))
    assert not np.array_equal(a, other)
    with pytest.raises(ValueError, match="n_fit \\+ n_select"):
        training_subsets(100, SMALL)


# ------------------------------------------------------------------ fit, storage, scores
def test_fit_is_reproducible_under_its_seed(trained, train_images):
    model = load_model(trained).model
    one = fit_second_stage(model, train_images, SMALL)
    two = fit_second_stage(model, train_images, SMALL)
    assert np.array_equal(one.mixture.covariances, two.mixture.covariances)
    assert np.array_equal(one.feature_mean, two.feature_mean)
    assert one.record == two.record
    assert one.fit_features.shape == (160, 6) and one.select_features.shape == (64, 6)
    assert np.allclose(one.fit_features.mean(0), one.feature_mean)  # standardised on the fit set
    other = fit_second_stage(model, train_images, SecondStageConfig(160, 64, (1, 2), seed=3))
    assert other.record["fit_indices_sha256"] != one.record["fit_indices_sha256"]
    assert not np.array_equal(other.feature_mean, one.feature_mean)


class _Poison:
    """Labels that fail the test the moment anything reads them."""

    def __getattr__(self, name):
        raise AssertionError(f"the second stage read labels ({name})")

    def __len__(self):
        raise AssertionError("the second stage read labels (len)")

    def __getitem__(self, i):
        raise AssertionError("the second stage read labels (getitem)")

    def __array__(self, *a, **k):
        raise AssertionError("the second stage read labels (array)")


def test_the_fit_reads_only_the_models_training_split_and_no_labels(
    trained, datasets, monkeypatch, capsys
):
    import hvaelab.cli as cli

    real = cli.load_dataset
    calls = []

    def spy(name, split="test", **kw):
        calls.append((name, split))
        ds = real(name, split, **kw)
        ds.labels = _Poison()
        return ds

    monkeypatch.setattr(cli, "load_dataset", spy)
    args = ["second-stage", "--checkpoint", str(trained), "--n-fit", "160", "--n-select", "64"]
    assert cli.main([*args, "--components", "1", "2"]) == 0
    assert calls == [(datasets.fashionmnist, "train")]  # no test split, no OOD set
    stage = SecondStage.load(Artifacts.of(trained).second_stage)
    rec = stage.record
    assert rec["train_dataset"] == datasets.fashionmnist and rec["train_split"] == "train"
    assert rec["train_images_md5"] == real(datasets.fashionmnist, "train").md5
    assert "chosen: " in capsys.readouterr().out


def test_a_fitted_stage_is_a_score_everywhere(trained, datasets, train_images):
    lm = load_model(trained)
    stage = fit_second_stage(lm.model, train_images, SMALL)
    stage.record["weights_sha256"] = lm.card["weights_sha256"]
    stage.save(Artifacts.of(trained).second_stage)
    lm = load_model(trained)
    assert isinstance(lm.model.second_stage, SecondStage)
    test = load_dataset(datasets.fashionmnist, "test").images[:96]
    ref = score_tensor(lm.model, test[:64])
    assert np.allclose(ref.columns["second-stage"], stage.score(ref.columns))
    assert "second-stage" in ood_scores(ref)
    # its direction: noise is far more unusual than held-out in-distribution images
    noise = load_dataset("noise-bernoulli").images[:32]
    res = score_inputs(lm.model, np.concatenate([test[64:], noise]), ref)
    s = res.scores["second-stage"]
    assert np.median(s[32:]) > np.max(ref.columns["second-stage"])
    p = res.p_values["second-stage"]
    assert np.median(p[32:]) == 1 / 65  # most noise images lie beyond the whole reference
    assert np.median(p[:32]) > 0.1  # held-out in-distribution images do not
    det = HVAEDetector(lm, score="second-stage").fit(test[:64])
    assert np.allclose(det.predict(test[64:]).numpy(), s[:32])
    # a fit for other weights is ignored, with a warning that says how to refit
    card = json.loads(Artifacts.of(trained).card.read_text())
    stage.record["weights_sha256"] = "0" * 64
    stage.save(Artifacts.of(trained).second_stage)
    with pytest.warns(UserWarning, match="refit it"):
        assert load_model(trained).model.second_stage is None
    assert card["weights_sha256"] != "0" * 64
    with pytest.warns(UserWarning), pytest.raises(ValueError, match="no second stage"):
        HVAEDetector(load_model(trained).model, score="second-stage")


def test_storage_round_trips_without_pickle_and_rejects_foreign_files(tmp_path, trained):
    rng = np.random.default_rng(0)
    stage = fit_features(rng.normal(size=(300, 4)), rng.normal(size=(50, 4)), SMALL, 2)
    stage.fit_features = rng.normal(size=(300, 4))
    path = stage.save(tmp_path / "m.second-stage.safetensors")
    back = SecondStage.load(path)
    assert back.fit_features is None and back.select_features is None  # the fit only
    assert path.stat().st_size < 300 * 4 * 8  # smaller than the features it was fitted on
    cols = {n: rng.uniform(1, 5, 7) * (-1 if n.startswith("rec") else 1) for n in stat_names(2)}
    assert np.array_equal(back.score(cols), stage.score(cols))
    assert back.config == stage.config and back.record == stage.record
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(ValueError, match="not a readable hvaelab second stage file"):
        SecondStage.load(path)
    with pytest.raises(ValueError, match="not a readable hvaelab second stage file"):
        SecondStage.load(Artifacts.of(trained).weights)  # the weights are not a second stage
    with pytest.raises(FileNotFoundError, match="hvaelab second-stage"):
        SecondStage.load(tmp_path / "missing.second-stage.safetensors")


def test_fit_second_stage_selects_the_count_on_the_held_out_training_images(train_images):
    """Catches `fit_second_stage` choosing the component count on the images it was fitted on
    (the fit subset passed, or computed, as the selection set) instead of the disjoint held-out
    subset of the training split: the record's held-out log-likelihoods must be those of the
    features of ``train_images[select indices]``, computed here independently."""
    torch.manual_seed(0)
    model = HVAE(get_preset("hvae-tiny")).eval()  # untrained is enough: any fixed statistics
    cfg = SecondStageConfig(n_fit=160, n_select=64, components=(1, 2), seed=0)
    stage = fit_second_stage(model, train_images, cfg)
    fit_idx, sel_idx = training_subsets(len(train_images), cfg)
    assert not set(fit_idx) & set(sel_idx)

    def feats(idx):
        cols = score_tensor(model, train_images[idx], lt=False, bounds=False).columns
        return features(cols, model.n_layers)

    f_fit, f_sel = feats(fit_idx), feats(sel_idx)
    np.testing.assert_allclose(stage.fit_features, f_fit, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(stage.select_features, f_sel, rtol=1e-6, atol=1e-9)
    # each candidate's held-out score is the one of the held-out subset, refitted here
    for cand in stage.record["selection"]:
        mix, _ = fit_mixture(
            (f_fit - stage.feature_mean) / stage.feature_std,
            cand["components"], cfg.reg_covar, cfg.max_iter, cfg.tol, cfg.seed,
        )  # fmt: skip
        held = mix.log_density((f_sel - stage.feature_mean) / stage.feature_std).mean()
        assert cand["heldout_loglik"] == pytest.approx(float(held), rel=1e-6, abs=1e-9)
        assert abs(cand["heldout_loglik"] - cand["fit_loglik"]) > 1e-6
    assert stage.record["select_indices_sha256"] != stage.record["fit_indices_sha256"]

"""The teaching page's mathematics: the 2-D toy (hvaelab.toy) and appendix C's volume change
(hvaelab.volume_change), each against an independent computation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate, stats

from hvaelab import toy, volume_change
from hvaelab.metrics import auroc

# ---------------------------------------------------------------- the toy


def test_toy_density_is_normalised_and_matches_scipy():
    cfg = toy.ToyConfig(slope=0.5, sigma0=0.5, n_detail=1)

    def p(t, s):
        return math.exp(toy.terms(cfg, toy.ToySet(np.array([s]), np.array([[t]]))).log_density[0])

    # the detail's spread at s in [-6, 6] is at most 0.5 e^3 ~ 10: integrate t over +-12 sigma(s)
    total, _ = integrate.dblquad(
        p, -6, 6, lambda s: -12 * 0.5 * math.exp(0.5 * s), lambda s: 12 * 0.5 * math.exp(0.5 * s)
    )
    assert total == pytest.approx(1.0, abs=1e-6)

    cfg3 = toy.ToyConfig(slope=-0.7, sigma0=1.3, n_detail=3)
    pts = toy.sample(cfg3, 50, seed=4)
    parts = toy.terms(cfg3, pts)
    sig = 1.3 * np.exp(-0.7 * pts.s)
    expect_detail = stats.norm.logpdf(pts.t, scale=sig[:, None]).sum(1)
    np.testing.assert_allclose(parts.semantic, stats.norm.logpdf(pts.s), rtol=1e-12)
    np.testing.assert_allclose(parts.detail, expect_detail, rtol=1e-12)
    np.testing.assert_allclose(parts.log_density, parts.semantic + parts.detail)


def test_toy_samples_follow_the_density_and_are_seeded():
    cfg = toy.ToyConfig(slope=0.5, n_detail=2)
    a, b = toy.sample(cfg, 20_000, seed=1), toy.sample(cfg, 20_000, seed=1)
    np.testing.assert_array_equal(a.s, b.s)
    np.testing.assert_array_equal(a.t, b.t)
    assert not np.array_equal(a.s, toy.sample(cfg, 20_000, seed=2).s)
    assert a.s.mean() == pytest.approx(0.0, abs=0.03) and a.s.std() == pytest.approx(1.0, abs=0.02)
    # standardised details are N(0, 1) whatever s is
    u = a.t / toy.detail_std(cfg, a.s)[:, None]
    assert u.std() == pytest.approx(1.0, abs=0.02) and abs(u.mean()) < 0.02
    ood = toy.sample(cfg, 20_000, ood=True, seed=1)
    assert ood.s.mean() == pytest.approx(cfg.ood_mean, abs=0.01)
    assert ood.s.std() == pytest.approx(cfg.ood_std, abs=0.01)


def test_toy_grid_equals_pointwise_terms():
    cfg = toy.ToyConfig(slope=0.8, n_detail=5)  # the grid draws one detail coordinate
    s, t = np.linspace(-3, 3, 7), np.linspace(-2, 2, 5)
    grid = toy.log_density_grid(cfg, s, t)
    assert grid.shape == (5, 7)
    expect = stats.norm.logpdf(s)[None, :] + stats.norm.logpdf(
        t[:, None], scale=0.5 * np.exp(0.8 * s)[None, :]
    )
    np.testing.assert_allclose(grid, expect, rtol=1e-12)


def test_toy_likelihood_fails_as_details_multiply_but_the_semantic_level_does_not():
    """The lesson's claim, measured: with one detail coordinate the exact likelihood flags the
    OOD set; with many it prefers it (AUROC far below 0.5), falling as D grows; the semantic
    term alone separates the sets at every D."""
    aurocs = []
    for d in (1, 2, 4, 8, 16):
        cfg = toy.ToyConfig(slope=0.5, n_detail=d)
        s_in = toy.scores(cfg, toy.sample(cfg, 2000, seed=0))
        s_ood = toy.scores(cfg, toy.sample(cfg, 2000, ood=True, seed=0))
        aurocs.append(auroc(s_in["-log p"], s_ood["-log p"]))
        assert auroc(s_in["-log p(s)"], s_ood["-log p(s)"]) > 0.98
    assert aurocs[0] > 0.9
    assert aurocs[-1] < 0.05
    assert all(a > b for a, b in zip(aurocs, aurocs[1:], strict=False))


@pytest.mark.parametrize(
    "kwargs", [{"n_detail": 0}, {"sigma0": 0.0}, {"ood_std": -1.0}, {"slope": math.nan}]
)
def test_toy_rejects_bad_configs(kwargs):
    with pytest.raises(ValueError):
        toy.ToyConfig(**kwargs)


def test_toy_rejects_mismatched_points():
    cfg = toy.ToyConfig(n_detail=2)
    with pytest.raises(ValueError, match="shape"):
        toy.terms(cfg, toy.ToySet(np.zeros(3), np.zeros((3, 1))))


# ---------------------------------------------------------------- appendix C


def test_expected_log_det_matches_monte_carlo_and_grows_with_dimension():
    for n, d, sigma in [(20, 5, 1.0), (50, 50, 0.7), (30, 1, 2.0)]:
        rng = np.random.default_rng(n + d)
        draws = []
        for _ in range(4000):
            j = sigma * rng.standard_normal((n, d))
            draws.append(np.linalg.slogdet(j.T @ j)[1])
        draws = np.asarray(draws)
        mc_err = 4 * draws.std() / math.sqrt(len(draws))
        assert volume_change.expected_log_det(d, n, sigma) == pytest.approx(
            draws.mean(), abs=mc_err
        )
    # d = 1: J^T J = sigma^2 chi^2_n, E log = log(2 sigma^2) + psi(n/2)
    from scipy.special import digamma

    assert volume_change.expected_log_det(1, 9, 1.5) == pytest.approx(
        math.log(2 * 1.5**2) + digamma(4.5)
    )


def test_layer_terms_are_dominated_by_the_lowest_layer():
    dims = (784, 196, 49, 8)
    terms = volume_change.layer_terms(dims, sigma=1.0)
    assert terms.shape == (3,)
    magnitudes = np.abs(terms)
    assert magnitudes[0] > magnitudes[1] > magnitudes[2]
    assert magnitudes[0] > 0.75 * magnitudes.sum()
    sampled = volume_change.sampled_layer_terms(dims, sigma=1.0, draws=4, seed=0)
    assert sampled.shape == (4, 3)
    np.testing.assert_allclose(sampled.mean(0), terms, rtol=0.02)


@pytest.mark.parametrize("dims", [(784,), (10, 20), (10, 0)])
def test_layer_terms_reject_non_bottlenecks(dims):
    with pytest.raises(ValueError):
        volume_change.layer_terms(dims)

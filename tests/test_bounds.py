"""The bounds of sec. 4 and appendices D, E against a model with a closed-form log p(x).

:class:`LinearGaussianHVAE` runs the real :meth:`HVAE.forward` with linear-Gaussian hooks, so the
Monte Carlo averages of :func:`bound_samples` can be compared with the exact log p(x) and with
the exact expectation of every single-sample bound. The identities that hold for any model
(L>0 = ELBO, L<(L+1) = ELBO, batch / chunk invariance) are also checked on the conv HVAE.
Everything is float64 and seeded, so the results are deterministic.
"""

from __future__ import annotations

import math

import pytest
import torch

from hvaelab.bounds import bound_samples, log_mean_exp
from hvaelab.config import get_preset
from hvaelab.model import HVAE
from hvaelab.model.linear_gaussian import LinearGaussianHVAE
from hvaelab.noise import example_keys, keyed_noise

N_SAMPLES = 4000  # Monte Carlo samples per example for the averages below
Z_MAX = 4.0  # tolerance in Monte Carlo standard errors


def _data(model: LinearGaussianHVAE, n: int = 3, seed: int = 1) -> torch.Tensor:
    """Examples drawn from the model itself."""
    x = model.sample(n, generator=torch.Generator().manual_seed(seed), mode="sample")
    return model.prepare(x)


def _z(values: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """(B,) z-scores of the per-example MC mean of values (B, S) against target (B,).

    The standard error is floored at 1e-9 for estimators without variance (prior means).
    """
    se = values.std(1) / math.sqrt(values.shape[1]) + 1e-9
    return (values.mean(1) - target) / se


def _iw_groups(values: torch.Tensor, s: int) -> torch.Tensor:
    """(B, S // s) importance-weighted bounds (eq. 9) from disjoint groups of s samples."""
    b, n = values.shape
    return log_mean_exp(values[:, : n - n % s].reshape(b, n // s, s), dim=2)


@pytest.fixture(scope="module")
def linear():
    """The default linear model with ELBO-optimal q, 3 examples, and samples of every bound."""
    model = LinearGaussianHVAE(6, (4, 3, 2), seed=0)
    x = _data(model)
    L = model.n_layers
    with torch.no_grad():
        log_px = model.log_marginal(x)
        sampled = bound_samples(model, x, ls=range(1, L + 2), n_samples=N_SAMPLES, prior="sample")
        means = bound_samples(model, x, n_samples=N_SAMPLES // 2, prior="mean")
    return model, x, log_px, sampled, means


@pytest.fixture(scope="module")
def conv():
    """The real conv HVAE (hvae-tiny), data-dependent init on a random binary batch, float64."""
    torch.manual_seed(0)
    model = HVAE(get_preset("hvae-tiny")).double()
    x = model.prepare((torch.rand(6, *model.config.in_shape, dtype=torch.float64) > 0.5).double())
    model.initialize(x)
    model.eval()
    return model, x


def _plain_passes(model, x, seed, n):
    """x repeated n times and the keyed noise that bound_samples uses for its n samples."""
    keys = example_keys(x, seed)
    shapes = {i: model.shapes[i] for i in range(1, model.n_layers + 1)}
    eps = keyed_noise(keys, shapes, range(n), x.device, x.dtype)
    xr = x.repeat_interleave(n, 0)
    return xr, eps


# ----------------------------------------------------------------- the closed forms themselves
def test_log_marginal_matches_monte_carlo_over_the_prior():
    """log p(x) = log E_{p(z)}[p(x|z)] estimated with many prior samples (forward with k = L)."""
    model = LinearGaussianHVAE(3, (2, 1), seed=3)
    x = _data(model, n=2)
    with torch.no_grad():
        vals = bound_samples(model, x, ks=[model.n_layers], n_samples=20000, prior="sample")
        mc = vals.iw("gt", model.n_layers)
        exact = model.log_marginal(x)
    w = (vals.gt[model.n_layers] - mc[:, None]).exp()  # weights / their mean
    se = w.std(1) / math.sqrt(w.shape[1])  # delta method: SE of log(mean(w))
    assert (se < 0.05).all()
    assert ((mc - exact).abs() < Z_MAX * se).all()


def test_exact_posterior_makes_every_single_sample_elbo_equal_log_px():
    """axis_aligned: the optimal q is p(z|x), so log p(x,z) - log q(z|x) = log p(x) pointwise."""
    model = LinearGaussianHVAE(5, (4, 3, 2), seed=2, axis_aligned=True)
    x = _data(model)
    with torch.no_grad():
        vals = bound_samples(model, x, ls=[model.n_layers + 1], n_samples=50)
        log_px = model.log_marginal(x)
    for v in (vals.gt[0], vals.lt[model.n_layers + 1], vals.iw("gt", 0)[:, None]):
        torch.testing.assert_close(v, log_px[:, None].expand_as(v), atol=1e-9, rtol=0)
    # ... while L>k, which ignores q below z_{k+1}, is strictly looser
    for k in range(1, model.n_layers + 1):
        assert (vals.gt[k].mean(1) < log_px - 0.1).all()


def test_optimal_inference_is_a_stationary_point_of_the_exact_elbo():
    model = LinearGaussianHVAE(6, (4, 3, 2), seed=0)
    x = _data(model)
    q_params = [*model.Bq, *model.cq, *model.log_e]
    grads = torch.autograd.grad(model.expected_bound(x).sum(), q_params)
    assert max(g.abs().max().item() for g in grads) < 1e-8
    random = LinearGaussianHVAE(6, (4, 3, 2), seed=0, inference="random")
    grads = torch.autograd.grad(random.expected_bound(x).sum(), [*random.Bq, *random.cq])
    assert max(g.abs().max().item() for g in grads) > 1e-2
    # the optimum is the best ELBO, and the ELBO is a lower bound
    with torch.no_grad():
        best, worse, log_px = (
            model.expected_bound(x),
            random.expected_bound(x),
            model.log_marginal(x),
        )
    assert (worse < best).all() and (best < log_px).all() and (log_px - best < 5).all()


# ------------------------------------------------------------------------- L>0 = ELBO, L<(L+1)
@pytest.mark.parametrize("which", ["linear", "conv"])
def test_llr0_is_exactly_zero_with_common_random_numbers(which, linear, conv):
    """bound_samples' L>0 equals a plain ELBO pass (no cache) with the same keyed noise."""
    model, x = (linear[0], linear[1]) if which == "linear" else conv
    seed, n = 7, 5
    with torch.no_grad():
        vals = bound_samples(model, x, n_samples=n, seed=seed)
        xr, eps = _plain_passes(model, x, seed, n)
        elbo = model(xr, k=0, eps=eps).bound.view(x.shape[0], n)
    llr0 = elbo - vals.gt[0]
    assert llr0.abs().max().item() <= 1e-9 * elbo.abs().max().item()
    assert torch.isfinite(vals.gt[0]).all() and vals.gt[0].std() > 0  # really stochastic


@pytest.mark.parametrize("which", ["linear", "conv"])
def test_l_less_than_top_plus_one_is_the_elbo(which, linear, conv):
    model, x = (linear[0], linear[1]) if which == "linear" else conv
    L = model.n_layers
    with torch.no_grad():
        vals = bound_samples(model, x, ks=[0], ls=range(1, L + 2), n_samples=3, seed=1)
    assert torch.equal(vals.lt[L + 1], vals.gt[0])
    for l_ in range(1, L + 1):  # the other L<l really are different bounds
        assert not torch.allclose(vals.lt[l_], vals.gt[0])


# ---------------------------------------------------------------------- importance weighting
def test_importance_weighted_elbo_approaches_log_px():
    """Eq. (9): the IW bound increases with S and reaches log p(x) (over-dispersed q, so that
    the importance weights are light-tailed and the convergence is visible at S = 1000)."""
    model = LinearGaussianHVAE(6, (4, 3, 2), seed=1)
    model.set_optimal_inference(var_scale=2.0)
    x = _data(model)
    n = 10000
    with torch.no_grad():
        vals = bound_samples(model, x, ks=[0], n_samples=n, seed=3).gt[0]
        log_px = model.log_marginal(x)
    gaps, ses = [], []
    for s in (1, 10, 100, 1000):
        g = _iw_groups(vals, s)
        gaps.append(log_px - g.mean(1))
        ses.append(g.std(1) / math.sqrt(g.shape[1]))
    # increasing in S on average (gaps decrease), up to Monte Carlo error
    for j in range(3):
        assert (gaps[j + 1] < gaps[j] + Z_MAX * (ses[j] ** 2 + ses[j + 1] ** 2).sqrt()).all()
    assert (gaps[0] > 1.0).all() and (gaps[1] < 0.5 * gaps[0]).all()
    # at S = 1000: much smaller than at S = 1 and within Monte Carlo error of log p(x)
    assert (gaps[3].abs() < 0.05 * gaps[0]).all()
    assert (gaps[3].abs() < Z_MAX * ses[3] + 1e-3).all()


# ---------------------------------------------------------------------------- lower bounds
def test_every_sampled_l_gt_k_is_a_lower_bound(linear):
    """E[L>k] <= log p(x) for every k in 0..L (eq. 5 with sampled prior latents, appendix D),
    the single-sample averages and the importance-weighted (S = 10) versions."""
    model, x, log_px, sampled, _ = linear
    for k in range(model.n_layers + 1):
        assert (_z(sampled.gt[k], log_px) < Z_MAX).all(), k
        assert (_z(_iw_groups(sampled.gt[k], 10), log_px) < Z_MAX).all(), k
        with torch.no_grad():
            assert (model.expected_bound(x, k=k) <= log_px).all(), k


def test_every_l_lt_l_is_a_lower_bound(linear):
    """E[L<l] <= log p(x) for every l in 1..L+1 (appendix E, eq. 20 corrected)."""
    model, x, log_px, sampled, _ = linear
    for l_ in range(1, model.n_layers + 2):
        assert (_z(sampled.lt[l_], log_px) < Z_MAX).all(), l_
        assert (_z(_iw_groups(sampled.lt[l_], 10), log_px) < Z_MAX).all(), l_
        with torch.no_grad():
            assert (model.expected_bound(x, l=l_) <= log_px).all(), l_


# ----------------------------------------------------------- exact expectations of each bound
@pytest.mark.parametrize("prior", ["sample", "mean"])
def test_monte_carlo_l_gt_k_matches_its_closed_form_expectation(linear, prior):
    """The MC average of every L>k equals its exact expectation: the right latents come from the
    right distributions and the KL terms are those of the k-pass (mean path below z_{k+1})."""
    model, x, _, sampled, means = linear
    vals = sampled if prior == "sample" else means
    for k in range(model.n_layers + 1):
        with torch.no_grad():
            exact = model.expected_bound(x, k=k, prior=prior)
        assert (_z(vals.gt[k], exact).abs() < Z_MAX).all(), k


def test_monte_carlo_l_lt_l_matches_its_closed_form_expectation(linear):
    model, x, _, sampled, _ = linear
    for l_ in range(1, model.n_layers + 2):
        with torch.no_grad():
            exact = model.expected_bound(x, l=l_)
        assert (_z(sampled.lt[l_], exact).abs() < Z_MAX).all(), l_


def test_l_gt_k_takes_its_kl_terms_from_its_own_pass():
    """L>k is the k-pass's log p(x|z) minus the k-pass's KL of layers > k (with z_{k+1} from
    q(.|d_k(x)), appendix D). A wrong L>k that subtracts the ELBO pass's KL of layers > k is
    caught both sample by sample and by the closed-form expectation (random q, where the two
    expectations differ clearly)."""
    model = LinearGaussianHVAE(6, (4, 3, 2), seed=1, inference="random")
    x = _data(model)
    L, n, seed = model.n_layers, N_SAMPLES, 11
    with torch.no_grad():
        vals = bound_samples(model, x, ks=range(1, L), n_samples=n, prior="sample", seed=seed)
        xr, eps = _plain_passes(model, x, seed, n)
        elbo = model(xr, k=0, eps=eps)
        for k in range(1, L):
            kpass = model(xr, k=k, prior="sample", eps=eps)
            own = kpass.log_px - sum(layer.kl for layer in kpass.layers if layer.index > k)
            wrong = kpass.log_px - sum(layer.kl for layer in elbo.layers if layer.index > k)
            own, wrong = own.view(-1, n), wrong.view(-1, n)
            torch.testing.assert_close(vals.gt[k], own, atol=1e-9, rtol=0)
            assert (vals.gt[k] - wrong).abs().mean() > 0.1
            exact = model.expected_bound(x, k=k)
            assert (_z(own, exact).abs() < Z_MAX).all(), k
            assert (_z(wrong, exact).abs() > 2 * Z_MAX).any(), k


# --------------------------------------------------------------- reproducibility & invariance
@pytest.mark.parametrize("which", ["linear", "conv"])
def test_batch_composition_invariance_and_seeds(which, linear, conv):
    model, x = (linear[0], linear[1]) if which == "linear" else conv
    L, n = model.n_layers, 4
    kw = dict(ls=[1, L + 1], n_samples=n, prior="sample")
    with torch.no_grad():
        full = bound_samples(model, x, seed=5, **kw)
        perm = torch.randperm(x.shape[0], generator=torch.Generator().manual_seed(0))
        shuffled = bound_samples(model, x[perm], seed=5, **kw)
        alone = bound_samples(model, x[1:2], seed=5, **kw)
        again = bound_samples(model, x, seed=5, **kw)
        other = bound_samples(model, x, seed=6, **kw)
    inv = torch.argsort(perm)
    for which_, idx in [("gt", k) for k in range(L + 1)] + [("lt", 1), ("lt", L + 1)]:
        ref = getattr(full, which_)[idx]
        torch.testing.assert_close(getattr(shuffled, which_)[idx][inv], ref, atol=1e-10, rtol=0)
        torch.testing.assert_close(getattr(alone, which_)[idx], ref[1:2], atol=1e-10, rtol=0)
        assert torch.equal(getattr(again, which_)[idx], ref)
        assert (getattr(other, which_)[idx] - ref).abs().min() > 0


def test_chunking_invariance(linear):
    model, x, *_ = linear
    kw = dict(ls=[2], n_samples=10, prior="sample", seed=2)
    with torch.no_grad():
        small = bound_samples(model, x, max_rows=7, **kw)  # chunks of 2 samples, one of 1 ...
        large = bound_samples(model, x, max_rows=10_000, **kw)  # one chunk
    for k in large.gt:
        torch.testing.assert_close(small.gt[k], large.gt[k], atol=1e-10, rtol=0)
    torch.testing.assert_close(small.lt[2], large.lt[2], atol=1e-10, rtol=0)


def test_prior_mean_and_sample_agree_only_for_k0(linear):
    model, x, *_ = linear
    with torch.no_grad():
        mean = bound_samples(model, x, n_samples=4, prior="mean", seed=3)
        sample = bound_samples(model, x, n_samples=4, prior="sample", seed=3)
    assert torch.equal(mean.gt[0], sample.gt[0])
    for k in range(1, model.n_layers + 1):
        assert (mean.gt[k] - sample.gt[k]).abs().min() > 0, k


def test_bad_input_is_rejected_clearly():
    model = LinearGaussianHVAE(6, (4, 3, 2), seed=0)
    with pytest.raises(ValueError, match=r"shape \(N, 6\)"):
        model(torch.zeros(2, 5, dtype=torch.float64))
    with pytest.raises(TypeError, match="model.prepare"):
        model.log_marginal(torch.zeros(2, 6))
    x = model.prepare(torch.zeros(2, 6))
    with pytest.raises(ValueError, match="k must be in 0..3"):
        model.expected_bound(x, k=4)
    with pytest.raises(ValueError, match="l must be in 1..4"):
        model.expected_bound(x, l=0)
    with pytest.raises(ValueError, match="inference"):
        LinearGaussianHVAE(6, (4,), inference="exact")
    with pytest.raises(ValueError, match="latent dimension"):
        LinearGaussianHVAE(6, ())
    with pytest.raises(ValueError, match="var_scale"):
        model.set_optimal_inference(var_scale=0.0)

"""Tests for hvaelab.model.likelihoods (Bernoulli and discretized mixture of logistics)."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from hvaelab.model import likelihoods
from hvaelab.model.likelihoods import (
    BernoulliLikelihood,
    DiscretizedLogisticMixture,
    bernoulli_log_prob,
    make_likelihood,
)


def _grid(n_bits: int = 8, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    levels = 2**n_bits - 1
    return torch.arange(levels + 1, dtype=dtype) / levels * 2.0 - 1.0


def _all_values(channels: int, n_bits: int = 8, dtype=torch.float32) -> torch.Tensor:
    """Every grid image of a 1x1 pixel with `channels` channels: (levels**C, C, 1, 1)."""
    g = _grid(n_bits, dtype)
    mesh = torch.meshgrid(*([g] * channels), indexing="ij")
    return torch.stack([m.reshape(-1) for m in mesh], dim=1).view(-1, channels, 1, 1)


def _random_params(lik, channels: int, seed: int, dtype=torch.float32) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    p = torch.randn(1, lik.num_params(channels), 1, 1, generator=gen, dtype=dtype)
    m = lik.n_mixtures
    p[:, m : m + channels * m] *= 0.6  # means mostly inside [-1, 1]
    p[:, m + channels * m : m + 2 * channels * m] -= 2.0  # log-scales around -2 (peaked-ish)
    return p


# --------------------------------------------------------------------------- Bernoulli


def test_bernoulli_log_prob_matches_hand_computation():
    lik = BernoulliLikelihood()
    logits = torch.tensor([[[[2.0, -1.0]]], [[[0.5, 3.0]]]])  # (2, 1, 1, 2)
    x = torch.tensor([[[[1.0, 0.0]]], [[[0.0, 0.0]]]])

    def sig(v: float) -> float:
        return 1.0 / (1.0 + math.exp(-v))

    expected = [
        math.log(sig(2.0)) + math.log(1 - sig(-1.0)),
        math.log(1 - sig(0.5)) + math.log(1 - sig(3.0)),
    ]
    out = lik.log_prob(logits, x)
    assert out.shape == (2,)
    torch.testing.assert_close(out, torch.tensor(expected), atol=1e-6, rtol=1e-6)


def test_bernoulli_log_prob_is_the_old_value_and_finite_for_huge_logits():
    gen = torch.Generator().manual_seed(0)
    z = torch.randn(64, 1, 28, 28, generator=gen) * 4
    x = (torch.rand(z.shape, generator=gen) < 0.5).float()
    old = -torch.nn.functional.binary_cross_entropy_with_logits(z, x, reduction="none")
    lik = BernoulliLikelihood()
    torch.testing.assert_close(lik.log_prob(z, x), old.flatten(1).sum(1), rtol=2e-6, atol=0)
    torch.testing.assert_close(bernoulli_log_prob(z, x), lik.log_prob(z, x), rtol=0, atol=0)
    big = torch.tensor([-1e4, -100.0, -30.0, 30.0, 100.0, 1e4]).view(1, 1, 1, 6).repeat(2, 1, 1, 1)
    xs = torch.stack([torch.zeros(1, 1, 6), torch.ones(1, 1, 6)])
    got = lik.log_prob(big, xs)
    assert torch.isfinite(got).all()
    # exact: log p(0 | z) = -softplus(z), log p(1 | z) = -softplus(-z)
    want = torch.tensor([-(1e4 + 100 + 30.0), -(1e4 + 100 + 30.0)])
    torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-3)
    naive = xs * torch.log(torch.sigmoid(big)) + (1 - xs) * torch.log(1 - torch.sigmoid(big))
    assert not torch.isfinite(naive.flatten(1).sum(1)).all()  # what the stable form avoids


def test_bernoulli_mean_sample_and_normalisation():
    lik = BernoulliLikelihood()
    gen = torch.Generator().manual_seed(0)
    logits = 4 * torch.randn(3, 2, 5, 5, generator=gen)
    mean = lik.mean(logits)
    assert mean.shape == logits.shape and mean.min() >= 0 and mean.max() <= 1
    s = lik.sample(logits, generator=gen)
    assert s.shape == logits.shape
    assert set(s.unique().tolist()) <= {0.0, 1.0}
    # probabilities of the two outcomes of one pixel sum to one
    one = torch.tensor([0.7, -2.3, 15.0]).view(3, 1, 1, 1)
    p0 = lik.log_prob(one, torch.zeros_like(one)).exp()
    p1 = lik.log_prob(one, torch.ones_like(one)).exp()
    torch.testing.assert_close(p0 + p1, torch.ones(3))
    assert lik.num_params(1) == 1 and lik.num_params(3) == 3
    assert torch.equal(lik.to_model_space(mean), mean)


def test_bernoulli_sample_frequency_matches_sigmoid():
    lik = BernoulliLikelihood()
    logits = torch.full((4000, 1, 1, 1), 1.0)
    s = lik.sample(logits, generator=torch.Generator().manual_seed(1))
    assert abs(s.mean().item() - torch.sigmoid(torch.tensor(1.0)).item()) < 0.03


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_bernoulli_gradients_and_dtype(dtype):
    lik = BernoulliLikelihood()
    logits = torch.randn(2, 1, 3, 3, dtype=dtype, requires_grad=True)
    x = (torch.rand(2, 1, 3, 3) > 0.5).to(dtype)
    out = lik.log_prob(logits, x)
    assert out.dtype == dtype
    out.sum().backward()
    assert logits.grad is not None and torch.isfinite(logits.grad).all()
    assert logits.grad.abs().sum() > 0


def test_bernoulli_rejects_bad_input():
    lik = BernoulliLikelihood()
    with pytest.raises(ValueError, match="shape"):
        lik.log_prob(torch.zeros(2, 2, 3, 3), torch.zeros(2, 1, 3, 3))
    with pytest.raises(ValueError, match="Binarize"):
        lik.log_prob(torch.zeros(1, 1, 2, 2), torch.full((1, 1, 2, 2), 255.0))


# --------------------------------------------------------------------------- DMoL basics


def test_dmol_num_params():
    lik = DiscretizedLogisticMixture()
    assert (lik.n_mixtures, lik.n_bits) == (10, 8)
    assert lik.num_params(3) == 100  # PixelCNN++: 10 * (1 + 3 + 3 + 3)
    assert lik.num_params(1) == 30
    assert DiscretizedLogisticMixture(4).num_params(2) == 4 * 6
    assert DiscretizedLogisticMixture(2).num_params(4) == 2 * (1 + 8 + 6)
    with pytest.raises(ValueError):
        lik.num_params(0)


def _naive_log_prob(params: torch.Tensor, x: torch.Tensor, m: int) -> float:
    """Independent float64 reference for a single 1x1 pixel, following the documented layout."""
    p = params.double().view(-1).tolist()
    xs = x.double().view(-1).tolist()
    c_n = len(xs)
    means = [[p[m + c * m + k] for k in range(m)] for c in range(c_n)]
    logs = [[max(p[m + c_n * m + c * m + k], -7.0) for k in range(m)] for c in range(c_n)]
    pairs = [(c, j) for c in range(c_n) for j in range(c)]
    coef = {
        pair: [math.tanh(p[m + 2 * c_n * m + i * m + k]) for k in range(m)]
        for i, pair in enumerate(pairs)
    }
    half = 1 / 255

    def cdf(v: float) -> float:
        return 1.0 / (1.0 + math.exp(-v))

    logits = p[:m]
    lse = math.log(sum(math.exp(v) for v in logits))
    total = 0.0
    for k in range(m):
        prob = math.exp(logits[k] - lse)
        for c in range(c_n):
            mu = means[c][k] + sum(coef[(c, j)][k] * xs[j] for j in range(c))
            s = math.exp(logs[c][k])
            hi = 1.0 if xs[c] > 1 - half else cdf((xs[c] + half - mu) / s)
            lo = 0.0 if xs[c] < -1 + half else cdf((xs[c] - half - mu) / s)
            prob *= hi - lo
        total += prob
    return math.log(total)


@pytest.mark.parametrize("channels", [1, 2, 3])
def test_dmol_matches_naive_reference(channels):
    lik = DiscretizedLogisticMixture(n_mixtures=3)
    gen = torch.Generator().manual_seed(10 + channels)
    for trial in range(4):
        params = _random_params(lik, channels, seed=100 * channels + trial)
        params[:, lik.n_mixtures + 2 * channels * lik.n_mixtures :] *= 2.0  # strong coefficients
        idx = torch.randint(0, 256, (1, channels, 1, 1), generator=gen)
        if trial == 0:
            idx[:, 0] = 0  # exercise the -1 edge
        if trial == 1:
            idx[:, -1] = 255  # and the +1 edge
        x = idx.float() / 255 * 2 - 1
        got = lik.log_prob(params.double(), x.double()).item()
        assert got == pytest.approx(_naive_log_prob(params, x, lik.n_mixtures), abs=1e-9)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_dmol_normalises_one_channel(dtype):
    lik = DiscretizedLogisticMixture(n_mixtures=5)
    x = _all_values(1, dtype=dtype)
    for seed in range(3):
        params = _random_params(lik, 1, seed, dtype).expand(x.shape[0], -1, -1, -1)
        total = lik.log_prob(params, x).exp().sum()
        assert total.item() == pytest.approx(1.0, abs=1e-4)


def test_dmol_normalises_two_channels():
    lik = DiscretizedLogisticMixture(n_mixtures=3)
    x = _all_values(2)  # 65536 value pairs
    params = _random_params(lik, 2, seed=7)
    params[:, 3 + 12 :] = 2.0  # tanh(2) ~ 0.96: strong dependence of channel 1 on channel 0
    total = lik.log_prob(params.expand(x.shape[0], -1, -1, -1), x).double().exp().sum()
    assert total.item() == pytest.approx(1.0, abs=1e-4)


def test_dmol_normalises_three_channels_coarse_grid():
    # The 256**3 joint is too large for a unit test; the normalisation argument does not depend
    # on the bit depth (only the bin width changes), so check the full joint on a 5-bit grid.
    lik = DiscretizedLogisticMixture(n_mixtures=4, n_bits=5)
    x = _all_values(3, n_bits=5)  # 32**3 = 32768 value triples
    params = _random_params(lik, 3, seed=3)
    total = lik.log_prob(params.expand(x.shape[0], -1, -1, -1), x).double().exp().sum()
    assert total.item() == pytest.approx(1.0, abs=1e-4)


def test_dmol_three_channel_marginal_of_first_channel():
    # 8-bit: summing the joint over (x1, x2) must give the first-channel marginal
    # sum_m pi_m p_m(x0), i.e. a 1-channel DMoL built from the channel-0 parameters.
    m = 3
    lik3 = DiscretizedLogisticMixture(n_mixtures=m)
    lik1 = DiscretizedLogisticMixture(n_mixtures=m)
    params = _random_params(lik3, 3, seed=11)
    rest = _all_values(2)  # (65536, 2, 1, 1)
    p1 = torch.cat([params[:, :m], params[:, m : 2 * m], params[:, 4 * m : 5 * m]], dim=1)
    for v in (0, 77, 200, 255):
        x0 = torch.full((rest.shape[0], 1, 1, 1), v / 255 * 2 - 1)
        x = torch.cat([x0, rest], dim=1)
        marg = lik3.log_prob(params.expand(x.shape[0], -1, -1, -1), x).double().exp().sum()
        ref = lik1.log_prob(p1, x0[:1]).double().exp()
        assert marg.item() == pytest.approx(ref.item(), abs=1e-5)


def test_dmol_peaked_component():
    lik = DiscretizedLogisticMixture(n_mixtures=3)
    v_idx = 140
    v = v_idx / 255 * 2 - 1
    params = torch.zeros(1, lik.num_params(1), 1, 1)
    params[0, :3, 0, 0] = torch.tensor([30.0, -30.0, -30.0])  # all weight on component 0
    params[0, 3, 0, 0] = v
    params[0, 4:6, 0, 0] = torch.tensor([0.5, -0.5])  # other components elsewhere
    params[0, 6:9, 0, 0] = -10.0  # clamped to -7: the sharpest allowed scale
    x = _all_values(1)
    lp = lik.log_prob(params.expand(256, -1, -1, -1), x)
    assert lp[v_idx].item() > -0.05
    # the scale is clamped at exp(-7): the bin mass is sigma(h/s) - sigma(-h/s), h = 1/255
    r = math.exp(7.0) / 255
    assert lp[v_idx].item() == pytest.approx(math.log(math.tanh(r / 2)), abs=1e-4)
    others = torch.cat([lp[:v_idx], lp[v_idx + 1 :]])
    assert others.max().item() < lp[v_idx].item() - 3.0
    far = torch.cat([lp[: v_idx - 5], lp[v_idx + 6 :]])
    assert far.max().item() < -40.0
    assert torch.isfinite(lp).all()
    # the mean in data space sits at the peak
    assert lik.mean(params).item() == pytest.approx((v + 1) / 2, abs=1e-4)


def test_dmol_autoregressive_coefficient_shifts_second_channel():
    # Peaked component with mean_1 = 0 + tanh(raw) * x0; with coefficient 0.5 and x0 = 0.6,
    # channel 1 should peak at 0.3.
    lik = DiscretizedLogisticMixture(n_mixtures=1)
    params = torch.zeros(1, lik.num_params(2), 1, 1)
    params[0, 1] = 0.6  # mean channel 0
    params[0, 2] = 0.0  # mean channel 1
    params[0, 3:5] = -7.0
    params[0, 5] = math.atanh(0.5)
    g = _grid()
    x0 = g[(g - 0.6).abs().argmin()]
    x = torch.stack([x0.expand(256), g], dim=1).view(256, 2, 1, 1)
    lp = lik.log_prob(params.expand(256, -1, -1, -1), x)
    best = g[lp.argmax()].item()
    assert best == pytest.approx(0.5 * x0.item(), abs=1.5 / 255)


def test_dmol_extreme_params_finite_values_and_gradients():
    lik = DiscretizedLogisticMixture(n_mixtures=2)
    c = 3
    params = torch.zeros(4, lik.num_params(c), 1, 1)
    params[:, :2, 0, 0] = torch.tensor([50.0, -50.0])
    params[0, 2 : 2 + 2 * c] = -1.0  # means at the lower edge
    params[1, 2 : 2 + 2 * c] = 1.0  # means at the upper edge
    params[2, 2 : 2 + 2 * c] = -30.0  # means far outside the data range
    params[3, 2 : 2 + 2 * c] = 30.0
    params[:, 2 + 2 * c : 2 + 4 * c] = -40.0  # tiny scales (clamped)
    params[:, 2 + 4 * c :] = 25.0  # saturated tanh coefficients
    x = torch.tensor([1.0, -1.0, 1.0, 0.0]).view(4, 1, 1, 1).expand(4, c, 1, 1).clone()
    x[:, 1] = torch.tensor([0.0, -1.0, 1.0, -1.0]).view(4, 1, 1)
    for dtype in (torch.float32, torch.float64):
        p = params.to(dtype).clone().requires_grad_(True)
        out = lik.log_prob(p, x.to(dtype))
        assert torch.isfinite(out).all()
        assert out.max().item() < -100  # every example is far from its mode
        out.sum().backward()
        assert torch.isfinite(p.grad).all()
        assert p.grad.abs().sum() > 0


def test_dmol_mid_bin_fallback_for_huge_scale():
    # exp(-log_scale) underflows in float32: the bin probability cannot be formed as a
    # difference of CDFs, so the mid-bin density times the bin width must be used.
    lik = DiscretizedLogisticMixture(n_mixtures=1)
    params = torch.tensor([0.0, 0.0, 200.0]).view(1, 3, 1, 1).requires_grad_(True)
    x = torch.full((1, 1, 1, 1), 10 / 255 * 2 - 1)
    out = lik.log_prob(params, x)
    expected = -200.0 - 2 * math.log(2.0) + math.log(2 / 255)
    assert out.item() == pytest.approx(expected, rel=1e-5)
    out.sum().backward()
    assert torch.isfinite(params.grad).all()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_dmol_gradients_flow(dtype):
    lik = DiscretizedLogisticMixture(n_mixtures=4)
    params = torch.randn(2, lik.num_params(3), 4, 4, dtype=dtype, requires_grad=True)
    x = lik.to_model_space(torch.rand(2, 3, 4, 4, dtype=dtype))
    out = lik.log_prob(params, x)
    assert out.shape == (2,) and out.dtype == dtype and torch.isfinite(out).all()
    out.sum().backward()
    g = params.grad
    assert torch.isfinite(g).all()
    # every parameter group (logits, means, log-scales, coefficients) receives gradient
    m = lik.n_mixtures
    for lo, hi in [(0, m), (m, 4 * m), (4 * m, 7 * m), (7 * m, 10 * m)]:
        assert g[:, lo:hi].abs().sum() > 0


def test_dmol_log_prob_sums_over_pixels():
    lik = DiscretizedLogisticMixture(n_mixtures=2)
    params = torch.randn(1, lik.num_params(3), 2, 3)
    x = lik.to_model_space(torch.rand(1, 3, 2, 3))
    total = lik.log_prob(params, x)
    per_pixel = sum(
        lik.log_prob(params[:, :, i : i + 1, j : j + 1], x[:, :, i : i + 1, j : j + 1])
        for i, j in itertools.product(range(2), range(3))
    )
    torch.testing.assert_close(total, per_pixel)


def test_dmol_to_model_space_and_mean_range():
    lik = DiscretizedLogisticMixture()
    x01 = torch.tensor([0.0, 1.0, 0.5, 0.25, 100 / 255]).view(1, 1, 1, 5)
    y = lik.to_model_space(x01)
    assert y[0, 0, 0, 0].item() == -1.0 and y[0, 0, 0, 1].item() == 1.0
    levels = (y + 1) / 2 * 255
    torch.testing.assert_close(levels, levels.round(), atol=1e-4, rtol=0)
    assert y[0, 0, 0, 4].item() == pytest.approx(100 / 255 * 2 - 1, abs=1e-6)
    params = 5 * torch.randn(3, lik.num_params(3), 4, 4)
    mean = lik.mean(params)
    assert mean.shape == (3, 3, 4, 4)
    assert mean.min() >= 0 and mean.max() <= 1
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        lik.to_model_space(torch.full((1, 1, 1, 1), 255.0))


def test_dmol_sample_on_grid_reproducible_and_distributed():
    lik = DiscretizedLogisticMixture(n_mixtures=3)
    params = _random_params(lik, 2, seed=5)
    params[:, 3 + 12 :] = 1.0
    s1 = lik.sample(params.expand(3, -1, 2, 2), generator=torch.Generator().manual_seed(0))
    s2 = lik.sample(params.expand(3, -1, 2, 2), generator=torch.Generator().manual_seed(0))
    assert s1.shape == (3, 2, 2, 2) and torch.equal(s1, s2)
    # many samples of one pixel: empirical channel means match the exact enumeration
    n = 20000
    s = lik.sample(params.expand(n, -1, -1, -1), generator=torch.Generator().manual_seed(1))
    assert s.min() >= -1 and s.max() <= 1
    levels = (s + 1) / 2 * 255
    torch.testing.assert_close(levels, levels.round(), atol=1e-3, rtol=0)
    x = _all_values(2)
    probs = lik.log_prob(params.expand(x.shape[0], -1, -1, -1), x).double().exp()
    exact = (probs.view(-1, 1) * x.view(-1, 2).double()).sum(0)
    torch.testing.assert_close(s.view(n, 2).double().mean(0), exact, atol=0.02, rtol=0)


def test_dmol_rejects_bad_input():
    lik = DiscretizedLogisticMixture(n_mixtures=2)
    x = torch.zeros(2, 3, 4, 4)
    with pytest.raises(ValueError, match="num_params"):
        lik.log_prob(torch.zeros(2, 7, 4, 4), x)
    with pytest.raises(ValueError, match="does not match"):
        lik.log_prob(torch.zeros(2, lik.num_params(3), 5, 4), x)
    with pytest.raises(ValueError, match="to_model_space"):
        lik.log_prob(torch.zeros(2, lik.num_params(3), 4, 4), x + 128.0)
    with pytest.raises(ValueError, match="num_params"):
        lik.mean(torch.zeros(1, 7, 2, 2))
    with pytest.raises(ValueError):
        DiscretizedLogisticMixture(n_mixtures=0)


def test_make_likelihood():
    assert isinstance(make_likelihood("bernoulli"), BernoulliLikelihood)
    d = make_likelihood("dmol", n_mixtures=5, n_bits=5)
    assert isinstance(d, DiscretizedLogisticMixture)
    assert (d.n_mixtures, d.n_bits) == (5, 5)
    with pytest.raises(ValueError, match="bernoulli"):
        make_likelihood("gaussian")
    with pytest.raises(ValueError, match="n_mixtures"):
        make_likelihood("dmol", n_mix=3)
    assert list(make_likelihood("dmol").parameters()) == []


def test_module_docstring_cites_sources():
    doc = likelihoods.__doc__
    assert "Salimans et al., 2017" in doc
    assert "Appendix B" in doc

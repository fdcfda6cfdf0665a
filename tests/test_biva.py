"""BIVA (issue 17): the HVAE's forward contract, L>k as in eq. 5 / appendix D, L<l (appendix E).

A small BIVA of the presets' structure (conv latents, then dense; two units per layer below the
top) checks the contract and the proposal's independence of the prior draws; a linear-Gaussian
model of BIVA's shape (:mod:`hvaelab.model.linear_biva`), which reuses ``BIVA.forward``, checks
that every sampled L>k and L<l is a lower bound on its exact log p(x).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from hvaelab.bounds import bound_samples
from hvaelab.checkpoint import load_model, save_checkpoint
from hvaelab.config import PRESETS, get_preset, preset_kind
from hvaelab.correlation import ArchitectureMismatchError, layer_correlations, layer_representations
from hvaelab.detector import HVAEDetector
from hvaelab.latents import latent_reconstructions, layer_kl
from hvaelab.model import BIVA, HVAE, build_model, model_kind
from hvaelab.model.biva import BIVACache
from hvaelab.model.linear_biva import LinearBIVA
from hvaelab.scores import score_tensor
from hvaelab.train import TrainConfig, Trainer

# Five layers: two conv latents at 14x14, three dense ones from 7x7 features.
SMALL = dict(
    channels=8,
    latents=(3, 2, 4, 3, 2),
    latent_kinds=("conv", "conv", "dense", "dense", "dense"),
    kernels=(3, 3, 3, 3, 3),
    strides=(2, 1, 2, 1, 1),
)
L = len(SMALL["latents"])


def _x(n: int = 6, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(n, 1, 28, 28, generator=g) > 0.6).float()


@pytest.fixture(scope="module")
def model() -> BIVA:
    torch.manual_seed(0)
    m = build_model("biva", get_preset("biva-tiny", **SMALL))
    m.initialize(_x(32, seed=1))
    return m.eval()


def _eps(m: BIVA, n: int, seed: int) -> dict[int, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {i: torch.randn(n, *m.shapes[i], generator=g) for i in range(1, m.n_layers + 1)}


# ------------------------------------------------------------------------------ presets
def test_presets_are_ten_layer_bivas_with_consistent_shapes():
    grey, natural = BIVA(get_preset("biva-grey")), BIVA(get_preset("biva-natural"))
    dense = [(2 * c,) for c in (42, 40, 38, 36, 34, 32)] + [(30,)]
    assert grey.shapes[1:] == [(20, 14, 14), (16, 14, 14), (12, 14, 14), *dense]
    assert natural.shapes[1:] == [(20, 16, 16), (16, 16, 16), (12, 16, 16), *dense]
    assert natural.config.resolutions()[-1] == 4  # overall stride 8 (appendix B.2)
    assert grey.config.resolutions()[-1] == 7  # 28 admits stride 4 only
    assert natural.likelihood.num_params(3) > 3 and grey.config.likelihood == "bernoulli"
    for name in PRESETS:
        assert preset_kind(name) == ("biva" if name.startswith("biva") else "hvae")
        assert model_kind(build_model(preset_kind(name), get_preset(name, channels=4))) == (
            preset_kind(name)
        )
    with pytest.raises(ValueError, match="unknown model kind"):
        build_model("pixelcnn", get_preset("biva-tiny"))


# ----------------------------------------------------------------------------- contract
def test_every_layer_output_has_the_contracts_shapes(model):
    x, B = _x(), 6
    for k, l_ in [(0, None), (2, None), (L, None), (0, 3), (0, 1), (0, L + 1)]:
        out = model(x, k=k, l=l_)
        assert [layer.index for layer in out.layers] == list(range(1, L + 1))
        assert out.log_px.shape == out.bound.shape == out.kl.shape == (B,)
        assert out.reconstruction().shape == x.shape
        top = L if l_ is None else l_ - 1
        for layer in out.layers:
            i = layer.index
            assert layer.z.shape == layer.prior.mean.shape == (B, *model.shapes[i])
            assert layer.kl.shape == (B,)
            from_posterior = k < i <= top
            assert layer.source == ("posterior" if from_posterior else "prior")
            if from_posterior:
                assert layer.posterior.mean.shape == layer.posterior.var.shape == layer.z.shape
            else:  # no proposal, no KL
                assert layer.posterior is None and torch.equal(layer.kl, torch.zeros(B))
    # i < L concatenates the BU and TD units; the top layer is one unit
    assert model.shapes[1][0] == 2 * model.units[1][0] and model.shapes[L] == model.units[L]


def test_forward_rejects_bad_arguments_like_the_hvae(model):
    x = _x(2)
    for kw in [dict(k=-1), dict(k=L + 1), dict(l=0), dict(l=L + 2)]:
        with pytest.raises(ValueError, match="must be in"):
            model(x, **kw)
    with pytest.raises(ValueError, match="'sample' or 'mean'"):
        model(x, prior="mode")
    with pytest.raises(ValueError, match="expected a batch of shape"):
        model(torch.zeros(2, 1, 32, 32))
    with pytest.raises(TypeError, match="floating point"):
        model(x.long())


def test_elbo_equals_gt0_and_llr0_is_zero_with_the_same_noise(model):
    x = _x()
    eps = _eps(model, 6, seed=3)
    with torch.no_grad():
        elbo = model(x, eps=eps).bound
        cache = model.encode_means(x)
        assert isinstance(cache, BIVACache)
        for prior in ("sample", "mean"):
            gt0 = model(x, k=0, prior=prior, eps=eps, cache=cache).bound
            assert torch.equal(gt0, elbo)  # LLR>0 = L - L>0 = 0 exactly
        assert torch.equal(model(x, l=L + 1, eps=eps).bound, elbo)  # L<(L+1) is the ELBO
        b = bound_samples(model, x, ls=[L + 1], n_samples=3, prior="sample")
        assert torch.equal(b.gt[0], b.lt[L + 1])
        assert not torch.equal(b.gt[1], b.gt[0])


def test_proposal_for_z_above_k_never_sees_prior_draws_below_k(model):
    """Change only the noise of layers <= k: q(z_>k|x), z_>k and the KL terms stay the same,
    the bottom-up units of layer k+1 come from the mean path (appendix D), and z_<=k do move."""
    x = _x()
    cache = model.encode_means(x)
    with torch.no_grad():
        for k in range(1, L):
            eps1, eps2 = _eps(model, 6, seed=10), _eps(model, 6, seed=11)
            eps2 = {i: (eps2[i] if i <= k else eps1[i]) for i in eps1}
            a = model(x, k=k, eps=eps1)
            b = model(x, k=k, eps=eps2, cache=cache)
            for la, lb in zip(a.layers, b.layers, strict=True):
                if la.index > k:
                    torch.testing.assert_close(la.posterior.mean, lb.posterior.mean)
                    torch.testing.assert_close(la.posterior.var, lb.posterior.var)
                    torch.testing.assert_close(la.z, lb.z)
                    torch.testing.assert_close(la.kl, lb.kl)
                else:
                    assert not torch.allclose(la.z, lb.z)
            assert not torch.allclose(a.log_px, b.log_px)
            # BU unit of z_{k+1}: q(z_{k+1}^BU | d_{k+1}(x)) on the mean path below k+1
            c = model.units[k + 1][0]
            q = a.layers[k].posterior
            torch.testing.assert_close(q.mean[:, :c], cache.q[k + 1].mean)
            torch.testing.assert_close(q.var[:, :c], cache.q[k + 1].var)
            torch.testing.assert_close(a.kl, sum(la.kl for la in a.layers[k:]))


def test_mean_variant_is_a_deterministic_function_with_the_same_structure(model):
    x = _x()
    with torch.no_grad():
        for k in (0, 1, 3, L):
            g1, g2 = torch.Generator().manual_seed(1), torch.Generator().manual_seed(2)
            a = model(x, k=k, posterior="mean", prior="mean", generator=g1)
            b = model(x, k=k, posterior="mean", prior="mean", generator=g2)
            s = model(x, k=k, generator=g1)
            assert torch.equal(a.bound, b.bound) and torch.equal(a.params, b.params)
            for la, lb, ls in zip(a.layers, b.layers, s.layers, strict=True):
                assert torch.equal(la.z, lb.z) and torch.equal(la.kl, lb.kl)
                assert la.source == ls.source and la.z.shape == ls.z.shape
                if la.source == "prior":
                    assert torch.equal(la.z, la.prior.mean)
                else:
                    assert torch.equal(la.z, la.posterior.mean)


def test_gradients_reach_every_parameter(model):
    m = build_model("biva", model.config)
    m.load_state_dict(model.state_dict())
    loss = -m(_x(), generator=torch.Generator().manual_seed(0)).bound.mean()
    loss.backward()
    missing = [n for n, p in m.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing, f"no gradient reaches {missing}"


def test_data_dependent_init_gives_unit_variance_posteriors():
    torch.manual_seed(1)
    m = BIVA(get_preset("biva-tiny", **SMALL))
    x = _x(32, seed=2)
    m.initialize(x)
    with torch.no_grad():
        out = m(x, posterior="mean")
    for layer in out.layers:
        var = layer.posterior.var.mean().item()
        assert 0.8 < var < 1.25, (layer.index, var)
        assert layer.posterior.mean.mean().abs().item() < 0.3


# ---------------------------------------------------------- the package runs it unchanged
def test_bounds_and_scores_run_on_biva_unchanged(model):
    x01 = _x(4)
    table = score_tensor(model, x01, n_samples=2, prior="sample")
    names = ["elbo", *(f"L>{k}" for k in range(1, L + 1)), *(f"L<{l_}" for l_ in range(1, L + 1))]
    for name in names:
        assert np.isfinite(table.columns[name]).all() and table.columns[name].shape == (4,)
    b = bound_samples(model, model.inputs(x01).x, n_samples=2, prior="sample")
    np.testing.assert_allclose(table.columns["elbo"], b.mean("gt", 0).double().numpy())
    recs = latent_reconstructions(model, x01)
    assert recs is not None
    assert layer_kl(model, x01).shape == (4, L)
    reps = layer_representations(model, x01)
    assert reps["z1"].shape == (4, *model.units[1]) and reps["z5"].shape == (4, *model.units[5])
    sims = layer_correlations(model, model, x01, measures=("cka",))
    assert all(v == pytest.approx(1.0) for v in sims["cka"].values())
    with pytest.raises(ArchitectureMismatchError, match="model class"):
        layer_correlations(model, HVAE(model.config), x01)
    detector = HVAEDetector(model, "LLR>1").fit(_x(8, seed=4))
    assert detector.predict(x01).shape == (4,)


def test_checkpoint_round_trip_builds_a_biva_from_the_card(model, tmp_path):
    card = {"kind": model_kind(model), "model_config": model.config.to_dict()}
    stem = save_checkpoint(tmp_path / "biva", model.state_dict(), card)
    lm = load_model(stem)
    assert type(lm.model) is BIVA and lm.card["kind"] == "biva"
    x, eps = _x(), _eps(model, 6, seed=5)
    with torch.no_grad():
        for k in (0, 2, L):
            assert torch.equal(model(x, k=k, eps=eps).bound, lm.model(x, k=k, eps=eps).bound)


def test_two_training_steps_select_biva_by_preset(tmp_path, datasets):
    cfg = TrainConfig(
        dataset=datasets.fashionmnist,
        preset="biva-tiny",
        model_overrides={"channels": 4},
        epochs=1,
        train_examples=16,
        val_examples=8,
        batch_size=8,
        init_examples=8,
        ood=(),
        device="cpu",
    )
    tr = Trainer(cfg, log=lambda _s: None)
    assert isinstance(tr.model, BIVA) and type(tr.model) is not HVAE
    tr.run(tmp_path / "run")
    assert tr.step == 2 and math.isfinite(tr.history[-1]["train/elbo"])
    lm = load_model(tmp_path / "run")
    assert lm.card["kind"] == "biva" and isinstance(lm.model, BIVA)


# ----------------------------------------------------- exact log p(x): the bounds are bounds
@pytest.fixture(scope="module")
def linear() -> tuple[LinearBIVA, torch.Tensor, torch.Tensor]:
    """A linear-Gaussian BIVA with its proposal fitted to the ELBO on data from the model, so
    the bounds are close enough to log p(x) for a too-large estimate to show."""
    m = LinearBIVA(6, (3, 2, 2), seed=0)
    g = torch.Generator().manual_seed(1)
    x = m.draw(32, g)
    opt = torch.optim.Adam(m.inference_parameters(), lr=0.05)
    for _ in range(600):
        loss = -m(x.repeat_interleave(4, 0), generator=g).bound.mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return m, x[:4], m.log_marginal(x[:4]).detach()


def test_sampled_bounds_are_lower_bounds_on_the_exact_log_px(linear):
    m, x, log_px = linear
    S = 3000
    with torch.no_grad():
        b = bound_samples(m, x, ls=range(1, m.n_layers + 2), n_samples=S, prior="sample")
    assert (b.mean("gt", 0) - log_px).abs().max() < 6  # the fitted ELBO is tight
    for which, values in (("gt", b.gt), ("lt", b.lt)):
        for idx, v in values.items():
            se = v.std(1) / math.sqrt(S)
            excess = (v.mean(1) - log_px) / se
            assert (excess < 4).all(), f"{which}[{idx}] exceeds log p(x) by {excess} s.e."
    # the mean variant is a deterministic function of x, not a bound: two calls agree
    with torch.no_grad():
        for k in range(m.n_layers + 1):
            a = m(x, k=k, posterior="mean", prior="mean").bound
            assert torch.equal(a, m(x, k=k, posterior="mean", prior="mean").bound)


def _normal(z: torch.Tensor, mean: torch.Tensor, var: torch.Tensor) -> torch.Tensor:
    return (-0.5 * (math.log(2 * math.pi) + var.log() + (z - mean) ** 2 / var)).sum(1)


def test_single_sample_bounds_are_eq5_and_eq20_integrands_recomputed_by_hand(linear):
    """Recompute each pass of the linear BIVA from its parameters and the noise: z_<=k drawn
    from p(z_<=k|z_>k), the BU units of z_>k from the mean path below k+1 (appendix D), the TD
    units from z above, and bound = log p(x|z) + sum over posterior layers of log p - log q."""
    m, x, _ = linear
    n = m.n_layers
    c = [0, *m.config.unit_dims]
    eps = _eps(m, x.shape[0], seed=7)
    eps = {i: e.double() for i, e in eps.items()}

    def prior_mean(i, z):
        return z[i + 1] @ m.A[i - 1].T + m.a[i - 1]

    with torch.no_grad():
        passes = [(k, None) for k in range(n + 1)] + [(0, l_) for l_ in range(1, n + 2)]
        for k, l_ in passes:
            top = n if l_ is None else l_ - 1
            post = [i for i in range(1, n + 1) if k < i <= top]
            # bottom-up: d_i is x, then z_{i-1}^BU (a sample above k, the mean at or below k)
            d, bu, q_bu = {1: x}, {}, {}
            for i in range(1, max(post, default=0) + 1):
                mean = d[i] @ m.Bq[i - 1].T + m.cq[i - 1]
                var = m.log_e[i - 1].exp().expand_as(mean)
                q_bu[i] = (mean, var)
                bu[i] = mean + var.sqrt() * eps[i][:, : c[i]] if i in post else mean
                d[i + 1] = bu[i]
            z, total = {}, 0.0
            for i in range(n, 0, -1):
                if i == n:
                    pm, pv = torch.zeros_like(eps[n]), torch.ones_like(eps[n])
                else:
                    pm = prior_mean(i, z)
                    pv = m.log_s[i - 1].exp().expand_as(pm)
                if i not in post:
                    z[i] = pm + pv.sqrt() * eps[i]
                    continue
                if i == n:
                    z[i], log_q = bu[i], _normal(bu[i], *q_bu[i])
                else:
                    tm = z[i + 1] @ m.Tq[i - 1].T + d[i] @ m.Dq[i - 1].T + m.uq[i - 1]
                    tv = m.log_f[i - 1].exp().expand_as(tm)
                    td = tm + tv.sqrt() * eps[i][:, c[i] :]
                    z[i] = torch.cat([bu[i], td], 1)
                    log_q = _normal(bu[i], *q_bu[i]) + _normal(td, tm, tv)
                total = total + _normal(z[i], pm, pv) - log_q
            xm = z[1] @ m.W.T + m.b
            total = total + _normal(x, xm, m.log_sx.exp().expand_as(xm))
            out = m(x, k=k, l=l_, eps=eps)
            for layer in out.layers:
                torch.testing.assert_close(layer.z, z[layer.index])
            torch.testing.assert_close(out.bound, total, msg=f"k={k}, l={l_}")

"""Layer-wise similarity of two models' representations (fig. 2) and its figure."""

import pytest
import torch

from hvaelab.app.correlation_figures import correlation_figure
from hvaelab.config import get_preset
from hvaelab.correlation import (
    ArchitectureMismatchError,
    LayerMoments,
    PairMoments,
    RepresentationShapeError,
    abs_corr_similarity,
    layer_correlations,
    layer_representations,
    linear_cka,
)
from hvaelab.data import binarize, binarize_fixed, load_dataset, to_tensor
from hvaelab.model import HVAE


def _g(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _cka_reference(a: torch.Tensor, b: torch.Tensor) -> float:
    """Textbook HSIC form tr(K H L H) with the centring matrix H."""
    x, y = a.reshape(len(a), -1).double(), b.reshape(len(b), -1).double()
    n = len(x)
    h = torch.eye(n, dtype=torch.float64) - 1.0 / n
    k, m = h @ x @ x.T @ h, h @ y @ y.T @ h

    def hsic(p, q):
        return (p * q).sum()

    return float(hsic(k, m) / (hsic(k, k) * hsic(m, m)).sqrt())


def _tiny(seed: int, **overrides) -> HVAE:
    torch.manual_seed(seed)
    m = HVAE(get_preset("hvae-tiny", **overrides))
    m.initialize((torch.rand(64, 1, 28, 28, generator=_g(seed)) > 0.5).float())
    return m


# ------------------------------------------------------------------------------------ measures
@pytest.mark.parametrize("shape", [(40, 6, 5, 5), (300, 12), (20, 500)])
def test_identical_representations_give_one(shape):
    a = torch.randn(shape, generator=_g(0))
    assert abs_corr_similarity(a, a) == pytest.approx(1.0, abs=1e-9)
    assert linear_cka(a, a) == pytest.approx(1.0, abs=1e-9)


@pytest.mark.parametrize("shape", [(120, 5), (12, 200)])  # feature-space and Gram forms
def test_cka_matches_the_hsic_definition(shape):
    a = torch.randn(shape, generator=_g(1))
    b = a[:, :3].repeat(1, 2) @ torch.randn(6, 7, generator=_g(2)) + torch.randn(
        shape[0], 7, generator=_g(3)
    )
    assert linear_cka(a, b) == pytest.approx(_cka_reference(a, b), abs=1e-9)
    assert 0.0 < linear_cka(a, b) < 1.0


def test_both_measures_invariant_to_permuting_units():
    a = torch.randn(30, 8, 4, 4, generator=_g(4))
    b = a[:, :5] * 2 + 0.5 * torch.randn(30, 5, 4, 4, generator=_g(5))
    perm = torch.randperm(5, generator=_g(6))
    assert abs_corr_similarity(a, b[:, perm]) == pytest.approx(abs_corr_similarity(a, b), abs=1e-9)
    assert linear_cka(a, b[:, perm]) == pytest.approx(linear_cka(a, b), abs=1e-9)
    assert abs_corr_similarity(a, b) == pytest.approx(abs_corr_similarity(b, a), abs=1e-12)


@pytest.mark.parametrize("n, d", [(200, 10), (15, 40)])
def test_cka_invariant_to_orthogonal_transform_and_isotropic_scaling(n, d):
    x = torch.randn(n, d, generator=_g(7), dtype=torch.float64)
    y = x[:, :4] @ torch.randn(4, 6, generator=_g(8), dtype=torch.float64)
    y = y + torch.randn(n, 6, generator=_g(9), dtype=torch.float64)
    q, _ = torch.linalg.qr(torch.randn(d, d, generator=_g(10), dtype=torch.float64))
    ref = linear_cka(x, y)
    assert linear_cka(x @ q, y) == pytest.approx(ref, abs=1e-9)
    assert linear_cka(3.7 * x, 0.1 * y) == pytest.approx(ref, abs=1e-9)
    # ... but not to per-unit scaling
    assert linear_cka(x * torch.linspace(0.1, 10, d, dtype=torch.float64), y) != pytest.approx(ref)


def test_abs_corr_invariant_to_per_unit_affine_maps():
    f64 = torch.float64
    a = torch.randn(25, 6, 3, 3, generator=_g(11), dtype=f64)
    b = a[:, :4] + 0.8 * torch.randn(25, 4, 3, 3, generator=_g(12), dtype=f64)
    scale = torch.tensor([2.0, -0.3, 5.0, 1e-3], dtype=f64).view(1, 4, 1, 1)
    shift = torch.tensor([1.0, -4.0, 0.0, 100.0], dtype=f64).view(1, 4, 1, 1)
    ref = abs_corr_similarity(a, b)
    assert abs_corr_similarity(a, b * scale + shift) == pytest.approx(ref, abs=1e-9)
    assert 0.3 < ref < 1.0


def test_independent_units_correlate_weakly():
    a, b = torch.randn(4000, 3, generator=_g(13)), torch.randn(4000, 3, generator=_g(14))
    assert abs_corr_similarity(a, b) < 0.1


def test_dead_units_count_as_zero_not_nan():
    u = torch.randn(50, 1, generator=_g(15))
    a = torch.cat([u, torch.full((50, 1), 3.0)], dim=1)  # second unit is dead
    # a's units: max |r| = 1 and 0 (dead) -> 0.5; b's unit: 1 -> mean 0.75
    assert abs_corr_similarity(a, u) == pytest.approx(0.75, abs=1e-9)
    const = torch.ones(50, 4)
    assert abs_corr_similarity(const, u) == 0.0
    assert linear_cka(const, u) == 0.0


def test_measures_reject_mismatched_representations():
    with pytest.raises(RepresentationShapeError, match="observations"):
        abs_corr_similarity(torch.randn(10, 3, 4, 4), torch.randn(10, 3, 2, 2))
    with pytest.raises(RepresentationShapeError, match="same examples"):
        linear_cka(torch.randn(10, 3), torch.randn(11, 3))
    with pytest.raises(RepresentationShapeError, match="units"):
        abs_corr_similarity(torch.randn(10, 3, 4), torch.randn(10, 3, 4))


# ----------------------------------------------------------------------- moments of any prefix
@pytest.mark.parametrize(
    "shape_a, shape_b",
    [((30, 6, 5, 5), (30, 4, 5, 5)), ((40, 12), (40, 7)), ((9, 300), (9, 50))],
)
def test_layer_moments_give_both_measures_of_every_prefix(shape_a, shape_b):
    """LayerMoments.of(a, b).abs_corr(n) / .cka(n) equal the measures of a[:n], b[:n] (conv
    maps and dense layers; features fewer and more than the examples), with offsets and scales
    that make one-pass moments lose digits, and a dead unit."""
    a = torch.randn(shape_a, generator=_g(30)) * 3.0 + 5.0
    b = a[:, :1].repeat_interleave(shape_b[1], 1) * torch.randn(shape_b, generator=_g(31))
    b = b + 0.5 * torch.randn(shape_b, generator=_g(32)) - 2.0
    a[:, 1] = 7.0  # a dead unit (constant over every example and position)
    lm = LayerMoments.of(a, b)
    assert lm.n == shape_a[0]
    for n in (2, 3, shape_a[0] // 2, shape_a[0] - 1, None):
        ref = slice(None) if n is None else slice(0, n)
        assert lm.abs_corr(n) == pytest.approx(abs_corr_similarity(a[ref], b[ref]), abs=1e-9)
        assert lm.cka(n) == pytest.approx(linear_cka(a[ref], b[ref]), abs=1e-9)
        assert lm.similarity("cka", n) == lm.cka(n)
    # a prefix is not the whole: the answers move with n
    assert lm.cka(3) != pytest.approx(lm.cka(), abs=1e-3)
    with pytest.raises(ValueError, match=r"n must be in \[1, "):
        lm.cka(shape_a[0] + 1)
    with pytest.raises(RepresentationShapeError, match="observations"):
        LayerMoments.of(torch.randn(10, 3, 4, 4), torch.randn(10, 3, 2, 2))


def test_pair_moments_answer_layer_correlations_of_every_prefix():
    ma, mb = _tiny(0), _tiny(1)
    x01 = torch.rand(12, 1, 28, 28, generator=_g(33))
    moments = PairMoments.of(ma, mb, x01)
    assert moments.n == 12 and list(moments.layers) == list(layer_representations(ma, x01[:2]))
    for n in (4, 12):
        got, want = moments.similarities(n), layer_correlations(ma, mb, x01[:n])
        assert list(got) == list(want) == ["abs_corr", "cka"]
        for m in want:
            assert list(got[m]) == list(want[m])
            assert got[m] == pytest.approx(want[m], abs=1e-9), m
    assert moments.similarities(measures=["cka"]) == {"cka": moments.similarities()["cka"]}
    with pytest.raises(ValueError, match="measures"):
        moments.similarities(measures=["pearson"])


# ------------------------------------------------------------------------------ representations
def test_layer_representations_names_shapes_and_mean_path():
    m = _tiny(0, blocks_per_stage=2)
    x01 = torch.rand(9, 1, 28, 28, generator=_g(16))
    reps = layer_representations(m, x01, batch_size=4)
    assert list(reps) == [
        "stage1.block1",
        "stage1.block2",
        "z1",
        "stage2.block1",
        "stage2.block2",
        "z2",
        "stage3.block1",
        "stage3.block2",
        "z3",
    ]
    assert reps["stage1.block1"].shape == (9, 16, 28, 28)
    assert reps["stage1.block2"].shape == (9, 16, 14, 14)
    assert reps["z1"].shape == (9, 8, 14, 14) and reps["z3"].shape == (9, 8)
    with torch.no_grad():
        cache = m.encode_means(m.prepare(binarize_fixed(x01)))
    for i in (1, 2, 3):
        assert torch.allclose(reps[f"z{i}"], cache.q[i].mean, atol=1e-5)
    assert all(not b._forward_hooks for s in m.enc_stage for b in s.blocks)


def test_layer_correlations_self_arguments_and_architecture():
    m = _tiny(0)
    x01 = torch.rand(40, 1, 28, 28, generator=_g(17))
    res = layer_correlations(m, m, x01)
    assert set(res) == {"abs_corr", "cka"}
    assert list(res["cka"]) == ["stage1.block1", "z1", "stage2.block1", "z2", "stage3.block1", "z3"]
    for values in res.values():
        assert all(v == pytest.approx(1.0, abs=1e-6) for v in values.values())
    only = layer_correlations(m, m, x01, measures=["cka"], layers=["z3", "z1"])
    assert list(only) == ["cka"] and list(only["cka"]) == ["z1", "z3"]
    with pytest.raises(ValueError, match="measures"):
        layer_correlations(m, m, x01, measures=["pearson"])
    with pytest.raises(ValueError, match="unknown layers"):
        layer_correlations(m, m, x01, layers=["stage9.block1"])
    with pytest.raises(ArchitectureMismatchError, match="channels"):
        layer_correlations(m, _tiny(1, channels=8), x01)


# --------------------------------------------------------------- trained vs random (real data)
def _train(x: torch.Tensor, seed: int, steps: int = 150, batch: int = 32) -> HVAE:
    """A few seconds of ELBO training with KL warm-up (stable on CPU)."""
    torch.manual_seed(seed)
    g = _g(seed)
    m = HVAE(get_preset("hvae-tiny"))
    m.initialize(binarize(x[:256], g))
    opt = torch.optim.Adam(m.parameters(), lr=1e-3)
    for step in range(steps):
        xb = binarize(x[torch.randint(0, len(x), (batch,), generator=g)], g)
        out = m(xb)
        beta = min(1.0, (step + 1) / (steps / 3))
        loss = -(out.log_px - beta * out.kl).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(m.parameters(), 200.0)
        opt.step()
    return m.eval()


@pytest.fixture(scope="module")
def trained_and_random(datasets):
    x = to_tensor(load_dataset(datasets.fashionmnist, "train").images[:2000])
    models = [_train(x, 0), _train(x, 1), _tiny(2)]
    x_test = to_tensor(load_dataset(datasets.fashionmnist, "test").images[:300])
    return models, x_test


def test_random_model_correlates_less_with_a_trained_one_than_a_second_seed(trained_and_random):
    (a, b, rand), x = trained_and_random
    trained = layer_correlations(a, b, x)
    random = layer_correlations(a, rand, x)
    for measure in ("abs_corr", "cka"):
        t, r = trained[measure], random[measure]
        mean_t, mean_r = sum(t.values()) / len(t), sum(r.values()) / len(r)
        assert mean_t > mean_r + 0.1, (measure, t, r)
        assert t["z3"] > r["z3"] + 0.2, (measure, t, r)  # the semantic top layer
    fig = correlation_figure({"fashionmnist": trained, "random": random})
    assert len(fig.data) == 4


# -------------------------------------------------------------------------------------- figure
def test_correlation_figure_traces():
    layers = ["stage1.block1", "z1", "stage2.block1", "z2"]
    res = {
        d: {
            m: {layer: 0.9 - 0.1 * i for i, layer in enumerate(layers)} for m in ("abs_corr", "cka")
        }
        for d in ("fashionmnist", "mnist")
    }
    fig = correlation_figure(res, title="fig. 2")
    assert len(fig.data) == 4
    assert list(fig.data[0].x) == layers and fig.data[0].y[1] == pytest.approx(0.8)
    assert [t.showlegend for t in fig.data] == [True, True, False, False]
    assert list(fig.data[0].marker.symbol) == ["circle", "diamond", "circle", "diamond"]
    assert fig.data[2].xaxis == "x2"
    with pytest.raises(ValueError, match="dataset"):
        correlation_figure({})
    with pytest.raises(ValueError, match="no layers"):
        correlation_figure({"a": {"cka": {}}})

"""Latent reconstructions (figs. 1, 3), per-layer KL (sec. 4.1) and their figures."""

import base64
import io
import math

import numpy as np
import plotly.graph_objects as go
import pytest
import torch
from PIL import Image

from hvaelab.app.latent_figures import (
    kl_figure,
    reconstruction_grid_figure,
    samples_figure,
    tile_grid,
)
from hvaelab.bounds import bound_samples
from hvaelab.config import get_preset
from hvaelab.data import InvalidInputError, binarize_fixed
from hvaelab.latents import (
    concat_reconstructions,
    latent_reconstructions,
    layer_kl,
    layer_kl_per_dim,
)
from hvaelab.model import HVAE
from hvaelab.noise import example_keys, keyed_noise

N = 6


@pytest.fixture(scope="module")
def model() -> HVAE:
    torch.manual_seed(0)
    m = HVAE(get_preset("hvae-tiny"))
    m.initialize((torch.rand(64, 1, 28, 28) > 0.5).float())
    return m


@pytest.fixture(scope="module")
def x01() -> torch.Tensor:
    return torch.rand(N, 1, 28, 28, generator=torch.Generator().manual_seed(1))


def _shapes(model):
    return {i: model.shapes[i] for i in range(1, model.n_layers + 1)}


def test_shapes_range_and_default_ks(model, x01):
    rec = latent_reconstructions(model, x01)
    L = model.n_layers
    assert rec.ks == list(range(L + 1)) and rec.mode == "mean" and len(rec) == N
    assert rec.images.shape == (L + 1, N, 1, 28, 28)
    assert rec.log_px.shape == (L + 1, N)
    assert rec.images.min() >= 0 and rec.images.max() <= 1
    assert torch.isfinite(rec.log_px).all() and (rec.log_px < 0).all()
    # Bernoulli models see the fixed evaluation binarization of x.
    assert torch.equal(rec.inputs, binarize_fixed(x01))
    sub = latent_reconstructions(model, x01, ks=[2, 0])
    assert sub.ks == [2, 0] and torch.allclose(sub.images[0], rec.images[2])


def test_k0_sample_equals_ordinary_reconstruction_with_same_noise(model, x01):
    rec = latent_reconstructions(model, x01, ks=[0, 1], mode="sample", seed=3)
    x = model.prepare(binarize_fixed(x01))
    eps = keyed_noise(example_keys(x, 3), _shapes(model), range(1))
    with torch.no_grad():
        out = model(x, k=0, eps=eps)
    assert torch.allclose(rec.images[0], out.reconstruction(), atol=1e-6)
    assert torch.allclose(rec.log_px[0], out.log_px, atol=1e-4)
    assert not torch.allclose(rec.images[1], rec.images[0])


def test_k0_mean_equals_posterior_mean_reconstruction(model, x01):
    rec = latent_reconstructions(model, x01, ks=[0])
    x = model.prepare(binarize_fixed(x01))
    with torch.no_grad():
        out = model(x, k=0, posterior="mean")
    assert torch.allclose(rec.images[0], out.reconstruction(), atol=1e-6)


def test_sample_mode_uses_the_bounds_common_random_numbers(model, x01):
    # At k = L every latent comes from the prior, so log p(x|z) is the bound L>L itself.
    L = model.n_layers
    rec = latent_reconstructions(model, x01, ks=[L], mode="sample", seed=5)
    x = model.prepare(binarize_fixed(x01))
    b = bound_samples(model, x, ks=[L], prior="sample", seed=5)
    assert torch.allclose(rec.log_px[0], b.gt[L][:, 0], atol=1e-4)


def test_mean_mode_deterministic_and_seed_free(model, x01):
    a = latent_reconstructions(model, x01, mode="mean", seed=0)
    b = latent_reconstructions(model, x01, mode="mean", seed=7)
    assert torch.equal(a.images, b.images) and torch.equal(a.log_px, b.log_px)


def test_sample_mode_reproducible_varies_with_seed_and_ignores_batching(model, x01):
    a = latent_reconstructions(model, x01, mode="sample", seed=1)
    b = latent_reconstructions(model, x01, mode="sample", seed=1, batch_size=4)
    c = latent_reconstructions(model, x01, mode="sample", seed=2)
    assert torch.allclose(a.images, b.images, atol=1e-6)
    assert not torch.allclose(a.images, c.images)
    part = latent_reconstructions(model, x01[3:], mode="sample", seed=1)
    assert torch.allclose(part.images, a.images[:, 3:], atol=1e-6)


def test_model_mode_restored(model, x01):
    model.train()
    latent_reconstructions(model, x01[:2])
    assert model.training
    model.eval()


@pytest.mark.parametrize(
    "bad, match",
    [
        (torch.zeros(2, 1, 28, 28, dtype=torch.uint8), "float"),
        (torch.zeros(2, 3, 28, 28), "shape"),
        (torch.zeros(28, 28), "shape"),
        (torch.zeros(0, 1, 28, 28), "N >= 1"),
        (torch.full((2, 1, 28, 28), 2.0), r"\[0, 1\]"),
        (torch.full((2, 1, 28, 28), float("nan")), "NaN"),
        ([[0.0] * 28] * 28, "torch.Tensor or a numpy array"),
        (np.full((2, 28, 28), 300), r"\[0, 255\]"),
    ],
)
def test_bad_inputs_raise(model, bad, match):
    with pytest.raises(InvalidInputError, match=match):
        latent_reconstructions(model, bad)
    with pytest.raises(InvalidInputError, match=match):
        layer_kl(model, bad)


def test_bad_arguments_raise(model, x01):
    with pytest.raises(ValueError, match="mode"):
        latent_reconstructions(model, x01, mode="median")
    with pytest.raises(ValueError, match="ks"):
        latent_reconstructions(model, x01, ks=[model.n_layers + 1])
    with pytest.raises(ValueError, match="n_samples"):
        layer_kl(model, x01, n_samples=0)


def test_natural_model_is_not_binarized():
    torch.manual_seed(0)
    m = HVAE(get_preset("hvae-natural", channels=8, blocks_per_stage=1))
    x01 = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    m.initialize(m.prepare(x01))
    rec = latent_reconstructions(m, x01, ks=[0, 3])
    assert torch.equal(rec.inputs, x01)
    assert rec.images.shape == (2, 3, 3, 32, 32)
    assert rec.images.min() >= 0 and rec.images.max() <= 1


def test_layer_kl_matches_the_elbo_pass(model, x01):
    S = 3
    kl = layer_kl(model, x01, n_samples=S, seed=4)
    assert kl.shape == (N, model.n_layers)
    x = model.prepare(binarize_fixed(x01))
    eps = keyed_noise(example_keys(x, 4), _shapes(model), range(S))
    with torch.no_grad():
        out = model(x.repeat_interleave(S, 0), eps=eps)
    ref = torch.stack([layer.kl for layer in out.layers], 1).view(N, S, -1).mean(1)
    assert torch.allclose(kl, ref, rtol=1e-4, atol=1e-3)
    assert torch.allclose(layer_kl(model, x01, n_samples=S, seed=4, batch_size=4), kl, atol=1e-3)
    dims = torch.tensor([math.prod(model.shapes[i]) for i in range(1, model.n_layers + 1)])
    assert torch.allclose(layer_kl_per_dim(model, x01, n_samples=S, seed=4), kl / dims)


def test_concat_reconstructions(model, x01):
    a = latent_reconstructions(model, x01[:2])
    b = latent_reconstructions(model, x01[2:])
    both = concat_reconstructions([a, b])
    assert len(both) == N and both.images.shape[:2] == (model.n_layers + 1, N)
    with pytest.raises(ValueError, match="same ks"):
        concat_reconstructions([a, latent_reconstructions(model, x01[:2], ks=[0])])


# ------------------------------------------------------------------------------------- figures
def _png_size(fig_trace) -> tuple[int, int]:
    data = base64.b64decode(fig_trace.source.split(",", 1)[1])
    return Image.open(io.BytesIO(data)).size  # (width, height)


def test_tile_grid_layout():
    cells = torch.zeros(2, 3, 1, 4, 5)
    cells[1, 2] = 1.0
    m = tile_grid(cells, pad=1)
    assert m.shape == (2 * 5 + 1, 3 * 6 + 1, 3) and m.dtype == np.uint8
    assert (m[6:10, 13:18] == 255).all() and (m[1:5, 1:6] == 0).all()


def test_reconstruction_grid_figure(model):
    x = torch.rand(16, 1, 28, 28, generator=torch.Generator().manual_seed(2))
    rec = latent_reconstructions(model, x)
    labels = [f"img{i}" for i in range(16)]
    # built on every shuffle of the reconstructions page: benchmarks/dashboard_bench.py times it
    fig = reconstruction_grid_figure(rec, labels=labels, title="FashionMNIST model")
    assert isinstance(fig, go.Figure) and len(fig.data) == 2
    image, cells = fig.data
    assert image.type == "image"
    K = model.n_layers + 1
    assert _png_size(image) == ((K + 1) * 30 + 2, 16 * 30 + 2)
    assert len(cells.hovertext) == 16 * (K + 1)
    assert f"{rec.log_px[2, 5].item():.1f}" in cells.hovertext[5 * (K + 1) + 3]
    texts = [a.text for a in fig.layout.annotations]
    assert texts[: K + 1] == ["input"] + [f"k={k}" for k in rec.ks] and "img15" in texts
    with pytest.raises(ValueError, match="labels"):
        reconstruction_grid_figure(rec, labels=["a"])


def test_samples_and_kl_figures(model, x01):
    fig = samples_figure(torch.rand(10, 1, 28, 28), ncols=4)
    assert len(fig.data) == 1 and _png_size(fig.data[0]) == (4 * 30 + 2, 3 * 30 + 2)
    with pytest.raises(ValueError, match="C = 1 or 3"):
        samples_figure(torch.rand(2, 2, 28, 28))
    kl = layer_kl(model, x01)
    fig = kl_figure({"fashionmnist": kl, "mnist": kl[:3]})
    assert [t.name for t in fig.data] == ["fashionmnist", "mnist"]
    assert len(fig.data[0].y) == N * model.n_layers and fig.data[1].x[:3].tolist() == [
        "z1",
        "z2",
        "z3",
    ]
    with pytest.raises(ValueError, match="layers"):
        kl_figure({"a": kl, "b": kl[:, :2]})


def test_the_model_door_accepts_the_same_images_in_every_form(model):
    """uint8 (N,28,28) arrays, float arrays and tensors in [0, 1] with or without the channel
    axis all enter as the same model input; training's dynamic binarization draws new bits."""
    from hvaelab.model import model_inputs

    imgs = np.random.default_rng(0).integers(0, 256, (4, 28, 28), dtype=np.uint8)
    x01 = torch.from_numpy(imgs).float().div(255).unsqueeze(1)
    ref = model_inputs(model, imgs)
    for form in (x01, x01[:, 0], imgs.astype(np.float32) / 255, x01.numpy()):
        got = model_inputs(model, form)
        assert torch.equal(got.x, ref.x) and torch.equal(got.x01, ref.x01)
    assert torch.equal(ref.x01, binarize_fixed(x01))
    assert not torch.equal(model_inputs(model, imgs, seed=1).x01, ref.x01)
    g = torch.Generator().manual_seed(0)
    a, b = (model_inputs(model, imgs, "dynamic", generator=g).x01 for _ in range(2))
    assert not torch.equal(a, b) and set(a.unique().tolist()) <= {0.0, 1.0}
    assert torch.equal(model_inputs(model, x01, "none").x01, x01)
    with pytest.raises(ValueError, match="binarize must be"):
        model_inputs(model, imgs, "sometimes")


def test_eval_mode_restores_every_models_mode(model):
    from hvaelab.model import eval_mode

    other = HVAE(get_preset("hvae-tiny"))
    model.train()
    other.eval()
    with pytest.raises(RuntimeError, match="inside"):
        with eval_mode(model, other):
            assert not model.training and not other.training
            raise RuntimeError("inside")
    assert model.training and not other.training
    model.eval()

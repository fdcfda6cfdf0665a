"""The natural-image path on files in the real formats: CIFAR-10 binary batches and an SVHN
MATLAB file written here -> train a tiny colour model -> tables -> evaluate -> score a PNG ->
reconstructions, with the paper's identities for colour inputs."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from colour_data import blocky, write_colour_data
from PIL import Image

from hvaelab import data
from hvaelab.bounds import bound_samples
from hvaelab.checkpoint import load_model
from hvaelab.cli import main as cli_main
from hvaelab.data import InvalidInputError, load_dataset, load_inputs, to_tensor
from hvaelab.latents import latent_reconstructions
from hvaelab.noise import example_keys, keyed_noise
from hvaelab.scores import load_tables, ood_scores, tables_path
from hvaelab.train import TrainConfig, Trainer


@pytest.fixture(scope="module")
def colour(tmp_path_factory):
    """A data folder holding CIFAR-10 and SVHN in their file formats, and a tiny colour
    checkpoint trained on it for one short epoch; the registry's SVHN without its pinned md5."""
    root = tmp_path_factory.mktemp("colour")
    write_colour_data(root / "data", 40, 48)
    saved = data.REGISTRY["svhn"]
    data.REGISTRY["svhn"] = dataclasses.replace(saved, md5={}, urls=())  # our own file
    cfg = TrainConfig(
        dataset="cifar10",
        preset="hvae-natural",
        model_overrides={"channels": 8, "blocks_per_stage": 1},
        train_examples=160,
        val_examples=24,
        batch_size=32,
        init_examples=32,
        epochs=1,
        lr=1e-3,
        ood=("svhn",),
        data_dir=str(root / "data"),
        device="cpu",
    )
    stem = root / "ckpt" / "cifar-tiny"
    Trainer(cfg, log=lambda _: None).run(stem)
    yield root / "data", stem
    data.REGISTRY["svhn"] = saved
    data.clear_cache()


def test_colour_images_load_as_uint8_rgb_and_enter_as_three_channels(colour):
    folder, _ = colour
    ds = load_dataset("cifar10", "test", data_dir=folder)
    assert ds.images.shape == (48, 32, 32, 3)
    x = to_tensor(ds.images[:2])
    assert x.shape == (2, 3, 32, 32)
    assert torch.equal(x[1, 2], torch.from_numpy(ds.images[1, :, :, 2] / np.float32(255)))
    chw = ds.images[:2].transpose(0, 3, 1, 2)  # channels-first arrays are accepted too
    assert torch.equal(to_tensor(chw), x)


def test_grey_and_colour_models_refuse_each_others_inputs(colour):
    folder, stem = colour
    grey = load_model("fashionmnist").model
    cifar = load_dataset("cifar10", "test", data_dir=folder).images[:2]
    from hvaelab.scores import score_tensor

    with pytest.raises(InvalidInputError, match=r"\(N, 1, 28, 28\)"):
        score_tensor(grey, cifar)
    with pytest.raises(InvalidInputError, match=r"\(N, 3, 32, 32\)"):
        score_tensor(load_model(stem).model, np.zeros((2, 28, 28), np.uint8))
    with pytest.raises(ValueError, match="use hvae-natural"):
        Trainer(TrainConfig(dataset="cifar10", preset="hvae-tiny", data_dir=str(folder)))


def test_identities_hold_for_colour_inputs(colour):
    folder, stem = colour
    model = load_model(stem).model.double()
    x01 = to_tensor(load_dataset("cifar10", "test", data_dir=folder).images[:4]).double()
    x = model.prepare(x01)
    n, seed = 3, 5
    with torch.no_grad():
        vals = bound_samples(model, x, ls=range(1, model.n_layers + 2), n_samples=n, seed=seed)
        keys = example_keys(x, seed)
        shapes = {i: model.shapes[i] for i in range(1, model.n_layers + 1)}
        eps = keyed_noise(keys, shapes, range(n), x.device, x.dtype)
        elbo = model(x.repeat_interleave(n, 0), k=0, eps=eps).bound.view(4, n)
    assert (elbo - vals.gt[0]).abs().max().item() <= 1e-9 * elbo.abs().max().item()  # LLR>0 = 0
    assert torch.equal(vals.lt[model.n_layers + 1], vals.gt[0])  # L<(L+1) = ELBO
    assert torch.isfinite(vals.gt[1]).all() and not torch.allclose(vals.gt[1], vals.gt[0])


def test_the_colour_likelihood_normalises_over_all_256_values(colour):
    """The model's own output distribution for one pixel: its (R, G) marginal sums to 1 over
    all 256**2 value pairs. Channels are autoregressive (R, then G given R, then B given both),
    so the (R, G) marginal of the three-channel mixture is the two-channel mixture made of the
    same weights, the R and G means and scales and the G-on-R coefficient (the layout of
    test_likelihoods' reference); B's conditional is checked there on a full joint grid."""
    folder, stem = colour
    model = load_model(stem).model.double()
    x01 = to_tensor(load_dataset("cifar10", "test", data_dir=folder).images[:1]).double()
    with torch.no_grad():
        p = model(model.prepare(x01), k=0, posterior="mean").params[0, :, 5, 7]
    lik = model.likelihood
    m = lik.n_mixtures
    assert p.numel() == lik.num_params(3) == 10 * m
    logits, means, logs, coef = p[:m], p[m : 4 * m], p[4 * m : 7 * m], p[7 * m :]
    two = torch.cat([logits, means[: 2 * m], logs[: 2 * m], coef[:m]])  # pair (G, R) first
    assert two.numel() == lik.num_params(2)
    v = torch.arange(256, dtype=torch.float64) / 255 * 2 - 1
    xs = torch.stack(torch.meshgrid(v, v, indexing="ij"), 0).reshape(2, -1).T[:, :, None, None]
    total = lik.log_prob(two[None, :, None, None].expand(len(xs), -1, -1, -1), xs).exp().sum()
    assert total.item() == pytest.approx(1.0, abs=1e-9)
    # and the joint of all three channels is a distribution too: at each (R, G), B's 256
    # values sum to the (R, G) marginal (checked on 64 (R, G) pairs)
    rg = xs[::1024, :, 0, 0]
    b = v.repeat(len(rg))
    triples = torch.cat([rg.repeat_interleave(256, 0), b[:, None]], 1)[:, :, None, None]
    joint = lik.log_prob(p[None, :, None, None].expand(len(triples), -1, -1, -1), triples).exp()
    marg = lik.log_prob(two[None, :, None, None].expand(len(rg), -1, -1, -1), rg[:, :, None, None])
    assert torch.allclose(joint.view(len(rg), 256).sum(1), marg.exp(), rtol=1e-9, atol=1e-15)


def test_tables_evaluate_and_score_a_png_through_the_command_line(colour, tmp_path, capsys):
    folder, stem = colour
    common = ["--checkpoint", str(stem), "--data-dir", str(folder)]
    args = ["tables", *common, "--in", "cifar10", "--ood", "svhn", "--samples-per-set", "8"]
    assert cli_main(args) == 0
    tables = load_tables(tables_path(stem))
    assert set(tables) == {"cifar10@S1", "svhn@S1"}
    s = ood_scores(tables["cifar10@S1"])
    assert {"LLR>1", "IC", "-ELBO"} <= set(s) and np.all(np.isfinite(s["LLR>1"]))
    bpd = tables["cifar10@S1"].bits_per_dim("elbo").mean()
    assert 0 < bpd < 16  # 8-bit colour: the discretized logistic mixture's own bits/dim
    out = tmp_path / "eval"
    assert cli_main(["evaluate", *common, "--tables", "--in", "cifar10", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "OOD: svhn" in printed and "LLR>1" in printed
    png = tmp_path / "house.png"
    Image.fromarray(blocky(1, 3)[0]).resize((64, 48)).save(png)
    images, _ = load_inputs([png], colour=True)
    assert images.shape == (1, 32, 32, 3)  # kept in colour, resized to 32x32
    assert not np.array_equal(images[0, :, :, 0], images[0, :, :, 1])  # not made grey
    assert cli_main(["score", str(png), *common[:2]]) == 0
    line = capsys.readouterr().out
    assert "house.png:" in line and ("OOD" in line or "in-distribution" in line)


def test_reconstructions_of_colour_inputs(colour):
    folder, stem = colour
    model = load_model(stem).model
    x01 = to_tensor(load_dataset("cifar10", "test", data_dir=folder).images[:3])
    rec = latent_reconstructions(model, x01)
    L = model.n_layers
    assert rec.images.shape == (L + 1, 3, 3, 32, 32) and rec.inputs.shape == (3, 3, 32, 32)
    assert torch.equal(rec.inputs, x01)  # no binarization for a colour model
    assert rec.images.min() >= 0 and rec.images.max() <= 1
    assert torch.isfinite(rec.log_px).all()
    # each k decodes from other latents: the grids differ (a constant grid would pass above)
    for j in range(1, L + 1):
        assert not torch.allclose(rec.images[j], rec.images[0])


def test_dashboard_builders_take_a_colour_checkpoint(colour, monkeypatch):
    """The pages' builders with a colour checkpoint (tables and samples from the test above):
    colour reconstruction grids, the explorer, and a colour upload scored in colour."""
    import io as _io

    from hvaelab.app import resources
    from hvaelab.app.explorer import LikelihoodRatioExplorer
    from hvaelab.app.recon_view import ReconstructionExplorer
    from hvaelab.app.upload_view import UploadScorer

    folder, stem = colour
    if not tables_path(stem).exists():
        cli_main(
            [
                "tables",
                "--checkpoint",
                str(stem),
                "--data-dir",
                str(folder),
                "--in",
                "cifar10",
                "--ood",
                "svhn",
                "--samples-per-set",
                "8",
            ]
        )
    monkeypatch.setenv("HVAELAB_CHECKPOINTS", str(stem.parent))
    resources.clear_caches()
    try:
        rec = ReconstructionExplorer(stem.name, n_per_set=2)
        assert rec.images.shape[1:] == (32, 32, 3)  # the inputs, as stored
        assert rec.grid.figure.data[0].type == "image"
        ex = LikelihoodRatioExplorer(stem.name)
        assert ex.in_select.value == "cifar10" and ex.ood_select.value == "svhn"
        assert "AUROC" in ex.info.value
        up = UploadScorer(stem.name)
        buf = _io.BytesIO()
        Image.fromarray(blocky(1, 4)[0]).save(buf, format="PNG")
        result = up.score_files([("house.png", buf.getvalue())])
        assert result is not None and result.images.shape == (1, 32, 32, 3)
        assert "data-verdict" in up.results.value
        # linked views: a colour test image selected on the strip is inspected in colour
        from hvaelab.app.draw_view import draw_page
        from hvaelab.app.linked import linked_explorer

        box = linked_explorer(stem.name)
        box.picker.strip.selected = 0
        report = box.selection.report
        assert report.image.shape == (32, 32, 3) and report.model_input.shape == (3, 32, 32)
        assert report.reconstructions.images.shape[2] == 3
        assert 'class="hvae-inspect-rec"' in box.inspector.recons.value
        assert "hvae-draw-unavailable" in draw_page(stem.name)._dom_classes
    finally:
        resources.clear_caches()

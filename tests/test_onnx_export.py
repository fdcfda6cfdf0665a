"""The ONNX export (hvaelab.onnx_export, `hvaelab export-onnx`) against the library.

The shipped ``fashionmnist`` HVAE and a tiny BIVA (preset ``biva-tiny``, seeded, with a small
second stage), each exported once per session, run in onnxruntime on the first 1,000
FashionMNIST and 1,000 MNIST test images (the fixture's where the data is missing) and compared
with PyTorch (:mod:`hvaelab.mean_path`): statistics within 1e-5 relative, reconstructions within
1e-5 absolute, nothing infinite; p-values from the sidecar within 1e-3 of the Python report and
the same verdict; the sidecar's numbers reproduce the report; the ONNX page's onnxruntime + numpy
example gives the report's numbers.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from hvaelab.artifacts import Artifacts
from hvaelab.checkpoint import load_model, read_card, save_checkpoint
from hvaelab.cli import main as cli_main
from hvaelab.config import PRESETS
from hvaelab.data import binarize_fixed, to_tensor
from hvaelab.example_stats import mean_path_stats
from hvaelab.mean_path import (
    MeanPathOutputs,
    MeanPathReference,
    mean_path_outputs,
    mean_path_report,
    reference_from_dataset,
    reference_from_outputs,
    report_from_outputs,
    run_mean_path,
)
from hvaelab.model import build_model
from hvaelab.model.layers import _WeightNorm
from hvaelab.model.likelihoods import BernoulliLikelihood, bernoulli_log_prob
from hvaelab.onnx_export import (
    EXPORTERS,
    OPSET,
    OUTPUT_NAMES,
    export_graph,
    export_onnx,
    fold_weight_norm,
    onnx_session,
    read_sidecar,
    run_onnx,
    score_with_sidecar,
    sidecar_path,
)
from hvaelab.second_stage import SecondStageConfig, fit_second_stage

ROOT = Path(__file__).resolve().parents[1]
N = 1000  # test images per set
RTOL = 1e-5  # statistics, relative
ATOL_RECON = 1e-5  # reconstructions, absolute
P_ATOL = 1e-3  # p-values, absolute


@dataclass
class Exported:
    """One exported model, its reference, and the mean path of the test images both ways."""

    model: torch.nn.Module
    onnx_path: Path
    side: dict
    reference: MeanPathReference
    torch_out: MeanPathOutputs  # FashionMNIST test images, then MNIST
    x01: torch.Tensor
    onnx_out: dict[str, np.ndarray]
    images: np.ndarray  # uint8, the same order
    card: dict


def _test_images(datasets) -> np.ndarray:
    return np.concatenate([datasets.images("fashionmnist")[:N], datasets.images("mnist")[:N]])


@pytest.fixture(scope="session")
def hvae(tmp_path_factory, datasets) -> Exported:
    """The shipped fashionmnist, exported by the library with the first 1,000 test images of
    its in-distribution set as the reference (their mean path shared with the comparison)."""
    lm = load_model(ROOT / "checkpoints" / "fashionmnist")
    images = _test_images(datasets)
    out, x01 = run_mean_path(lm.model, images)
    in_dist = MeanPathOutputs(out.rec[:N], out.kl[:N], out.llr[:N], None)
    meta = {"dataset": datasets.fashionmnist, "split": "test", "indices": f"first {N}"}
    reference = reference_from_outputs(lm.model, in_dist, meta)
    path = tmp_path_factory.mktemp("onnx-hvae") / "fashionmnist.onnx"
    info = {"name": "fashionmnist", "weights_sha256": lm.card["weights_sha256"]}
    export_onnx(lm.model, path, reference, info)
    got = run_onnx(onnx_session(path), x01.numpy())
    side = read_sidecar(sidecar_path(path))
    return Exported(lm.model, path, side, reference, out, x01, got, images, lm.card)


@pytest.fixture(scope="session")
def biva(tmp_path_factory, datasets) -> Exported:
    """A tiny BIVA (seeded, initialised on training images, untrained) saved as a checkpoint
    whose in-distribution set is this run's FashionMNIST, with a small second stage fitted on
    training images, exported through the command line (reference: 1,000 test images)."""
    torch.manual_seed(0)
    cfg = PRESETS["biva-tiny"]
    model = build_model("biva", cfg)
    train = datasets.images("fashionmnist", "train")
    model.initialize(model.inputs(train[:128]).x)
    folder = tmp_path_factory.mktemp("onnx-biva")
    card = {
        "kind": "biva",
        "model_config": cfg.to_dict(),
        "data": {"train": {"name": datasets.fashionmnist, "split": "train"}},
    }
    stem = save_checkpoint(folder / "biva-tiny", model.state_dict(), card)
    stage = fit_second_stage(model, train[:1000], SecondStageConfig(160, 64, (1, 2)))
    stage.record["weights_sha256"] = read_card(stem)["weights_sha256"]
    stage.save(Artifacts.of(stem).second_stage)
    path = folder / "biva-tiny.onnx"
    rc = cli_main(
        ["export-onnx", str(path), "--checkpoint", str(stem), "--reference-limit", "1000"]
    )
    assert rc == 0
    lm = load_model(stem)
    assert lm.model.second_stage is not None
    side = read_sidecar(sidecar_path(path))
    # the library's own reference of the same images, to hold the sidecar's to
    ref = reference_from_dataset(lm.model, datasets.fashionmnist, "test", limit=N)
    images = _test_images(datasets)
    out, x01 = run_mean_path(lm.model, images)
    got = run_onnx(onnx_session(path), x01.numpy())
    return Exported(lm.model, path, side, ref, out, x01, got, images, lm.card)


MODELS = ["hvae", "biva"]


@pytest.fixture(params=MODELS)
def exported(request) -> Exported:
    return request.getfixturevalue(request.param)


# ------------------------------------------------------------------- the likelihood
@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # the TorchScript exporter's notice
@pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning")  # the shape check, traced
def test_the_exported_likelihood_is_finite_in_onnxruntime_for_huge_logits(tmp_path):
    class LogProb(torch.nn.Module):
        def forward(self, z, x):
            return BernoulliLikelihood().log_prob(z, x)

    path = tmp_path / "lp.onnx"
    z = torch.tensor([-1e4, -88.0, -20.0, 0.0, 20.0, 88.0, 1e4]).view(1, 1, 1, 7)
    z = z.repeat(2, 1, 1, 1)
    x = torch.stack([torch.zeros(1, 1, 7), torch.ones(1, 1, 7)])
    torch.onnx.export(
        LogProb(), (z, x), str(path), dynamo=False, opset_version=OPSET, input_names=["z", "x"]
    )
    (got,) = onnx_session(path).run(None, {"z": z.numpy(), "x": x.numpy()})
    assert np.isfinite(got).all()
    np.testing.assert_allclose(got, bernoulli_log_prob(z, x).numpy(), rtol=1e-6)


# ------------------------------------------------------------------- the graph
def test_folding_gives_the_same_numbers_and_leaves_the_model_alone(hvae):
    model = hvae.model
    before = {k: v.clone() for k, v in model.state_dict().items()}
    folded = fold_weight_norm(model)
    assert not any(isinstance(m, _WeightNorm) for m in folded.modules())
    assert any(isinstance(m, _WeightNorm) for m in model.modules())
    x = model.inputs(hvae.images[:8]).x
    with torch.no_grad():
        a, b = mean_path_outputs(model, x), mean_path_outputs(folded, x)
    for name in OUTPUT_NAMES:
        assert torch.equal(getattr(a, name), getattr(b, name)), name
    after = model.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_mean_path_statistics_are_the_second_stage_inputs_and_llr_is_eq_6(hvae):
    x = hvae.model.inputs(hvae.images[:16]).x
    stats = mean_path_stats(hvae.model, x)
    out = hvae.torch_out.stats()
    for name, v in stats.items():
        np.testing.assert_array_equal(out[name][:16], v.double().numpy(), err_msg=name)
    # LLR>k = L - L>k with L = rec>0 - sum_i kl_i and L>k = rec>k - sum_{i>k} kl_i
    L = hvae.model.n_layers
    kl = np.stack([out[f"kl{i}"] for i in range(1, L + 1)], 1)
    elbo = out["rec>0"] - kl.sum(1)
    for k in range(1, L + 1):
        lk = out[f"rec>{k}"] - kl[:, k:].sum(1)
        want = elbo - lk
        got = hvae.torch_out.llr[:, k - 1].double().numpy()
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-5 * np.abs(elbo).max(), err_msg=k)


def test_the_file_is_one_graph_at_the_stated_opset_with_its_weights_inside(exported):
    proto = onnx.load(str(exported.onnx_path))
    onnx.checker.check_model(proto, full_check=True)
    assert {o.domain: o.version for o in proto.opset_import}[""] == OPSET
    assert exported.side["onnx"]["opset"] == OPSET
    assert [i.name for i in proto.graph.input] == ["x"]
    assert [o.name for o in proto.graph.output] == list(OUTPUT_NAMES)
    assert not list(exported.onnx_path.parent.glob("*.data"))
    assert not any(onnx.external_data_helper.uses_external_data(t) for t in proto.graph.initializer)
    ops = {n.op_type for n in proto.graph.node}
    assert not ops & {"ReduceL2", "LpNormalization", "Sqrt"}, ops  # weight norm folded
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param and [d.dim_value for d in dims[1:]] == [1, 28, 28]


def test_onnxruntime_gives_the_library_numbers(exported):
    """Every output on 1,000 + 1,000 test images: rec>k and the KLs within 1e-5 relative (to
    max(|value|, 1 nat)), LLR>k within 1e-5 of the magnitude of the terms it is the difference
    of (rec>0, rec>k, kl_1..kl_k), reconstructions within 1e-5; nothing NaN or infinite."""
    want, got = exported.torch_out, exported.onnx_out
    L = want.kl.shape[1]
    assert got["rec"].shape == (2 * N, L + 1)
    assert got["reconstructions"].shape == (2 * N, L + 1, 1, 28, 28)
    for name in OUTPUT_NAMES:
        assert np.isfinite(got[name]).all(), name
    rec, kl = want.rec.double().numpy(), want.kl.double().numpy()
    for name, w in (("rec", rec), ("kl", kl)):
        err = np.abs(got[name] - w) / np.maximum(np.abs(w), 1.0)
        assert err.max() <= RTOL, (name, err.max())
    terms = np.abs(rec[:, :1]) + np.abs(rec[:, 1:]) + np.cumsum(np.abs(kl), 1)
    err = np.abs(got["llr"] - want.llr.double().numpy()) / terms
    assert err.max() <= RTOL, err.max()
    diff = np.abs(got["reconstructions"] - want.reconstructions.numpy())
    assert diff.max() <= ATOL_RECON


def test_any_batch_size(exported):
    session = onnx_session(exported.onnx_path)
    x = exported.x01.numpy()
    one = session.run(["llr"], {"x": x[:1]})[0]
    three = session.run(["llr"], {"x": x[:3]})[0]
    np.testing.assert_allclose(one[0], three[0], rtol=1e-6)
    np.testing.assert_allclose(three, exported.onnx_out["llr"][:3], rtol=1e-6)


@pytest.mark.parametrize("exporter", EXPORTERS)
def test_both_exporters_give_an_exact_dynamic_batch_graph(exporter, hvae):
    """TorchScript (the default) and dynamo (torch.export, for when PyTorch drops the first),
    on a tiny untrained HVAE, at a batch size other than the one traced."""
    torch.manual_seed(1)
    model = build_model("hvae", PRESETS["hvae-tiny"])
    x = hvae.x01[N - 3 : N + 2]
    model.initialize(hvae.x01[:64])
    model.eval()
    with torch.no_grad():
        want = mean_path_outputs(model, x)
    got = run_onnx(onnx_session(export_graph(model, exporter=exporter)), x.numpy())
    for name in OUTPUT_NAMES:
        w = getattr(want, name).numpy()
        assert got[name].shape == w.shape
        scale = 1.0 if name == "reconstructions" else np.maximum(np.abs(w), 1.0)
        assert (np.abs(got[name] - w) / scale).max() <= 1e-5, name


# ------------------------------------------------------------------- decisions
def _report(e: Exported):
    return report_from_outputs(e.model, e.torch_out, e.x01, e.reference)


def test_pvalues_and_verdict_from_onnx_match_the_python_report(exported):
    report = _report(exported)
    res = score_with_sidecar(exported.onnx_out, exported.side)
    assert set(res["p_values"]) == set(report.p_values)
    for name, p in report.p_values.items():
        np.testing.assert_allclose(res["p_values"][name], p, atol=P_ATOL, rtol=0, err_msg=name)
    # a differing verdict is allowed only where moving the LLR>k by their tolerance flips it
    differ = np.flatnonzero(res["is_ood"] != report.is_ood)
    if len(differ):
        rec, kl = exported.torch_out.rec.double().numpy(), exported.torch_out.kl.double().numpy()
        tol = RTOL * (np.abs(rec[:, :1]) + np.abs(rec[:, 1:]) + np.cumsum(np.abs(kl), 1))
        lo = score_with_sidecar(
            {**exported.onnx_out, "llr": exported.onnx_out["llr"] - tol}, exported.side
        )
        hi = score_with_sidecar(
            {**exported.onnx_out, "llr": exported.onnx_out["llr"] + tol}, exported.side
        )
        assert (lo["is_ood"][differ] != hi["is_ood"][differ]).all(), differ
    assert len(differ) <= 0.005 * len(report.names)
    # and the decisions mean something: MNIST is flagged far more often than FashionMNIST
    if exported.card.get("epochs_done"):  # the shipped model (the tiny BIVA is untrained)
        assert report.is_ood[N:].mean() > report.is_ood[:N].mean() + 0.5


def test_the_sidecar_reproduces_the_report(exported):
    """score_with_sidecar (numpy, sidecar only) on the library's own outputs gives the
    report's numbers; the sidecar says what it must."""
    report = _report(exported)
    outs = {
        "rec": exported.torch_out.rec.numpy(),
        "kl": exported.torch_out.kl.numpy(),
        "llr": exported.torch_out.llr.numpy(),
    }
    res = score_with_sidecar(outs, exported.side)
    for name, s in report.scores().items():
        np.testing.assert_allclose(res["scores"][name], s, rtol=1e-10, err_msg=name)
        np.testing.assert_array_equal(res["p_values"][name], report.p_values[name])
    np.testing.assert_array_equal(res["is_ood"], report.is_ood)
    assert res["decisive"] == report.decisive
    assert res["threshold"] == report.threshold
    side = exported.side
    assert side["checkpoint"]["weights_sha256"] == exported.card["weights_sha256"]
    assert side["onnx"]["sha256"] == hashlib.sha256(exported.onnx_path.read_bytes()).hexdigest()
    assert side["second_stage"] is not None
    assert side["input"]["shape"] == ["N", 1, 28, 28]
    assert side["pvalues"]["tie_tolerance"] == exported.reference.tie_tolerance
    assert set(side["reference"]["scores"]) == set(exported.reference.scores)
    for name, ref in exported.reference.scores.items():
        np.testing.assert_array_equal(side["reference"]["scores"][name], ref)
        assert np.all(np.diff(ref) >= 0)
    assert side["reference"]["split"] == "test" and side["reference"]["n"] == N
    if "check" in side:  # written by the command line (the BIVA here)
        assert side["check"]["not_finite"] == 0 and side["check"]["n"] == 256


def test_the_binarization_recipe_in_the_sidecar_is_the_library_one(hvae):
    """The recipe as the sidecar states it, written in numpy from its words and constants."""
    pre = hvae.side["preprocessing"]
    c = {k: np.uint64(int(v, 16)) for k, v in pre["constants"].items()}

    def splitmix64(z):
        z = z + c["G"]
        z = (z ^ (z >> np.uint64(30))) * c["M1"]
        z = (z ^ (z >> np.uint64(27))) * c["M2"]
        return z ^ (z >> np.uint64(31))

    images = hvae.images[::97]
    x01 = images.astype(np.float32).reshape(len(images), -1) / np.float32(255)
    pix = splitmix64(np.arange(x01.shape[1], dtype=np.uint64) * c["G"])
    bits = (x01 + np.float32(0)).view(np.uint32).astype(np.uint64)
    content = splitmix64(bits ^ pix).sum(1, dtype=np.uint64)
    key = splitmix64(content ^ splitmix64(np.array([pre["seed"]], dtype=np.uint64)))
    u = (splitmix64(key[:, None] ^ pix) >> np.uint64(40)).astype(np.float32) * np.float32(2**-24)
    mine = (u < x01).astype(np.float32).reshape(-1, 1, 28, 28)
    lib = binarize_fixed(to_tensor(images), pre["seed"]).numpy()
    np.testing.assert_array_equal(mine, lib)
    np.testing.assert_array_equal(mine, hvae.x01[::97].numpy())


def _readme_example() -> str:
    """The example of the documentation's ONNX page (docs/guide/onnx.md), as written."""
    text = (ROOT / "docs" / "guide" / "onnx.md").read_text()
    return re.search(r"```python\n(.*?)```", text, re.S).group(1)


def test_the_readme_example_scores_with_onnxruntime_and_numpy_alone(hvae, monkeypatch):
    """The ONNX page's example, run as written on 100 FashionMNIST and 100 MNIST images: its
    binarization is the library's, its numbers are :func:`score_with_sidecar`'s."""
    code = _readme_example()
    imports = set(re.findall(r"^(?:import|from) (\w+)", code, re.M))
    assert imports == {"json", "numpy", "onnxruntime"}, imports
    monkeypatch.chdir(hvae.onnx_path.parent)
    sl = slice(N - 100, N + 100)
    scope = {"images": hvae.images[sl]}
    exec(compile(code, "docs/guide/onnx.md", "exec"), scope)  # noqa: S102 - the page's example
    np.testing.assert_array_equal(scope["x"], hvae.x01[sl].numpy())
    mine = score_with_sidecar({k: v[sl] for k, v in hvae.onnx_out.items()}, hvae.side)
    np.testing.assert_array_equal(scope["is_ood"], mine["is_ood"])
    p = np.stack([mine["p_values"][k] for k in hvae.side["verdict"]["scores"]], 1)
    np.testing.assert_array_equal(scope["p"], p)
    second = mine["scores"]["second-stage"]
    np.testing.assert_allclose(scope["second_stage"], second, rtol=1e-9, atol=1e-9)
    np.testing.assert_array_equal(scope["p_second"], mine["p_values"]["second-stage"])


def test_one_image_report_is_the_batch_report(hvae):
    one = mean_path_report(hvae.model, hvae.images[N], hvae.reference)
    assert one.names == ["input 0"] and one.reconstructions.shape[0] == 1
    for name, v in one.llr.items():
        np.testing.assert_allclose(v[0], hvae.torch_out.llr[N, int(name[4:]) - 1], rtol=1e-5)
    assert one.is_ood[0] == _report(hvae).is_ood[N]


# ------------------------------------------------------------------- errors
def test_export_errors_are_clear(hvae, tmp_path):
    ref = hvae.reference
    with pytest.raises(ValueError, match=r"\.onnx"):
        export_onnx(hvae.model, tmp_path / "model.bin", ref)
    with pytest.raises(FileNotFoundError, match="no folder"):
        export_onnx(hvae.model, tmp_path / "missing" / "m.onnx", ref)
    colour = build_model("hvae", PRESETS["hvae-natural"])
    with pytest.raises(ValueError, match="Bernoulli"):
        export_onnx(colour, tmp_path / "c.onnx", ref)
    assert not list(tmp_path.iterdir())
    bad = tmp_path / "x.onnx.json"
    bad.write_text(json.dumps({"format": "other"}))
    with pytest.raises(ValueError, match="not an hvaelab onnx sidecar"):
        read_sidecar(bad)


def test_export_cli_without_the_data_says_where_it_looked(tmp_path, monkeypatch, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("HVAELAB_DATA", str(empty))
    monkeypatch.setenv("HVAELAB_DATA_ONLY", "1")
    from hvaelab.data import clear_cache

    clear_cache()
    rc = cli_main(
        [
            "export-onnx",
            str(tmp_path / "m.onnx"),
            "--checkpoint",
            str(ROOT / "checkpoints" / "fashionmnist"),
        ]
    )
    err = capsys.readouterr().err
    clear_cache()
    assert rc == 2 and "Traceback" not in err
    assert "hvaelab export-onnx: error: dataset 'fashionmnist'" in err, err
    assert "not found in" in err and "hvaelab data" in err, err
    assert not (tmp_path / "m.onnx").exists()
    # a bad output or option stops before any work, in one line
    for args, needle in (
        ([str(tmp_path / "m.bin")], "must be a .onnx file"),
        ([str(tmp_path / "no" / "m.onnx")], "no folder"),
        ([str(tmp_path / "m.onnx"), "--reference-limit", "1"], "at least 2 images"),
    ):
        assert cli_main(["export-onnx", *args]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and needle in err, err
    assert not list(tmp_path.glob("m.*"))

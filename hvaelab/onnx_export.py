"""The detector as an ONNX graph with a JSON sidecar: scoring with onnxruntime and numpy alone.

``hvaelab export-onnx --checkpoint NAME OUT.onnx`` writes

* ``OUT.onnx``: the mean path of :mod:`hvaelab.mean_path` (appendix D) as one graph, opset
  :data:`OPSET`, weights inside the file. Input ``x``: the model's binarized input, float32
  (N, C, H, W) in {0, 1}, any N. Outputs (float32): ``rec`` (N, L+1) = rec>0..rec>L,
  ``kl`` (N, L) = the closed-form KL of z_1..z_L, ``llr`` (N, L) = the mean-path LLR>1..LLR>L
  (eq. 6) and ``reconstructions`` (N, L+1, C, H, W) for k = 0..L (figs. 1, 3);
* ``OUT.onnx.json``: the sidecar (:func:`sidecar`): the exact binarization, the outputs' meaning,
  the checkpoint's sha256, the in-distribution reference scores for empirical p-values, the
  verdict rule and the fitted second stage's parameters.

The graph is the library's own :func:`hvaelab.mean_path.mean_path_outputs` run on a copy of the
model whose weight-normalised layers are folded into plain ones (:func:`fold_weight_norm`: the
same float32 weights ``g * v / ||v||`` the library computes, so no norm is recomputed per run).
The Bernoulli log-likelihood is ``x * z - softplus(z)``
(:func:`hvaelab.model.likelihoods.bernoulli_log_prob`), which exports exactly.
:func:`score_with_sidecar` scores the graph's outputs with numpy and the sidecar alone, as the
example of the documentation's ONNX page (docs/guide/onnx.md) does.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import io
import json
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

import hvaelab

from .artifacts import atomic_write
from .mean_path import (
    SECOND_STAGE,
    MeanPathReference,
    llr_names,
    mean_path_outputs,
    pvalue,
    rec_names,
)
from .model import HierarchicalVAE, model_kind
from .model.layers import WNConv2d, WNConvTranspose2d, WNLinear, _WeightNorm
from .scores import tolerant_verdict
from .verdict import describe, verdict_names

OPSET = 18
SIDECAR_FORMAT = "hvaelab onnx sidecar"
SIDECAR_VERSION = 1
INPUT_NAME = "x"
OUTPUT_NAMES = ("rec", "kl", "llr", "reconstructions")
EXPORTERS = ("torchscript", "dynamo")


def sidecar_path(onnx_path: str | Path) -> Path:
    """Where the sidecar of ``OUT.onnx`` lives: ``OUT.onnx.json``."""
    p = Path(onnx_path)
    return p.with_name(p.name + ".json")


def require_onnx() -> None:
    """Raise ImportError, naming the extra, where onnx, onnxscript or onnxruntime is missing."""
    import importlib.util

    missing = [m for m in ("onnx", "onnxscript", "onnxruntime") if not importlib.util.find_spec(m)]
    if missing:
        raise ImportError(f"{', '.join(missing)} not installed")


# ------------------------------------------------------------------------ the graph
def _plain(m: _WeightNorm) -> nn.Module:
    """The torch layer computing what ``m`` computes, with its weight folded to a constant."""
    w = m._weight().detach().clone()
    b = m.b.detach().clone()
    if isinstance(m, WNConvTranspose2d):
        c_in, c_out, kh, kw = w.shape
        layer: nn.ConvTranspose2d | nn.Conv2d | nn.Linear = nn.ConvTranspose2d(
            c_in, c_out, (kh, kw), m.stride, m.padding, m.output_padding
        )
    elif isinstance(m, WNConv2d):
        c_out, c_in, kh, kw = w.shape
        layer = nn.Conv2d(c_in, c_out, (kh, kw), m.stride, m.padding)
    elif isinstance(m, WNLinear):
        layer = nn.Linear(w.shape[1], w.shape[0])
    else:  # pragma: no cover - every weight-normalised layer is one of the three
        raise TypeError(f"no plain layer for {type(m).__name__}")
    assert layer.bias is not None  # every plain layer is built with a bias
    with torch.no_grad():
        layer.weight.copy_(w)
        layer.bias.copy_(b)
    return layer.to(dtype=w.dtype, device=w.device)


@torch.no_grad()
def fold_weight_norm(model: HierarchicalVAE) -> HierarchicalVAE:
    """A copy of ``model`` in evaluation mode whose weight-normalised layers are plain
    ``Conv2d`` / ``ConvTranspose2d`` / ``Linear`` layers holding ``g * v / ||v||`` (computed
    by the layer itself, bit for bit). ``model`` is not touched."""
    folded = copy.deepcopy(model).eval()
    for parent in list(folded.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, _WeightNorm):
                parent._modules[name] = _plain(child)
    left = [n for n, m in folded.named_modules() if isinstance(m, _WeightNorm)]
    if left:  # pragma: no cover - a new layer type would need a plain twin
        raise TypeError(f"weight-normalised layers left after folding: {left}")
    return folded


class MeanPathGraph(nn.Module):
    """What the ONNX graph computes: :func:`hvaelab.mean_path.mean_path_outputs` of ``x``
    (binarized, model space) on a model, returned as (rec, kl, llr, reconstructions)."""

    def __init__(self, model: HierarchicalVAE) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        out = mean_path_outputs(self.model, x)
        assert out.reconstructions is not None  # computed unless asked not to
        return out.rec, out.kl, out.llr, out.reconstructions


def export_graph(
    model: HierarchicalVAE, opset: int = OPSET, exporter: str = "torchscript"
) -> bytes:
    """The serialized ONNX graph of the model's mean path (weight norm folded, dynamic batch,
    weights inside), checked with ``onnx.checker``. ``exporter``: ``"torchscript"`` (the
    default: exact, and 4.6 s where the dynamo exporter takes 46 s for the shipped BIVA; see
    benchmarks/onnx_bench.py) or ``"dynamo"`` (``torch.export``, the same numbers; for when
    PyTorch drops the TorchScript exporter, which it has deprecated)."""
    import onnx

    if exporter not in EXPORTERS:
        raise ValueError(f"exporter must be one of {EXPORTERS}, got {exporter!r}")
    if model.config.likelihood != "bernoulli":
        raise ValueError(
            "export-onnx exports the grey-scale Bernoulli models (binarized input); this model's "
            f"likelihood is {model.config.likelihood!r}"
        )
    graph = MeanPathGraph(fold_weight_norm(model).float().cpu()).eval()
    example = torch.zeros((2, *model.config.in_shape))  # N = 2: not specialised like 0 or 1
    names: dict[str, Any] = {"input_names": [INPUT_NAME], "output_names": list(OUTPUT_NAMES)}
    with torch.no_grad(), warnings.catch_warnings():
        # the TorchScript exporter's deprecation notice, and the tracer's notes on hvaelab's own
        # shape checks (they compare sizes that the graph keeps; tests run other batch sizes);
        # any other warning, a data-dependent branch elsewhere included, is shown
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning, module=r"hvaelab\.")
        if exporter == "dynamo":
            with contextlib.redirect_stdout(io.StringIO()):  # its progress lines
                program = torch.onnx.export(
                    graph,
                    (example,),
                    dynamo=True,
                    opset_version=opset,
                    external_data=False,
                    dynamic_shapes={INPUT_NAME: {0: torch.export.Dim("N")}},
                    verbose=False,
                    **names,
                )
            assert program is not None  # dynamo=True returns the program
            proto = program.model_proto
        else:
            buf = io.BytesIO()
            torch.onnx.export(
                graph,
                (example,),
                buf,  # type: ignore[arg-type]  # a file object is accepted, as documented
                dynamo=False,
                opset_version=opset,
                dynamic_axes={name: {0: "N"} for name in (INPUT_NAME, *OUTPUT_NAMES)},
                do_constant_folding=True,
                **names,
            )
            proto = onnx.load_from_string(buf.getvalue())
    onnx.checker.check_model(proto, full_check=True)
    return proto.SerializeToString()


# ------------------------------------------------------------------------ the sidecar
def _floats(a: np.ndarray) -> Any:
    """Nested lists of Python floats (float64 repr: exact round trip through JSON)."""
    return np.asarray(a, dtype=np.float64).tolist()


BINARIZATION = {
    "input": "uint8 grey images (N, 28, 28), 0 = black, 255 = white",
    "to_float": "x01 = float32(image) / 255, shape (N, 1, 28, 28)",
    "rule": (
        "fixed binarization keyed by each image's own content (hvaelab.data.binarize_fixed): "
        "with splitmix64(z) = [z += G; z = (z ^ z >> 30) * M1; z = (z ^ z >> 27) * M2; "
        "z ^ z >> 31] on uint64 with wrap-around, G = 0x9E3779B97F4A7C15, "
        "M1 = 0xBF58476D1CE4E5B9, M2 = 0x94D049BB133111EB; for one image with pixels x01[j], "
        "j = 0..783 in row-major order: pix[j] = splitmix64(j * G); bits[j] = the float32 bit "
        "pattern of x01[j] as an unsigned integer (after -0.0 -> 0.0); content = sum_j "
        "splitmix64(bits[j] ^ pix[j]) mod 2**64; key = splitmix64(content ^ splitmix64(seed)); "
        "u[j] = float32(splitmix64(key ^ pix[j]) >> 40) * 2**-24; x[j] = 1.0 if u[j] < x01[j] "
        "else 0.0"
    ),
    "python": "hvaelab.data.binarize_fixed(hvaelab.data.to_tensor(images), seed)",
    "constants": {
        "G": "0x9E3779B97F4A7C15",
        "M1": "0xBF58476D1CE4E5B9",
        "M2": "0x94D049BB133111EB",
    },
}


def sidecar(
    model: HierarchicalVAE,
    reference: MeanPathReference,
    onnx_bytes: bytes,
    onnx_name: str,
    checkpoint: dict[str, Any] | None = None,
    opset: int = OPSET,
    fpr: float = 0.05,
    exporter: str = "torchscript",
    verdict: str = "auto",
) -> dict[str, Any]:
    """The sidecar's content (see the module docstring); ``checkpoint``: name, weights_sha256
    and the card's training dataset where the model came from a checkpoint."""
    L = model.n_layers
    C, H, W = model.config.in_shape
    seed = int(reference.meta.get("seed", 0))
    stage = getattr(model, "second_stage", None)
    want = llr_names(L) + ([SECOND_STAGE] if stage is not None else [])
    if sorted(reference.scores) != sorted(want):
        raise ValueError(
            f"the reference holds {sorted(reference.scores)}, this model scores {want}: "
            "compute it with hvaelab.mean_path.mean_path_reference for this model"
        )
    rule, voted = verdict_names(verdict, L, reference.scores, means=reference.kl_means)
    out: dict[str, Any] = {
        "format": SIDECAR_FORMAT,
        "format_version": SIDECAR_VERSION,
        "hvaelab_version": hvaelab.__version__,
        "checkpoint": {"kind": model_kind(model), "n_layers": L, **(checkpoint or {})},
        "onnx": {
            "file": onnx_name,
            "sha256": hashlib.sha256(onnx_bytes).hexdigest(),
            "opset": opset,
            "exporter": f"torch.onnx, {exporter} exporter (torch {torch.__version__})",
            "weights": "inside the file; weight normalisation folded into plain weights",
        },
        "input": {
            "name": INPUT_NAME,
            "dtype": "float32",
            "shape": ["N", C, H, W],
            "values": "0.0 or 1.0: the binarized image (see preprocessing)",
        },
        "preprocessing": {**BINARIZATION, "seed": seed},
        "outputs": {
            "rec": {
                "shape": ["N", L + 1],
                "columns": rec_names(L),
                "meaning": "rec>k = log p(x|z) in nats, z above k at the posterior means, z_1..z_k "
                "at the conditional priors' means (appendix D; rec>L: every latent from the "
                "prior)",
            },
            "kl": {
                "shape": ["N", L],
                "columns": [f"kl{i}" for i in range(1, L + 1)],
                "meaning": "closed-form KL(q(z_i|.) || p(z_i|z_{i+1})) of each layer in nats, "
                "along the mean path (eq. 1's terms)",
            },
            "llr": {
                "shape": ["N", L],
                "columns": llr_names(L),
                "meaning": "mean-path LLR>k = rec>0 - rec>k - (kl1 + ... + klk), k = 1..L "
                "(eq. 6 with the mean-path bounds); higher = more out-of-distribution",
            },
            "reconstructions": {
                "shape": ["N", L + 1, C, H, W],
                "columns": [f"k={k}" for k in range(L + 1)],
                "meaning": "latent reconstructions: the Bernoulli means (pixel probabilities in "
                "[0, 1]) with the k lowest latents from the conditional prior (figs. 1, 3)",
            },
        },
        "pvalues": {
            "convention": "every score: higher = more out-of-distribution (upper tail)",
            "formula": "p = (1 + #{r in reference : r >= v - tie_tolerance}) / (n + 1)",
            "tie_tolerance": reference.tie_tolerance,
        },
        "verdict": {
            "scores": voted,
            "rule": rule,
            "how": "out-of-distribution iff min p(score) < fpr / K over these K scores "
            "(Bonferroni, sec. 5): "
            + describe(rule, voted, fpr)
            + "; every other p-value is reported, not voted (hvaelab.verdict)",
            "fpr": fpr,
        },
        "reference": {
            "what": "the mean-path scores of the model's in-distribution test images, sorted",
            **{k: v for k, v in reference.meta.items() if isinstance(v, str | int | float)},
            "n": reference.n,
            "scores": {name: _floats(v) for name, v in reference.scores.items()},
        },
        "second_stage": None,
    }
    if stage is not None:
        feats = [f"log1p(-rec>{k})" for k in range(L)] + [f"log1p(kl{i})" for i in range(1, L + 1)]
        out["second_stage"] = {
            "features": feats,
            "definition": "f = log1p(max(0, [-rec>0, ..., -rec>L-1, kl1, ..., klL])) in float64, "
            "z = (f - feature_mean) / feature_std; score = -log sum_j weights[j] * "
            "N(z; means[j], covariances[j]) (nats; higher = more out-of-distribution)",
            "feature_mean": _floats(stage.feature_mean),
            "feature_std": _floats(stage.feature_std),
            "min_std": stage.config.min_std,
            "weights": _floats(stage.mixture.weights),
            "means": _floats(stage.mixture.means),
            "covariances": _floats(stage.mixture.covariances),
            "record": stage.record,
        }
    return out


def dumps(obj: Any, indent: str = "") -> str:
    """JSON with one key per line and every list of scalars on one line (the sidecar: readable
    keys, compact arrays); floats as Python writes them, so they read back exactly."""
    if isinstance(obj, dict) and obj:
        inner = indent + "  "
        items = [f"{inner}{json.dumps(str(k))}: {dumps(v, inner)}" for k, v in obj.items()]
        return "{\n" + ",\n".join(items) + "\n" + indent + "}" + ("" if indent else "\n")
    if isinstance(obj, list) and obj and not _compact(obj):
        inner = indent + "  "
        return "[\n" + ",\n".join(inner + dumps(v, inner) for v in obj) + "\n" + indent + "]"
    return json.dumps(obj, allow_nan=False)


def _compact(obj: Any) -> bool:
    """A list of scalars (or of such lists): written on one line."""
    if isinstance(obj, list):
        return all(_compact(v) for v in obj)
    return obj is None or isinstance(obj, str | int | float)


def read_sidecar(path: str | Path) -> dict[str, Any]:
    """Read an ``OUT.onnx.json`` written by :func:`export_onnx` (clear error otherwise)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ValueError(f"{path} is not a readable sidecar ({e})") from e
    if not isinstance(data, dict) or data.get("format") != SIDECAR_FORMAT:
        raise ValueError(f"{path} is not an {SIDECAR_FORMAT} (written by hvaelab export-onnx)")
    return data


# ------------------------------------------------------------------------ numpy scoring
def score_with_sidecar(
    outputs: dict[str, np.ndarray], side: dict[str, Any], fpr: float | None = None
) -> dict[str, Any]:
    """Scores, p-values and verdict of the graph's ``outputs`` (by output name) from the
    sidecar's numbers alone (no model, no torch): what the ONNX page's example computes, here
    with the library's own numpy pieces (second-stage features and mixture, p-values, verdict).
    """
    from .second_stage import Mixture, features

    L = side["checkpoint"]["n_layers"]
    fpr = side["verdict"]["fpr"] if fpr is None else fpr
    tol = side["pvalues"]["tie_tolerance"]
    ref = {name: np.asarray(v) for name, v in side["reference"]["scores"].items()}  # sorted
    llr = np.asarray(outputs["llr"], np.float64)
    scores = {name: llr[:, j] for j, name in enumerate(side["outputs"]["llr"]["columns"])}
    stage = side.get("second_stage")
    if stage is not None:
        rec, kl = np.asarray(outputs["rec"], np.float64), np.asarray(outputs["kl"], np.float64)
        columns = {name: rec[:, k] for k, name in enumerate(rec_names(L))}
        columns |= {f"kl{i}": kl[:, i - 1] for i in range(1, L + 1)}
        z = (features(columns, L) - np.asarray(stage["feature_mean"])) / np.asarray(
            stage["feature_std"]
        )
        mixture = Mixture(*(np.asarray(stage[k]) for k in ("weights", "means", "covariances")))
        scores[SECOND_STAGE] = -mixture.log_density(z)
    p = {name: pvalue(ref[name], v, tol) for name, v in scores.items()}
    voted = side["verdict"]["scores"]
    v = tolerant_verdict(ref, scores, voted, tol, fpr)
    return {
        "scores": scores,
        "p_values": p,
        "min_p": v.min_p,
        "decisive": [voted[i] for i in v.decisive],
        "threshold": v.threshold,
        "is_ood": v.is_ood,
    }


def onnx_session(path_or_bytes: str | Path | bytes, threads: int = 1):
    """An onnxruntime CPU session of an exported graph with ``threads`` intra-op threads."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    src = path_or_bytes if isinstance(path_or_bytes, bytes) else str(path_or_bytes)
    return ort.InferenceSession(src, opts, providers=["CPUExecutionProvider"])


def run_onnx(session, x: np.ndarray | Tensor, batch_size: int = 256) -> dict[str, np.ndarray]:
    """The graph's outputs by name for binarized inputs ``x`` (N, C, H, W), in batches."""
    x = np.ascontiguousarray(np.asarray(x, dtype=np.float32))
    parts = [
        session.run(list(OUTPUT_NAMES), {INPUT_NAME: x[a : a + batch_size]})
        for a in range(0, len(x), batch_size)
    ]
    return {name: np.concatenate([p[j] for p in parts]) for j, name in enumerate(OUTPUT_NAMES)}


def compare_with_torch(
    onnx_bytes: bytes, model: HierarchicalVAE, images: Tensor | np.ndarray, seed: int = 0
) -> dict[str, float]:
    """Largest differences between onnxruntime and the library on ``images``: relative for the
    statistics (``|a - b| / max(|b|, 1 nat)`` for rec>k and the KLs; for LLR>k, relative to the
    terms it is the difference of, ``|rec>0| + |rec>k| + sum_{i<=k} |kl_i|``), absolute for the
    reconstructions; and how many output values are not finite."""
    from .mean_path import run_mean_path

    ref, x01 = run_mean_path(model, images, seed)
    got = run_onnx(onnx_session(onnx_bytes), x01.numpy())
    rec, kl = ref.rec.double().numpy(), ref.kl.double().numpy()
    scale = {
        "rec": np.maximum(np.abs(rec), 1.0),
        "kl": np.maximum(np.abs(kl), 1.0),
        "llr": np.abs(rec[:, :1]) + np.abs(rec[:, 1:]) + np.cumsum(np.abs(kl), 1),
        "reconstructions": 1.0,
    }
    out: dict[str, float] = {"n": int(x01.shape[0]), "not_finite": 0}
    for name in OUTPUT_NAMES:
        want = getattr(ref, name).numpy().astype(np.float64)
        err = float((np.abs(got[name] - want) / scale[name]).max())
        out["not_finite"] += int((~np.isfinite(got[name])).sum())
        out["reconstructions_max_abs" if name == "reconstructions" else f"{name}_max_rel"] = err
    return out


def _check_out(out: str | Path, fpr: float) -> Path:
    """The output path, checked before any work: a .onnx file in an existing folder."""
    out = Path(out)
    if not 0 < fpr < 1:
        raise ValueError(f"fpr must be in (0, 1), got {fpr}")
    if out.suffix != ".onnx":
        raise ValueError(f"the output must be a .onnx file, got {out}")
    if not out.parent.is_dir():
        raise FileNotFoundError(f"no folder {out.parent} to write {out.name} into")
    return out


@dataclass
class ExportResult:
    """What :func:`export_onnx` wrote and how long it took."""

    onnx_path: Path
    sidecar_path: Path
    onnx_bytes: int
    export_seconds: float  # the graph only (trace, export, check)
    sidecar: dict[str, Any]

    def summary(self) -> str:
        """A few lines for the command line."""
        ref, side = self.sidecar["reference"], self.sidecar
        lines = [
            f"wrote {self.onnx_path} (opset {side['onnx']['opset']}, "
            f"{self.onnx_bytes / 2**20:.1f} MiB, exported in {self.export_seconds:.1f} s)",
            f"wrote {self.sidecar_path} (reference: the mean path of {ref['n']} "
            f"{ref.get('dataset', 'in-distribution')}/{ref.get('split', 'test')} images; "
            f"second stage: {'yes' if side['second_stage'] else 'none fitted'})",
        ]
        check = side.get("check")
        if check:
            lines.append(
                f"onnxruntime against PyTorch on {check['n']} of them: statistics within "
                f"{max(check['rec_max_rel'], check['kl_max_rel'], check['llr_max_rel']):.1e} "
                f"relative, reconstructions within {check['reconstructions_max_abs']:.1e}, "
                f"{check['not_finite']} values not finite"
            )
        return "\n".join(lines)


def export_onnx(
    model: HierarchicalVAE,
    out: str | Path,
    reference: MeanPathReference,
    checkpoint: dict[str, Any] | None = None,
    opset: int = OPSET,
    fpr: float = 0.05,
    check_images: Tensor | np.ndarray | None = None,
    exporter: str = "torchscript",
) -> ExportResult:
    """Write ``out`` (the graph) and ``out.json`` (its sidecar), each atomically; ``reference``
    is the in-distribution reference (:func:`hvaelab.mean_path.reference_from_dataset`).
    ``check_images``: inputs run through onnxruntime and the library before anything is
    written, the differences recorded in the sidecar's ``check``."""
    out = _check_out(out, fpr)
    t0 = time.perf_counter()
    data = export_graph(model, opset, exporter)
    seconds = time.perf_counter() - t0
    side = sidecar(model, reference, data, out.name, checkpoint, opset, fpr, exporter)
    if check_images is not None:
        seed = int(reference.meta.get("seed", 0))
        side["check"] = compare_with_torch(data, model, check_images, seed)
    atomic_write(out, data)
    side_path = atomic_write(sidecar_path(out), dumps(side))
    return ExportResult(out, side_path, len(data), seconds, side)


def export_checkpoint(
    checkpoint: str | Path,
    out: str | Path,
    data_dir: str | None = None,
    limit: int | None = None,
    fpr: float = 0.05,
    progress: Callable[[str], None] | None = None,
    n_check: int = 256,
    exporter: str = "torchscript",
    reference_data: str | None = None,
) -> ExportResult:
    """``hvaelab export-onnx``: the checkpoint's graph and sidecar, with the reference computed
    on the checkpoint's own in-distribution test split (``limit``: a seeded subset), read
    through :mod:`hvaelab.data` (a missing dataset is its error, saying where it looked).
    ``reference_data``: another registered name for that same distribution's test images (a
    local copy or excerpt, e.g. the tests' fixture); the sidecar records which was used."""
    from .checkpoint import load_model
    from .mean_path import mean_path_reference
    from .scores import dataset_images

    require_onnx()  # before a minute of scoring the reference
    _check_out(out, fpr)
    if limit is not None and limit < 2:
        raise ValueError(f"the reference needs at least 2 images, got --reference-limit {limit}")
    say = progress or (lambda _m: None)
    lm = load_model(checkpoint)
    dataset = reference_data or lm.dataset
    if not dataset:
        raise ValueError(f"{lm.path}.json does not say which dataset the model was trained on")
    images, meta = dataset_images(dataset, "test", data_dir, limit)
    say(f"reference: the mean path of {len(images)} {dataset}/test images")
    reference = mean_path_reference(lm.model, images, meta)
    info = {
        "name": lm.name,
        "weights_sha256": lm.card.get("weights_sha256"),
        "train_dataset": dataset,
        "epochs": lm.card.get("epochs_done"),
    }
    say("exporting the graph")
    return export_onnx(lm.model, out, reference, info, OPSET, fpr, images[:n_check], exporter)


__all__ = [
    "EXPORTERS",
    "OPSET",
    "ExportResult",
    "MeanPathGraph",
    "export_graph",
    "compare_with_torch",
    "export_checkpoint",
    "export_onnx",
    "fold_weight_norm",
    "onnx_session",
    "run_onnx",
    "read_sidecar",
    "score_with_sidecar",
    "sidecar",
    "sidecar_path",
]

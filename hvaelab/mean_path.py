"""The mean path of appendix D as one deterministic computation, and the report of inputs on it.

Along the mean path (every latent at its posterior mean above k, at its conditional prior's mean
below k + 1; no sampling), an input x gives, with the statistics of :mod:`hvaelab.example_stats`:

* ``rec>k`` (k = 0..L): ``log p(x | z)`` from the latents above k (``rec>L``: every latent at its
  prior mean; not a second-stage input, it completes LLR>L);
* ``kl<i>`` (i = 1..L): the closed-form KL of layer i (eq. 1's terms at the mean path);
* the mean-path bounds ``L = rec>0 - sum_i kl_i`` (eq. 1) and ``L>k = rec>k - sum_{i>k} kl_i``
  (eq. 5: the layers above k keep their KL terms, which along the mean path equal the ELBO pass's
  because their priors see only posterior means), hence the mean-path ratio (eq. 6)
  ``LLR>k = L - L>k = rec>0 - rec>k - sum_{i<=k} kl_i`` for k = 1..L;
* the latent reconstructions for every k (figs. 1, 3: the likelihood's mean image).

:func:`mean_path_outputs` is that computation on a batch in model space, written once: the
library's report and the exported ONNX graph (:mod:`hvaelab.onnx_export`) both run it, so they
can be compared number for number. :func:`mean_path_report` turns it into a decision for new
inputs: every mean-path LLR>k and the second stage's score (:mod:`hvaelab.second_stage`, when the
model has one) with empirical p-values against an in-distribution :class:`MeanPathReference`, and
hvaelab's Bonferroni verdict over k (sec. 5; :func:`hvaelab.pvalues.verdict`, as
:func:`hvaelab.scores.decide`). It is the one reference the ONNX path (and a browser) is checked
against. These are deterministic scores of their own: the stored score tables' LLR>k average
sampled posteriors, so their references are not interchangeable.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .model import HierarchicalVAE, eval_mode, model_inputs
from .pvalues import empirical_pvalue
from .score_names import ScoreName, llr_names  # llr_names(L): LLR>1 .. LLR>L, every k
from .scores import TIE_RTOL, tolerant_verdict
from .second_stage import SCORE_COLUMN as SECOND_STAGE
from .verdict import verdict_names


def rec_names(n_layers: int) -> list[str]:
    """Names of the reconstruction terms, ``rec>0 .. rec>L``."""
    return [f"rec>{k}" for k in range(n_layers + 1)]


# --------------------------------------------------------------------------- the computation
@dataclass
class MeanPathOutputs:
    """The mean path of a batch of N inputs (see the module docstring), float32."""

    rec: Tensor  # (N, L + 1): rec>0 .. rec>L in nats
    kl: Tensor  # (N, L): closed-form KL of z_1 .. z_L in nats
    llr: Tensor  # (N, L): mean-path LLR>1 .. LLR>L in nats (eq. 6)
    # (N, L + 1, C, H, W): likelihood means in [0, 1], k = 0..L (None where not kept)
    reconstructions: Tensor | None

    @property
    def n_layers(self) -> int:
        return self.kl.shape[1]

    def stats(self) -> dict[str, np.ndarray]:
        """Every statistic by name (``rec>0..rec>L``, ``kl1..klL``), float64 (N,) arrays: the
        second stage's inputs (:func:`hvaelab.example_stats.stat_names`) and ``rec>L``."""
        L = self.n_layers
        rec, kl = self.rec.double().cpu().numpy(), self.kl.double().cpu().numpy()
        out = {name: rec[:, k] for k, name in enumerate(rec_names(L))}
        out.update({f"kl{i}": kl[:, i - 1] for i in range(1, L + 1)})
        return out


def mean_path_llr(rec: Tensor, kl: Tensor) -> Tensor:
    """(N, L) ``LLR>k = rec>0 - rec>k - sum_{i<=k} kl_i`` (k = 1..L) from ``rec`` (N, L + 1)
    and ``kl`` (N, L): eq. 6 with the mean-path bounds of eqs. 1 and 5."""
    return rec[:, :1] - rec[:, 1:] - torch.cumsum(kl, dim=1)


def mean_path_outputs(model: HierarchicalVAE, x: Tensor) -> MeanPathOutputs:
    """The mean path of a batch ``x`` in model space (what ``forward`` takes): the same passes
    as :func:`hvaelab.example_stats.mean_path_stats` (one of the inference network, one
    top-down pass per k) plus the pass of k = L. Traceable: the ONNX graph is this function."""
    cache = model.encode_means(x)
    recs, images = [], []
    kl: Tensor | None = None
    for k in range(model.n_layers + 1):
        res = model(x, k=k, posterior="mean", prior="mean", cache=cache)
        recs.append(res.log_px)
        images.append(res.reconstruction())
        if k == 0:
            kls = []
            for layer in res.layers:
                assert layer.posterior is not None
                kls.append(layer.posterior.kl(layer.prior))
            kl = torch.stack(kls, dim=1)
    assert kl is not None
    rec = torch.stack(recs, dim=1)
    return MeanPathOutputs(rec, kl, mean_path_llr(rec, kl), torch.stack(images, dim=1))


@torch.no_grad()
def run_mean_path(
    model: HierarchicalVAE,
    images: Tensor | np.ndarray,
    seed: int = 0,
    batch_size: int = 256,
    reconstructions: bool = True,
) -> tuple[MeanPathOutputs, Tensor]:
    """The mean path of images as users hold them (uint8 (N, 28, 28) or floats in [0, 1]),
    through the model's door (fixed binarization keyed by content and ``seed``), in batches, in
    float32 and evaluation mode; returns (outputs on the CPU, the model's inputs in [0, 1]).
    ``reconstructions=False`` drops the images (a reference of 10,000 inputs needs none)."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    door = model_inputs(model, images, "fixed", seed)
    parts: list[list[Tensor]] = []
    with eval_mode(model), torch.autocast(door.x.device.type, enabled=False):
        for a in range(0, door.x.shape[0], batch_size):
            o = mean_path_outputs(model, door.x[a : a + batch_size])
            keep = o.reconstructions if reconstructions else None
            keep = o.llr[:, :0] if keep is None else keep
            parts.append([t.cpu() for t in (o.rec, o.kl, o.llr, keep)])
    rec, kl, llr, images_k = (torch.cat(c) for c in zip(*parts, strict=True))
    return MeanPathOutputs(rec, kl, llr, images_k if reconstructions else None), door.x01.cpu()


def second_stage_scores(model: HierarchicalVAE, out: MeanPathOutputs) -> np.ndarray | None:
    """The second stage's score of the outputs' statistics (None for a model without one)."""
    stage = getattr(model, "second_stage", None)
    return None if stage is None else stage.score(out.stats())


# --------------------------------------------------------------------------- the reference
@dataclass
class MeanPathReference:
    """In-distribution reference of the mean-path scores: each score's values over the
    reference images, sorted (``LLR>1..LLR>L``, and ``second-stage`` for a model with one), and
    the tie tolerance of the p-values (``TIE_RTOL * (1 + the largest magnitude)``, as
    :func:`hvaelab.scores.tie_tolerance`). ``meta``: which images (dataset, split, md5, n)."""

    scores: dict[str, np.ndarray]
    tie_tolerance: float
    meta: dict[str, Any] = field(default_factory=dict)
    # each layer's mean KL over the reference images: which layers are active (hvaelab.verdict)
    kl_means: list[float] | None = None

    @property
    def n(self) -> int:
        return len(next(iter(self.scores.values())))


def mean_path_reference(
    model: HierarchicalVAE,
    images: Tensor | np.ndarray,
    meta: dict[str, Any] | None = None,
    seed: int = 0,
    batch_size: int = 256,
) -> MeanPathReference:
    """The reference of in-distribution ``images`` (its test split: the caller's promise, which
    ``meta`` records). Only in-distribution data belongs here: the p-values mean "how unusual
    for the training distribution"."""
    out, _ = run_mean_path(model, images, seed, batch_size, reconstructions=False)
    return reference_from_outputs(model, out, meta, seed)


def reference_from_outputs(
    model: HierarchicalVAE,
    out: MeanPathOutputs,
    meta: dict[str, Any] | None = None,
    seed: int = 0,
) -> MeanPathReference:
    """:func:`mean_path_reference` from the mean path of the images (binarized with ``seed``)."""
    if out.rec.shape[0] < 2:
        raise ValueError("a reference needs at least 2 in-distribution images")
    llr = out.llr.double().numpy()
    scores = {name: np.sort(llr[:, j]) for j, name in enumerate(llr_names(model.n_layers))}
    stage = second_stage_scores(model, out)
    if stage is not None:
        scores[SECOND_STAGE] = np.sort(stage)
    bad = [name for name, v in scores.items() if not np.isfinite(v).all()]
    if bad:
        raise ValueError(f"the reference scores {bad} are not finite; check the model")
    scale = max(
        float(out.rec.double().abs().max()),
        float(out.kl.double().abs().max()),
        *(float(np.abs(v).max()) for v in scores.values()),
    )
    info = {"seed": seed, "n": int(out.rec.shape[0]), **(meta or {})}
    kl = [float(m) for m in out.kl.double().mean(0)]
    return MeanPathReference(scores, TIE_RTOL * (1.0 + scale), info, kl)


def reference_from_dataset(
    model: HierarchicalVAE,
    dataset: str,
    split: str = "test",
    data_dir: str | None = None,
    limit: int | None = None,
    batch_size: int = 256,
) -> MeanPathReference:
    """:func:`mean_path_reference` of a registered dataset (the model's own in-distribution
    set); a missing dataset raises :mod:`hvaelab.data`'s error, which says where it looked."""
    from .scores import dataset_images

    images, meta = dataset_images(dataset, split, data_dir, limit)
    return mean_path_reference(model, images, meta, batch_size=batch_size)


def pvalue(reference_sorted: np.ndarray, values: np.ndarray, tol: float) -> np.ndarray:
    """Upper-tail empirical p-value with ties up to ``tol`` (higher = more OOD):
    ``(1 + #{r >= v - tol}) / (n + 1)``, as :func:`hvaelab.scores.score_inputs`."""
    return empirical_pvalue(reference_sorted, np.asarray(values, np.float64) - tol, "upper")


# --------------------------------------------------------------------------- the report
@dataclass
class MeanPathReport:
    """The mean-path scores of N inputs, their p-values and verdict (see the module docstring).

    Every array is (N,) unless stated; ``p_values`` and the verdict are None without a
    reference."""

    names: list[str]
    model_input: np.ndarray  # (N, C, H, W) float32: what the model (and the ONNX graph) sees
    stats: dict[str, np.ndarray]  # rec>0..rec>L, kl1..klL (nats)
    llr: dict[str, np.ndarray]  # mean-path LLR>1..LLR>L (nats; higher = more OOD)
    second_stage: np.ndarray | None  # the second stage's score, None without one
    reconstructions: np.ndarray  # (N, L + 1, C, H, W): k = 0..L
    fpr: float
    p_values: dict[str, np.ndarray] | None = None  # each LLR>k (and second-stage)
    verdict_scores: list[str] = field(default_factory=list)  # hvaelab.verdict's choice
    is_ood: np.ndarray | None = None  # any of their p-values below fpr / K (Bonferroni)
    decisive: list[str] | None = None  # the score with the smallest p-value
    min_p: np.ndarray | None = None
    threshold: float | None = None  # fpr / K
    rule: str = "llr"  # "second-stage" or the paper's "llr" (hvaelab.verdict)

    def scores(self) -> dict[str, np.ndarray]:
        """Every score by name (higher = more OOD): LLR>k and, with one, the second stage's."""
        out = dict(self.llr)
        if self.second_stage is not None:
            out[SECOND_STAGE] = self.second_stage
        return out


def decide_mean_path(
    report: MeanPathReport, reference: MeanPathReference, fpr: float, rule: str = "auto"
) -> MeanPathReport:
    """Set the report's p-values and verdict: empirical upper-tail p-values with ties up to the
    reference's tolerance, OOD iff one of the scores :func:`hvaelab.verdict.verdict_names`
    chooses for ``rule`` has ``p < fpr / K`` (Bonferroni, sec. 5)."""
    if not 0 < fpr < 1:
        raise ValueError(f"fpr must be in (0, 1), got {fpr}")
    for name in report.scores():
        if ScoreName.parse(name).tail != "upper":  # hvaelab's convention, held here
            raise AssertionError(f"{name} is not an upper-tail score")
    missing = [s for s in report.scores() if s not in reference.scores]
    if missing:
        raise ValueError(f"the reference has no {', '.join(missing)}: rebuild it for this model")
    tol = reference.tie_tolerance
    report.p_values = {s: pvalue(reference.scores[s], v, tol) for s, v in report.scores().items()}
    L = len(report.llr)
    report.rule, names = verdict_names(rule, L, reference.scores, means=reference.kl_means)
    v = tolerant_verdict(reference.scores, report.scores(), names, tol, fpr)
    report.verdict_scores = names
    report.is_ood, report.min_p = np.asarray(v.is_ood), np.asarray(v.min_p)
    report.decisive = [names[j] for j in v.decisive]
    report.fpr, report.threshold = fpr, v.threshold
    return report


def mean_path_report(
    model: HierarchicalVAE,
    images: Tensor | np.ndarray,
    reference: MeanPathReference | None,
    fpr: float = 0.05,
    names: list[str] | None = None,
    batch_size: int = 256,
    rule: str = "auto",
) -> MeanPathReport:
    """The :class:`MeanPathReport` of images (one uint8 (28, 28) image, or a batch as
    :func:`hvaelab.model.model_inputs` takes them), binarized with the reference's seed."""
    arr = images
    if isinstance(arr, np.ndarray) and arr.ndim == 2:
        arr = arr[None]
    seed = int(reference.meta.get("seed", 0)) if reference is not None else 0
    out, x01 = run_mean_path(model, arr, seed, batch_size)
    return report_from_outputs(model, out, x01, reference, fpr, names, rule)


def report_from_outputs(
    model: HierarchicalVAE,
    out: MeanPathOutputs,
    x01: Tensor,
    reference: MeanPathReference | None,
    fpr: float = 0.05,
    names: list[str] | None = None,
    rule: str = "auto",
) -> MeanPathReport:
    """:func:`mean_path_report` from the mean path ``out`` of the model's inputs ``x01``."""
    if out.reconstructions is None:
        raise ValueError("the report shows reconstructions: run the mean path with them")
    n = out.rec.shape[0]
    names = names or [f"input {i}" for i in range(n)]
    if len(names) != n:
        raise ValueError(f"{len(names)} names for {n} inputs")
    llr = out.llr.double().numpy()
    report = MeanPathReport(
        names=names,
        model_input=x01.numpy(),
        stats=out.stats(),
        llr={name: llr[:, j] for j, name in enumerate(llr_names(model.n_layers))},
        second_stage=second_stage_scores(model, out),
        reconstructions=out.reconstructions.numpy(),
        fpr=fpr,
    )
    if reference is None:
        return report
    return decide_mean_path(report, reference, fpr, rule)


__all__ = [
    "MeanPathOutputs",
    "MeanPathReference",
    "MeanPathReport",
    "decide_mean_path",
    "llr_names",
    "mean_path_llr",
    "mean_path_outputs",
    "mean_path_reference",
    "mean_path_report",
    "pvalue",
    "rec_names",
    "reference_from_dataset",
    "reference_from_outputs",
    "report_from_outputs",
    "run_mean_path",
    "second_stage_scores",
]

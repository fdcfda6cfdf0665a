"""Everything the pages show about ONE input: its scores, reconstructions and per-layer KL.

A drawn image, an upload or a test image picked from a strip gets one :class:`ExampleReport`,
and every linked view (reconstructions for each k, the per-layer KL, markers on densities and
ROC curves, the verdict) is drawn from it, so the views cannot disagree:

* ``scores``: :func:`hvaelab.scores.score_inputs`, the one scoring entry point, against the
  in-distribution reference table: every score (ELBO, L>k, LLR>k of eq. 6, ...), its empirical
  p-value, and the Bonferroni verdict over LLR>k (sec. 5);
* ``reconstructions``: :func:`hvaelab.latents.latent_reconstructions` for every k = 0..L with
  posterior and conditional-prior means (figs. 1, 3): what the model keeps of the input when the
  k lowest latents come from the prior (the pass of L>k, eq. 5);
* ``layer_kl``: the closed-form KL(q(z_i|.) || p(z_i|z_{i+1})) of each layer along the mean path
  (the terms of eq. 4, :mod:`hvaelab.example_stats`), comparable with the reference table's
  ``kl<i>`` columns: which layer finds the input unusual (sec. 4.1).

The image goes through the model's one input door (checks, binarization keyed by its content,
as in the reference table), so the same array always gives the same report.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .latents import LatentReconstructions, latent_reconstructions
from .model import HierarchicalVAE
from .scores import InputScores, ScoreTable, score_inputs


@dataclass
class ExampleReport:
    """One input's scores, latent reconstructions and per-layer KL (see the module docstring)."""

    name: str
    image: np.ndarray  # uint8 (28, 28) grey or (32, 32, 3) colour: the input as given
    model_input: np.ndarray  # float32 (C, H, W) in [0, 1]: what the model sees (binarized?)
    scores: InputScores  # one input: every score, p-values and the verdict
    reconstructions: LatentReconstructions  # k = 0..L, means
    layer_kl: np.ndarray  # (L,) closed-form KL of layers z_1..z_L in nats (mean path)

    @property
    def is_ood(self) -> bool | None:
        """The verdict at the report's FPR (None without a reference table)."""
        return None if self.scores.is_ood is None else bool(self.scores.is_ood[0])

    def score(self, name: str) -> float:
        """The value of score ``name`` (higher = more OOD)."""
        return float(self.scores.scores[name][0])

    def p_value(self, name: str) -> float | None:
        """The p-value of score ``name`` against the reference (None without one)."""
        p = (self.scores.p_values or {}).get(name)
        return None if p is None else float(p[0])


def reference_layer_kl(reference: ScoreTable) -> np.ndarray:
    """(N, L) per-layer KL of the reference table's inputs (its ``kl<i>`` columns)."""
    cols = [f"kl{i}" for i in range(1, reference.n_layers + 1)]
    missing = [c for c in cols if c not in reference.columns]
    if missing:
        raise ValueError(
            f"the reference table has no per-layer KL ({', '.join(missing)} missing); "
            "recompute it with `hvaelab tables`"
        )
    return np.stack([np.asarray(reference.columns[c], dtype=np.float64) for c in cols], 1)


def example_report(
    model: HierarchicalVAE,
    image: np.ndarray,
    reference: ScoreTable | None,
    name: str = "input",
    fpr: float = 0.05,
    iw_form: str = "iw-both",
    lt: bool | None = None,
) -> ExampleReport:
    """The :class:`ExampleReport` of one uint8 image (28x28 grey, or 32x32x3 for a colour
    model), scored against ``reference`` like :func:`hvaelab.scores.score_inputs` (``lt=False``:
    without the L<l bounds)."""
    arr = np.asarray(image)
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[-1] != 3):
        raise ValueError(
            f"example_report takes ONE image (28, 28) or (32, 32, 3), got shape {arr.shape}"
        )
    batch = arr[None]
    scores = score_inputs(model, batch, reference, fpr=fpr, names=[name], iw_form=iw_form, lt=lt)
    seed = int(reference.meta.get("seed", 0)) if reference is not None else 0
    recs = latent_reconstructions(model, batch, mode="mean", binarize_seed=seed)
    L = model.n_layers
    kl = np.array([float(scores.stats[f"kl{i}"][0]) for i in range(1, L + 1)])
    model_input = recs.inputs[0].to(torch.float32).numpy()
    return ExampleReport(name, arr, model_input, scores, recs, kl)


__all__ = ["ExampleReport", "example_report", "reference_layer_kl"]

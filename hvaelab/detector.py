"""An OOD detector with the usual ``fit`` / ``predict`` face, over :mod:`hvaelab.scores`.

Paper: Havtorn et al., "Hierarchical VAEs Know What They Don't Know", ICML 2021,
https://arxiv.org/abs/2102.08248. For an HVAE with latents ``z_1..z_L`` the bound of eq. 5,

    L^{>k}(x) = E_{p(z_{<=k} | z_{>k}) q(z_{>k} | x)} [ log p(x | z) p(z_{>k}) / q(z_{>k} | x) ],

takes the k lowest latents from the conditional prior instead of the approximate posterior
(``L^{>0}`` is the ELBO). The log likelihood ratio of eq. 6,

    LLR^{>k}(x) = ELBO(x) - L^{>k}(x),

is high when x is reconstructed from the latents above k much worse than from all of them,
i.e. when x is semantically out-of-distribution. Sign convention (as everywhere in hvaelab): a
HIGHER score means MORE out-of-distribution; bounds enter negated (``-ELBO``, ``-L>k``).

:class:`HVAEDetector` picks one score by name (any name :func:`hvaelab.scores.ood_scores` gives
for the chosen number of importance samples S), is fitted on in-distribution data (its score
table is the empirical reference), and then gives per input the score
(:meth:`~HVAEDetector.predict`), its empirical p-value against the reference
(:meth:`~HVAEDetector.p_values`) and the decision (:meth:`~HVAEDetector.verdict`, by
:mod:`hvaelab.verdict`'s rule: the second stage where the checkpoint has one, else the paper's
Bonferroni over LLR^{>k}, sec. 5). All scoring is done by :func:`hvaelab.scores.score_tensor`
and :func:`hvaelab.scores.score_inputs`; this module only wires them together.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .checkpoint import LoadedModel, load_model
from .model import HierarchicalVAE
from .score_names import llr_names, table_scores
from .scores import (
    InputScores,
    ScoreTable,
    load_tables,
    ood_scores,
    reference_key,
    score_dataset,
    score_inputs,
    score_tensor,
    tables_path,
)
from .verdict import RULES

__all__ = ["HVAEDetector", "NotFittedError", "valid_scores"]

Images = Tensor | np.ndarray


class NotFittedError(RuntimeError):
    """A detector was asked for scores before it was given an in-distribution reference."""


def valid_scores(n_layers: int, samples: int = 1, second_stage: bool = False) -> list[str]:
    """The score names :func:`~hvaelab.scores.ood_scores` gives for a table of an ``n_layers``
    model scored with ``samples`` importance samples (every k and l, input complexity, and the
    second stage for a model that has one; see :mod:`hvaelab.score_names`)."""
    lts = range(1, n_layers + 1)
    names = table_scores(n_layers, samples > 1, lts, ic=True, second_stage=second_stage)
    return [str(n) for n in names]


class HVAEDetector:
    """OOD detector from a hierarchical VAE: one named score, an in-distribution reference.

    ``checkpoint_or_model`` is a checkpoint name or path (loaded with
    :func:`hvaelab.checkpoint.load_model` onto ``device``), a loaded checkpoint, or an
    :class:`~hvaelab.model.HVAE`. ``score`` is an OOD score name (``"-ELBO"``, ``"LLR>1"``,
    ``"LLR_S>1 iw-both"`` when ``samples > 1``, ``"LLR>2<1"``, ...); ``samples`` is the number
    of importance samples S; ``iw_form`` which ``LLR_S>k`` the verdict uses when S > 1;
    ``rule`` the verdict's rule (:mod:`hvaelab.verdict`): ``"auto"`` (the second stage where
    the checkpoint has one, else the paper's), ``"second-stage"`` or ``"llr"`` (the paper's
    Bonferroni over LLR>k). Higher scores mean more out-of-distribution.
    """

    def __init__(
        self,
        checkpoint_or_model: HierarchicalVAE | str | os.PathLike[str] | object,
        score: str = "LLR>1",
        samples: int = 1,
        *,
        iw_form: str = "iw-both",
        batch_size: int = 128,
        device: str | torch.device = "cpu",
        rule: str = "auto",
    ) -> None:
        if isinstance(samples, bool) or not isinstance(samples, int | np.integer) or samples < 1:
            raise ValueError(f"samples must be a positive integer (S >= 1), got {samples!r}")
        self.checkpoint: LoadedModel | None = None
        if isinstance(checkpoint_or_model, HierarchicalVAE):
            self.model = checkpoint_or_model
        elif isinstance(checkpoint_or_model, LoadedModel):
            self.checkpoint, self.model = checkpoint_or_model, checkpoint_or_model.model
        elif isinstance(checkpoint_or_model, str | os.PathLike):
            self.checkpoint = load_model(checkpoint_or_model, device=device)
            self.model = self.checkpoint.model
        else:
            raise TypeError(
                "expected a checkpoint name or path, a loaded checkpoint or a model (HVAE, BIVA), "
                f"got {type(checkpoint_or_model).__name__}"
            )
        self.samples = int(samples)
        has_stage = getattr(self.model, "second_stage", None) is not None
        self.valid_scores = valid_scores(self.model.n_layers, self.samples, has_stage)
        if score not in self.valid_scores:
            raise ValueError(self._unknown_score(score))
        llr_names(1, 1, iw_form)  # validates iw_form
        if rule not in RULES:
            raise ValueError(f"rule must be one of {RULES}, got {rule!r}")
        self.score, self.iw_form, self.batch_size = score, iw_form, batch_size
        self.rule = rule  # the verdict's rule (hvaelab.verdict): "auto", "second-stage", "llr"
        self.reference: ScoreTable | None = None

    def _unknown_score(self, score: object) -> str:
        L, S = self.model.n_layers, self.samples
        msg = f"unknown score {score!r} for a {L}-layer model at samples={S}"
        if S == 1 and score in valid_scores(L, 2):
            msg += " (it needs samples > 1)"
        if score == "second-stage":
            msg += " (this model has no second stage: fit one with `hvaelab second-stage`)"
        return f"{msg}; valid scores: {', '.join(self.valid_scores)}"

    def __repr__(self) -> str:
        what = self.checkpoint.name if self.checkpoint else type(self.model).__name__
        n = len(self.reference) if self.reference is not None else None
        ref = f"{n} reference inputs" if n is not None else "not fitted"
        return f"HVAEDetector({what!r}, score={self.score!r}, samples={self.samples}; {ref})"

    # ------------------------------------------------------------------------------- fitting
    @property
    def is_fitted(self) -> bool:
        return self.reference is not None

    def fit(
        self,
        in_distribution: Images | str | ScoreTable,
        *,
        split: str = "test",
        limit: int | None = None,
    ) -> HVAEDetector:
        """Score in-distribution data as the reference and return ``self``.

        ``in_distribution``: images (uint8 (N, 28, 28) or float (N, 1, 28, 28) in [0, 1]), a
        registered dataset name (its ``split``, by default the test set as in the paper; ``limit``
        takes a seeded subset, see :func:`~hvaelab.scores.score_dataset`), or a stored
        :class:`~hvaelab.scores.ScoreTable` (see :meth:`fit_table`).
        """
        if isinstance(in_distribution, ScoreTable):
            return self.fit_table(in_distribution)
        kw: dict[str, Any] = {"n_samples": self.samples, "batch_size": self.batch_size}
        if limit is not None and not isinstance(in_distribution, str):
            raise ValueError("limit applies to a dataset name; slice the images instead")
        if isinstance(in_distribution, str):
            table = score_dataset(self.model, in_distribution, split, limit=limit, **kw)
        else:
            table = score_tensor(self.model, in_distribution, **kw)
        if len(table) == 0:
            raise ValueError("the in-distribution reference needs at least one input, got none")
        self.reference = table
        return self

    def fit_table(self, table: ScoreTable) -> HVAEDetector:
        """Use a score table of in-distribution data (e.g. from
        :func:`~hvaelab.scores.load_tables`) as the reference; it must be of this model at this
        number of samples."""
        if not isinstance(table, ScoreTable):
            raise TypeError(f"expected a ScoreTable, got {type(table).__name__}")
        if len(table) == 0:
            raise ValueError("the reference score table is empty")
        if table.n_layers != self.model.n_layers:
            raise ValueError(
                f"the reference table is of a {table.n_layers}-layer model, this one has "
                f"{self.model.n_layers} layers"
            )
        if table.n_samples != self.samples:
            raise ValueError(
                f"the reference table was scored with S={table.n_samples} samples, this detector "
                f"uses samples={self.samples}"
            )
        if self.score not in ood_scores(table):
            raise ValueError(
                f"the reference table has no {self.score!r} (scored without L<l bounds, or "
                "before IC and the second stage existed? rerun `hvaelab tables`)"
            )
        self.reference = table
        return self

    @classmethod
    def from_checkpoint(
        cls,
        checkpoint: str | os.PathLike[str],
        score: str = "LLR>1",
        samples: int = 1,
        *,
        limit: int | None = None,
        **kw,
    ) -> HVAEDetector:
        """A detector fitted on the checkpoint's in-distribution test set: the score table stored
        beside it (``NAME.scores.safetensors``, written by ``hvaelab tables``) when it has one
        for these weights and S, else that test set scored now (slow on a CPU: 10,000 images;
        ``limit`` scores a seeded subset instead). ``kw`` go to the constructor."""
        det = cls(checkpoint, score, samples, **kw)
        lm = det.checkpoint
        if lm is None:
            raise TypeError("from_checkpoint needs a checkpoint name or path; for a model use .fit")
        in_name = lm.dataset
        if not in_name:
            raise ValueError(f"the card of {lm.path} names no training dataset; use .fit(...)")
        path = tables_path(lm.path)
        stored = load_tables(path) if path.exists() else {}
        try:
            table = stored[reference_key(stored, in_name, det.samples)]
        except ValueError:  # none stored for this set and S: score it below
            table = None
        if table is not None:
            sha, want = table.meta.get("weights_sha256"), lm.card.get("weights_sha256")
            if sha and want and sha != want:
                raise ValueError(
                    f"{Path(path).name} was computed for other weights than {lm.path.name}; "
                    f"rerun `hvaelab tables --checkpoint {lm.path}`"
                )
            return det.fit_table(table)
        return det.fit(in_name, limit=limit)

    def _require_reference(self) -> ScoreTable:
        if self.reference is None:
            raise NotFittedError(
                "this HVAEDetector is not fitted: call .fit(in_distribution) first (images, a "
                "dataset name such as 'fashionmnist', or a stored ScoreTable)"
            )
        return self.reference

    # ------------------------------------------------------------------------------- scoring
    def predict(self, x: Images) -> Tensor:
        """The chosen score of each input, (N,) float64; higher = more out-of-distribution.

        Scored as the reference was (S, conditional-prior mode, seed)."""
        ref = self._require_reference()
        table = score_tensor(
            self.model,
            x,
            n_samples=ref.n_samples,
            prior=ref.meta.get("prior", "mean"),
            lt="<" in self.score,  # L<l bounds only when the score needs them
            seed=int(ref.meta.get("seed", 0)),
            batch_size=self.batch_size,
        )
        return torch.from_numpy(np.asarray(ood_scores(table)[self.score], dtype=np.float64))

    __call__ = predict

    def inputs(self, x: Images, fpr: float = 0.05) -> InputScores:
        """Everything :func:`~hvaelab.scores.score_inputs` reports for the inputs against the
        reference: every score, its p-value, the verdict and the score that decided it."""
        ref = self._require_reference()
        return score_inputs(
            self.model,
            x,
            ref,
            fpr=fpr,
            iw_form=self.iw_form,
            batch_size=self.batch_size,
            verdict=self.rule,
        )

    def p_values(self, x: Images) -> Tensor:
        """Empirical p-value of the chosen score of each input against the reference, (N,)
        float64: upper tail for likelihood ratios, two-sided for bounds and LLR>k<l
        (:func:`~hvaelab.scores.score_tails`); small = unlike the in-distribution data."""
        p = self.inputs(x).p_values
        assert p is not None
        return torch.from_numpy(np.asarray(p[self.score], dtype=np.float64))

    def verdict(self, x: Images, fpr: float = 0.05) -> Tensor:
        """The decision, (N,) bool, True = OOD, by the detector's ``rule``
        (:mod:`hvaelab.verdict`): by default the second stage's p-value below ``fpr`` where the
        checkpoint has one, else the paper's (some LLR>k, k below the highest active layer, with
        a p-value below ``fpr / K``, Bonferroni); in-distribution inputs are flagged at rate at
        most ``fpr``. It does not depend on the chosen score."""
        is_ood = self.inputs(x, fpr).is_ood
        assert is_ood is not None
        return torch.from_numpy(np.asarray(is_ood, dtype=bool))

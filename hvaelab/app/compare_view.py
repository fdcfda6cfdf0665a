"""Two models side by side on the same test sets (paper Table 2 puts the HVAE beside BIVA).

Everything comes from the checkpoints' stored score tables (:mod:`hvaelab.scores`, written by
``hvaelab tables``) with the paper's protocol (:func:`hvaelab.metrics.ood_metrics`, equal-size
sets): the in-distribution bits/dim of the ELBO, the AUROC of −ELBO and of every LLR>k (eq. 6)
at S = 1. Models of different depth (the HVAE's 3 latent layers, BIVA's 10) share the k axis,
so the figure asks: at which k does each model's ratio separate the sets best, and how well?
"""

from __future__ import annotations

from dataclasses import dataclass

import ipywidgets as widgets
import numpy as np
import plotly.graph_objects as go

from ..metrics import ood_metrics
from ..score_names import ScoreName, TableKey
from ..scores import ood_scores
from .resources import (
    DEFAULT_CHECKPOINT,
    MissingResourceError,
    checkpoint_names,
    dataset_label,
    default_ood,
    load_checkpoint,
    load_score_tables,
)
from .theme import TEMPLATE
from .widgets import FigureSlot, status_html, with_class

PREFERRED_B = ("fashionmnist-biva",)  # shown beside the HVAE first, where it is installed
COLORS = ("#1f77b4", "#d62728")


@dataclass
class ModelScores:
    """One model's S = 1 numbers on an in-distribution / OOD pair of test sets."""

    name: str
    kind: str  # the card's model kind: "hvae" or "biva"
    n_layers: int
    in_name: str
    ood_name: str
    bits_per_dim: float  # −ELBO of the in-distribution test set, bits/dim (Table 1)
    elbo_auroc: float  # AUROC of −ELBO (Table 2; below 0.5: the likelihood prefers OOD data)
    llr_auroc: dict[int, float]  # k -> AUROC of LLR>k, k = 1..L

    @property
    def best_k(self) -> int:
        return max(self.llr_auroc, key=lambda k: (self.llr_auroc[k], -k))


def model_scores(name: str, in_name: str, ood_name: str, seed: int = 0) -> ModelScores:
    """:class:`ModelScores` of checkpoint ``name`` from its stored S = 1 tables."""
    tables = load_score_tables(name)
    keys = [str(TableKey(d, 1)) for d in (in_name, ood_name)]
    missing = [k for k in keys if k not in tables]
    if missing:
        raise MissingResourceError(
            f"The checkpoint {name!r} has no score table {' or '.join(missing)}. Write them with "
            f"`hvaelab tables --checkpoint {name} --in {in_name} --ood {ood_name}`."
        )
    t_in, t_ood = tables[keys[0]], tables[keys[1]]
    s_in, s_ood = ood_scores(t_in), ood_scores(t_ood)

    def auroc(score: ScoreName) -> float:
        return float(ood_metrics(s_in[str(score)], s_ood[str(score)], seed=seed).auroc)

    L = t_in.n_layers
    return ModelScores(
        name=name,
        kind=str(load_checkpoint(name).card.get("kind", "hvae")),
        n_layers=L,
        in_name=in_name,
        ood_name=ood_name,
        bits_per_dim=float(np.mean(t_in.bits_per_dim("elbo"))),
        elbo_auroc=auroc(ScoreName.parse("-ELBO")),
        llr_auroc={k: auroc(ScoreName.parse(f"LLR>{k}")) for k in range(1, L + 1)},
    )


def comparison_figure(models: list[ModelScores]) -> go.Figure:
    """AUROC against k: −ELBO at k = 0, then LLR>k for k = 1..L, a line per model."""
    fig = go.Figure()
    for m, color in zip(models, COLORS, strict=False):
        ks = sorted(m.llr_auroc)
        fig.add_trace(
            go.Scatter(
                x=[0, *ks],
                y=[m.elbo_auroc, *(m.llr_auroc[k] for k in ks)],
                mode="lines+markers",
                name=f"{m.name} ({m.kind.upper()})",
                line={"color": color},
                marker={"size": [11] + [11 if k == m.best_k else 7 for k in ks]},
                hovertemplate=f"{m.name}<br>%{{text}}: AUROC %{{y:.3f}}<extra></extra>",
                text=["−ELBO", *(f"LLR>{k}" for k in ks)],
            )
        )
    top = max([m.n_layers for m in models], default=1)
    ood = dataset_label(models[0].ood_name) if models else "OOD"
    fig.add_hline(y=0.5, line={"dash": "dot", "color": "#888"})
    fig.update_layout(
        template=TEMPLATE,
        height=340,
        margin={"l": 60, "r": 20, "t": 50, "b": 50},
        title={"text": f"AUROC against {ood}, S = 1 (0.5: chance)", "x": 0.02},
        xaxis={
            "title": "k (0: −ELBO; k ≥ 1: LLR>k)",
            "tickmode": "array",
            "tickvals": list(range(top + 1)),
            "ticktext": ["−ELBO", *(str(k) for k in range(1, top + 1))],
        },
        yaxis={"title": "AUROC", "range": [0, 1.02]},
        legend={"orientation": "h", "y": -0.25},
    )
    return fig


def comparison_html(models: list[ModelScores]) -> str:
    """Table 1's bits/dim and Table 2's key AUROCs, a row per model."""
    th = '<th style="padding:3px 10px;text-align:{};border-bottom:1px solid #444">{}</th>'
    td = '<td style="padding:3px 10px;text-align:{}">{}</td>'
    names = ("model", "kind", "latent layers", "bits/dim (−ELBO)", "AUROC −ELBO")
    names += ("AUROC LLR&gt;1", "best LLR&gt;k")
    align = ("left", "left", "right", "right", "right", "right", "right")
    head = "<tr>" + "".join(th.format(a, n) for a, n in zip(align, names, strict=True)) + "</tr>"
    rows = []
    for m in models:
        cells = (m.name, m.kind.upper(), m.n_layers, f"{m.bits_per_dim:.3f}")
        cells += (f"{m.elbo_auroc:.3f}", f"{m.llr_auroc[1]:.3f}")
        cells += (f"k = {m.best_k}: {m.llr_auroc[m.best_k]:.3f}",)
        rows.append("<tr>" + "".join(td.format(a, c) for a, c in zip(align, cells, strict=True)))
    return (
        '<table class="hvae-compare-table" style="border-collapse:collapse;font-size:13px">'
        f"{head}{''.join(r + '</tr>' for r in rows)}</table>"
    )


def comparable(checkpoint_a: str, in_name: str, ood_name: str) -> list[str]:
    """Other checkpoints with stored S = 1 tables of both sets, preferred ones first."""
    keys = {str(TableKey(d, 1)) for d in (in_name, ood_name)}
    found = []
    for name in checkpoint_names():
        if name == checkpoint_a:
            continue
        try:
            if keys <= set(load_score_tables(name)):
                found.append(name)
        except MissingResourceError:
            continue
    return sorted(found, key=lambda n: (n not in PREFERRED_B, n))


class ModelComparison(widgets.VBox):
    """Model A (the page's checkpoint) beside a model B chosen from those with score tables of
    the same test sets: a table of their numbers and the AUROC-against-k figure."""

    def __init__(
        self,
        checkpoint_a: str = DEFAULT_CHECKPOINT,
        checkpoint_b: str | None = None,
        ood_name: str | None = None,
    ) -> None:
        self.checkpoint_a = checkpoint_a
        tables = load_score_tables(checkpoint_a)
        in_name = load_checkpoint(checkpoint_a).dataset
        sets = sorted({TableKey.parse(k).dataset for k in tables if k.endswith("@S1")})
        if in_name not in sets:
            raise MissingResourceError(
                f"The checkpoint {checkpoint_a!r} has no S = 1 score table of its own test set "
                f"({in_name}). Write it with `hvaelab tables --checkpoint {checkpoint_a}`."
            )
        self.in_name = in_name
        self.ood_name = ood_name or default_ood(sets, in_name)
        others = comparable(checkpoint_a, in_name, self.ood_name)
        if checkpoint_b is not None and checkpoint_b not in others:
            others.insert(0, checkpoint_b)  # asked for: shown with its error if it lacks tables
        self.b_select = with_class(
            widgets.Dropdown(
                options=others,
                value=(checkpoint_b or (others[0] if others else None)),
                description="beside",
                style={"description_width": "60px"},
                layout=widgets.Layout(width="320px", display="" if others else "none"),
            ),
            "hvae-compare-b",
        )
        self.status = widgets.HTML()
        self.table = widgets.HTML()
        self.slot = FigureSlot(comparison_figure([]), "hvae-compare-fig", width="100%")
        self.a = model_scores(checkpoint_a, in_name, self.ood_name)  # fixed: computed once
        self.models: list[ModelScores] = []
        self.b_select.observe(lambda _c: self.refresh(), names="value")
        super().__init__([self.b_select, self.status, self.table, self.slot.box])
        self.add_class("hvae-compare-view")
        self.refresh()

    def refresh(self) -> None:
        models, note = [self.a], ""
        b = self.b_select.value
        if b is None:
            note = status_html(
                f"No other model here has score tables of {dataset_label(self.in_name)} and "
                f"{dataset_label(self.ood_name)}. Train one (BIVA: `hvaelab train --preset "
                "biva-grey --out checkpoints/fashionmnist-biva`), write its tables (`hvaelab "
                "tables --checkpoint fashionmnist-biva`) and it appears here.",
                "info",
            )
        else:
            try:
                models.append(model_scores(b, self.in_name, self.ood_name))
            except MissingResourceError as e:
                note = status_html(str(e), "error")
        self.models = models
        self.status.value = note
        self.table.value = comparison_html(models)
        self.slot.show(comparison_figure(models))

"""Training curves of a checkpoint (``NAME.history.csv``, written by ``hvaelab train``).

Three panels per epoch: bits/dim of the training ELBO and of each monitored test set; the
AUROC monitored during training (ELBO vs LLR>1 for each OOD set); and the KL warm-up weight beta
and the free-bits lambda (table 4).
"""

from __future__ import annotations

from collections.abc import Mapping

import ipywidgets as widgets
import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ..score_names import ScoreName
from .resources import DEFAULT_CHECKPOINT, dataset_label, load_history
from .score_figures import dataset_color
from .theme import TEMPLATE
from .widgets import FigureSlot


def _label(column: str) -> str:
    name, _, what = column.partition("/")
    if name == "train":
        return "training set"
    return dataset_label(name) + ("" if what == "bpd" else f" {what}")


def _score_label(column: str) -> str:
    """``"mnist/auroc_llr1"`` -> ``"MNIST, LLR>1"``."""
    name, _, what = column.partition("/")
    score = ScoreName.from_slug(what.split("_", 1)[-1]).quantity
    return f"{dataset_label(name)}, {score}"


def history_figure(history: Mapping[str, np.ndarray], title: str | None = None) -> go.Figure:
    """Panels: bits/dim (train and test sets), monitored AUROCs, beta and free bits lambda."""
    if "epoch" not in history:
        raise ValueError("a training history needs an 'epoch' column")
    ep = history["epoch"]
    fig = make_subplots(
        rows=1,
        cols=3,
        subplot_titles=["bits/dim (−ELBO)", "AUROC monitored", "β and free bits λ"],
        horizontal_spacing=0.08,
    )
    for col in (c for c in history if c.endswith("/bpd")):
        name = col.split("/")[0]
        color = "#000000" if name == "train" else dataset_color(name)
        fig.add_trace(
            go.Scatter(
                x=ep, y=history[col], name=_label(col), mode="lines+markers", line={"color": color}
            ),
            row=1,
            col=1,
        )
    for col in (c for c in history if "/auroc" in c):
        name = col.split("/")[0]
        fig.add_trace(
            go.Scatter(
                x=ep,
                y=history[col],
                name=_score_label(col),
                mode="lines+markers",
                line={"color": dataset_color(name), "dash": "solid" if "llr" in col else "dot"},
            ),
            row=1,
            col=2,
        )
    for col, dash in (("beta", "solid"), ("lambda", "dash")):
        if col in history:
            fig.add_trace(
                go.Scatter(
                    x=ep,
                    y=history[col],
                    name=col,
                    mode="lines",
                    line={"color": "#555555", "dash": dash},
                ),
                row=1,
                col=3,
            )
    fig.update_xaxes(title_text="epoch", tickformat="d")
    fig.update_yaxes(range=[0, 1.02], row=1, col=2)
    fig.update_layout(
        title={"text": title or "Training curves", "x": 0.5},
        template=TEMPLATE,
        height=400,  # no fixed width: the figure takes its container's
        legend={"orientation": "h", "y": -0.25},
        margin={"t": 70, "b": 40},
    )
    return fig


class TrainingCurves(widgets.VBox):
    """The training curves of a checkpoint (the page's model menu chooses which)."""

    def __init__(self, checkpoint: str = DEFAULT_CHECKPOINT) -> None:
        self.checkpoint = checkpoint
        h = load_history(checkpoint)
        n = len(h["epoch"])
        secs = float(np.nansum(h["seconds"])) if "seconds" in h else float("nan")
        self.summary = widgets.HTML(
            f"<b>{checkpoint}</b>: {n} epoch(s) recorded, {secs / 3600:.2f} h of training."
        )
        fig = history_figure(h, title=f"Training curves of {checkpoint}")
        self.slot = FigureSlot(fig, "hvae-history-fig")
        super().__init__([self.summary, self.slot.box])


__all__ = ["TrainingCurves", "history_figure"]

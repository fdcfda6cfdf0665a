"""Plotly figures and tables of OOD scores: densities (fig. 5), ROC curves (figs. 6, 7), Table 2.

Scores follow hvaelab's sign convention (higher = more OOD, :mod:`hvaelab.scores`). Negated
bounds (``-ELBO``, ``-L>k``, ``-L<l``, with or without ``_S``) are shown in bits/dim, i.e.
``-L / (D ln 2)`` (fig. 5 shows the likelihood in bits/dim); likelihood ratios in nats.
Datasets keep one colour everywhere (:func:`dataset_color`).
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import plotly.graph_objects as go

from ..metrics import equal_size, ood_metrics, roc_curve
from ..score_names import ScoreName
from .resources import dataset_label
from .theme import TEMPLATE

UPLOADS = "your images"
DATASET_COLORS = {
    "fashionmnist": "#1f77b4",
    "mnist": "#d62728",
    "mnist-testsplit": "#d62728",
    "kmnist": "#9467bd",
    "notmnist": "#8c564b",
    "omniglot": "#e377c2",
    UPLOADS: "#2ca02c",
}
_EXTRA_COLORS = ("#ff7f0e", "#17becf", "#bcbd22", "#7f7f7f")
DENSITY_KINDS = ("kde", "hist")


def dataset_color(name: str) -> str:
    """A fixed colour per dataset name (unknown names get a stable colour from a palette)."""
    if name in DATASET_COLORS:
        return DATASET_COLORS[name]
    return _EXTRA_COLORS[sum(map(ord, name)) % len(_EXTRA_COLORS)]


# --------------------------------------------------------------------------------- score names
# Labels, units and signs are owned by hvaelab.score_names; these take a score's string name.
def is_bound(score: str) -> bool:
    """Negated likelihood bounds (``-ELBO``, ``-L>k``, ``-L<l``...) as opposed to ratios."""
    return ScoreName.parse(score).is_bound


def pretty_score(score: str, html_: bool = True) -> str:
    """Paper notation of a score name (:meth:`ScoreName.label`); other text is shown as it is."""
    try:
        return ScoreName.parse(score).label(html_)
    except ValueError:
        return html.escape(score) if html_ else score


def score_unit(score: str) -> str:
    return ScoreName.parse(score).unit


def to_display(score: str, values: np.ndarray | float, n_dims: int) -> np.ndarray:
    """Scores in display units: negated bounds in bits/dim, ratios unchanged (nats)."""
    return ScoreName.parse(score).to_display(values, n_dims)


def axis_title(score: str) -> str:
    return ScoreName.parse(score).axis_title()


def percentile_of(reference: np.ndarray, value: float) -> float:
    """Percentage of the reference (in-distribution) scores at or below ``value``."""
    ref = np.asarray(reference, dtype=np.float64)
    return float(100.0 * np.mean(ref <= value))


# ------------------------------------------------------------------------------------ densities
@dataclass
class DensityCurves:
    """Densities of several datasets' scores on one grid (display units)."""

    x: np.ndarray
    y: dict[str, np.ndarray]
    kind: str
    n: dict[str, int] = field(default_factory=dict)


def _range(arrays: Sequence[np.ndarray], extra: Sequence[float] = ()) -> tuple[float, float]:
    allv = np.concatenate([np.asarray(a, dtype=np.float64) for a in arrays])
    lo, hi = np.quantile(allv, [0.002, 0.998])
    if extra:
        lo, hi = min(lo, min(extra)), max(hi, max(extra))
    pad = 0.05 * (hi - lo) if hi > lo else max(abs(lo) * 0.05, 1e-3)
    return float(lo - pad), float(hi + pad)


def density_curves(
    values: Mapping[str, np.ndarray],
    kind: str = "kde",
    x_range: tuple[float, float] | None = None,
    n_points: int = 400,
    bins: int = 60,
) -> DensityCurves:
    """Probability densities of each dataset's values on a shared grid.

    ``kind="kde"``: Gaussian kernel density (Silverman's rule, computed by binning on a fine
    grid and smoothing, so it costs O(N) per dataset); ``"hist"``: a density histogram with
    ``bins`` bins, drawn as a step line. Values outside ``x_range`` count in neither.
    """
    if kind not in DENSITY_KINDS:
        raise ValueError(f"kind must be one of {DENSITY_KINDS}, got {kind!r}")
    if not values:
        raise ValueError("density_curves needs at least one dataset of values")
    arrays = {k: np.asarray(v, dtype=np.float64) for k, v in values.items()}
    for k, v in arrays.items():
        if v.ndim != 1 or v.size == 0 or not np.isfinite(v).all():
            raise ValueError(f"values[{k!r}] must be a non-empty 1-D array of finite numbers")
    lo, hi = x_range or _range(list(arrays.values()))
    if kind == "hist":
        edges = np.linspace(lo, hi, bins + 1)
        x = 0.5 * (edges[1:] + edges[:-1])
        ys = {
            k: np.histogram(v, edges)[0] / (v.size * (edges[1] - edges[0]))
            for k, v in arrays.items()
        }
        return DensityCurves(x, ys, kind, {k: v.size for k, v in arrays.items()})
    x = np.linspace(lo, hi, n_points)
    dx = x[1] - x[0]
    ys = {}
    for k, v in arrays.items():
        q75, q25 = np.percentile(v, [75, 25])
        sigma = min(np.std(v), (q75 - q25) / 1.349) or np.std(v) or dx
        h = max(0.9 * sigma * v.size ** (-0.2), dx)
        counts = np.histogram(v, n_points, (lo - dx / 2, hi + dx / 2))[0].astype(np.float64)
        half = int(min(4 * h / dx, 2 * n_points))
        t = np.arange(-half, half + 1) * dx
        kern = np.exp(-0.5 * (t / h) ** 2) / (h * math.sqrt(2 * math.pi))
        ys[k] = np.convolve(counts, kern)[half : half + n_points] / v.size
    return DensityCurves(x, ys, kind, {k: v.size for k, v in arrays.items()})


@dataclass
class UploadMark:
    """One user input placed on a density plot."""

    name: str
    value: float  # display units
    percentile: float  # % of in-distribution scores at or below it
    kind: str = "upload"  # "upload" (an image the user gave) or "selected" (a clicked example)


MARK_LEGEND = {"upload": UPLOADS, "selected": "selected example"}


def marks_trace(marks: Sequence[UploadMark], curves: DensityCurves) -> go.Scatter:
    """The last trace of :func:`density_figure`: ``marks`` as dashed vertical lines as tall as
    ``curves``' highest density, labelled with their percentiles (always present, maybe empty).
    A page that only moves the marks redraws this trace on the figure built before."""
    y_top = max((float(y.max()) for y in curves.y.values()), default=1.0) * 1.05
    return _upload_trace(marks, y_top)


def _upload_trace(marks: Sequence[UploadMark], y_top: float) -> go.Scatter:
    xs: list[float | None] = []
    ys: list[float | None] = []
    text: list[str] = []
    for m in marks:
        xs += [m.value, m.value, None]
        ys += [0.0, y_top, None]
        text += ["", f"{html.escape(m.name)}<br>percentile {m.percentile:.1f}", ""]
    kinds = [MARK_LEGEND[k] for k in MARK_LEGEND if any(m.kind == k for m in marks)]
    return go.Scatter(
        x=xs,
        y=ys,
        mode="lines+text",
        text=text,
        textposition="top center",
        textfont={"color": dataset_color(UPLOADS), "size": 11},
        line={"color": dataset_color(UPLOADS), "width": 2, "dash": "dash"},
        name=", ".join(kinds) or UPLOADS,  # named as what it marks
        hoverinfo="x+text",
        showlegend=bool(marks),
        cliponaxis=False,
    )


def density_figure(
    scores: Mapping[str, np.ndarray] | None,
    score: str,
    n_dims: int,
    kind: str = "kde",
    uploads: Sequence[UploadMark] = (),
    curves: DensityCurves | None = None,
    title: str | None = None,
    height: int = 380,
) -> go.Figure:
    """Fig. 5: density of one score per dataset (OOD-score units, see :func:`to_display`).

    ``scores`` maps dataset name -> raw scores (higher = more OOD); pass precomputed ``curves``
    instead to skip the density estimate. Traces: one filled line per dataset, then one trace
    (always present, maybe empty) with the user's inputs as dashed vertical lines labelled with
    their percentile among the in-distribution scores.
    """
    if curves is None:
        if not scores:
            raise ValueError("density_figure needs scores or curves")
        disp = {k: to_display(score, v, n_dims) for k, v in scores.items()}
        extra = [m.value for m in uploads]
        curves = density_curves(disp, kind, _range(list(disp.values()), extra))
    fig = go.Figure()
    for name, y in curves.y.items():
        color = dataset_color(name)
        fig.add_trace(
            go.Scatter(
                x=curves.x,
                y=y,
                mode="lines",
                name=f"{dataset_label(name)} (n={curves.n.get(name, 0):,})",
                line={
                    "color": color,
                    "width": 2,
                    "shape": "hvh" if curves.kind == "hist" else "linear",
                },
                fill="tozeroy",
                fillcolor=_rgba(color, 0.25),
                hovertemplate=f"{dataset_label(name)}<br>%{{x:.4g}}: density %{{y:.3g}}"
                + "<extra></extra>",
            )
        )
    fig.add_trace(marks_trace(uploads, curves))
    fig.update_layout(
        title={"text": title or f"Density of {pretty_score(score)} (fig. 5)", "x": 0.5},
        xaxis_title=axis_title(score),
        yaxis_title="density",
        template=TEMPLATE,
        height=height,
        margin={"l": 60, "r": 20, "t": 80, "b": 50},
        # above the plotting area, under the title: a legend never covers a density's peak
        legend=LEGEND_ABOVE,
        uirevision="density",
    )
    fig.update_yaxes(rangemode="tozero")
    return fig


# a horizontal legend between the title and the plotting area (outside the data)
LEGEND_ABOVE = {"orientation": "h", "x": 0, "xanchor": "left", "y": 1.0, "yanchor": "bottom"}


def _rgba(hex_color: str, alpha: float) -> str:
    h = hex_color.lstrip("#")
    r, g, b = (int(h[i : i + 2], 16) for i in (0, 2, 4))
    return f"rgba({r},{g},{b},{alpha})"


# -------------------------------------------------------------------------------------- ROC
@dataclass
class RocCurve:
    """A ROC curve (thinned for plotting) and the score's metrics (equal-size protocol)."""

    fpr: np.ndarray
    tpr: np.ndarray
    metrics: dict[str, Any]


_FPR_GRID = np.unique(np.concatenate([np.linspace(0, 1, 301), np.geomspace(1e-4, 0.1, 120)]))


def roc_data(s_in: np.ndarray, s_ood: np.ndarray, seed: int = 0, max_points: int = 600) -> RocCurve:
    """ROC curve and AUROC/AUPRC/FPR80 of one score on the paper's equal-size subsets."""
    a, b = equal_size(s_in, s_ood, seed)
    fpr, tpr, _ = roc_curve(a, b)
    if fpr.size > max_points:  # step-function resampling on a grid dense near FPR = 0
        idx = np.searchsorted(fpr, _FPR_GRID, side="right") - 1
        fpr, tpr = _FPR_GRID, np.maximum.accumulate(tpr)[idx]
    m = ood_metrics(a, b, equal=False).as_dict()
    return RocCurve(np.asarray(fpr), np.asarray(tpr), m)


def roc_point(
    s_in: np.ndarray, s_ood: np.ndarray, threshold: float, seed: int = 0
) -> tuple[float, float]:
    """The point of :func:`roc_data`'s curve where inputs scoring ``>= threshold`` are flagged:
    ``(FPR, TPR)`` on the same equal-size subsets (higher score = more OOD)."""
    a, b = equal_size(s_in, s_ood, seed)
    return float(np.mean(a >= threshold)), float(np.mean(b >= threshold))


def roc_label(score: str, metrics: Mapping[str, Any]) -> str:
    return (
        f"{pretty_score(score)}: AUROC {metrics['auroc']:.3f} · AUPRC {metrics['auprc']:.3f} · "
        f"FPR80 {metrics['fpr80']:.3f}"
    )


def roc_figure(
    curves: Mapping[str, RocCurve],
    highlight: str | None = None,
    title: str | None = None,
    height: int = 430,
) -> go.Figure:
    """Figs. 6-7: one ROC curve per score, metrics in the legend; ``highlight`` drawn bold.

    Traces: the scores in the order given, then a dashed "chance" diagonal.
    """
    if not curves:
        raise ValueError("roc_figure needs at least one curve: {score: RocCurve}")
    fig = go.Figure()
    palette = ("#636efa", "#ef553b", "#00cc96", "#ab63fa", "#ffa15a", "#19d3f3", "#ff6692")
    for i, (score, c) in enumerate(curves.items()):
        strong = score == highlight
        fig.add_trace(
            go.Scatter(
                x=c.fpr,
                y=c.tpr,
                mode="lines",
                name=roc_label(score, c.metrics),
                line={
                    "color": "#000000" if strong else palette[i % len(palette)],
                    "width": 4 if strong else 1.5,
                },
                opacity=1.0 if strong or highlight is None else 0.8,
                hovertemplate=f"{pretty_score(score)}<br>FPR %{{x:.3f}}, TPR %{{y:.3f}}"
                + "<extra></extra>",
            )
        )
    fig.add_trace(
        go.Scatter(
            x=[0, 1],
            y=[0, 1],
            mode="lines",
            name="chance",
            line={"color": "#999999", "dash": "dash", "width": 1},
            hoverinfo="skip",
        )
    )
    fig.update_layout(
        title={"text": title or "ROC curves (figs. 6-7)", "x": 0.5},
        xaxis_title="false positive rate (in-distribution flagged)",
        yaxis_title="true positive rate (OOD flagged)",
        template=TEMPLATE,
        height=height,
        margin={"l": 60, "r": 20, "t": 60, "b": 50},
        # below the axes, outside the plotting area: it never covers a curve, whatever the width
        legend={
            "orientation": "h",
            "x": 0,
            "xanchor": "left",
            "y": -0.18,
            "yanchor": "top",
            "font": {"size": 11},
        },
        uirevision="roc",
    )
    fig.update_xaxes(range=[-0.01, 1.01])
    fig.update_yaxes(range=[-0.01, 1.01])
    return fig


# ------------------------------------------------------------------------------------ Table 2
_TABLE_COLUMNS = {"auroc": "AUROC ↑", "auprc": "AUPRC ↑", "fpr80": "FPR80 ↓"}


def metrics_table_html(
    rows: Sequence[Mapping[str, Any]],
    highlight: str | None = None,
    caption: str | None = None,
    columns: Sequence[str] = ("auroc", "auprc", "fpr80"),
    model_label: str = "HVAE",
) -> str:
    """Table 2 as HTML: one row per score ("method"), the best value per column in bold.

    ``rows`` are :func:`hvaelab.evaluate.table2_rows` / :func:`hvaelab.metrics.metrics_table`
    records; the row whose ``score`` is ``highlight`` gets a coloured background.
    """
    if not rows:
        raise ValueError("metrics_table_html needs at least one row")
    best = {}
    for c in columns:
        vals = [float(r[c]) for r in rows]
        best[c] = min(vals) if c.startswith("fpr") else max(vals)
    head = "".join(
        f'<th style="padding:2px 10px;text-align:right">{_TABLE_COLUMNS.get(c, c)}</th>'
        for c in columns
    )
    body = []
    for r in rows:
        score = str(r["score"])
        label = pretty_score(score)
        style = ' style="background:#fff3bf"' if score == highlight else ""
        cells = []
        for c in columns:
            v = float(r[c])
            txt = f"{v:.3f}"
            if np.isclose(v, best[c]):
                txt = f"<b>{txt}</b>"
            cells.append(f'<td style="padding:2px 10px;text-align:right">{txt}</td>')
        body.append(
            f'<tr{style} data-score="{html.escape(score)}">'
            f'<td style="padding:2px 10px">{label} + {html.escape(model_label)}</td>'
            + "".join(cells)
            + "</tr>"
        )
    cap = f'<div style="margin:4px 0;max-width:720px">{caption}</div>' if caption else ""
    return (
        f'<div class="hvae-table2">{cap}'
        '<table style="border-collapse:collapse;font-size:13px">'
        '<thead><tr style="border-bottom:1px solid #444">'
        f'<th style="padding:2px 10px;text-align:left">Method</th>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table></div>"
    )


__all__ = [
    "DENSITY_KINDS",
    "UPLOADS",
    "DensityCurves",
    "RocCurve",
    "UploadMark",
    "axis_title",
    "dataset_color",
    "density_curves",
    "density_figure",
    "marks_trace",
    "is_bound",
    "metrics_table_html",
    "percentile_of",
    "pretty_score",
    "roc_data",
    "roc_figure",
    "roc_label",
    "score_unit",
    "to_display",
]

"""Plotly figure of layer-wise similarities between two models' representations (fig. 2)."""

from __future__ import annotations

from collections.abc import Mapping

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .theme import TEMPLATE

MEASURE_LABELS = {"abs_corr": "mean max |correlation|", "cka": "linear CKA"}
_COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e")


def correlation_figure(
    results: Mapping[str, Mapping[str, Mapping[str, float]]],
    title: str | None = None,
) -> go.Figure:
    """``{dataset: {measure: {layer: value}}}`` -> one subplot per dataset, one line per measure.

    As in fig. 2, the x axis runs through the inference network bottom-up; latent layers (names
    starting with "z") get diamond markers, deterministic blocks circles. Traces: datasets x
    measures, in that order.
    """
    if not results:
        raise ValueError("correlation_figure needs {dataset: {measure: {layer: value}}}")
    datasets = list(results)
    fig = make_subplots(
        rows=1,
        cols=len(datasets),
        shared_yaxes=True,
        subplot_titles=[f"data: {d}" for d in datasets],
        horizontal_spacing=0.06,
    )
    measures: list[str] = []
    for col, name in enumerate(datasets, start=1):
        per_measure = results[name]
        if not per_measure:
            raise ValueError(f"results[{name!r}] holds no measures")
        for measure, values in per_measure.items():
            if not values:
                raise ValueError(f"results[{name!r}][{measure!r}] holds no layers")
            if measure not in measures:
                measures.append(measure)
            layers = list(values)
            fig.add_trace(
                go.Scatter(
                    x=layers,
                    y=[float(values[layer]) for layer in layers],
                    mode="lines+markers",
                    name=MEASURE_LABELS.get(measure, measure),
                    legendgroup=measure,
                    showlegend=col == 1,
                    line={"color": _COLORS[measures.index(measure) % len(_COLORS)]},
                    marker={
                        "size": 9,
                        "symbol": ["diamond" if s.startswith("z") else "circle" for s in layers],
                    },
                    hovertemplate=f"{name}<br>%{{x}}<br>{measure} = %{{y:.3f}}<extra></extra>",
                ),
                row=1,
                col=col,
            )
        fig.update_xaxes(title_text="layer (bottom-up)", tickangle=-45, row=1, col=col)
    fig.update_yaxes(range=[0, 1.05], title_text="similarity", row=1, col=1)
    fig.update_layout(
        title={
            "text": title or "Similarity of the two models' representations per layer",
            "x": 0.5,
        },
        template=TEMPLATE,
        height=440,  # no fixed width: the figure takes its container's
        legend={"title": "measure", "x": 1.02, "y": 1.0},
    )
    return fig


__all__ = ["MEASURE_LABELS", "correlation_figure"]

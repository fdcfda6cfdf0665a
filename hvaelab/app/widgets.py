"""Small ipywidgets helpers shared by the dashboard pages.

* :class:`FigureSlot`: a plotly ``FigureWidget`` in a ``Box`` carrying a CSS class (the DOM
  contract of the browser tests), updated in place (one ``batch_update`` per change, so the
  browser redraws once and only changed arrays travel) or replaced when it must be;
* :func:`ready_marker`: the element with class ``hvae-ready`` each page shows once built;
* :func:`page`: build a page, or show a friendly message instead of a traceback.

The composites themselves live in :mod:`.explorer` (likelihood ratios, figs. 5-7, Table 2),
:mod:`.recon_view` (latent reconstructions, figs. 1, 3), :mod:`.correlation_view` (fig. 2),
:mod:`.upload_view` (score your own images) and :mod:`.training_view` (training curves).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import ipywidgets as widgets
import plotly.graph_objects as go

from .resources import error_html

# plotly.js config of every figure: the modebar's camera button saves a PNG at twice the
# screen resolution (for slides); no plotly logo.
PLOT_CONFIG = {"toImageButtonOptions": {"format": "png", "scale": 2}, "displaylogo": False}


def figure_widget(fig: go.Figure) -> go.FigureWidget:
    """A ``FigureWidget`` holding ``fig`` (the plotly.js div in the page exposes ``.data``)."""
    fw = go.FigureWidget(fig)
    fw._config = dict(PLOT_CONFIG)
    return fw


def _displayed(fw: go.FigureWidget) -> bool:
    return bool(getattr(fw, "_view_count", 0))


def sync_figure(target: go.FigureWidget, new: go.Figure) -> bool:
    """Update a *displayed* ``target`` in place to show ``new``, in one batch; False if it can't.

    plotly's widget front end applies restyle/relayout/delete messages but not added traces,
    and a figure not yet on screen (e.g. a Voilà page still executing) misses every message.
    So only when ``target`` is displayed and its first traces have the types of ``new``'s
    traces: those are updated (only changed properties travel), the remaining ones hidden and
    emptied, and the layout replaced. Otherwise nothing is changed and False is returned (use a
    :class:`FigureSlot`, which then swaps in a new widget).
    """
    n = len(new.data)
    if not _displayed(target) or len(target.data) < n:
        return False
    if [t.type for t in target.data[:n]] != [t.type for t in new.data]:
        return False
    with target.batch_update():
        for old, tr in zip(target.data[:n], new.data, strict=True):
            props = tr.to_plotly_json()
            props.setdefault("visible", True)
            old.update(props, overwrite=True)
        for old in target.data[n:]:
            old.update(visible=False, x=[], y=[], showlegend=False)
        target.layout = new.layout
    return True


class FigureSlot:
    """A plotly figure in a ``Box`` with a CSS class, that can be redrawn at any time.

    :meth:`show` updates the ``FigureWidget`` in place when it can (fast: one batch of changed
    arrays, see :func:`sync_figure`), and otherwise puts a new ``FigureWidget`` in the box.
    ``figure`` is the widget currently shown, ``box`` the container (DOM contract class).
    """

    def __init__(self, fig: go.Figure, css_class: str, **layout: Any) -> None:
        self.figure = figure_widget(fig)
        self.box = widgets.Box([self.figure], layout=widgets.Layout(**layout))
        self.box.add_class(css_class)

    def show(self, fig: go.Figure) -> None:
        if not sync_figure(self.figure, fig):
            self.figure = figure_widget(fig)
            self.box.children = (self.figure,)


def figure_box(fig: go.FigureWidget, css_class: str, **layout: Any) -> widgets.Box:
    """The figure inside a Box with ``css_class`` (contract: the container of a plotly figure)."""
    box = widgets.Box([fig], layout=widgets.Layout(**layout))
    box.add_class(css_class)
    return box


def with_class(widget: widgets.Widget, *css_classes: str) -> widgets.Widget:
    for c in css_classes:
        widget.add_class(c)
    return widget


def ready_marker(text: str = "✓ ready") -> widgets.HTML:
    """The (visible) element with class ``hvae-ready`` a page shows once its widgets are built."""
    w = widgets.HTML(f'<span style="color:#999;font-size:11px">{text}</span>')
    w.add_class("hvae-ready")
    return w


def status_html(text: str, kind: str = "info") -> str:
    colors = {"info": "#555", "busy": "#1f77b4", "error": "#b00", "ok": "#2a7a2a"}
    return f'<span style="color:{colors.get(kind, "#555")}">{text}</span>'


def page(
    build: Callable[[], widgets.Widget], what: str = "This page", ready: bool = True
) -> widgets.VBox:
    """``build()`` followed by the ready marker (``ready=False``: without it, for a piece in the
    middle of a page); a failure becomes a readable message box instead of a traceback."""
    try:
        content = build()
    except Exception as e:  # noqa: BLE001 - shown to the reader instead of a traceback
        content = widgets.HTML(error_html(e, what))
        content.add_class("hvae-page-error")
    return widgets.VBox([content, ready_marker()] if ready else [content])


__all__ = [
    "FigureSlot",
    "figure_box",
    "figure_widget",
    "page",
    "ready_marker",
    "status_html",
    "sync_figure",
    "with_class",
]

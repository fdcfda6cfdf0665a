"""Small ipywidgets helpers shared by the dashboard pages.

* :class:`FigureSlot`: the ONE way a page shows a plotly figure: a small anywidget
  (:class:`LivePlot`, ``js/live_figure.js``) in a ``Box`` carrying a CSS class (the DOM contract
  of the browser tests). The browser draws it with the plotly.js of plotly's JupyterLab
  extension (the ``jupyterlab-plotly`` extension in the plotly wheel, served by Voilà and
  JupyterLab from the local server; under Voilà the template hands it a partial bundle), so
  plotly.js is loaded once per page, whereas a ``go.FigureWidget`` sends its own ~5 MB copy per
  figure. A new figure is drawn into the same div with ``Plotly.react``: plotly's mime renderer
  re-created the plot and made a PNG snapshot of it on every update, 0.1-0.2 s a figure
  (issue 38: every interaction within 150 ms);
* :class:`LiveFigure`: a figure that follows a drawing stroke by stroke (the linked views of
  :mod:`.linked`): its static traces are sent once and only the traces that follow the selection
  are sent on each change;
* :func:`ready_marker`: the element with class ``hvae-ready`` each page shows once built;
* :func:`page`: build a page, or show a friendly message instead of a traceback.

**Under Voilà, figures wait for the page's ready marker.** Voilà's page asks the kernel for
every widget model and meanwhile gives each cell's widget 2 s to turn up, counted from the
start ("widget model not found" otherwise, and the cell stays empty), and anywidget gives each
model 2 s to load its module. Drawing figures while the page is built (plotly.js's start-up,
~0.1 s a figure on a busy CPU) made the last cells of a long page miss the window. So when the
kernel runs under Voilà (:func:`served_by_voila`), :data:`GATE` holds the anywidgets (figures
included) back, and the ``hvae-ready`` class with them, until the browser has displayed a ready
marker (it reports its views through ipywidgets' ``_view_count``). The marker comes last on
every page, so by then every cell is on the page; the widgets are then created in page order,
followed by the ``hvae-ready`` class. Elsewhere (JupyterLab, nbclient, tests) figures and
markers are complete at once, and so in a kernel Voilà preheated (:func:`preheated`): its
notebook has run before a page is served, and the page's template draws the figures one per
task, those in the window first.

The composites themselves live in :mod:`.explorer` (likelihood ratios, figs. 5-7, Table 2),
:mod:`.recon_view` (latent reconstructions, figs. 1, 3), :mod:`.correlation_view` (fig. 2),
:mod:`.upload_view` (score your own images) and :mod:`.training_view` (training curves).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import anywidget
import ipywidgets as widgets
import plotly.graph_objects as go
import plotly.io as pio
import traitlets

from .model_menu import build_piece, page_model, takes_model
from .widget_tree import close_unshown

LIVE_FIGURE_ESM = (Path(__file__).with_name("js") / "live_figure.js").read_text()
# plotly.js config of every figure: the modebar's camera button saves a PNG at twice the
# screen resolution (for slides); no plotly logo. Not plotly's "responsive": in a notebook
# output it collapses a figure to 0 px once resized (its box becomes 100% of an auto height);
# figures follow the window through JupyterLab's resize messages, and under Voilà through the
# page template's resize handler (share/jupyter/voila/templates/hvaelab).
PLOT_CONFIG = {"toImageButtonOptions": {"format": "png", "scale": 2}, "displaylogo": False}
# Height a figure whose layout has none is drawn with (as plotly's mime renderer does).
DEFAULT_HEIGHT = 360
READY_CLASS = "hvae-ready"


def served_by_voila() -> bool:
    """Whether this kernel was started by Voilà (it sets these variables for its kernels)."""
    return bool(os.environ.get("VOILA_KERNEL_ID")) or os.environ.get(
        "SERVER_SOFTWARE", ""
    ).startswith("voila")


def preheated() -> bool:
    """Whether Voilà started this kernel for its pool of preheated kernels: the notebook runs
    before any page is served, and the page takes every widget's state at once."""
    return os.environ.get("VOILA_PREHEAT") == "True"


def holds_figures() -> bool:
    """Whether this kernel holds figures back until the browser shows the page (:data:`GATE`):
    under Voilà, unless preheated (:func:`preheated`)."""
    return served_by_voila() and not preheated()


def figure_height(fig: go.Figure | dict) -> int:
    """The height in px the figure is drawn with."""
    if isinstance(fig, dict):
        return int(fig.get("layout", {}).get("height") or DEFAULT_HEIGHT)
    return int(fig.layout.height or DEFAULT_HEIGHT)


def figure_width(fig: go.Figure | dict) -> int | None:
    """The fixed width in px the figure's layout asks for, or None (it takes its box's)."""
    if isinstance(fig, dict):
        width = fig.get("layout", {}).get("width")
    else:
        width = fig.layout.width
    return int(width) if width else None


class FrontEndGate:
    """Holds figures and ready markers back until a browser displays a ready marker (see the
    module docstring); ``is_open`` from the start where nothing needs to wait."""

    def __init__(self, is_open: bool) -> None:
        self.is_open = is_open
        self._markers: list[widgets.Widget] = []
        self._builds: list[AnySlot] = []  # anywidgets, created first when the gate opens
        self._after: list[Callable[[], None]] = []  # run once it has opened (when_settled)

    def hold_build(self, slot: AnySlot) -> None:
        """Create ``slot``'s anywidget when the gate opens (before the figures are sent)."""
        self._builds.append(slot)

    def hold_marker(self, marker: widgets.Widget) -> None:
        """Add the ``hvae-ready`` class to ``marker`` when the gate opens (after the figures);
        the gate opens when the browser displays ``marker`` (or another held marker)."""
        self._markers.append(marker)
        marker._view_count = 0  # ipywidgets then counts the marker's views in the browser
        marker.observe(self._on_views, "_view_count")

    def _on_views(self, change: dict[str, Any]) -> None:
        if change["new"]:
            self.release()

    def release(self) -> None:
        """Open the gate: create the held anywidgets (figures included) in page order, then mark
        the page ready."""
        self.is_open = True
        builds, self._builds = self._builds, []
        for build in builds:
            build.build()
        markers, self._markers = self._markers, []
        for marker in markers:
            marker.unobserve(self._on_views, "_view_count")
            marker.add_class(READY_CLASS)
        after, self._after = self._after, []
        for callback in after:
            callback()

    def after_release(self, callback: Callable[[], None]) -> None:
        """Call ``callback()`` once the gate has opened (now, if it has)."""
        if self.is_open:
            callback()
        else:
            self._after.append(callback)


# The gate of this kernel (one Voilà page per kernel), open where nothing needs to wait: outside
# Voilà, and in a preheated kernel, whose page arrives after the notebook has run (its cells
# hold every widget by then, and the figures are drawn one per task in the browser) -- holding
# the figures back there cost the page a round trip (issue 38). Tests may swap it.
GATE = FrontEndGate(is_open=not holds_figures())


class _PlotSlot:
    """What :class:`FigureSlot` and :class:`LiveFigure` share: a :class:`LivePlot` in an
    :class:`AnySlot` (``_slot``)."""

    _slot: AnySlot

    @property
    def box(self) -> widgets.Box:
        """The widget to put on a page."""
        return self._slot.box

    @property
    def plot(self) -> LivePlot | None:
        """The anywidget that draws the figure, once created."""
        return self._slot.widget


class FigureSlot(_PlotSlot):
    """A plotly figure on a page that can be redrawn at any time, in place.

    ``box`` (a ``Box`` carrying ``css_class`` and ``hvae-figure``, the DOM contract of the
    browser tests) holds a :class:`LivePlot`, created in an :class:`AnySlot`; :meth:`show` sends
    the new figure (its JSON: plotly's base64 typed arrays) as the plot's ``base`` in one
    widget-state message and the browser redraws the same div with ``Plotly.react``: no new plot,
    no PNG snapshot (the mime renderer's ~0.1-0.2 s a figure). An unchanged figure sends
    nothing. The box keeps at least the height of the figure, so the page does not jump while a
    figure is swapped or still on its way.

    ``figure`` is the figure shown: a ``go.Figure`` or a plotly figure dict (no validation on
    the way out); ``plot`` the anywidget, once created.
    """

    def __init__(self, fig: go.Figure | dict, css_class: str, **layout: Any) -> None:
        if str(layout.get("width", "")).endswith("%"):
            # a share of the container, margins included: no side margins (ipywidgets gives
            # each widget 2 px), else "100%" overflows by 4 px and "50%" + "50%" by 8 px
            layout.setdefault("margin", "2px 0px")
        # a figure of fixed width (image mosaics) gets a box of that width, so that what stands
        # beside it in a wrapping row can stay beside it; others fill what their box is given
        self._fit_width = "width" not in layout
        self.figure = fig
        self._json = pio.to_json(fig, validate=False)
        self._spec: dict = json.loads(self._json)
        self._slot = AnySlot(self._make, css_class, "hvae-figure", **layout)
        self._fit_box(fig)

    @property
    def spec(self) -> dict:
        """The figure as sent to the browser (plotly JSON), ``{"data": ..., "layout": ...}``."""
        return self._spec

    def _make(self) -> LivePlot:
        plot = LivePlot(base=self._spec, layout=widgets.Layout(width="100%"))
        plot.add_class("hvae-figure-plot")
        return plot

    def show(self, fig: go.Figure | dict) -> None:
        """Show ``fig`` instead of the current figure (under Voilà: once :data:`GATE` opens)."""
        self.figure = fig
        spec_json = pio.to_json(fig, validate=False)
        if spec_json == self._json:
            return
        self._json, self._spec = spec_json, json.loads(spec_json)
        self._fit_box(fig)
        plot = self._slot.widget
        if plot is not None:
            with plot.hold_sync():
                plot.base = self._spec
                plot.revision += 1

    def _fit_box(self, fig: go.Figure | dict) -> None:
        layout = self.box.layout
        height = f"{figure_height(fig)}px"
        if layout.min_height != height:
            layout.min_height = height
        if self._fit_width:
            width = figure_width(fig)
            width = f"{width}px" if width else None
            if layout.width != width:
                layout.width = width


class AnySlot:
    """A place on a page for an anywidget that is created only once the page has settled.

    anywidget gives each of its models 2 s, counted in the browser from the moment the model is
    created, to load its JavaScript, and a model that misses it never receives another message
    (a dead view). The browser creates every model of a Voilà page at once, while it builds the
    page's views and loads plotly.js: long tasks that took more than 2 s on this 2-core machine
    ("[anywidget] Failed to initialize model"). So under Voilà the widget is created when
    :data:`GATE` opens -- the page is on screen -- before the figures are sent; elsewhere at once.
    Under a class's load even that was not enough (a page's main thread kept from running for
    more than 2 s, issue 39): hvaelab's Voilà template also gives anywidget's own 2 s timeout
    more time (its "anywidget's patience" script).
    ``box`` (with ``css_classes``) is what the page shows; ``widget`` is None until built;
    ``on_build`` callbacks run on the new widget (observers, pending state).
    """

    def __init__(
        self, factory: Callable[[], widgets.Widget], *css_classes: str, **layout: Any
    ) -> None:
        self.box = widgets.Box(layout=widgets.Layout(**layout))
        for c in css_classes:
            self.box.add_class(c)
        self._factory = factory
        self._on_build: list[Callable[[widgets.Widget], None]] = []
        self.widget: widgets.Widget | None = None
        if GATE.is_open:
            self.build()
        else:
            GATE.hold_build(self)

    def on_build(self, callback: Callable[[widgets.Widget], None]) -> None:
        """Call ``callback(widget)`` once the widget exists (now, if it does)."""
        if self.widget is not None:
            callback(self.widget)
        else:
            self._on_build.append(callback)

    def build(self) -> widgets.Widget:
        """Create the widget now (idempotent) and put it into ``box``."""
        if self.widget is None:
            self.widget = self._factory()
            for callback in self._on_build:
                callback(self.widget)
            self._on_build.clear()
            self.box.children = (self.widget,)
        return self.widget


class LivePlot(anywidget.AnyWidget):
    """The browser side of a :class:`LiveFigure` (``js/live_figure.js``)."""

    _esm = LIVE_FIGURE_ESM
    base = traitlets.Dict().tag(sync=True)
    overlay = traitlets.List(traitlets.Dict()).tag(sync=True)
    overlay_layout = traitlets.Dict().tag(sync=True)  # e.g. shapes, annotations
    config = traitlets.Dict(PLOT_CONFIG).tag(sync=True)
    revision = traitlets.Int(0).tag(sync=True)


class LiveFigure(_PlotSlot):
    """A plotly figure redrawn in place: ``base`` (the static traces and layout, a plotly
    figure dict, sent once) plus an overlay (the traces and layout entries that follow the
    selection). See the module docstring for when to use it instead of :class:`FigureSlot`;
    its anywidget is created in an :class:`AnySlot`."""

    def __init__(self, base: go.Figure | dict, css_class: str, **layout: Any) -> None:
        self.base = _as_json(base)
        self.overlay: list[dict] = []
        self.overlay_layout: dict = {}
        self.revision = 0
        self._slot = AnySlot(self._make, css_class, width=layout.pop("width", "100%"), **layout)

    def _make(self) -> LivePlot:
        plot = LivePlot(
            base=self.base,
            overlay=self.overlay,
            overlay_layout=self.overlay_layout,
            revision=self.revision,
            layout=widgets.Layout(width="100%"),
        )
        plot.add_class("hvae-live-figure")
        return plot

    @property
    def figure(self) -> dict:
        """The whole figure shown: the base's traces, then the overlay's."""
        return {
            "data": [*self.base.get("data", []), *self.overlay],
            "layout": {**self.base.get("layout", {}), **self.overlay_layout},
        }

    def set_base(self, base: go.Figure | dict) -> None:
        """Replace the static part (e.g. densities estimated again); sent once, like the first."""
        self.base = _as_json(base)
        self._send(base=self.base)

    def show(self, overlay: list[dict], layout: dict | None = None) -> None:
        """Replace the overlay: traces, and layout entries such as ``shapes`` or
        ``annotations`` (which plotly redraws without redrawing the traces)."""
        self.overlay, self.overlay_layout = overlay, layout or {}
        self._send(overlay=self.overlay, overlay_layout=self.overlay_layout)

    def _send(self, **traits: Any) -> None:
        """A new revision: ``traits`` and the revision in one message, once the plot exists."""
        self.revision += 1
        plot = self._slot.widget
        if plot is not None:
            with plot.hold_sync():
                for name, value in traits.items():
                    setattr(plot, name, value)
                plot.revision = self.revision


def _as_json(fig: go.Figure | dict) -> dict:
    """A plotly figure as its JSON dict (a dict is taken as it is)."""
    return fig if isinstance(fig, dict) else json.loads(pio.to_json(fig, validate=False))


# One background thread for work done ahead of a click (the next shuffle's reconstructions, the
# explorer's other pairs of sets): torch and numpy leave the interpreter free meanwhile, so the
# kernel keeps answering.
AHEAD = ThreadPoolExecutor(max_workers=1, thread_name_prefix="hvaelab-ahead")


_AHEAD_MODELS: dict[int, tuple[Any, Any]] = {}


def ahead_model(model: Any) -> Any:
    """The copy of ``model`` that work in :data:`AHEAD` runs: never the page's own module, on
    which the main thread may meanwhile hang forward hooks (:mod:`hvaelab.correlation`); one
    copy per model (0.9 M parameters for the HVAE, 5.9 M for the BIVA)."""
    hit = _AHEAD_MODELS.get(id(model))
    if hit is None or hit[0] is not model:
        hit = _AHEAD_MODELS[id(model)] = (model, copy.deepcopy(model))
    return hit[1]


def when_settled(callback: Callable[[], None], delay: float = 1.0) -> bool:
    """Run ``callback()`` in the kernel ``delay`` s after the page has settled (under Voilà: after
    :data:`GATE` opens; in JupyterLab: after the cell has run), between messages, to prepare
    what a later click will show. Returns False where no kernel loop runs (tests, scripts):
    then nothing is scheduled and the caller does the work when asked. A failing callback is
    ignored (the work is done again when asked)."""
    try:
        loop = asyncio.get_running_loop()  # the kernel's, in a cell or a widget's callback
    except RuntimeError:
        return False

    def run() -> None:
        with contextlib.suppress(Exception):
            callback()

    GATE.after_release(lambda: loop.call_later(delay, run))
    return True


def with_class(widget: widgets.Widget, *css_classes: str) -> widgets.Widget:
    for c in css_classes:
        widget.add_class(c)
    return widget


def ready_marker(text: str = "✓ ready") -> widgets.HTML:
    """The (visible) element with class ``hvae-ready`` a page shows once its widgets are built
    (under Voilà: once displayed, after the page's figures, see :data:`GATE`)."""
    w = widgets.HTML(f'<span style="color:#999;font-size:11px">{text}</span>')
    page_model().own(w)  # closed when the notebook is re-run from the top
    if GATE.is_open:
        w.add_class(READY_CLASS)
    else:
        GATE.hold_marker(w)
    return w


def status_html(text: str, kind: str = "info") -> str:
    colors = {"info": "#555", "busy": "#1f77b4", "error": "#b00", "ok": "#2a7a2a"}
    return f'<span style="color:{colors.get(kind, "#555")}">{text}</span>'


def page(
    build: Callable[[str], widgets.Widget] | Callable[[], widgets.Widget],
    what: str = "This page",
    ready: bool = True,
) -> widgets.VBox:
    """A piece of a page: ``build`` followed by the ready marker (``ready=False``: without it,
    for a piece in the middle of a page); a failure becomes a readable message box instead of a
    traceback.

    A ``build`` that takes an argument gets the name of the page's model and is rebuilt when
    the page's model menu changes (:mod:`.model_menu`); ``build()`` without one is built once."""
    follows = takes_model(build)
    pm = page_model()
    box = widgets.VBox([build_piece(build, what, pm.name if follows else None)])
    if follows:
        pm.follow(box, build, what)
    else:
        pm.own(box)  # closed with the page all the same
    if ready:
        box.children = (*box.children, ready_marker())
    return box


__all__ = [
    "AHEAD",
    "ahead_model",
    "DEFAULT_HEIGHT",
    "GATE",
    "PLOT_CONFIG",
    "READY_CLASS",
    "FigureSlot",
    "AnySlot",
    "FrontEndGate",
    "LiveFigure",
    "LivePlot",
    "close_unshown",
    "figure_height",
    "figure_width",
    "holds_figures",
    "page",
    "ready_marker",
    "preheated",
    "served_by_voila",
    "status_html",
    "when_settled",
    "with_class",
]

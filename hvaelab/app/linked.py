"""Linked views of one example: select it anywhere, see it everywhere.

A page holds one :class:`Selection`. Whatever selects an example -- a point of an
:class:`ExampleStrip` under a density, a drawing (:mod:`.draw_view`), an upload, a row of the
reconstruction grid -- calls :meth:`Selection.select`; the example's
:class:`hvaelab.example_report.ExampleReport` is computed once (the one scoring entry point) and
every subscribed view redraws from it:

* :class:`ExampleInspector`: the input and what the model sees, its latent reconstructions for
  every k (figs. 1, 3), every LLR>k with its p-value and the verdict (sec. 5), its per-layer KL
  against the in-distribution test set (eq. 4, sec. 4.1), a marker on the density of each
  LLR>k (fig. 5) and on each ROC curve at the example's own threshold (figs. 6-7);
* :meth:`hvaelab.app.explorer.LikelihoodRatioExplorer.set_selected`: a marker on the explorer's
  density and ROC curve.

The inspector's figures are plotly figure dicts built once; an update only swaps the marker
traces, so a view follows a drawing stroke by stroke.
"""

from __future__ import annotations

import base64
import contextlib
import html
import io
import json
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import anywidget
import ipywidgets as widgets
import numpy as np
import plotly.graph_objects as go
import plotly.io as pio
import traitlets
from PIL import Image

from ..example_report import ExampleReport, example_report, reference_layer_kl
from ..model import HierarchicalVAE
from ..score_names import SECOND_STAGE_COLUMN, ScoreName, TableKey
from ..scores import InputScores, ScoreTable, ood_scores, reference_key, score_inputs
from ..verdict import describe, kl_means, llr_verdict_names
from .explorer import SELECTED_COLOR, LikelihoodRatioExplorer
from .resources import (
    dataset_label,
    default_ood,
    is_comparison_set,
    load_checkpoint,
    load_score_tables,
    sample_images,
    second_stage_problem,
)
from .score_figures import (
    _rgba,
    dataset_color,
    density_curves,
    pretty_score,
    roc_data,
    roc_point,
)
from .theme import TEMPLATE
from .widgets import AHEAD, AnySlot, LiveFigure, ahead_model, status_html, with_class

# Reports a Selection keeps (an example chosen again, or prepared ahead): ~30 KB each.
REPORT_CACHE = 32


@dataclass
class Example:
    """An input to show: a name, where it came from, and the image (uint8 (28, 28) grey or
    (32, 32, 3) colour, as :func:`hvaelab.data.validate_images` takes)."""

    name: str
    image: np.ndarray
    source: str = ""  # e.g. "your drawing", "upload", "FashionMNIST test"


class Selection:
    """The one selected example of a page and the views that follow it.

    ``select(example)`` scores it once (:func:`hvaelab.example_report.example_report` against
    ``reference``) and calls every ``observe``-d view with the report. ``lt=False`` leaves out
    the L<l bounds (a page whose views show only L>k and LLR>k: the drawing page).
    """

    def __init__(
        self,
        model: HierarchicalVAE,
        reference: ScoreTable,
        fpr: float = 0.05,
        iw_form: str = "iw-both",
        lt: bool | None = None,
    ) -> None:
        self.model, self.reference, self.fpr, self.iw_form = model, reference, fpr, iw_form
        self.lt = lt
        self.example: Example | None = None
        self.report: ExampleReport | None = None
        self._views: list[Callable[[Example, ExampleReport], None]] = []
        # reports of recent examples (by name and pixels): choosing one again, or one prepared
        # ahead (prepare), costs no model pass; a lock, since prepare runs in a thread
        self._reports: OrderedDict[tuple[str, bytes], ExampleReport] = OrderedDict()
        self._pending: dict[tuple[str, bytes], Future] = {}  # prepare_ahead's jobs
        self._lock = threading.Lock()

    def observe(self, view: Callable[[Example, ExampleReport], None]) -> None:
        """Call ``view(example, report)`` on every selection (and now, if one is selected)."""
        self._views.append(view)
        if self.example is not None and self.report is not None:
            view(self.example, self.report)

    @staticmethod
    def _key(example: Example) -> tuple[str, bytes]:
        image = np.ascontiguousarray(example.image)
        return example.name, str(image.dtype).encode() + bytes(image.shape) + image.tobytes()

    def report_for(self, example: Example, model: HierarchicalVAE | None = None) -> ExampleReport:
        """``example``'s report: computed once (with ``model``, a copy of the selection's, in
        another thread), kept for the last :data:`REPORT_CACHE`; one being prepared in the
        other thread is waited for."""
        image = np.ascontiguousarray(example.image)
        key = self._key(example)
        with self._lock:
            report = self._reports.get(key)
            if report is not None:
                self._reports.move_to_end(key)
                return report
            pending = self._pending.get(key) if model is None else None
        if pending is not None:
            with contextlib.suppress(Exception):  # failed ahead: computed here, where it raises
                return pending.result()
        report = example_report(
            model or self.model, image, self.reference, example.name, self.fpr, self.iw_form,
            self.lt,
        )  # fmt: skip
        with self._lock:
            self._reports[key] = report
            while len(self._reports) > REPORT_CACHE:
                self._reports.popitem(last=False)
        return report

    def prepare(self, example: Example) -> None:
        """Compute ``example``'s report now, in the thread that works ahead (with its copy of the
        model), for a later select."""
        self.report_for(example, ahead_model(self.model))

    def prepare_ahead(self, example: Example) -> Future:
        """Compute ``example``'s report in the thread that works ahead (:data:`AHEAD`); a select
        meanwhile waits for it instead of computing it again."""
        key = self._key(example)
        with self._lock:
            pending = self._pending.get(key)
            if pending is not None:
                return pending
            job = self._pending[key] = AHEAD.submit(
                self.report_for, example, ahead_model(self.model)
            )

        def done(_job: Future) -> None:
            with self._lock:
                self._pending.pop(key, None)

        job.add_done_callback(done)
        return job

    def select(self, example: Example) -> ExampleReport:
        """Select ``example``: compute its report (or take it from the recent ones) and update
        every view."""
        report = self.report_for(example)
        self.example, self.report = example, report
        for view in self._views:
            view(example, report)
        return report


# ------------------------------------------------------------------------------ small pieces
def image_src(image: np.ndarray) -> str:
    """A PNG data URI of a uint8 (H, W) / (H, W, 3) image or a float (C, H, W) one in [0, 1]."""
    arr = np.asarray(image)
    if arr.dtype != np.uint8:
        arr = np.round(np.clip(arr.astype(np.float32), 0, 1) * 255).astype(np.uint8)
        arr = arr[0] if arr.shape[0] == 1 else arr.transpose(1, 2, 0)
    buf = io.BytesIO()
    Image.fromarray(arr, mode="RGB" if arr.ndim == 3 else "L").save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _img(src: str, caption: str, size: int, cls: str = "") -> str:
    return (
        f'<figure class="{cls}" style="margin:0 4px;text-align:center">'
        f'<img src="{src}" width="{size}" height="{size}" '
        'style="image-rendering:pixelated;border:1px solid #ccc;display:block">'
        f'<figcaption style="font-size:11px;color:#444;line-height:1.2">{caption}</figcaption>'
        "</figure>"
    )


def reconstructions_html(report: ExampleReport, size: int = 72) -> str:
    """The input as given, what the model sees, then its reconstruction from every k."""
    rec = report.reconstructions
    given = report.image
    parts = [
        _img(image_src(given), "as given", size, "hvae-inspect-given"),
        _img(image_src(report.model_input), "model sees", size, "hvae-inspect-seen"),
    ]
    for j, k in enumerate(rec.ks):
        lp = float(rec.log_px[j, 0])
        parts.append(
            _img(
                image_src(rec.images[j, 0].numpy()),
                f"k = {k}<br><small>log p(x|z) {round(lp)}</small>",
                size,
                "hvae-inspect-rec",
            )
        )
    return (
        '<div class="hvae-inspect-recons-row" style="display:flex;flex-wrap:wrap;'
        'align-items:flex-start">' + "".join(parts) + "</div>"
        '<div style="font-size:11px;color:#666">Reconstruction from k: the latents above k from '
        "q(z|x), the k lowest from the conditional prior, all at their means (figs. 1, 3).</div>"
    )


def scores_html(report: ExampleReport, n_dims: int) -> str:
    """The paper's LLR>k (k below the top active layer) and the second stage with their
    p-values, the verdict, its rule and what decided it (sec. 5, :mod:`hvaelab.verdict`)."""
    s = report.scores
    rows = []

    def row(label: str, name: str, bound_bpd: float | None) -> str:
        v, p = report.score(name), report.p_value(name)
        bpd = "" if bound_bpd is None else f"{bound_bpd:.3f}"
        return (
            f'<tr><td style="padding:1px 8px">{label}</td>'
            f'<td class="hvae-inspect-value" data-score="{html.escape(name)}" '
            f'data-value="{v:.6g}" style="padding:1px 8px;text-align:right">{v:.2f}</td>'
            f'<td class="hvae-inspect-p" data-score="{html.escape(name)}" data-value="{p:.6g}" '
            f'style="padding:1px 8px;text-align:right">{p:.3f}</td>'
            f'<td style="padding:1px 8px;text-align:right">{bpd}</td></tr>'
        )

    for name in s.llr_verdict:
        k = ScoreName.parse(name).k
        gt = str(ScoreName.gt(k, name.find("_S") >= 0))
        gt_bpd = (
            float(ScoreName.parse(gt).to_display(report.score(gt), n_dims))
            if gt in s.scores
            else float("nan")
        )
        rows.append(row(f"LLR<sup>&gt;{k}</sup>", name, gt_bpd))
    if SECOND_STAGE_COLUMN in (s.p_values or {}):
        rows.append(row("second stage", SECOND_STAGE_COLUMN, None))
    ood = bool(report.is_ood)
    verdict = "OOD" if ood else "in-distribution"
    color = "#b00" if ood else "#2a7a2a"
    decisive = s.decisive[0] if s.decisive else ""
    rule = describe(s.rule, [pretty_score(n, html_=False) for n in s.verdict_scores], s.fpr)
    paper = ""
    if s.rule != "llr" and s.paper is not None:  # the paper's verdict beside the default one
        p_ood = bool(s.paper.is_ood[0])
        p_name = pretty_score(s.llr_verdict[int(s.paper.decisive[0])])
        said = "OOD" if p_ood else "in-distribution"
        paper = (
            f'<div class="hvae-inspect-paper" data-verdict="{said}" style="font-size:12px">'
            "The paper's likelihood ratios say: "
            f'<b style="color:{"#b00" if p_ood else "#2a7a2a"}">{said}</b> ({p_name}, p = '
            f"{float(s.paper.min_p[0]):.3g}; OOD when p &lt; {s.fpr:g}/{len(s.llr_verdict)})</div>"
        )
    return (
        f'<div class="hvae-inspect-verdict" data-verdict="{verdict}" data-rule="{s.rule}" '
        f'style="font-size:15px;color:{color}"><b>{verdict}</b> '
        f'<span style="color:#444;font-size:12px">(decided by {pretty_score(decisive)}, '
        f"p = {float(s.min_p[0]):.3g})</span></div>"
        f'<div class="hvae-inspect-rule" style="font-size:11px;color:#555">Verdict: '
        f"{html.escape(rule)}.</div>{paper}"
        f'<div style="font-size:12px">−ELBO: <span class="hvae-inspect-bpd" '
        f'data-value="{float(s.bits_per_dim[0]):.6g}">{float(s.bits_per_dim[0]):.3f}</span> '
        "bits/dim</div>"
        '<table class="hvae-inspect-table" style="border-collapse:collapse;font-size:12px">'
        '<thead><tr style="border-bottom:1px solid #444"><th style="padding:1px 8px">score</th>'
        '<th style="padding:1px 8px">value (nats)</th><th style="padding:1px 8px">p-value</th>'
        '<th style="padding:1px 8px">−L<sup>&gt;k</sup> (bits/dim)</th></tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def _cover(span: Sequence[float], value: float) -> list[float]:
    """``span`` widened to show ``value`` with a margin (unchanged when it already does)."""
    lo, hi = float(span[0]), float(span[1])
    if lo <= value <= hi:
        return [lo, hi]
    pad = 0.05 * (max(hi, value) - min(lo, value))
    return [min(lo, value - pad), max(hi, value + pad)]


def _spec(fig: go.Figure) -> dict:
    """A figure as the JSON-ready dict plotly.js takes (arrays as plotly's typed arrays)."""
    return json.loads(pio.to_json(fig, validate=False))


# --------------------------------------------------------------------------------- the strip
_STRIP_ESM = (Path(__file__).with_name("js") / "strip.js").read_text()  # the browser side


class ExampleStrip(anywidget.AnyWidget):
    """Examples as points along a score axis, one row per dataset; clicking one selects it.

    ``points``: ``{"x", "row", "label", "src", "color"}`` per example (``src`` a thumbnail
    data URI shown on hover); ``selected``: the index clicked (-1: none).
    """

    _esm = _STRIP_ESM
    points = traitlets.List(traitlets.Dict()).tag(sync=True)
    rows = traitlets.List(traitlets.Unicode()).tag(sync=True)
    x_title = traitlets.Unicode("").tag(sync=True)
    selected = traitlets.Int(-1).tag(sync=True)


@lru_cache(maxsize=8)
def _sample_scores(checkpoint: str, dataset: str, reference: str) -> dict[str, np.ndarray]:
    """Every score of the shipped test images of ``dataset`` (scored once per process)."""
    lm = load_checkpoint(checkpoint)
    ref = load_score_tables(checkpoint)[reference]
    return score_inputs(lm.model, sample_images(dataset, checkpoint), ref).scores


class ExamplePicker:
    """The shipped test images of the in-distribution and OOD sets as an :class:`ExampleStrip`
    along one score; clicking a point selects that image in ``selection``."""

    def __init__(
        self, checkpoint: str, selection: Selection, datasets: Sequence[str], reference: str
    ) -> None:
        self.selection = selection
        self.examples: list[Example] = []
        self.scores: list[dict[str, float]] = []
        points_meta = []
        for row, name in enumerate(datasets):
            imgs = sample_images(name, checkpoint)
            sc = _sample_scores(checkpoint, name, reference)
            for i, img in enumerate(imgs):
                label = f"{dataset_label(name)} test image {i + 1}"
                self.examples.append(Example(label, img, f"{dataset_label(name)} test"))
                self.scores.append({s: float(v[i]) for s, v in sc.items()})
                points_meta.append((row, label, image_src(img), dataset_color(name)))
        self._meta = points_meta
        self._state: dict = {"rows": [dataset_label(n) for n in datasets]}
        self.slot = AnySlot(self._make_strip, "hvae-example-strip", width="100%")

    def _make_strip(self) -> ExampleStrip:
        strip = ExampleStrip(**self._state, layout=widgets.Layout(width="100%"))
        strip.observe(self._on_click, "selected")
        return strip

    @property
    def box(self) -> widgets.Box:
        """What the page shows (the strip, once the page has settled: :class:`AnySlot`)."""
        return self.slot.box

    @property
    def strip(self) -> ExampleStrip:
        """The strip widget (created now if the page has not settled yet)."""
        return self.slot.build()

    def show_score(self, score: str, n_dims: int) -> None:
        """Place the examples along ``score`` (display units)."""
        name = ScoreName.parse(score)
        pts = []
        for (row, label, src, color), sc in zip(self._meta, self.scores, strict=True):
            v = sc.get(score)
            x = float(name.to_display(v, n_dims)) if v is not None else float("nan")
            pts.append(
                {"x": x, "row": row, "label": html.escape(label), "src": src, "color": color}
            )
        title = f"{name.label(False)} ({name.unit}); click a point to inspect it"
        self._state.update(points=pts, x_title=title)
        strip = self.slot.widget
        if strip is not None:
            with strip.hold_sync():
                strip.points, strip.x_title = pts, title

    def _on_click(self, change) -> None:
        i = int(change["new"])
        if 0 <= i < len(self.examples):
            self.selection.select(self.examples[i])


# -------------------------------------------------------------------------------- inspector
def _box(name: str, values: np.ndarray, color: str, offset: int) -> dict:
    """A box per layer from quartiles only (no 10,000 points sent to the browser)."""
    q = np.quantile(values, [0.0, 0.25, 0.5, 0.75, 1.0], axis=0)
    iqr = q[3] - q[1]
    lo = np.maximum(q[0], q[1] - 1.5 * iqr)
    hi = np.minimum(q[4], q[3] + 1.5 * iqr)
    L = values.shape[1]
    return {
        "type": "box",
        "name": f"{dataset_label(name)} test",
        "x": [f"z{i}" for i in range(1, L + 1)],
        "q1": q[1].tolist(),
        "median": q[2].tolist(),
        "q3": q[3].tolist(),
        "lowerfence": lo.tolist(),
        "upperfence": hi.tolist(),
        "marker": {"color": color},
        "offsetgroup": str(offset),
        "hoverinfo": "skip",
    }


class ExampleInspector(widgets.VBox):
    """One selected example in every view (see the module docstring).

    ``tables`` are a checkpoint's score tables; the densities and ROC curves compare
    ``in_name`` (the reference) with ``ood_name`` at the reference's S. ``lead`` (e.g. a
    drawing canvas) is placed left of the example's images and scores.
    """

    def __init__(
        self,
        selection: Selection,
        tables: Mapping[str, ScoreTable],
        in_name: str,
        ood_name: str | None = None,
        seed: int = 0,
        lead: widgets.Widget | None = None,
        checkpoint: str | None = None,
    ) -> None:
        self.selection = selection
        ref = selection.reference
        S = ref.n_samples
        names = sorted({TableKey.parse(k).dataset for k in tables})
        ood_name = ood_name or default_ood(names, in_name)
        ood = tables.get(str(TableKey(ood_name, S)))
        if ood is None:
            raise ValueError(f"no score table of {ood_name!r} at S = {S}")
        self.in_name, self.ood_name, self.seed = in_name, ood_name, seed
        self.n_dims = int(ref.meta["n_dims"])
        self.n_layers = ref.n_layers
        # the paper's verdict's LLR>k: k below the top active layer (hvaelab.verdict)
        self.llr = llr_verdict_names(self.n_layers, S, means=kl_means(ref.columns, self.n_layers))
        self.s_in, self.s_ood = ood_scores(ref), ood_scores(ood)
        self._density_base = self._density_spec()
        self._roc_base = self._roc_spec()
        self._kl_base = self._kl_spec(reference_layer_kl(ref), reference_layer_kl(ood))

        self.header = with_class(
            widgets.HTML('<i style="color:#666">Select an example to inspect it.</i>'),
            "hvae-inspect-header",
        )
        self.recons = with_class(widgets.HTML(), "hvae-inspect-recons")
        self.table = with_class(widgets.HTML(), "hvae-inspect-scores")
        # a checkpoint whose second stage cannot be used says so, with the fix
        problem = second_stage_problem(checkpoint) if checkpoint else None
        self.notice = with_class(
            widgets.HTML(status_html(html.escape(problem), "error") if problem else ""),
            "hvae-inspect-notice",
        )
        self.density = LiveFigure(self._density_base, "hvae-inspect-density", width="100%")
        self.roc = LiveFigure(self._roc_base, "hvae-inspect-roc", width="50%")
        self.kl = LiveFigure(self._kl_base, "hvae-inspect-kl", width="50%")
        about = widgets.VBox(
            [self.header, self.recons, self.notice, self.table],
            layout=widgets.Layout(flex="1 1 300px"),
        )
        top = widgets.HBox(
            [lead, about] if lead is not None else [about],
            layout=widgets.Layout(flex_flow="row wrap", width="100%"),
        )
        super().__init__(
            [
                top,
                self.density.box,
                widgets.HBox([self.kl.box, self.roc.box], layout=widgets.Layout(width="100%")),
            ],
            layout=widgets.Layout(width="100%"),
        )
        self.add_class("hvae-inspector")
        selection.observe(self.show)

    # ------------------------------------------------------------------------ base figures
    def _density_spec(self) -> dict:
        L = len(self.llr)  # one panel per LLR>k of the verdict
        gap = 0.06
        w = (1 - gap * (L - 1)) / L
        fig = go.Figure()
        layout: dict = {}
        self._ytop: list[float] = []  # each panel's highest density (the markers' height)
        for j, score in enumerate(self.llr):
            ax = "" if j == 0 else str(j + 1)
            curves = density_curves(
                {self.in_name: self.s_in[score], self.ood_name: self.s_ood[score]}
            )
            self._ytop.append(max(float(np.max(y)) for y in curves.y.values()))
            for name, y in curves.y.items():
                color = dataset_color(name)
                fig.add_trace(
                    go.Scatter(
                        x=curves.x,
                        y=y,
                        mode="lines",
                        name=dataset_label(name),
                        legendgroup=name,
                        showlegend=j == 0,
                        line={"color": color, "width": 1.5},
                        fill="tozeroy",
                        fillcolor=_rgba(color, 0.25),
                        xaxis=f"x{ax}",
                        yaxis=f"y{ax}",
                        hoverinfo="skip",
                    )
                )
            # Fixed ranges: a marker then redraws alone, without recomputing the figure
            # (markers() widens a range that a marker falls outside of).
            layout[f"xaxis{ax}"] = {
                "domain": [j * (w + gap), j * (w + gap) + w],
                "anchor": f"y{ax}",
                "title": {"text": f"{pretty_score(score)} (nats)"},
                "range": [float(curves.x[0]), float(curves.x[-1])],
                "autorange": False,
            }
            layout[f"yaxis{ax}"] = {
                "anchor": f"x{ax}",
                # headroom above the highest density for the markers' p-value labels
                "range": [0.0, 1.3 * self._ytop[-1]],
                "autorange": False,
                "showticklabels": False,
            }
        fig.update_layout(
            **layout,
            title={"text": "Where it falls on each LLR<sup>&gt;k</sup> density (fig. 5)", "x": 0.5},
            template=TEMPLATE,
            height=260,
            margin={"l": 20, "r": 20, "t": 70, "b": 50},
            # between the title and the panels: outside every panel's data and labels
            legend={
                "orientation": "h",
                "x": 0,
                "y": 1.0,
                "yanchor": "bottom",
                "font": {"size": 11},
            },
            uirevision="inspect-density",
        )
        return _spec(fig)

    def _roc_spec(self) -> dict:
        fig = go.Figure()
        palette = ("#636efa", "#ef553b", "#00cc96", "#ab63fa", "#ffa15a", "#19d3f3")
        for j, score in enumerate(self.llr):
            c = roc_data(self.s_in[score], self.s_ood[score], self.seed)
            fig.add_trace(
                go.Scatter(
                    x=c.fpr,
                    y=c.tpr,
                    mode="lines",
                    name=f"{pretty_score(score)} (AUROC {c.metrics['auroc']:.3f})",
                    line={"color": palette[j % len(palette)], "width": 1.5},
                    hoverinfo="skip",
                )
            )
        fig.update_layout(
            title={"text": "ROC: the example's threshold on each curve", "x": 0.5},
            xaxis={"title": {"text": "FPR"}, "range": [-0.01, 1.01]},
            yaxis={"title": {"text": "TPR"}, "range": [-0.01, 1.01]},
            template=TEMPLATE,
            height=320,
            margin={"l": 50, "r": 10, "t": 50, "b": 45},
            legend={"orientation": "h", "x": 0, "y": -0.2, "yanchor": "top", "font": {"size": 10}},
            uirevision="inspect-roc",
        )
        return _spec(fig)

    def _kl_spec(self, kl_in: np.ndarray, kl_ood: np.ndarray) -> dict:
        fig = go.Figure()
        fig.update_layout(
            title={"text": "Per-layer KL (eq. 4) vs the test sets", "x": 0.5},
            xaxis={"title": {"text": "latent layer"}},
            yaxis={"title": {"text": "KL (nats)"}, "rangemode": "tozero"},
            boxmode="group",
            template=TEMPLATE,
            height=320,
            margin={"l": 55, "r": 10, "t": 50, "b": 45},
            legend={"orientation": "h", "y": -0.25, "font": {"size": 10}},
            uirevision="inspect-kl",
        )
        spec = _spec(fig)
        spec["data"] = [
            _box(self.in_name, kl_in, dataset_color(self.in_name), 0),
            _box(self.ood_name, kl_ood, dataset_color(self.ood_name), 1),
        ]
        top = max(max(b["upperfence"]) for b in spec["data"])  # fixed: see _density_spec
        spec["layout"]["yaxis"] = {**spec["layout"]["yaxis"], "range": [0.0, 1.1 * top],
                                   "autorange": False}  # fmt: skip
        return spec

    # ------------------------------------------------------------------------------- update
    def markers(self, report: ExampleReport) -> dict[str, dict]:
        """``report``'s markers for each figure, ``{"density", "roc", "kl"}``, each
        ``{"traces": [...], "layout": {...}}`` (shapes and annotations: plotly redraws them
        without redrawing the figure's traces)."""
        name = html.escape(report.name)
        shapes, notes, axes = [], [], {}
        for j, score in enumerate(self.llr):
            ax = "" if j == 0 else str(j + 1)
            v, p = report.score(score), report.p_value(score)
            axis = self._density_base["layout"][f"xaxis{ax}"]
            span = _cover(axis["range"], v)  # widened if the marker falls outside
            axes[f"xaxis{ax}"] = {**axis, "range": span}
            right = (v - span[0]) > 0.6 * (span[1] - span[0])  # label on the inner side
            line = {"color": SELECTED_COLOR, "width": 3, "dash": "dash"}
            shapes.append(
                {"type": "line", "xref": f"x{ax}", "yref": f"y{ax} domain", "x0": v, "x1": v,
                 "y0": 0, "y1": 0.8, "line": line, "name": name}
            )  # fmt: skip
            notes.append(
                {"xref": f"x{ax}", "yref": f"y{ax} domain", "x": v, "y": 0.98, "yanchor": "top",
                 "xanchor": "right" if right else "left", "text": f"p = {p:.3f}",
                 "showarrow": False, "font": {"color": SELECTED_COLOR, "size": 11}}
            )  # fmt: skip
        notes.append(  # whose lines these are (inside the figure, never cut at its edge)
            {"xref": "paper", "yref": "paper", "x": 1, "y": 1.0, "xanchor": "right",
             "yanchor": "bottom", "showarrow": False, "font": {"color": SELECTED_COLOR, "size": 11},
             "text": f"- - {name}"}
        )  # fmt: skip
        density = {"traces": [], "layout": {"shapes": shapes, "annotations": notes, **axes}}

        fpr, tpr, text = [], [], []
        for score in self.llr:
            f, t = roc_point(self.s_in[score], self.s_ood[score], report.score(score), self.seed)
            fpr.append(f)
            tpr.append(t)
            text.append(f"{pretty_score(score)} ≥ {report.score(score):.1f}")
        roc_traces = [
            {
                "type": "scatter",
                "x": fpr,
                "y": tpr,
                "mode": "markers",
                "marker": {
                    "color": SELECTED_COLOR,
                    "size": 12,
                    "symbol": "x",
                    "line": {"width": 1, "color": "#000"},
                },
                "name": f"{name}: flagged at its own score",
                "text": text,
                "hovertemplate": "%{text}<br>FPR %{x:.3f}, TPR %{y:.3f}<extra></extra>",
            },
        ]
        kl_shapes = [
            {"type": "circle", "xref": "x", "yref": "y", "xsizemode": "pixel",
             "ysizemode": "pixel", "xanchor": f"z{i}", "yanchor": float(v), "x0": -7, "x1": 7,
             "y0": -7, "y1": 7, "fillcolor": SELECTED_COLOR, "line": {"color": "#000", "width": 1},
             "name": name}
            for i, v in enumerate(report.layer_kl, start=1)
        ]  # fmt: skip
        kl_axis = self._kl_base["layout"]["yaxis"]
        top = max(kl_axis["range"][1], 1.1 * float(np.max(report.layer_kl)))
        kl_notes = [
            {"xref": "paper", "yref": "paper", "x": 1, "y": 1.02, "xanchor": "right",
             "yanchor": "bottom", "showarrow": False, "font": {"color": SELECTED_COLOR, "size": 11},
             "text": f"● {name}"}
        ]  # fmt: skip
        return {
            "density": density,
            "roc": {"traces": roc_traces, "layout": {}},
            "kl": {
                "traces": [],
                "layout": {
                    "shapes": kl_shapes,
                    "annotations": kl_notes,
                    "yaxis": {**kl_axis, "range": [0.0, top]},
                },
            },
        }

    def show(self, example: Example, report: ExampleReport) -> None:
        """Redraw every view for ``report`` (a :class:`Selection` calls this)."""
        source = f" <small>({html.escape(example.source)})</small>" if example.source else ""
        self.header.value = f"<b>{html.escape(example.name)}</b>{source}"
        self.recons.value = reconstructions_html(report)
        self.table.value = scores_html(report, self.n_dims)
        marks = self.markers(report)
        for key, slot in (("density", self.density), ("kl", self.kl), ("roc", self.roc)):
            slot.show(marks[key]["traces"], marks[key]["layout"])


def selection_for(
    checkpoint: str, fpr: float = 0.05, lt: bool | None = None
) -> tuple[Selection, dict, str, str]:
    """A :class:`Selection` on checkpoint NAME's model and reference table, with the tables,
    the in-distribution set and the reference key."""
    lm = load_checkpoint(checkpoint)
    tables = load_score_tables(checkpoint)
    in_name = lm.dataset or "fashionmnist"
    ref_key = reference_key(tables, in_name)
    return Selection(lm.model, tables[ref_key], fpr, lt=lt), tables, in_name, ref_key


def comparison_sets(tables: Mapping[str, ScoreTable], in_name: str) -> list[str]:
    """The in-distribution set and the real OOD sets with tables (no derived sets)."""
    names = sorted({TableKey.parse(k).dataset for k in tables})
    return [in_name, *(n for n in names if n != in_name and is_comparison_set(n))]


__all__ = [
    "Example",
    "ExampleChooser",
    "ExampleInspector",
    "ExamplePicker",
    "ExampleStrip",
    "Selection",
    "comparison_sets",
    "image_src",
    "linked_explorer",
    "linked_reconstructions",
    "reconstructions_html",
    "scores_html",
    "selection_for",
    "upload_inspector",
]


def linked_explorer(checkpoint: str, family: str = "LLR>k", k: int = 1) -> widgets.VBox:
    """The likelihood-ratio explorer with linked views: under its density, a strip of the shipped
    test images along the chosen score; clicking one marks it on the explorer's density and ROC
    curve and shows it in an :class:`ExampleInspector`."""
    selection, tables, in_name, ref_key = selection_for(checkpoint)
    explorer = LikelihoodRatioExplorer(
        checkpoint, tables=tables, in_name=in_name, family=family, k=k
    )
    picker = ExamplePicker(checkpoint, selection, comparison_sets(tables, in_name), ref_key)
    inspector = ExampleInspector(selection, tables, in_name, checkpoint=checkpoint)
    n_dims = explorer.n_dims

    def follow(ex: LikelihoodRatioExplorer) -> None:
        S = ex.n_samples
        score = ex.score_name if S == selection.reference.n_samples else None
        picker.show_score(score or str(ScoreName.llr(1, False)), n_dims)

    explorer.on_refresh(follow)
    follow(explorer)
    selection.observe(
        lambda e, r: explorer.set_selected(
            e.name, {s: float(v[0]) for s, v in r.scores.scores.items()}
        )
    )
    note = widgets.HTML(
        '<div style="font-size:13px;margin-top:6px"><b>Inspect one example.</b> Each point below '
        "is a shipped test image placed at its value of the score above; click one to see it "
        "everywhere: marked on the density and on the ROC curve (at its own threshold), with its "
        "reconstructions for every k, every LLR<sup>&gt;k</sup> with its p-value and its "
        "per-layer KL.</div>"
    )
    box = widgets.VBox([explorer, note, picker.box, inspector], layout=widgets.Layout(width="100%"))
    box.add_class("hvae-linked-explorer")
    box.explorer, box.picker, box.inspector, box.selection = explorer, picker, inspector, selection
    return box


class ExampleChooser:
    """A menu of examples (a grid's rows, uploads) that selects the chosen one in
    ``selection``; :meth:`set_examples` replaces the menu and selects the first."""

    def __init__(self, selection: Selection, description: str, css_class: str) -> None:
        self.selection = selection
        self.examples: list[Example] = []
        self.menu = with_class(
            widgets.Dropdown(
                description=description, options=[], layout=widgets.Layout(width="360px")
            ),
            css_class,
        )
        self.menu.observe(self._on_choice, "value")

    def set_examples(
        self, examples: Iterable[Example], labels: Sequence[str] | None = None
    ) -> None:
        """Offer ``examples`` (menu entries: ``labels``, default their names)."""
        self.examples = list(examples)
        labels = [e.name for e in self.examples] if labels is None else list(labels)
        # new options reset the menu to index 0 without a change event when it was 0 already
        self.menu.options = [(label, i) for i, label in enumerate(labels)]
        if self.examples:
            if self.menu.value == 0:
                self.selection.select(self.examples[0])
            self.menu.value = 0

    def _on_choice(self, change) -> None:
        i = change["new"]
        if i is not None and 0 <= i < len(self.examples):
            self.selection.select(self.examples[i])


def linked_reconstructions(checkpoint: str) -> widgets.VBox:
    """The reconstruction explorer with linked views: pick a row of the grid to see that input
    in an :class:`ExampleInspector` (scores, p-values, per-layer KL, densities, ROC)."""
    from .recon_view import ReconstructionExplorer

    # the inspector shows LLR>k and the second stage only: no L<l passes (appendix E)
    selection, tables, in_name, _ = selection_for(checkpoint, lt=False)
    recon = ReconstructionExplorer(checkpoint)
    chooser = ExampleChooser(selection, "inspect row", "hvae-recon-inspect")
    inspector = ExampleInspector(selection, tables, in_name, checkpoint=checkpoint)

    def rows(rx) -> None:
        chooser.set_examples(
            Example(label, image, "grid row")
            for label, image in zip(rx.labels, rx.images, strict=True)
        )

    recon.on_inputs(rows)
    # the first row of the next shuffle is inspected at once: its report is computed ahead too
    recon.on_ahead(
        lambda images, labels: selection.prepare(Example(labels[0], images[0], "grid row"))
    )
    rows(recon)
    box = widgets.VBox(
        [recon, widgets.HTML("<b>Inspect one row of the grid</b>"), chooser.menu, inspector],
        layout=widgets.Layout(width="100%"),
    )
    box.add_class("hvae-recon-linked")
    box.recon, box.chooser, box.inspector, box.selection = recon, chooser.menu, inspector, selection
    return box


def upload_inspector(checkpoint: str, fpr: float = 0.05) -> widgets.VBox:
    """The upload scorer with linked views: pick an uploaded image to see it in an
    :class:`ExampleInspector` (the first upload is shown at once)."""
    from .upload_view import UploadScorer

    # the table, density, verdict and inspector show LLR>k, the ELBO and the second stage only:
    # no L<l passes (appendix E), a third fewer per upload
    selection, tables, in_name, ref_key = selection_for(checkpoint, fpr, lt=False)
    chooser = ExampleChooser(selection, "inspect", "hvae-upload-inspect")
    inspector = ExampleInspector(selection, tables, in_name, checkpoint=checkpoint)

    def on_scored(names: list[str], _scores, _n_samples: int) -> None:
        images = scorer.result.images if scorer.result is not None else []
        chooser.set_examples(
            Example(n, img, "your upload") for n, img in zip(names, images, strict=True)
        )

    def score_one(name: str, image: np.ndarray) -> InputScores:
        # an upload of one image is scored by its report (the same score_inputs call), which
        # the inspector then shows without a second pass
        return selection.report_for(Example(name, image, "your upload")).scores

    scorer = UploadScorer(
        checkpoint, reference=ref_key, fpr=fpr, on_scored=on_scored, lt=False, score_one=score_one
    )
    box = widgets.VBox(
        [scorer, widgets.HTML("<b>Inspect one upload</b>"), chooser.menu, inspector],
        layout=widgets.Layout(width="100%"),
    )
    box.add_class("hvae-upload-linked")
    box.scorer, box.chooser, box.inspector, box.selection = (
        scorer,
        chooser.menu,
        inspector,
        selection,
    )
    return box

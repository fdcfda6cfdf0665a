"""Score your own images: upload PNG/JPEG files and see whether the model calls them OOD.

Each file is decoded to a 28x28 grey image (:func:`hvaelab.data.image_from_bytes`), scored for
every k against the in-distribution score table (:func:`hvaelab.scores.score_inputs`) and placed
on the density of the in-distribution (and OOD) test scores with its percentile. The verdict is
taken over LLR>k for all k with a Bonferroni correction at the in-distribution false-positive
rate of the FPR slider (sec. 5, "Selection of k"); moving the slider re-decides without
re-scoring. Files that are not images (or too large) get a message; the others are still scored.
"""

from __future__ import annotations

import base64
import copy
import html
import io
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import ipywidgets as widgets
import numpy as np
import plotly.io as pio
from PIL import Image

from ..data import InvalidInputError, image_from_bytes
from ..score_names import SECOND_STAGE_COLUMN, ScoreName, TableKey
from ..scores import (
    InputScores,
    ScoreTable,
    decide,
    join_scores,
    ood_scores,
    reference_key,
    score_inputs,
)
from ..verdict import describe, kl_means, llr_verdict_names, verdict_names
from .resources import (
    DEFAULT_CHECKPOINT,
    dataset_label,
    is_comparison_set,
    load_checkpoint,
    load_score_tables,
    second_stage_problem,
)
from .score_figures import (
    DensityCurves,
    UploadMark,
    _range,
    density_curves,
    density_figure,
    marks_trace,
    percentile_of,
    pretty_score,
    to_display,
)
from .widgets import LiveFigure, figure_height, status_html, with_class

ACCEPT = "image/png,image/jpeg,.png,.jpg,.jpeg"


def upload_files(value: Any) -> list[tuple[str, bytes]]:
    """``(name, bytes)`` of each file in a ``FileUpload.value``.

    ipywidgets 8 gives a tuple of dicts with ``name`` and ``content`` (a memoryview);
    ipywidgets 7 gave ``{name: {"content": bytes, ...}}``. Both are accepted.
    """
    if not value:
        return []
    if isinstance(value, Mapping):
        items: Iterable[tuple[str, Any]] = (
            (str(n), v.get("content", b"") if isinstance(v, Mapping) else v)
            for n, v in value.items()
        )
    else:
        items = ((str(f.get("name", "upload")), f.get("content", b"")) for f in value)
    return [(n, bytes(c)) for n, c in items]


def thumbnail_html(image: np.ndarray, size: int = 56) -> str:
    """A uint8 (28, 28) grey or (32, 32, 3) colour image as an inline <img> (nearest-neighbour
    upscaled)."""
    arr = np.asarray(image, dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr, mode="RGB" if arr.ndim == 3 else "L").save(buf, format="PNG")
    src = "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
    return (
        f'<img src="{src}" width="{size}" height="{size}" '
        'style="image-rendering:pixelated;border:1px solid #ccc">'
    )


@dataclass
class UploadResult:
    """Scored uploads: the images, their scores, and the verdict at the current FPR."""

    images: np.ndarray  # uint8 (N, 28, 28), or (N, 32, 32, 3) for a colour model
    scores: InputScores
    errors: list[str]


class UploadScorer(widgets.VBox):
    """FileUpload + FPR slider + results table + density plot with the uploads marked.

    ``reference`` is the score table key the uploads are compared with (default: the training
    set's table with the fewest samples S, the fastest to match). ``on_scored(names, scores,
    n_samples)`` is called after each upload, e.g. ``explorer.set_uploads``; ``show_density``
    False leaves out the density plot (when the page shows the explorer's). ``score_one(name,
    image)``, where given, scores an upload of one image instead of :func:`score_inputs` and
    must return what it would (the upload page passes its selection's report, whose scores are
    that call's: the inspector then needs no second pass). ``lt=False`` scores without the L<l
    bounds (appendix E; a third of the passes) where no view shows them: the upload page's
    table, density and verdict use LLR>k, the ELBO and the second stage only.
    """

    def __init__(
        self,
        checkpoint: str = DEFAULT_CHECKPOINT,
        reference: str | None = None,
        fpr: float = 0.05,
        on_scored: Callable[[list[str], dict[str, np.ndarray], int], None] | None = None,
        show_density: bool = True,
        iw_form: str = "iw-both",
        lt: bool | None = None,
        score_one: Callable[[str, np.ndarray], InputScores] | None = None,
    ) -> None:
        self.iw_form = iw_form  # the form of LLR_S>k the verdict uses when S > 1
        self.lt = lt  # score_inputs's lt: False leaves out the L<l bounds, a third of the passes
        lm = load_checkpoint(checkpoint)
        self.model = lm.model
        self.tables = load_score_tables(checkpoint)
        if reference is None:
            reference = reference_key(self.tables, lm.dataset or "fashionmnist")
        if reference not in self.tables:
            raise ValueError(f"no score table {reference!r}; available: {', '.join(self.tables)}")
        self.reference_key = reference
        self.reference: ScoreTable = self.tables[reference]
        ref_key = TableKey.parse(reference)
        self.in_name, self.n_samples = ref_key.dataset, ref_key.n_samples
        self.ref_scores = ood_scores(self.reference)
        keys = {k: TableKey.parse(k) for k in self.tables}
        self.ood_sets = {
            key.dataset: ood_scores(self.tables[k])
            for k, key in keys.items()
            if key.n_samples == self.n_samples
            and key.dataset != self.in_name
            and is_comparison_set(key.dataset)  # MNIST, not noise or inverted images
        }
        self.on_scored = on_scored
        self.score_one = score_one
        self.result: UploadResult | None = None
        self.n_dims = int(self.reference.meta["n_dims"])

        self.upload = with_class(
            widgets.FileUpload(
                accept=ACCEPT,
                multiple=True,
                description="Upload images",
                icon="upload",
                layout=widgets.Layout(width="auto"),  # the label and its count, never cut
            ),
            "hvae-upload",
        )
        self.fpr = with_class(
            widgets.FloatSlider(
                value=fpr,
                min=0.01,
                max=0.5,
                step=0.01,  # one key press moves one percentage point
                readout_format=".2f",
                description="FPR",
                tooltip="in-distribution false-positive rate of the verdict",
                style={"description_width": "40px"},
                layout=widgets.Layout(width="320px"),
            ),
            "hvae-fpr",
        )
        llrs = self._verdict_names()
        self.rule, voted = verdict_names("auto", self.reference.n_layers, self.ref_scores)
        options = [(pretty_score(s, html_=False), s) for s in llrs]
        options.append(("ELBO (bits/dim)", str(ScoreName.elbo(self.n_samples > 1))))
        if SECOND_STAGE_COLUMN in self.ref_scores:  # a checkpoint with a fitted second stage
            options.insert(0, ("second stage (beyond the paper)", SECOND_STAGE_COLUMN))
        # the plotted score's menu, only with the plot (a widget never shown is never built)
        self.score_select: widgets.Dropdown | None = None
        if show_density:
            self.score_select = with_class(
                widgets.Dropdown(
                    options=options,
                    value=voted[0] if self.rule == "second-stage" else llrs[0],
                    description="plot score",
                    style={"description_width": "80px"},
                    layout=widgets.Layout(width="340px"),  # "second stage (beyond the paper)" whole
                ),
                "hvae-upload-score",
            )
        self.status = widgets.HTML()
        problem = second_stage_problem(checkpoint)  # a broken second stage says so, with the fix
        self.notice = with_class(
            widgets.HTML(status_html(html.escape(problem), "error") if problem else ""),
            "hvae-upload-notice",
        )
        self.error = with_class(widgets.HTML(), "hvae-upload-error")
        self.results = with_class(
            widgets.HTML(
                '<i style="color:#666">Upload PNG or JPEG images (several at once are fine); '
                "each is turned into a 28x28 grey image and scored.</i>"
            ),
            "hvae-upload-result",
        )
        # No plot when the page shows the explorer's: nothing to build or send.
        self._curves: dict[str, DensityCurves] = {}  # each score's densities, without uploads
        self._bases: dict[str, tuple[DensityCurves, dict]] = {}  # their figures (plotly JSON)
        self.density: LiveFigure | None = None
        if show_density:
            base, marks = self._density()
            height = f"{figure_height(base)}px"
            self.density = LiveFigure(base, "hvae-upload-density", min_height=height)
            self.density.show(marks)

        self.clear = with_class(
            widgets.Button(description="Clear", icon="trash", layout=widgets.Layout(width="auto")),
            "hvae-upload-clear",
        )
        self.clear.on_click(lambda _b: self.reset())
        self.upload.observe(self._on_upload, "value")
        self.fpr.observe(lambda _c: self._redecide(), "value")
        if self.score_select is not None:
            self.score_select.observe(lambda _c: self._redraw_density(), "value")

        intro = widgets.HTML(
            f"Reference: <b>{dataset_label(self.in_name)}</b> test scores "
            f"(n = {len(self.reference):,}, S = {self.n_samples}). Verdict: "
            f"{html.escape(describe(self.rule, voted, fpr).replace(f'{fpr:g}', 'FPR'))}, so "
            "about a fraction FPR of in-distribution images is flagged. Each upload adds to the "
            "table; <i>Clear</i> empties it."
        )
        controls = widgets.HBox([self.upload, self.clear, self.fpr, self.status])
        parts = [intro, self.notice, controls, self.error, self.results]
        if self.density is not None:
            parts += [self.score_select, self.density.box]
        super().__init__(parts)
        self.add_class("hvae-upload-view")

    # ----------------------------------------------------------------------------- core
    def _verdict_names(self) -> list[str]:
        """The paper's LLR>k (k below the top active layer, :mod:`hvaelab.verdict`)."""
        ref = self.reference
        means = kl_means(ref.columns, ref.n_layers)
        return llr_verdict_names(ref.n_layers, self.n_samples, self.iw_form, means)

    def reset(self) -> None:
        """Forget every uploaded image."""
        self.result = None
        self.error.value = ""
        self.results.value = '<i style="color:#666">Upload PNG or JPEG images to score them.</i>'
        self._redraw_density()

    def score_files(self, files: Sequence[tuple[str, bytes]]) -> UploadResult | None:
        """Decode, score and show ``(name, bytes)`` files added to those already shown; bad
        files get a message, not an error."""
        images, names, errors = [], [], []
        for name, data in files:
            try:
                images.append(image_from_bytes(data, name, colour=self.model.config.colour))
                names.append(name)
            except InvalidInputError as e:
                errors.append(str(e))
        self.error.value = self._errors_html(errors)
        if not images:
            if self.result is None:
                self.results.value = (
                    '<i style="color:#666">No image could be scored from this upload.</i>'
                )
            return None
        self.status.value = status_html(f"scoring {len(images)} image(s)…", "busy")
        try:
            arr = np.stack(images)
            if self.score_one is not None and len(images) == 1:
                # a copy, decided at this page's FPR
                one = copy.deepcopy(self.score_one(names[0], images[0]))
                scores = decide(one, self.reference, float(self.fpr.value), self.ref_scores)
            else:
                scores = score_inputs(
                    self.model,
                    arr,
                    self.reference,
                    fpr=self.fpr.value,
                    names=names,
                    iw_form=self.iw_form,
                    lt=self.lt,
                )
        except (ValueError, RuntimeError) as e:  # model or reference trouble: say so
            self.status.value = ""
            self.error.value = self._errors_html([*errors, f"scoring failed: {e}"])
            return None
        self.status.value = ""
        if self.result is not None:  # a second upload adds to the first: only new images scored
            arr = np.concatenate([self.result.images, arr])
            scores = join_scores(self.result.scores, scores, self.reference, self.ref_scores)
        self.result = UploadResult(arr, scores, errors)
        self._redecide()
        self._redraw_density()
        if self.on_scored is not None:
            self.on_scored(list(scores.names), dict(scores.scores), self.n_samples)
        return self.result

    def _on_upload(self, change) -> None:
        files = upload_files(change["new"])
        if files:
            self.score_files(files)

    def _redecide(self) -> None:
        """Verdicts at the current FPR from the stored p-values (no re-scoring)."""
        if self.result is None:
            return
        decide(self.result.scores, self.reference, float(self.fpr.value), self.ref_scores)
        self.results.value = self._table_html()

    # --------------------------------------------------------------------------- views
    @staticmethod
    def _errors_html(errors: list[str]) -> str:
        if not errors:
            return ""
        items = "".join(f"<li>{html.escape(e)}</li>" for e in errors)
        return (
            '<div style="border:1px solid #d62728;background:#fff5f5;padding:6px 10px;'
            f'border-radius:4px;color:#600"><b>Some files were skipped:</b><ul>{items}</ul></div>'
        )

    def _table_html(self) -> str:
        assert self.result is not None
        s, imgs = self.result.scores, self.result.images
        # the paper's LLR>k, then the second stage, each with its p-value
        vnames = [*s.llr_verdict, *(n for n in (SECOND_STAGE_COLUMN,) if n in (s.p_values or {}))]
        head = "".join(
            f'<th style="padding:2px 8px">{pretty_score(n)}<br><small>nats (p)</small></th>'
            for n in vnames
        )
        rows = []
        for i, name in enumerate(s.names):
            ood = bool(s.is_ood[i])
            verdict_txt = "OOD" if ood else "in-distribution"
            color = "#b00" if ood else "#2a7a2a"
            cells = "".join(
                f'<td style="padding:2px 8px;text-align:right">{s.scores[n][i]:.1f} '
                f"<small>({s.p_values[n][i]:.3f})</small></td>"
                for n in vnames
            )
            rows.append(
                f'<tr data-verdict="{verdict_txt}">'
                f"<td>{thumbnail_html(imgs[i])}</td>"
                f'<td style="padding:2px 8px">{html.escape(name)}</td>'
                f'<td style="padding:2px 8px;text-align:right">{s.bits_per_dim[i]:.3f}</td>'
                f"{cells}"
                f'<td style="padding:2px 8px;color:{color}"><b>{verdict_txt}</b></td>'
                f'<td style="padding:2px 8px">{pretty_score(s.decisive[i])} '
                f"(p = {s.min_p[i]:.3g})</td></tr>"
            )
        rule = describe(s.rule, [pretty_score(n, html_=False) for n in s.verdict_scores], s.fpr)
        return (
            '<table style="border-collapse:collapse;font-size:13px">'
            f'<caption style="caption-side:top;text-align:left">Verdict at FPR = {s.fpr:.2f}: '
            f"{html.escape(rule)}; the other scores are shown, not voted.</caption>"
            '<thead><tr style="border-bottom:1px solid #444"><th>image</th><th>file</th>'
            "<th>−ELBO<br><small>bits/dim</small></th>"
            f"{head}<th>verdict</th><th>decided by</th></tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table>"
        )

    def _redraw_density(self) -> None:
        if self.density is not None:
            base, marks = self._density()
            if self.density.base is not base:
                self.density.set_base(base)
            self.density.show(marks)

    def _density(self) -> tuple[dict, list[dict]]:
        """The density figure of the chosen score without its marks (plotly JSON, built once
        per score) and the marks of the uploads: the trace :func:`density_figure` ends with."""
        assert self.score_select is not None  # built with the plot
        score = self.score_select.value
        values = {self.in_name: self.ref_scores[score]}
        for name, sc in self.ood_sets.items():
            if score in sc:
                values[name] = sc[score]
        marks = []
        if self.result is not None and score in self.result.scores.scores:
            for n, v in zip(
                self.result.scores.names, self.result.scores.scores[score], strict=True
            ):
                marks.append(
                    UploadMark(
                        n,
                        float(to_display(score, v, self.n_dims)),
                        percentile_of(self.ref_scores[score], v),
                    )
                )
        # the sets' densities are estimated once per score; again only to cover an image
        # outside their range
        curves = self._curves.get(score)
        if curves is None or not all(curves.x[0] <= m.value <= curves.x[-1] for m in marks):
            disp = {k: to_display(score, v, self.n_dims) for k, v in values.items()}
            curves = density_curves(
                disp, "kde", _range(list(disp.values()), [m.value for m in marks])
            )
            if not marks:
                self._curves[score] = curves
        # the figure of those densities is built and sent once too; an upload only sends and
        # redraws the marks (~1 ms instead of ~30 ms a figure in the kernel, a 22 KB message
        # and a whole redraw in the browser)
        built = self._bases.get(score)
        if built is None or built[0] is not curves:
            title = f"Your images on the {pretty_score(score)} density (S = {self.n_samples})"
            fig = json.loads(pio.to_json(density_figure(
                None, score, self.n_dims, curves=curves, title=title), validate=False))  # fmt: skip
            fig["data"] = fig["data"][:-1]  # the empty marks
            built = (curves, fig)
            if curves is self._curves.get(score):
                self._bases[score] = built
        return built[1], [marks_trace(marks, curves).to_plotly_json()]


__all__ = ["UploadResult", "UploadScorer", "thumbnail_html", "upload_files"]

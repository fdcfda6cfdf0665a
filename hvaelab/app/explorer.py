"""Likelihood-ratio explorer: densities (fig. 5), ROC curves (figs. 6-7) and Table 2, live in k.

Everything comes from a checkpoint's precomputed score tables (:mod:`hvaelab.scores`): nothing is
scored when the page opens. A score is picked by family and k (and l):

=========  ==========================  =====================================================
family     score (S = 1 / S > 1)       paper
=========  ==========================  =====================================================
ELBO       ``-ELBO`` / ``-ELBO_S``     eq. 1 (= L>0); the likelihood that fails (fig. 5a)
L>k        ``-L>k`` / ``-L>k_S``       eq. 5; looser bounds, still overlapping (fig. 5b)
LLR>k      ``LLR>k`` / ``LLR_S>k``     eqs. 6, 10; the ratio that separates (fig. 5c)
L<l        ``-L<l``                    eq. 21 (appendix E)
LLR>k<l    ``LLR>k<l``                 eq. 21, generalised ratio
=========  ==========================  =====================================================

Per (in-distribution, OOD, S) the scores, Table 2 rows, ROC curves and densities are computed
once and cached, and each explorer keeps the figures of the last :data:`FIGURE_CACHE` states it
showed, so moving the k slider back and forth only sends figures built before.
"""

from __future__ import annotations

import html
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass, field

import ipywidgets as widgets
import numpy as np
import plotly.graph_objects as go

from ..evaluate import table2_rows
from ..score_names import FAMILY_LABELS, Family, ScoreName, TableKey
from ..scores import ScoreTable, ood_scores
from .resources import (
    DEFAULT_CHECKPOINT,
    dataset_label,
    default_ood,
    load_checkpoint,
    load_score_tables,
)
from .score_figures import (
    DensityCurves,
    RocCurve,
    UploadMark,
    _range,
    density_curves,
    density_figure,
    metrics_table_html,
    percentile_of,
    pretty_score,
    roc_data,
    roc_figure,
    roc_point,
    to_display,
)
from .widgets import AHEAD, FigureSlot, close_unshown, when_settled, with_class

SELECTED_COLOR = "#2ca02c"  # the selected example, in every view (also .linked)

# The score families the explorer offers (select-k needs a reference split: see evaluate.py).
FAMILIES = (
    Family.ELBO,
    Family.GT,
    Family.LLR,
    Family.LT,
    Family.LLR_LT,
    Family.IC,
    Family.SECOND_STAGE,
)
# Families whose score has no k: the k slider is disabled for them.
FAMILIES_WITHOUT_K = (Family.ELBO, Family.LT, Family.IC, Family.SECOND_STAGE)
# Families computed from a column only some tables have (tables from before they were added;
# importance-sampled tables of a subset): the S menu offers only the S whose tables have it.
# (The L<l families: large-S tables are often computed without them, `tables --no-lt`.)
_NEEDS_COLUMN = {
    Family.IC: "png_bits",
    Family.SECOND_STAGE: "second-stage",
    Family.LT: "L<1",
    Family.LLR_LT: "L<1",
}


@dataclass
class _Context:
    """Everything derived from one (in-distribution, OOD, S) pair, computed once."""

    ref: ScoreTable
    ood: ScoreTable
    s_in: dict[str, np.ndarray]
    s_ood: dict[str, np.ndarray]
    rows: dict[str, dict]
    rocs: dict[str, RocCurve] = field(default_factory=dict)
    densities: dict[tuple[str, str], DensityCurves] = field(default_factory=dict)

    def roc(self, score: str, seed: int) -> RocCurve:
        if score not in self.rocs:
            self.rocs[score] = roc_data(self.s_in[score], self.s_ood[score], seed)
        return self.rocs[score]


_CONTEXTS: OrderedDict[tuple[int, int, int], _Context] = OrderedDict()
# Contexts kept, least recently used dropped first: every (in, OOD) pair of the shipped sets
# at two S (7 sets: 42 pairs each), a few hundred kB each (ROC curves, densities, Table 2 rows).
CONTEXT_CACHE = 96
# Figures an explorer keeps (density and ROC, per state shown): ~100 KB each.
FIGURE_CACHE = 48


_CONTEXTS_LOCK = threading.Lock()  # contexts are also computed ahead, in widgets.AHEAD
_SCORES: dict[int, tuple[ScoreTable, dict[str, np.ndarray]]] = {}  # one copy per table


def _scores_of(table: ScoreTable) -> dict[str, np.ndarray]:
    """``ood_scores(table)``, computed once per table (shared by every pair it is in)."""
    with _CONTEXTS_LOCK:
        hit = _SCORES.get(id(table))
        if hit is not None and hit[0] is table:
            return hit[1]
    scores = ood_scores(table)
    with _CONTEXTS_LOCK:
        if len(_SCORES) > 32:
            _SCORES.clear()
        _SCORES[id(table)] = (table, scores)
    return scores


def _shared_context(ref: ScoreTable, ood: ScoreTable, seed: int) -> _Context:
    """Contexts are shared between explorers showing the same (cached) tables."""
    key = (id(ref), id(ood), seed)
    with _CONTEXTS_LOCK:
        ctx = _CONTEXTS.get(key)
        if ctx is not None and ctx.ref is ref and ctx.ood is ood:
            _CONTEXTS.move_to_end(key)
            return ctx
    rows = {r["score"]: r for r in table2_rows(ref, ood, seed=seed)}
    fresh = _Context(ref, ood, _scores_of(ref), _scores_of(ood), rows)
    with _CONTEXTS_LOCK:  # computed meanwhile by the other thread: keep that one
        ctx = _CONTEXTS.get(key)
        if ctx is None or ctx.ref is not ref or ctx.ood is not ood:
            ctx = _CONTEXTS[key] = fresh
            while len(_CONTEXTS) > CONTEXT_CACHE:
                _CONTEXTS.popitem(last=False)
        return ctx


class LikelihoodRatioExplorer(widgets.VBox):
    """Pick datasets, a score family, k and S; see densities, ROC curves and Table 2 update live.

    Parameters: ``checkpoint`` (NAME) whose score tables are shown, or ``tables`` directly
    (``{"DATASET@S<n>": ScoreTable}``); ``in_name``/``ood_name`` the datasets (defaults: the
    checkpoint's training set and the first other one); ``family``, ``k``, ``n_samples``.
    :meth:`set_uploads` adds the user's own images to the density plot.
    """

    def __init__(
        self,
        checkpoint: str = DEFAULT_CHECKPOINT,
        tables: Mapping[str, ScoreTable] | None = None,
        in_name: str | None = None,
        ood_name: str | None = None,
        family: str = Family.LLR,
        k: int = 1,
        n_samples: int | None = None,
        kind: str = "kde",
        seed: int = 0,
    ) -> None:
        if tables is None:
            tables = load_score_tables(checkpoint)
            if in_name is None:
                card = load_checkpoint(checkpoint).card
                in_name = (card.get("train_config") or {}).get("dataset")
        if not tables:
            raise ValueError("no score tables to explore")
        self.tables = dict(tables)
        self.seed = seed
        self._busy = False
        self._uploads: tuple[list[str], dict[str, np.ndarray]] = ([], {})
        self._uploads_s: int | None = None
        self._selected: tuple[str, dict[str, float]] | None = None  # set_selected
        self._listeners: list = []  # called after every refresh (on_refresh)
        self._figures: OrderedDict[tuple, tuple[_Context, go.Figure]] = OrderedDict()
        self._ahead_generation = 0  # compute_ahead's latest call (earlier jobs stop)
        by_set: dict[str, set[int]] = {}
        for key in self.tables:
            tk = TableKey.parse(key)
            by_set.setdefault(tk.dataset, set()).add(tk.n_samples)
        self._by_set = by_set
        names = sorted(by_set)
        if in_name not in by_set:
            in_name = "fashionmnist" if "fashionmnist" in by_set else names[0]
        others = [n for n in names if n != in_name]
        if not others:
            raise ValueError(
                f"the score tables hold only {in_name!r}; an OOD dataset is needed to compare "
                "(compute tables with `hvaelab tables --ood ...`)"
            )
        ood_name = ood_name if ood_name in others else default_ood(names, in_name)
        first = next(iter(self.tables.values()))
        self.n_layers = first.n_layers
        self.n_dims = int(first.meta["n_dims"])
        families = [
            f
            for f in FAMILIES
            if f not in _NEEDS_COLUMN
            or any(_NEEDS_COLUMN[f] in t.columns for t in self.tables.values())
        ]

        style = {"description_width": "110px"}

        def wide() -> widgets.Layout:  # one Layout per widget: layouts are shared state
            return widgets.Layout(width="360px")

        self.in_select = widgets.Dropdown(
            options=[(dataset_label(n), n) for n in names],
            value=in_name,
            description="in-distribution",
            style=style,
            layout=wide(),
        )
        self.ood_select = widgets.Dropdown(
            options=[(dataset_label(n), n) for n in others],
            value=ood_name,
            description="OOD data",
            style=style,
            layout=wide(),
        )
        self.samples_select = widgets.Dropdown(
            description="S (samples)", style=style, layout=wide()
        )
        self._set_sample_options(n_samples)
        self.score_select = with_class(
            widgets.Dropdown(
                options=[(FAMILY_LABELS[f], f) for f in families],
                value=family if family in families else Family.LLR,
                description="score",
                style=style,
                layout=widgets.Layout(width="520px"),  # the longest family name whole
            ),
            "hvae-score-select",
        )
        self._set_sample_options(n_samples)  # the S that have the chosen score
        self.k_slider = with_class(
            widgets.IntSlider(
                value=min(max(k, 1), self.n_layers),
                min=1,
                max=self.n_layers,
                description="k",
                continuous_update=True,
                style=style,
                layout=wide(),
            ),
            "hvae-k-slider",
        )
        self.l_slider = with_class(
            widgets.IntSlider(
                value=min(2, self.n_layers),
                min=1,
                max=self.n_layers,
                description="l",
                style=style,
                layout=wide(),
            ),
            "hvae-l-slider",
        )
        self.kind_toggle = widgets.ToggleButtons(
            options=[("density (KDE)", "kde"), ("histogram", "hist")],
            value=kind,
            style={"button_width": "110px"},
        )
        self.show_uploads = with_class(
            widgets.Checkbox(value=True, description="show your images", disabled=True),
            "hvae-show-uploads",
        )
        self.info = widgets.HTML()

        ctx = self._context()
        score = self.score_name
        self.density = FigureSlot(self._density(ctx, score), "hvae-density-fig", width="50%")
        self.roc = FigureSlot(self._roc(ctx, score), "hvae-roc-fig", width="50%")
        self.table = with_class(widgets.HTML(self._table(ctx, score)), "hvae-metrics-table")
        self._update_controls()

        for w in (self.k_slider, self.l_slider, self.kind_toggle):
            w.observe(self._on_change, "value")
        self.score_select.observe(self._on_datasets_change, "value")  # S menu follows it
        self.show_uploads.observe(self._on_change, "value")
        self.samples_select.observe(self._on_change, "value")
        self.ood_select.observe(self._on_datasets_change, "value")
        self.in_select.observe(self._on_in_change, "value")

        # the three columns wrap onto a new line where they do not fit (a narrow notebook)
        # instead of squeezing their controls under each other
        controls = widgets.HBox(
            [
                widgets.VBox([self.in_select, self.ood_select, self.samples_select]),
                widgets.VBox([self.score_select, self.k_slider, self.l_slider]),
                widgets.VBox([self.kind_toggle, self.show_uploads]),
            ],
            layout=widgets.Layout(flex_flow="row wrap"),
        )
        figs = widgets.HBox(
            [
                self.density.box,
                self.roc.box,
            ],
            layout=widgets.Layout(width="100%"),
        )
        super().__init__([controls, self.info, figs, self.table])
        self.add_class("hvae-explorer")
        self._refresh_info(ctx, score)
        self.precompute()
        when_settled(self.compute_ahead, delay=2.0)

    # -------------------------------------------------------------------------- state
    @property
    def density_fig(self):
        """The density figure currently shown (a ``go.Figure``)."""
        return self.density.figure

    @property
    def roc_fig(self):
        """The ROC figure currently shown (a ``go.Figure``)."""
        return self.roc.figure

    @property
    def n_samples(self) -> int:
        return int(self.samples_select.value)

    @property
    def score_name(self) -> str:
        """The score currently shown (a name of :func:`hvaelab.scores.ood_scores`)."""
        fam, k, l_ = self.score_select.value, self.k_slider.value, self.l_slider.value
        return str(ScoreName.of_family(fam, k, l_, self.n_samples))

    def _has_family(self, S: int) -> bool:
        """Whether the tables of both datasets at S have what the chosen score needs."""
        select = getattr(self, "score_select", None)  # not built yet on the first call
        need = _NEEDS_COLUMN.get(select.value) if select is not None else None
        if need is None:
            return True
        keys = (TableKey(self.in_select.value, S), TableKey(self.ood_select.value, S))
        return all(need in self.tables[str(k)].columns for k in keys)

    def _set_sample_options(self, wanted: int | None = None) -> None:
        both = sorted(self._by_set[self.in_select.value] & self._by_set[self.ood_select.value])
        if not both:
            raise ValueError(
                f"no S has score tables for both {self.in_select.value!r} and "
                f"{self.ood_select.value!r}"
            )
        both = [S for S in both if self._has_family(S)] or both
        current = wanted if wanted is not None else self.samples_select.value
        options = [(str(s), s) for s in both]
        if list(self.samples_select.options) != options:
            self.samples_select.options = options
        if current not in both:  # the nearest S below that has the score, else the smallest
            below = [s for s in both if current is not None and s < current]
            current = below[-1] if below else both[0]
        self.samples_select.value = current

    def _context(self) -> _Context:
        S = self.n_samples
        ref = self.tables[str(TableKey(self.in_select.value, S))]
        ood = self.tables[str(TableKey(self.ood_select.value, S))]
        return _shared_context(ref, ood, self.seed)

    # ------------------------------------------------------------------------ builders
    def _upload_values(self, score: str) -> dict[str, float]:
        names, scores = self._uploads
        if not self.show_uploads.value or score not in scores:
            return {}
        if self._uploads_s is not None and self._uploads_s != self.n_samples:
            return {}
        return dict(zip(names, np.asarray(scores[score], dtype=np.float64), strict=True))

    def _curves(
        self,
        ctx: _Context,
        score: str,
        extra: Sequence[float] = (),
        kind: str | None = None,
        names: tuple[str, str] | None = None,
    ) -> DensityCurves:
        """The densities of ``score`` (``kind``, default the toggle's) for the context's pair
        (``names``: its sets, default the menus'), over a grid that also covers ``extra``."""
        kind = kind or self.kind_toggle.value
        cached = ctx.densities.get((score, kind))
        if cached is not None and all(cached.x[0] <= v <= cached.x[-1] for v in extra):
            return cached
        in_name, ood_name = names or (self.in_select.value, self.ood_select.value)
        disp = {
            in_name: to_display(score, ctx.s_in[score], self.n_dims),
            ood_name: to_display(score, ctx.s_ood[score], self.n_dims),
        }
        curves = density_curves(disp, kind, _range(list(disp.values()), list(extra)))
        if not extra:
            ctx.densities[(score, kind)] = curves
        return curves

    def _cached(self, kind: str, ctx: _Context, key: tuple, build):
        """The figure ``build()`` makes, kept for the last :data:`FIGURE_CACHE` states: sliding
        back and forth over k shows figures built once (plotly takes ~10-20 ms to build one)."""
        full = (kind, id(ctx), *key)
        hit = self._figures.get(full)
        if hit is not None and hit[0] is ctx:
            self._figures.move_to_end(full)
            return hit[1]
        fig = build()
        self._figures[full] = (ctx, fig)
        while len(self._figures) > FIGURE_CACHE:
            self._figures.popitem(last=False)
        return fig

    def _selected_key(self, score: str) -> tuple:
        if self._selected is None or score not in self._selected[1]:
            return ()
        return (self._selected[0], self._selected[1][score])

    def _density(self, ctx: _Context, score: str):
        key = (
            score,
            self.kind_toggle.value,
            tuple(self._upload_values(score).items()),
            self._selected_key(score),
        )
        return self._cached("density", ctx, key, lambda: self._build_density(ctx, score))

    def _build_density(self, ctx: _Context, score: str):
        marks = [
            UploadMark(
                n, float(to_display(score, v, self.n_dims)), percentile_of(ctx.s_in[score], v)
            )
            for n, v in self._upload_values(score).items()
        ]
        if self._selected is not None and score in self._selected[1]:
            name, v = self._selected[0], self._selected[1][score]
            marks.append(
                UploadMark(
                    f"selected: {name}",
                    float(to_display(score, v, self.n_dims)),
                    percentile_of(ctx.s_in[score], v),
                    kind="selected",
                )
            )
        curves = self._curves(ctx, score)
        if marks:  # a grid that also covers the user's inputs, if they fall outside
            curves = self._curves(ctx, score, [m.value for m in marks])
        # two lines: on one, the title of a half-width figure in a narrow notebook was cut
        title = (
            f"{pretty_score(score)}<br><span style='font-size:12px'>"
            f"{dataset_label(self.in_select.value)} (in) vs "
            f"{dataset_label(self.ood_select.value)} (OOD), S = {self.n_samples}</span>"
        )
        fig = density_figure(None, score, self.n_dims, curves=curves, uploads=marks, title=title)
        fig.update_layout(margin={"t": 100})  # two title lines, then the legend
        return fig

    def roc_scores(self) -> list[str]:
        """Scores drawn as ROC curves: the ELBO and every L>k (fig. 6) plus the chosen score."""
        iw, ks = self.n_samples > 1, range(1, self.n_layers + 1)
        names = [str(ScoreName.elbo(iw)), *(str(ScoreName.gt(k, iw)) for k in ks)]
        if self.score_name not in names:
            names.append(self.score_name)
        return names

    def _roc(self, ctx: _Context, score: str):
        key = (score, tuple(self.roc_scores()), self._selected_key(score))
        return self._cached("roc", ctx, key, lambda: self._build_roc(ctx, score))

    def _build_roc(self, ctx: _Context, score: str):
        curves = {s: ctx.roc(s, self.seed) for s in self.roc_scores()}
        title = (
            f"ROC: {dataset_label(self.ood_select.value)} as OOD vs "
            f"{dataset_label(self.in_select.value)}, S = {self.n_samples}"
        )
        fig = roc_figure(curves, highlight=score, title=title)
        if self._selected is not None and score in self._selected[1]:
            name, v = self._selected[0], self._selected[1][score]
            f, t = roc_point(ctx.s_in[score], ctx.s_ood[score], v, self.seed)
            fig.add_trace(
                go.Scatter(
                    x=[f],
                    y=[t],
                    mode="markers",
                    name=f"selected: {name} (flagged at its own score)",
                    marker={"color": SELECTED_COLOR, "size": 13, "symbol": "x"},
                    hovertemplate=f"{html.escape(name)}<br>FPR %{{x:.3f}}, TPR %{{y:.3f}}"
                    "<extra></extra>",
                )
            )
        return fig

    def table_scores(self, ctx: _Context) -> list[str]:
        """Table 2 rows shown: ELBO, every L>k, every LLR>k, select-k, and the chosen score."""
        iw, ks = self.n_samples > 1, range(1, self.n_layers + 1)
        names = [str(ScoreName.elbo(iw)), *(str(ScoreName.gt(k, iw)) for k in ks)]
        names += [str(ScoreName.llr(k, iw)) for k in ks]
        names.append(str(ScoreName.select_k(iw)))
        if self.score_name not in names:
            names.append(self.score_name)
        return [n for n in names if n in ctx.rows]

    def _table(self, ctx: _Context, score: str) -> str:
        rows = [ctx.rows[n] for n in self.table_scores(ctx)]
        r0 = rows[0]
        caption = (
            f"<b>Table 2</b> for this model: {dataset_label(self.in_select.value)} (in) / "
            f"{dataset_label(self.ood_select.value)} (out), S = {self.n_samples}, "
            f"n = {r0['n_in']:,} + {r0['n_ood']:,} (equal-size protocol). Highlighted: the "
            "score shown above."
        )
        return metrics_table_html(rows, highlight=score, caption=caption)

    def _refresh_info(self, ctx: _Context, score: str) -> None:
        m = ctx.rows.get(score) or ctx.roc(score, self.seed).metrics
        note = ""
        name = ScoreName.parse(score)
        if name.family == Family.LLR_LT and name.k >= name.l:
            note = (
                f"<br><i>k ≥ l: L&gt;{name.k} imagines z1..z{name.k} and L&lt;{name.l} imagines "
                f"z{name.l} and above, so no layer is inferred from the input by both bounds: "
                "the ratio compares two explanations that share no inferred layer. Eq. 21 "
                "allows any k and l; the paper leaves the use of this score to future work.</i>"
            )
        self.info.value = (
            f"<b>{pretty_score(score)}</b>: AUROC {m['auroc']:.3f}, AUPRC {m['auprc']:.3f}, "
            f"FPR80 {m['fpr80']:.3f}{note}"
        )

    # ---------------------------------------------------------------------- callbacks
    def _update_controls(self) -> None:
        fam = self.score_select.value
        self.k_slider.disabled = fam in FAMILIES_WITHOUT_K
        self.l_slider.disabled = fam not in (Family.LT, Family.LLR_LT)
        self.l_slider.layout.visibility = "visible" if "<" in fam else "hidden"
        self.show_uploads.disabled = not self._uploads[0]

    def _on_in_change(self, _change=None) -> None:
        others = [n for n in sorted(self._by_set) if n != self.in_select.value]
        current = self.ood_select.value
        with self._quiet():
            self.ood_select.options = [(dataset_label(n), n) for n in others]
            self.ood_select.value = current if current in others else others[0]
        self._on_datasets_change()

    def _on_datasets_change(self, _change=None) -> None:
        if self._busy:
            return
        with self._quiet():
            self._set_sample_options()
        self.refresh()
        when_settled(self.compute_ahead, delay=0.5)  # the pairs next to this one

    def _on_change(self, _change=None) -> None:
        if not self._busy:
            self.refresh()

    @contextmanager
    def _quiet(self):
        """Change controls without each change redrawing."""
        busy, self._busy = self._busy, True
        try:
            yield
        finally:
            self._busy = busy

    def refresh(self) -> None:
        """Redraw the figures and the table for the current controls."""
        self._update_controls()
        ctx = self._context()
        score = self.score_name
        if score not in ctx.s_in:  # not computed for these tables: back to the paper's score
            with self._quiet():
                self.score_select.value = Family.LLR
            score = self.score_name
        dens, roc = self._density(ctx, score), self._roc(ctx, score)
        self.density.show(dens)
        self.roc.show(roc)
        self.table.value = self._table(ctx, score)
        self._refresh_info(ctx, score)
        for listener in self._listeners:
            listener(self)

    def on_refresh(self, listener) -> None:
        """Call ``listener(explorer)`` after every redraw (e.g. a strip that follows the score)."""
        self._listeners.append(listener)

    def set_selected(self, name: str | None, scores: Mapping[str, float] | None = None) -> None:
        """Mark one selected example (its ``{score: value}``) on the density and on the ROC
        curve at its own threshold; ``None`` removes the mark (linked views, :mod:`.linked`)."""
        self._selected = (
            None if name is None else (name, {k: float(v) for k, v in (scores or {}).items()})
        )
        self.refresh()

    def precompute(self, families: Sequence[str] | None = None) -> None:
        """Compute densities and ROC curves of every k for the current datasets and S."""
        ctx = self._context()
        for fam in families or [self.score_select.value]:
            for k in range(1, self.n_layers + 1):
                s = str(ScoreName.of_family(fam, k, self.l_slider.value, self.n_samples))
                if s in ctx.s_in:
                    ctx.roc(s, self.seed)
                    self._curves(ctx, s)

    def ahead_pairs(self) -> list[tuple[str, str]]:
        """The (in-distribution, OOD) pairs one menu choice away from the current one."""
        in_name, ood_name = self.in_select.value, self.ood_select.value
        names = sorted(self._by_set)
        pairs = [(in_name, o) for o in names if o != in_name]
        # another in-distribution set keeps the OOD set, else takes the first other (_on_in_change)
        for i in names:
            pairs.append((i, ood_name if ood_name != i else next(n for n in names if n != i)))
        return [p for p in dict.fromkeys(pairs) if p != (in_name, ood_name) and p[0] != p[1]]

    def compute_ahead(self) -> Future:
        """In the background thread, compute the scores, Table 2 rows, ROC curves and the shown
        score's densities of every pair of sets one menu choice away (at the current S), so that
        choosing one only draws: ~0.2-0.4 s each at the first visit otherwise. A later call
        supersedes this one: its pairs not yet reached are left (quick choices in a row queue
        no backlog that would slow the choices after them). Returns the job."""
        S, seed, score, kind = self.n_samples, self.seed, self.score_name, self.kind_toggle.value
        pairs = [
            (a, b, self.tables[str(TableKey(a, S))], self.tables[str(TableKey(b, S))])
            for a, b in self.ahead_pairs()
            if str(TableKey(a, S)) in self.tables and str(TableKey(b, S)) in self.tables
        ]
        roc_names = self.roc_scores()
        self._ahead_generation += 1
        generation = self._ahead_generation

        def job() -> None:
            for a, b, ref, ood in pairs:
                if self._ahead_generation != generation:
                    return
                ctx = _shared_context(ref, ood, seed)
                for name in roc_names:
                    if name in ctx.s_in and name in ctx.s_ood:
                        ctx.roc(name, seed)
                if score in ctx.s_in and score in ctx.s_ood:
                    self._curves(ctx, score, kind=kind, names=(a, b))

        return AHEAD.submit(job)

    def set_uploads(
        self,
        names: Sequence[str],
        scores: Mapping[str, np.ndarray],
        n_samples: int | None = None,
    ) -> None:
        """Show the user's own inputs on the density plot.

        ``scores`` maps score names to one value per input (as ``InputScores.scores``); inputs
        scored with ``n_samples`` S are shown only while the explorer shows that S.
        """
        self._uploads = (list(names), {k: np.asarray(v) for k, v in scores.items()})
        self._uploads_s = n_samples
        self._update_controls()
        self.refresh()


def _restyled(box: widgets.Box, old: str, new: str) -> widgets.Box:
    box.remove_class(old)
    box.add_class(new)
    return box


def score_snapshot(
    checkpoint: str = DEFAULT_CHECKPOINT,
    family: str = "ELBO",
    k: int = 1,
    n_samples: int | None = None,
    ood_name: str | None = None,
    roc: bool = False,
) -> widgets.VBox:
    """One score's density (and optionally its ROC curves) for a narrative page: fig. 5a-c.

    A non-interactive cut of :class:`LikelihoodRatioExplorer` (same computations and figures);
    the explorer's controls, table and unused figure are closed, not sent to the browser.
    """
    ex = LikelihoodRatioExplorer(
        checkpoint, family=family, k=k, n_samples=n_samples, ood_name=ood_name
    )
    parts = [_restyled(ex.density.box, "hvae-density-fig", "hvae-snapshot-density")]
    if roc:
        parts.append(_restyled(ex.roc.box, "hvae-roc-fig", "hvae-snapshot-roc"))
    close_unshown(ex, keep=[ex.info, *parts])
    return widgets.VBox([ex.info, widgets.HBox(parts, layout=widgets.Layout(width="100%"))])


__all__ = ["FAMILIES", "LikelihoodRatioExplorer", "score_snapshot"]

"""The teaching page's own pieces (notebook 05): questions answered on click, the 2-D toy, and the
figures of appendix C (why the lowest levels dominate) and eqs. 7-8 (why the ratio works).

Every answer and every number these pieces show is computed, on the spot, from the shipped score
tables of the page's checkpoint (or from :mod:`hvaelab.toy` / :mod:`hvaelab.volume_change`):
nothing is written into the page by hand, so a retrained checkpoint updates the lesson.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache

import ipywidgets as widgets
import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .. import toy, volume_change
from ..metrics import auroc
from ..score_names import TableKey
from ..scores import ScoreTable, reference_key
from ..verdict import kl_means, verdict_ks
from .resources import (
    DEFAULT_CHECKPOINT,
    dataset_label,
    default_ood,
    load_checkpoint,
    load_score_tables,
)
from .score_figures import dataset_color
from .theme import TEMPLATE
from .widgets import FigureSlot, status_html, when_settled


# ------------------------------------------------------------------------------------ questions
class Question(widgets.VBox):
    """Ask before telling: a question with choices; the answer appears on click.

    ``head`` shows the prompt; ``answer`` is the index of the right choice, or a callable
    returning it (computed when the answer is revealed, from data); ``explain`` returns the HTML
    shown with the answer; ``then`` builds the figures that show it, added below the answer only
    when it is revealed (nothing on the page gives the answer away before). After the reveal the
    answer follows the choice.
    """

    def __init__(
        self,
        prompt: str,
        choices: Sequence[str],
        answer: int | Callable[[], int],
        explain: Callable[[], str],
        then: Callable[[], Sequence[widgets.Widget]] | None = None,
    ) -> None:
        self.choice = widgets.ToggleButtons(
            options=list(choices), value=None, layout=widgets.Layout(width="auto")
        )
        self.choice.style.button_width = "auto"
        self.choice.add_class("hvae-question-choice")
        self.reveal = widgets.Button(
            description="show the answer",
            icon="eye",
            layout=widgets.Layout(width="auto", align_self="flex-start"),
        )
        self.reveal.add_class("hvae-question-reveal")
        self.answer_html = widgets.HTML()
        self.answer_html.add_class("hvae-question-answer")
        self._answer, self._explain, self._then = answer, explain, then
        self._prepared: list[widgets.Widget] | None = None
        self.revealed = False
        self.reveal.on_click(lambda _: self.show_answer())
        self.choice.observe(lambda _: self._follow_choice(), "value")
        self.head = widgets.HTML(f"<b>Question.</b> {prompt}")
        super().__init__(
            [self.head, self.choice, self.reveal, self.answer_html],
            layout=widgets.Layout(
                border="1px solid #ddd", padding="6px 10px", margin="6px 0", width="auto"
            ),
        )
        self.add_class("hvae-question")
        if then is not None:  # built while the student reads: the reveal only shows them
            when_settled(self.prepare)

    def prepare(self) -> None:
        """Build the figures that show the answer (not shown before the reveal)."""
        if self._then is not None and self._prepared is None and not self.revealed:
            self._prepared = self._build_then()

    def _build_then(self) -> list[widgets.Widget]:
        shown = list(self._then()) if self._then is not None else []
        for w in shown:
            w.add_class("hvae-question-then")
        return shown

    @property
    def right_index(self) -> int:
        return self._answer() if callable(self._answer) else int(self._answer)

    def _follow_choice(self) -> None:
        if self.revealed:
            self._render_answer()

    def show_answer(self) -> None:
        """Reveal the answer, its explanation and the figures that show it."""
        if self.revealed:
            return
        self.revealed = True
        self._render_answer()
        self.reveal.disabled = True
        if self._then is not None:
            shown = self._prepared if self._prepared is not None else self._build_then()
            self._prepared = None
            self.children = (*self.children, *shown)

    def _render_answer(self) -> None:
        right = self.right_index
        options = self.choice.options
        if self.choice.value is None:
            verdict = ""
        elif options.index(self.choice.value) == right:
            verdict = status_html("✔ Right. ", "ok")
        else:
            verdict = status_html("✘ Not quite. ", "error")
        self.answer_html.value = (
            f"<div>{verdict}<b>Answer: {html.escape(options[right])}.</b> {self._explain()}</div>"
        )


# ----------------------------------------------------------------------------- shipped numbers
@dataclass
class LessonData:
    """The shipped score tables a lesson reads: in- and out-of-distribution test sets at S = 1
    (all images) and at the largest S stored (importance-weighted bounds, eq. 9)."""

    in_name: str
    ood_name: str
    s1: tuple[ScoreTable, ScoreTable]
    iw: tuple[ScoreTable, ScoreTable]

    @property
    def labels(self) -> tuple[str, str]:
        return dataset_label(self.in_name), dataset_label(self.ood_name)


def lesson_data(checkpoint: str = DEFAULT_CHECKPOINT, ood_name: str | None = None) -> LessonData:
    tables = load_score_tables(checkpoint)
    in_name = load_checkpoint(checkpoint).dataset
    ood_name = ood_name or default_ood(sorted({TableKey.parse(k).dataset for k in tables}), in_name)

    def largest(name: str) -> ScoreTable:
        keys = [k for k in tables if TableKey.parse(k).dataset == name]
        return tables[max(keys, key=lambda k: TableKey.parse(k).n_samples)]

    s1 = (tables[reference_key(tables, in_name)], tables[reference_key(tables, ood_name)])
    return LessonData(in_name, ood_name, s1, (largest(in_name), largest(ood_name)))


def bits_per_dim(table: ScoreTable) -> float:
    """Mean -ELBO of a set in bits/dim (its likelihood, higher bits = less likely)."""
    return float(np.mean(table.bits_per_dim("elbo")))


def posterior_gaps(table: ScoreTable, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The two KL divergences of eq. 8 per example, estimated with ``log p(x) ~ L_S`` (eq. 9,
    the table's ``elbo_iw``): ``KL(q(z|x) || p(z|x)) ~ L_S - ELBO`` (eq. 7, first line) and
    ``KL(p(z<=k|z>k) q(z>k|x) || p(z|x)) ~ L_S - L>k`` (second line). Their difference is
    exactly LLR>k = ELBO - L>k (eq. 6): the data-space term log p(x) cancels. Both are
    underestimated by the same amount, ``log p(x) - L_S >= 0``, which the difference cancels too.
    """
    c = table.columns
    log_px = c["elbo_iw"]
    return log_px - c["elbo"], log_px - c[f"L>{k}"]


def layer_terms_of(table: ScoreTable) -> np.ndarray:
    """Per example, the terms of -ELBO along the posterior means (eq. 4): ``-log p(x|z)`` then
    the closed-form KL of z_1..z_L (the table's ``rec>0`` and ``kl<i>`` columns), (N, 1 + L)."""
    c = table.columns
    cols = ["rec>0"] + [f"kl{i}" for i in range(1, table.n_layers + 1)]
    missing = [name for name in cols if name not in c]
    if missing:
        raise ValueError(
            f"the score table has no {', '.join(missing)} column: re-run `hvaelab tables`"
        )
    out = np.stack([c[name] for name in cols], axis=1)
    out[:, 0] *= -1.0
    return out


# What the reveals of secs. 1 and 5 show from the explorer (figs. 5a, 5c): the keyword arguments of
# hvaelab.app.explorer.score_snapshot, for notebook 05 and the static site's learn page
RATIO_K = 1  # the k of sec. 5's question and of its reveal
SNAPSHOTS: dict[str, dict] = {
    "likelihood": {"family": "ELBO"},
    "ratio": {"family": "LLR>k", "k": RATIO_K, "roc": True},
}


def likelihood_question(
    data: LessonData, then: Callable[[], Sequence[widgets.Widget]] | None = None
) -> Question:
    """Sec. 1: which test set does the model find more likely? ``then``: the ELBO densities."""
    a, b = data.labels
    bpd = bits_per_dim(data.s1[0]), bits_per_dim(data.s1[1])
    auc = auroc(-data.s1[0].columns["elbo"], -data.s1[1].columns["elbo"])

    def explain() -> str:
        more = b if bpd[1] < bpd[0] else a
        return (
            f"The model gives the {b} test set {bpd[1]:.3f} bits/dim and its own {a} test set "
            f"{bpd[0]:.3f} bits/dim (−ELBO, all test images; fewer bits = more likely): the "
            f"{more} images are the more likely ones (paper Table 1: 0.317 against 0.420 bits/dim "
            f"for MNIST and FashionMNIST). As a detector, −ELBO has AUROC {auc:.3f} here "
            "(fig. 5a; the paper's Table 2: 0.268): "
            + ("worse than a coin. " if auc < 0.5 else "better than a coin. ")
            + "The densities below show it is not a few outliers."
        )

    return Question(
        f"The model was trained on {a} only. Which test set does it find <i>more likely</i>?",
        [f"{a} (its own kind)", f"{b} (never seen)", "about the same"],
        answer=lambda: 2 if abs(bpd[0] - bpd[1]) < 0.01 else int(bpd[1] < bpd[0]),
        explain=explain,
        then=then,
    )


def layer_question(
    data: LessonData, then: Callable[[], Sequence[widgets.Widget]] | None = None
) -> Question:
    """Sec. 3: which term of -ELBO is the largest? ``then``: the terms per layer and set."""
    terms = layer_terms_of(data.s1[0]).mean(0)
    names = ["−log p(x|z) (the pixels)"] + [f"KL of z{i}" for i in range(1, len(terms))]

    def explain() -> str:
        parts = ", ".join(f"{n}: {v:.1f}" for n, v in zip(names, terms, strict=True))
        share = terms[0] / terms.sum()
        return (
            f"Mean over the {data.labels[0]} test set, in nats: {parts}. The pixel term alone is "
            f"{share:.0%} of −ELBO; the latent layers, where the semantics live, add a few to "
            "a dozen nats each. Why: appendix C makes this exact for a decoder that maps its top "
            "latent through a bottleneck, x = f<sub>1</sub>(f<sub>2</sub>(…f<sub>L</sub>(z))), "
            "with layer sizes d<sub>0</sub> = |x| ≥ d<sub>1</sub> ≥ … ≥ d<sub>L</sub>: a change "
            "of variables gives log p(x) = log p(z) − ½ Σ<sub>i</sub> log det "
            "J<sub>i</sub><sup>T</sup>J<sub>i</sub> (eqs. 13, 15), and a d×d determinant grows "
            "like λ<sup>d</sup> (eq. 16), so the largest, lowest layers dominate. Left below: "
            "the expected term of each layer for Gaussian Jacobians (appendix C.2; sizes 784 ← "
            "196 ← 49 ← 8, <code>hvaelab.volume_change</code>). Right: the terms of −ELBO of "
            "<i>this</i> model at its posterior means, per set (log scale)."
        )

    return Question(
        "−ELBO is a sum: −log p(x|z) for the pixels plus one KL term per latent layer (eq. 4). "
        "Which term is the largest?",
        names,
        answer=lambda: int(np.argmax(terms)),
        explain=explain,
        then=then,
    )


def ratio_question(
    data: LessonData, k: int = 1, then: Callable[[], Sequence[widgets.Widget]] | None = None
) -> Question:
    """Sec. 5: which set loses more when its lowest k layers are imagined? ``then``: the
    LLR>k densities and ROC curves."""
    a, b = data.labels
    llr = [float(np.mean(t.columns["elbo"] - t.columns[f"L>{k}"])) for t in data.s1]
    auc = auroc(*(t.columns["elbo"] - t.columns[f"L>{k}"] for t in data.s1))

    def explain() -> str:
        more, less = (b, a) if llr[1] > llr[0] else (a, b)
        return (
            f"ELBO − L>{k} (nats, mean over the test set): {a} {llr[0]:.1f}, {b} {llr[1]:.1f}: "
            f"{more} loses more. The model imagines plausible {a} details, which fit {less} "
            f"and not {more}. How simple an input is affects both bounds alike and cancels in "
            f"the difference (eq. 6). AUROC of LLR>{k} here: {auc:.3f} (the paper: 0.964 for "
            "LLR>1, 0.984 with importance sampling, eq. 10), from forward passes alone: no "
            "labels, no OOD examples."
        )

    return Question(
        f"Replace the lowest {k} latent layer(s) by what the model imagines (L>{k}). "
        "For which set does the bound drop more?",
        [a, b, "both the same"],
        answer=lambda: int(llr[1] > llr[0]),
        explain=explain,
        then=then,
    )


# ---------------------------------------------------------------------------------- the 2-D toy
TOY_DETAILS = (1, 2, 4, 8, 16, 32, 64)
TOY_N = 1500  # points per set behind the densities and AUROCs
# of them drawn in the scatter: 3,000 SVG markers took 1.1 s to draw in Chromium, 1,000 took
# ~300 ms for the first draw and ~100 ms for each D or a after (issue 38). The markers are most
# of the draw (on the teaching page, the figure without them 19 ms, with 2 x 250 of them
# 117 ms): 2 x 150 keep the shape of both sets
TOY_SHOWN = 150
TOY_CACHE = 32  # toy figures kept (ToyView: moving a knob back shows one built before)


def toy_figure(cfg: toy.ToyConfig, n: int = TOY_N, seed: int = 0) -> tuple[go.Figure, dict]:
    """Left: the two sets in (s, t_1), coloured by log p(s, t) (all D detail coordinates); the
    first ``TOY_SHOWN`` points of each set. Right: the densities of log p per set (all n points),
    with each score's AUROC. Returns the figure and the AUROCs of ``-log p`` and ``-log p(s)``
    (higher = OOD)."""
    sets = {"in": toy.sample(cfg, n, seed=seed), "out": toy.sample(cfg, n, ood=True, seed=seed)}
    parts = {name: toy.terms(cfg, pts) for name, pts in sets.items()}
    sc = {name: toy.scores(cfg, pts) for name, pts in sets.items()}
    aurocs = {score: auroc(sc["in"][score], sc["out"][score]) for score in ("-log p", "-log p(s)")}
    logp = np.concatenate([parts["in"].log_density, parts["out"].log_density])
    lo, hi = np.percentile(logp, [2, 99.5])
    fig = make_subplots(
        rows=1,
        cols=2,
        column_widths=[0.55, 0.45],
        horizontal_spacing=0.12,
        subplot_titles=(
            "the data (s, t<sub>1</sub>): ● training, ◆ OOD; colour = log p",
            f"log p(s, t), D = {cfg.n_detail}",
        ),
    )
    styles = {"in": ("training distribution", "circle", 5), "out": ("OOD set", "diamond", 7)}
    for name, (label, symbol, size) in styles.items():
        pts, lp = sets[name], parts[name].log_density
        shown = slice(0, TOY_SHOWN)  # the samples are i.i.d.: the first ones are a fair subset
        fig.add_trace(
            go.Scatter(
                x=pts.s[shown],
                y=pts.t[shown, 0],
                mode="markers",
                name=label,
                legendgroup=name,
                showlegend=False,
                marker={
                    "symbol": symbol,
                    "size": size,
                    "color": np.clip(lp[shown], lo, hi),
                    "cmin": lo,
                    "cmax": hi,
                    "colorscale": "Viridis",
                    "line": {"width": 0.5 if name == "out" else 0, "color": "#d62728"},
                    "showscale": name == "in",
                    "colorbar": {"title": "log p", "x": 0.5, "len": 0.9, "thickness": 10},
                },
                hovertemplate="s=%{x:.2f}<br>t1=%{y:.2f}<extra>" + label + "</extra>",
            ),
            row=1,
            col=1,
        )
        colour = "#1f77b4" if name == "in" else "#d62728"
        fig.add_trace(
            go.Histogram(
                x=lp,
                name=label,
                legendgroup=name,
                histnorm="probability density",
                opacity=0.6,
                marker_color=colour,
                nbinsx=60,
            ),
            row=1,
            col=2,
        )
    fig.update_xaxes(title_text="s (semantic)", row=1, col=1)
    fig.update_yaxes(title_text="t<sub>1</sub> (detail)", row=1, col=1)
    span = float(np.percentile(logp, 0.5)), float(logp.max())
    pad = 0.05 * (span[1] - span[0])
    fig.update_xaxes(title_text="log p (nats)", range=[span[0] - pad, span[1] + pad], row=1, col=2)
    fig.update_layout(
        barmode="overlay",
        height=380,
        margin={"l": 50, "r": 10, "t": 40, "b": 40},
        legend={"orientation": "h", "y": -0.18},
        template=TEMPLATE,
    )
    return fig, aurocs


@lru_cache(maxsize=TOY_CACHE)
def _toy_figure(cfg: toy.ToyConfig, seed: int) -> tuple[go.Figure, dict]:
    """:func:`toy_figure` of the last :data:`TOY_CACHE` knob settings: moving a knob back
    shows a figure built before (the same for every toy on the page; a figure ~60 KB)."""
    return toy_figure(cfg, seed=seed)


class ToyView(widgets.VBox):
    """The toy with its two knobs: the number of detail coordinates D and the slope a."""

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed
        self.details = widgets.SelectionSlider(
            options=list(TOY_DETAILS),
            value=1,
            description="detail coordinates D",
            style={"description_width": "initial"},
            continuous_update=False,
            layout=widgets.Layout(width="auto", min_width="320px"),
        )
        self.details.add_class("hvae-toy-details")
        self.slope = widgets.FloatSlider(
            value=0.5,
            min=0.1,
            max=1.0,
            step=0.1,
            description="detail growth a",
            style={"description_width": "initial"},
            continuous_update=False,
            layout=widgets.Layout(width="auto", min_width="320px"),
        )
        self.info = widgets.HTML()
        self.info.add_class("hvae-toy-info")
        fig, aurocs = _toy_figure(self.config, seed)
        self.slot = FigureSlot(fig, "hvae-toy-fig", width="100%")
        self._show_info(aurocs)
        for w in (self.details, self.slope):
            w.observe(lambda _: self.refresh(), "value")
        controls = widgets.HBox(
            [self.details, self.slope], layout=widgets.Layout(flex_flow="row wrap")
        )
        super().__init__([controls, self.info, self.slot.box], layout=widgets.Layout(width="100%"))

    @property
    def config(self) -> toy.ToyConfig:
        return toy.ToyConfig(slope=self.slope.value, n_detail=int(self.details.value))

    def refresh(self) -> None:
        fig, aurocs = _toy_figure(self.config, self.seed)
        self.slot.show(fig)
        self._show_info(aurocs)

    def _show_info(self, aurocs: dict) -> None:
        lp, ls = aurocs["-log p"], aurocs["-log p(s)"]
        verdict = (
            "the likelihood flags the OOD set"
            if lp > 0.5
            else "the likelihood <b>prefers</b> the OOD set"
        )
        self.info.value = (
            f"AUROC of −log p: <b>{lp:.3f}</b> ({verdict}); of −log p(s), the semantic level "
            f"alone: <b>{ls:.3f}</b>. (AUROC 1 = every OOD point scores higher, 0.5 = chance.)"
        )


def toy_question(
    n_detail: int = TOY_DETAILS[-1],
    seed: int = 0,
    then: Callable[[], Sequence[widgets.Widget]] | None = None,
) -> Question:
    """Sec. 2: which set does the toy's exact density prefer with many detail coordinates?
    ``then``: the toy itself (:class:`ToyView`), which shows the answer."""
    cfg = toy.ToyConfig(n_detail=n_detail)
    mean_logp = [
        float(np.mean(toy.terms(cfg, toy.sample(cfg, TOY_N, ood=ood, seed=seed)).log_density))
        for ood in (False, True)
    ]

    def explain() -> str:
        return (
            f"Mean log p with D = {n_detail}: training distribution {mean_logp[0]:.1f} nats, "
            f"OOD set {mean_logp[1]:.1f} nats. Each detail coordinate of an OOD point is "
            "predicted very precisely (its spread σ(s) is small there), and there are D of them, "
            "against one semantic coordinate: each extra detail coordinate gives every OOD point "
            "the same bonus, −log σ(s), while log N(s; 0, 1) counts once. Move D below to watch "
            "it happen: with one detail coordinate the likelihood works, and the semantic term "
            "alone, −log p(s), separates the sets at every D. An image has 784 pixels and a "
            "handful of semantic factors."
        )

    return Question(
        f"The model below is exact. With D = {n_detail} detail coordinates, which set gets the "
        "higher likelihood?",
        ["the training distribution", "the OOD set"],
        answer=lambda: int(mean_logp[1] > mean_logp[0]),
        explain=explain,
        then=then,
    )


# ---------------------------------------------------------------- appendix C and eqs. 7-8 figures
IDEAL_DIMS = (784, 196, 49, 8)  # an idealised bottleneck decoder: x, then z_1, z_2, z_3
LOG_TICKS = (1, 3, 10, 30, 100, 300, 1000, 3000)
# the layout of the lesson's two bar figures (appendix C, eqs. 7-8)
BAR_LAYOUT = {
    "barmode": "group",
    "height": 360,
    "margin": {"l": 55, "r": 10, "t": 40, "b": 40},
    "legend": {"orientation": "h", "y": -0.2},
    "template": TEMPLATE,
}


def layer_terms_figure(data: LessonData, dims: Sequence[int] = IDEAL_DIMS) -> go.Figure:
    """Left: eq. 15 for a deterministic bottleneck decoder with Gaussian Jacobians (appendix C),
    each layer's expected volume term. Right: the shipped model's -ELBO terms per set (eq. 4)."""
    fig = make_subplots(
        rows=1,
        cols=2,
        horizontal_spacing=0.14,
        subplot_titles=("appendix C: an ideal bottleneck", "eq. 4: this model, per set"),
    )
    ideal = volume_change.layer_terms(dims)
    fig.add_trace(
        go.Bar(
            x=[
                f"{'x' if i == 1 else f'z{i - 1}'} ← z{i} ({n} ← {d})"
                for i, (n, d) in enumerate(zip(dims, dims[1:], strict=False), start=1)
            ],
            y=-ideal,
            name="½ E log det JᵀJ",
            marker_color="#7f7f7f",
            hovertemplate="%{y:.0f} nats<extra></extra>",
        ),
        row=1,
        col=1,
    )
    n_layers = data.s1[0].n_layers
    names = ["−log p(x|z)"] + [f"KL z{i}" for i in range(1, n_layers + 1)]
    for table, name, label in zip(data.s1, (data.in_name, data.ood_name), data.labels, strict=True):
        fig.add_trace(
            go.Bar(
                x=names,
                y=layer_terms_of(table).mean(0),
                name=label,
                marker_color=dataset_color(name),
                hovertemplate="%{y:.1f} nats<extra>" + label + "</extra>",
            ),
            row=1,
            col=2,
        )
    ticks = {"type": "log", "tickvals": LOG_TICKS, "ticktext": [f"{v:g}" for v in LOG_TICKS]}
    for col, traces in ((1, fig.data[:1]), (2, fig.data[1:])):
        values = np.concatenate([np.asarray(t.y, dtype=float) for t in traces])
        values = values[values > 0]
        span = [np.log10(values.min() / 1.5), np.log10(values.max() * 1.5)] if len(values) else None
        fig.update_yaxes(range=span, row=1, col=col, **ticks)
    fig.update_yaxes(title_text="nats (log scale)", row=1, col=1)
    fig.update_layout(**BAR_LAYOUT)
    return fig


def kl_gap_figure(data: LessonData, k: int = 1) -> go.Figure:
    """Eqs. 7-8: per set, log p(x) (estimated by L_S, eq. 9) and the two KL divergences whose
    difference is LLR>k; medians over the shipped images."""
    s = data.iw[0].n_samples
    fig = make_subplots(
        rows=1,
        cols=2,
        column_widths=[0.35, 0.65],
        horizontal_spacing=0.14,
        subplot_titles=(f"log p(x) ≈ L<sub>{s}</sub> (eq. 9)", f"eq. 8 with k = {k}"),
    )
    for table, name, label in zip(data.iw, (data.in_name, data.ood_name), data.labels, strict=True):
        colour = dataset_color(name)
        fig.add_trace(
            go.Bar(
                x=[label],
                y=[float(np.median(table.columns["elbo_iw"]))],
                marker_color=colour,
                showlegend=False,
                hovertemplate="%{y:.1f} nats<extra></extra>",
            ),
            row=1,
            col=1,
        )
        gap_q, gap_k = (float(np.median(g)) for g in posterior_gaps(table, k))
        fig.add_trace(
            go.Bar(
                x=["KL(q(z|x) ‖ p(z|x))", f"KL(p(z≤{k}|z>{k}) q(z>{k}|x) ‖ p(z|x))"],
                y=[gap_q, gap_k],
                name=label,
                marker_color=colour,
                hovertemplate="%{y:.1f} nats<extra>" + label + "</extra>",
            ),
            row=1,
            col=2,
        )
    fig.update_yaxes(title_text="nats (median)", row=1, col=1)
    fig.update_layout(**BAR_LAYOUT)
    return fig


def layer_terms_view(data: LessonData) -> widgets.Widget:
    """:func:`layer_terms_figure` on the page."""
    return FigureSlot(layer_terms_figure(data), "hvae-layer-terms-fig", width="100%").box


class KLGapView(widgets.VBox):
    """:func:`kl_gap_figure` with a k slider and the measured LLR>k per set in words; k runs
    over the verdict's values (:func:`hvaelab.verdict.verdict_ks`: below the top active layer,
    where some layer above k still carries the input's own features)."""

    def __init__(self, data: LessonData, k: int = 1) -> None:
        self.data = data
        ref = data.s1[0]
        ks = verdict_ks(ref.n_layers, kl_means(ref.columns, ref.n_layers))
        self.k = widgets.IntSlider(
            value=min(k, ks[-1]),
            min=1,
            max=ks[-1],
            description="k",
            continuous_update=False,
            layout=widgets.Layout(width="auto", min_width="260px"),
        )
        self.k.add_class("hvae-gap-k")
        self.info = widgets.HTML()
        self.info.add_class("hvae-gap-info")
        self._figures: dict[int, go.Figure] = {}  # per k (a handful)
        self.slot = FigureSlot(self._figure(), "hvae-gap-fig", width="100%")
        self._show_info()
        self.k.observe(lambda _: self.refresh(), "value")
        super().__init__([self.k, self.info, self.slot.box], layout=widgets.Layout(width="100%"))

    def _figure(self) -> go.Figure:
        k = self.k.value
        if k not in self._figures:
            self._figures[k] = kl_gap_figure(self.data, k)
        return self._figures[k]

    def refresh(self) -> None:
        self.slot.show(self._figure())
        self._show_info()

    def _show_info(self) -> None:
        k = self.k.value
        rows = []
        for table, label in zip(self.data.iw, self.data.labels, strict=True):
            gap_q, gap_k = (float(np.median(g)) for g in posterior_gaps(table, k))
            rows.append(f"{label}: {gap_k:.1f} − {gap_q:.1f} = <b>{gap_k - gap_q:.1f}</b>")
        s = self.data.iw[0].n_samples
        self.info.value = (
            f"LLR>{k} = second KL − first KL (medians, nats, {len(self.data.iw[0])} images per "
            f"set, S = {s}): " + "; ".join(rows) + ". log p(x) has cancelled: what is left is "
            "measured in latent space only."
        )


__all__ = [
    "KLGapView",
    "LessonData",
    "RATIO_K",
    "SNAPSHOTS",
    "Question",
    "ToyView",
    "bits_per_dim",
    "kl_gap_figure",
    "layer_question",
    "layer_terms_figure",
    "layer_terms_of",
    "layer_terms_view",
    "lesson_data",
    "likelihood_question",
    "posterior_gaps",
    "ratio_question",
    "toy_figure",
    "toy_question",
]

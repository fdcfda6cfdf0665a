"""The static site's learn page (issue 41): the teaching page's questions (notebook 05) with their
answers revealed on click, the 2-D toy and the two divergences of eqs. 7-8, in the visitor's
browser with no server.

Nothing here is written twice: every text and number of the page is taken at export from the
widgets :mod:`hvaelab.app.lesson` builds for the checkpoint, driven headless as the Voilà page's
student would drive them (as :func:`hvaelab.app.static_site.explore_views` drives the explorer):

* each question's prompt, choices, right answer, and the answer's HTML for each choice and for
  none (the widget revealed, then each choice clicked); its numbers come from the checkpoint's
  score tables (:func:`hvaelab.app.lesson.lesson_data`);
* the figures each reveal shows (plotly JSON): the explorer's view of
  :data:`hvaelab.app.lesson.SNAPSHOTS` (figs. 5a, 5c), appendix C's layer terms, the toy;
* the toy (:class:`hvaelab.app.lesson.ToyView`): its figure and AUROCs for every setting of its
  two sliders, **precomputed**, not ported to JavaScript. The toy samples with numpy's generator,
  which a browser cannot reproduce, so a port would show other points and other AUROCs than the
  Voilà page for the same sliders, and would copy :func:`hvaelab.app.lesson.toy_figure`'s figure.
  The 70 settings fit in about 2 MB once their arrays are stored as float32
  (:func:`float32_arrays`: the figures' numbers are drawn, not read; the AUROCs shown in words are
  computed in float64);
* the KL-gap view (:class:`hvaelab.app.lesson.KLGapView`, eqs. 7-8) for every k of its slider.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ipywidgets as widgets
import numpy as np
import plotly.graph_objects as go
import plotly.io as pio

from ..artifacts import atomic_write
from . import lesson
from .explorer import LikelihoodRatioExplorer
from .site_page import PLOTLY, page

LEARN_DATA = "learn.json"
LEARN_PAGE = "learn.html"


def figure_spec(fig: go.Figure) -> dict:
    """A figure as the lesson's figure slots send it to the browser (plotly JSON)."""
    return json.loads(pio.to_json(fig, validate=False))


def float32_arrays(spec: Any) -> Any:
    """``spec`` with every float64 typed array (plotly's ``{"dtype": "f8", "bdata": ...}``)
    stored as float32: half the bytes, 7 significant digits."""
    if isinstance(spec, list):
        return [float32_arrays(v) for v in spec]
    if not isinstance(spec, dict):
        return spec
    if spec.get("dtype") == "f8" and isinstance(spec.get("bdata"), str):
        values = np.frombuffer(base64.b64decode(spec["bdata"]), dtype="<f8").astype("<f4")
        return {**spec, "dtype": "f4", "bdata": base64.b64encode(values.tobytes()).decode()}
    return {key: float32_arrays(v) for key, v in spec.items()}


def question_view(q: lesson.Question) -> dict:
    """A question as its widget shows it: ``prompt`` (HTML), ``choices``, ``right`` (index),
    ``reveal_label``, and the answer's HTML with no choice made (``answer``) and after each
    choice (``answers``): the widget is revealed, then each choice is clicked."""
    out: dict = {
        "prompt": q.head.value,
        "choices": list(q.choice.options),
        "right": q.right_index,
        "reveal_label": q.reveal.description,
    }
    q.show_answer()
    out["answer"] = q.answer_html.value
    answers = []
    for option in q.choice.options:
        q.choice.value = option
        answers.append(q.answer_html.value)
    out["answers"] = answers
    return out


def snapshot_view(checkpoint: str, family: str, k: int = 1, roc: bool = False) -> dict:
    """What :func:`hvaelab.app.explorer.score_snapshot` shows for these arguments: the
    explorer's info line, its density figure and, with ``roc``, its ROC curves."""
    ex = LikelihoodRatioExplorer(checkpoint, family=family, k=k)
    figures = [ex.density.spec, *([ex.roc.spec] if roc else [])]
    return {"info": ex.info.value, "figures": figures}


def slider_values(slider: widgets.FloatSlider) -> list[float]:
    """Every value a float slider can take (its min, then each step up to its max)."""
    n = round((slider.max - slider.min) / slider.step)
    return [round(slider.min + i * slider.step, 10) for i in range(n + 1)]


def toy_views(seed: int = 0) -> dict:
    """:class:`hvaelab.app.lesson.ToyView` for every setting of its sliders: ``views[i][j]``
    (``{"figure", "info"}``) for ``details[i]`` and ``slopes[j]``; ``labels``: the sliders'."""
    view = lesson.ToyView(seed)
    details, slopes = list(view.details.options), slider_values(view.slope)
    start = {"details": details.index(view.details.value), "slope": slopes.index(view.slope.value)}
    views = []
    for d in details:
        view.details.value = d
        row = []
        for a in slopes:
            view.slope.value = a
            row.append({"figure": float32_arrays(view.slot.spec), "info": view.info.value})
        views.append(row)
    labels = {"details": view.details.description, "slope": view.slope.description}
    return {"details": details, "slopes": slopes, "start": start, "labels": labels, "views": views}


def kl_gap_views(data: lesson.LessonData) -> dict:
    """:class:`hvaelab.app.lesson.KLGapView` for every k of its slider: ``views[i]``
    (``{"figure", "info"}``) for ``ks[i]``."""
    view = lesson.KLGapView(data)
    ks = list(range(view.k.min, view.k.max + 1))
    start = ks.index(view.k.value)
    views = []
    for k in ks:
        view.k.value = k
        views.append({"figure": view.slot.spec, "info": view.info.value})
    return {"ks": ks, "start": start, "label": view.k.description, "views": views}


def question_views(checkpoint: str, data: lesson.LessonData | None = None) -> list[dict]:
    """Notebook 05's questions, in its order, each built as the notebook builds it for
    ``checkpoint``: :func:`question_view` plus ``id`` (``ID_question`` is its builder in
    :mod:`hvaelab.app.lesson`) and ``reveal`` (``info``, ``figures``, ``toy``: whether the
    reveal shows the toy); ``data``: :func:`hvaelab.app.lesson.lesson_data` of ``checkpoint``
    where the caller has it."""
    data = lesson.lesson_data(checkpoint) if data is None else data
    snap = lesson.SNAPSHOTS
    built = [
        (
            "likelihood",
            lesson.likelihood_question(data),
            snapshot_view(checkpoint, **snap["likelihood"]),
        ),
        ("toy", lesson.toy_question(), {"figures": [], "toy": True}),
        (
            "layer",
            lesson.layer_question(data),
            {"figures": [figure_spec(lesson.layer_terms_figure(data))]},
        ),
        (
            "ratio",
            lesson.ratio_question(data, k=lesson.RATIO_K),
            snapshot_view(checkpoint, **snap["ratio"]),
        ),
    ]
    return [
        {"id": name, **question_view(q), "reveal": {"info": "", "toy": False, **reveal}}
        for name, q, reveal in built
    ]


def learn_views(checkpoint: str, progress: Callable[[str], None] | None = None) -> dict:
    """Everything the learn page shows for ``checkpoint`` (JSON-able): ``questions``
    (:func:`question_views`), ``toy`` (:func:`toy_views`), ``kl_gap`` (:func:`kl_gap_views`),
    ``n_samples``: the S of the importance-weighted tables (eq. 9)."""
    data = lesson.lesson_data(checkpoint)
    out: dict = {
        "checkpoint": checkpoint,
        "n_samples": data.iw[0].n_samples,
        "questions": question_views(checkpoint, data),
    }
    if progress:
        progress("learn: questions done")
    out["toy"] = toy_views()
    out["kl_gap"] = kl_gap_views(data)
    if progress:
        progress("learn: toy and divergences done")
    return out


LEARN_BODY = """<style>
.question { border: 1px solid #ddd; padding: 6px 10px; margin: 10px 0; }
.choices { display: flex; flex-wrap: wrap; gap: 6px; margin: 8px 0; }
button { font: inherit; padding: 3px 10px; cursor: pointer; }
.choice[aria-pressed="true"] { background: #1f77b4; color: #fff; border-color: #1f77b4; }
.answer { margin: 8px 0; }
</style>
<h1>The lesson: ask first, then see</h1>
<p>The questions of the teaching page for the model <b id="checkpoint"></b>: choose an answer,
then reveal it. Every number in the questions comes from the checkpoint's score tables, as on
the Voilà teaching page: bounds estimated with sampled latents (S = 1 on every test image, and
S = <span id="n-samples"></span> importance samples where a figure says so, eq. 9); the toy's
numbers are its exact densities (<code>hvaelab.toy</code>). The draw page's numbers are
mean-path statistics: the same quantities' deterministic counterparts, from one pass with every
latent at its mean, so their values differ. This page runs in your browser: it needs no server
once loaded.</p>
<div id="questions"></div>
<section id="toy" hidden>
<p>The toy's figures and AUROCs were computed when this site was exported, for every setting of
its two sliders (the same as the Voilà page's).</p>
<div class="controls">
  <label><span id="toy-details-label"></span> <input id="toy-details" type="range" min="0"
    step="1"> <output id="toy-details-value"></output></label>
  <label><span id="toy-slope-label"></span> <input id="toy-slope" type="range" min="0"
    step="1"> <output id="toy-slope-value"></output></label>
</div>
<div id="toy-info"></div>
<div id="toy-fig"></div>
</section>
<h2>Why the ratio works: the two divergences (eqs. 7-8)</h2>
<div class="controls">
  <label><span id="gap-label"></span> <input id="gap-k" type="range" min="0" step="1">
    <output id="gap-k-value"></output></label>
</div>
<div id="gap-info"></div>
<div id="gap-fig"></div>
<p><a href="index.html">back</a></p>"""

LEARN_SCRIPT = """<script src="@PLOTLY@"></script>
<script type="module">
const data = await (await fetch("@DATA@")).json();
const Plotly = window.hvaelabPlotly;
const config = { displaylogo: false, responsive: true };
const byId = (id) => document.getElementById(id);
function draw(div, fig) {
  const layout = { ...fig.layout, autosize: true };
  delete layout.width;
  return Plotly.react(div, fig.data, layout, config);
}
function el(tag, cls, parent) {
  const e = document.createElement(tag);
  e.className = cls;
  parent.append(e);
  return e;
}
byId("checkpoint").textContent = data.checkpoint;
byId("n-samples").textContent = data.n_samples;

// the toy: one stored view per setting of its two sliders
const toy = byId("toy"), details = byId("toy-details"), slope = byId("toy-slope");
byId("toy-details-label").textContent = data.toy.labels.details;
byId("toy-slope-label").textContent = data.toy.labels.slope;
details.max = data.toy.details.length - 1;
slope.max = data.toy.slopes.length - 1;
details.value = data.toy.start.details;
slope.value = data.toy.start.slope;
async function showToy() {
  const d = data.toy.details[details.value], a = data.toy.slopes[slope.value];
  byId("toy-details-value").textContent = d;
  byId("toy-slope-value").textContent = a;
  const view = data.toy.views[details.value][slope.value];
  byId("toy-info").innerHTML = view.info;
  await draw("toy-fig", view.figure);
  toy.dataset.view = `${d}|${a}`;
}
for (const input of [details, slope]) input.addEventListener("input", showToy);

// the questions: the answer, its figures (and the toy) appear on reveal
function question(q) {
  const box = el("section", "question", byId("questions"));
  box.id = `question-${q.id}`;
  el("div", "prompt", box).innerHTML = q.prompt;
  const choices = el("div", "choices", box);
  const reveal = el("button", "reveal", box);
  reveal.textContent = q.reveal_label;
  const answer = el("div", "answer", box);
  const then = el("div", "then", box);
  let chosen = null;
  const show = () => { answer.innerHTML = chosen === null ? q.answer : q.answers[chosen]; };
  q.choices.forEach((text, i) => {
    const button = el("button", "choice", choices);
    button.textContent = text;
    button.setAttribute("aria-pressed", "false");
    button.addEventListener("click", () => {
      chosen = i;
      for (const b of choices.children) b.setAttribute("aria-pressed", String(b === button));
      if (reveal.disabled) show();  // after the reveal, the answer follows the choice
    });
  });
  reveal.addEventListener("click", async () => {
    reveal.disabled = true;
    show();
    el("div", "info", then).innerHTML = q.reveal.info;
    const figures = el("div", "figures", then);
    // every div in place before plotly measures them: side by side, each its share of the row
    const divs = q.reveal.figures.map(() => el("div", "figure", figures));
    const drawn = q.reveal.figures.map((fig, i) => draw(divs[i], fig));
    if (q.reveal.toy) {
      then.append(toy);
      toy.hidden = false;
      drawn.push(showToy());
    }
    await Promise.all(drawn);
    box.classList.add("revealed");
  });
}
data.questions.forEach(question);

// the two divergences of eqs. 7-8, per k
const gapK = byId("gap-k");
byId("gap-label").textContent = data.kl_gap.label;
gapK.max = data.kl_gap.ks.length - 1;
gapK.value = data.kl_gap.start;
async function showGap() {
  const k = data.kl_gap.ks[gapK.value], view = data.kl_gap.views[gapK.value];
  byId("gap-k-value").textContent = k;
  byId("gap-info").innerHTML = view.info;
  await draw("gap-fig", view.figure);
  byId("gap-fig").dataset.k = k;
}
gapK.addEventListener("input", showGap);
await showGap();
document.body.classList.add("site-ready");
</script>""".replace("@PLOTLY@", PLOTLY).replace("@DATA@", LEARN_DATA)


def learn_page() -> str:
    """The learn page's HTML (its data: :data:`LEARN_DATA`)."""
    return page("learn", LEARN_BODY, LEARN_SCRIPT)


def write_learn(
    out: str | Path, checkpoint: str, progress: Callable[[str], None] | None = None
) -> list[Path]:
    """Write :data:`LEARN_DATA` and :data:`LEARN_PAGE` for ``checkpoint`` into the folder ``out``
    (created), each atomically; returns them. (The page needs the site's plotly bundle and
    favicon beside it.)"""
    out = Path(out)
    views = learn_views(checkpoint, progress)
    out.mkdir(parents=True, exist_ok=True)
    return [
        atomic_write(out / LEARN_DATA, json.dumps(views, separators=(",", ":"))),
        atomic_write(out / LEARN_PAGE, learn_page()),
    ]


__all__ = [
    "LEARN_DATA",
    "LEARN_PAGE",
    "figure_spec",
    "float32_arrays",
    "kl_gap_views",
    "learn_page",
    "learn_views",
    "question_view",
    "question_views",
    "slider_values",
    "snapshot_view",
    "toy_views",
    "write_learn",
]

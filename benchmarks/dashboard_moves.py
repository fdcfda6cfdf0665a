"""The moves ``dashboard_bench.py`` times, and what each must update before it counts as done.

:data:`MEASURES` is the one table of the benchmark: for each move (a slider nudged, a menu
changed, a button clicked, a file chosen, a stroke drawn) the views -- figures and texts, found by
the CSS classes of the pages (``hvaelab/app/*.py``) -- that must all show the new state. A figure
is read through the plotly graph divs (``.js-plotly-plot``) inside its CSS-class container:
their ``gd.data`` traces (every attribute, style included: a highlighted curve) and
``gd.layout``'s title, shapes and annotations, and only once plotly has drawn them
(``gd._fullLayout`` and a ``.main-svg``), so this works for plotly's mime renderer (a new plot
per update) and for a figure redrawn in place with ``Plotly.react`` inside an anywidget. A text
is read as its element's ``innerHTML``. A view that can legitimately read the same after a move
(an info text whose numbers coincide for two settings: the kernel then sends nothing) is left
out, or waited for only when what it shows changed (``View.when``); the table says which.

Every move is timed inside the page: ``window.__hvaeMovedAt = performance.now()`` just before the
input event, ``window.__hvaeChangedAt`` set by a ``requestAnimationFrame``-polled
``wait_for_function`` the first frame where every listed view differs from what it showed before
the move (the drawing page: from the canvas's own stroke-end stamp). Shared by the Voila and
JupyterLab runs (the selectors are the same in both).
"""

from __future__ import annotations

import math
import os
import re
import sys
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "e2e"))

from harness import canvas_revisions, draw_stroke, wait_drawn  # noqa: E402

UPDATE_TIMEOUT_MS = 60_000
PAUSE_S = 0.15  # between moves: trailing messages of the last move (a status line) settle


# ----------------------------------------------------------------------------------- the table
@dataclass(frozen=True)
class View:
    """One thing a move must update: ``selector`` inside the measure's root (the document, or
    one question of the teaching page); ``kind`` "figure" (every plotly graph div inside it,
    drawn) or "html" (its innerHTML); ``contains``: the new state must contain this text;
    ``lazy``: it may update after the move's frame when out of view (then not waited for while
    out of view: ``hvaelab/app/js/live_figure.js`` redraws a figure outside the window in a task
    after the next frame; the inspector's three figures, below the fold on every page that shows
    them at 1400x1000); ``when``: waited for only if the element at
    this selector changed too (the inspector of the reconstructions follows row 0 of the grid,
    which a shuffle may draw again)."""

    name: str
    selector: str
    kind: str = "html"
    contains: str = ""
    lazy: bool = False
    when: str = ""


@dataclass(frozen=True)
class Measure:
    """A move on a page. ``driver``: "slider" (a keyboard step on the slider ``control``, right,
    or left at its end), "select" (the next option of the Dropdown ``control``, cycling),
    "click" (the button ``control``), "upload" (a new PNG chosen, after Clear), "stroke" (a
    stroke on the canvas), "reveal" / "choice" (a question of the teaching page: its reveal
    button, or after the reveal the choice whose verdict differs from the shown one).
    ``control``: a CSS selector, or "SELECTOR|LABEL" for the widget matching SELECTOR whose
    label reads LABEL. ``setup``: (control, option label) menus set first, untimed; ``prep``: a
    slider nudged (untimed) before each move."""

    key: str
    page: str
    driver: str
    control: str
    views: tuple[View, ...]
    setup: tuple[tuple[str, str], ...] = ()
    note: str = ""
    prep: str = ""


# the views, by the pages' CSS classes
DENSITY = View("density figure", ".hvae-density-fig", "figure")
ROC = View("ROC figure", ".hvae-roc-fig", "figure")
INFO = View(
    "info text (score: AUROC, AUPRC, FPR80)",
    ".hvae-explorer > .widget-html:not(.hvae-metrics-table)",
)
TABLE2 = View("Table 2 html", ".hvae-metrics-table")
STRIP = View("example strip (points along the score)", ".hvae-example-strip svg")
GRID = View("reconstruction grid figure", ".hvae-recon-grid", "figure")
INSPECTOR = (
    View("inspector header", ".hvae-inspect-header"),
    View("inspector reconstructions", ".hvae-inspect-recons"),
    View("inspector scores + verdict", ".hvae-inspect-scores", contains="data-verdict"),
    View("inspector density figure (markers)", ".hvae-inspect-density", "figure", lazy=True),
    View("inspector ROC figure (markers)", ".hvae-inspect-roc", "figure", lazy=True),
    View("inspector per-layer KL figure (markers)", ".hvae-inspect-kl", "figure", lazy=True),
)
EXPLORER_VIEWS = (DENSITY, ROC, INFO, TABLE2)
# The info text names the score, not the sets: for two pairs of sets it can read the same
# (AUROC 1.000 for the constant images against noise, and against anything else), and an
# unchanged text is not sent. It is sent after the figures and Table 2 (explorer.refresh).
DATASET_VIEWS = (DENSITY, ROC, TABLE2)
DATASET_NOTE = "the info text is not waited for: it can read the same for two pairs of sets"

SCORE = ".hvae-score-select"
FAMILY_LLR = (SCORE, "LLR>k = ELBO − L>k (likelihood ratio)")
FAMILY_LLR_LT = (SCORE, "LLR>k<l = L<l − L>k (generalised ratio)")
S_MENU = ".hvae-explorer .widget-dropdown|S (samples)"
IN_MENU = ".hvae-explorer .widget-dropdown|in-distribution"
OOD_MENU = ".hvae-explorer .widget-dropdown|OOD data"
QUESTION = ".hvae-question"  # the root of the reveal/choice moves: one question
ROW0 = ".hvae-recon-inspect select option:first-child"  # the grid's row 0 (its label)
# The toy's info gives two AUROCs, which can read the same for two values of a knob (at the
# largest D both are saturated); an unchanged text is not sent. It follows the figure
# (ToyView.refresh).
TOY_NOTE = "the toy's info is not waited for: its AUROCs can read the same for two settings"

MEASURES: list[Measure] = [
    # 01: the likelihood-ratio explorer with its linked views (the strip follows the score)
    Measure("explorer: k move", "explorer", "slider", ".hvae-k-slider",
            (*EXPLORER_VIEWS, STRIP), setup=(FAMILY_LLR,)),
    Measure("explorer: l slider", "explorer", "slider", ".hvae-l-slider",
            (*EXPLORER_VIEWS, STRIP), setup=(FAMILY_LLR_LT,),
            note="family LLR>k<l chosen first (l is enabled for L<l and LLR>k<l only)"),
    Measure("explorer: score menu", "explorer", "select", SCORE, (*EXPLORER_VIEWS, STRIP),
            note="cycles through every family the tables have"),
    Measure("explorer: S menu", "explorer", "select", S_MENU, EXPLORER_VIEWS,
            setup=(FAMILY_LLR,),
            note="the strip shows S = 1 scores only: not a view of this move"),
    Measure("explorer: in-distribution menu", "explorer", "select", IN_MENU, DATASET_VIEWS,
            note=DATASET_NOTE + "; nor the strip (its sets and score stay)"),
    Measure("explorer: OOD menu", "explorer", "select", OOD_MENU, DATASET_VIEWS,
            note=DATASET_NOTE),
    # 02: the reconstruction explorer with its linked inspector (row 0 is selected)
    Measure("reconstructions: k move", "reconstructions", "slider", ".hvae-recon-k-slider",
            (GRID,)),
    Measure("reconstructions: shuffle", "reconstructions", "click", ".hvae-recon-shuffle",
            (GRID, View("inspect-row menu (the new rows)", ".hvae-recon-inspect select"),
             *(replace(v, when=ROW0) for v in INSPECTOR)),
            note="16 new inputs x all k; the inspector shows row 0, when it is a new image"),
    # 04: scoring uploads, the first upload in the inspector
    Measure("upload: PNG chosen -> verdict", "upload", "upload", ".hvae-upload",
            (View("result table with verdict", ".hvae-upload-result", contains="data-verdict"),
             *INSPECTOR),
            note="Clear pressed before each upload (untimed): one image scored each time"),
    # 07: drawing
    Measure("draw: stroke end -> every view", "draw", "stroke", ".hvae-canvas",
            (*INSPECTOR[1:],),
            note="timed from the canvas's stroke-end stamp to the kernel's answer in every view "
                 "in the window; then waits (untimed) for its done revision: every view"),
    # 05: the teaching page (hvaelab/app/lesson.py and the pieces it shows)
    Measure("teaching: question reveal", "teaching", "reveal", ".hvae-question-reveal",
            (View("answer", ".hvae-question-answer", contains="Answer:"),
             View("figures built by the reveal", ".hvae-question-then", "figure")),
            note="per question (4 per page load), a choice clicked first; one reveal per "
                 "question and page, so the page is loaded again for more"),
    Measure("teaching: toy D slider", "teaching", "slider", ".hvae-toy-details",
            (View("toy figure", ".hvae-toy-fig", "figure"),),
            note="after the toy question's reveal, which builds the toy; " + TOY_NOTE),
    Measure("teaching: toy a slider", "teaching", "slider", ".widget-slider|detail growth a",
            (View("toy figure", ".hvae-toy-fig", "figure"),), note=TOY_NOTE),
    Measure("teaching: KL-gap k slider", "teaching", "slider", ".hvae-gap-k",
            (View("KL-gap figure", ".hvae-gap-fig", "figure"),
             View("KL-gap info", ".hvae-gap-info"))),
    Measure("teaching: question choice after reveal", "teaching", "choice",
            ".hvae-question-choice",
            (View("answer (right / not quite)", ".hvae-question-answer", contains="Answer:"),),
            note="questions in turn; the choice flips the verdict shown"),
    Measure("teaching: explorer k move", "teaching", "slider", ".hvae-k-slider",
            EXPLORER_VIEWS, setup=(FAMILY_LLR,), note="no strip on this page"),
    Measure("teaching: reconstructions k move", "teaching", "slider", ".hvae-recon-k-slider",
            (GRID,)),
]  # fmt: skip

# The first control of each page, nudged right after the page is ready to count it interactive:
# (measure giving the driver and control, the views that must change: the first view it drives).
REFERENCE_SLIDER = "hvae-reference-slider"
FIRST_CONTROL: dict[str, Measure | None] = {
    "explorer": Measure("k slider", "explorer", "slider", ".hvae-k-slider", (DENSITY,)),
    "reconstructions": Measure(
        "k slider", "reconstructions", "slider", ".hvae-recon-k-slider", (GRID,)
    ),
    "correlations": Measure(
        "compute (images/set nudged first: the page computed its settings on load)",
        "correlations",
        "click",
        ".hvae-corr-compute",
        (View("correlation figure", ".hvae-corr-fig", "figure"),),
        prep=".widget-slider|images/set",
    ),
    "upload": Measure(
        "upload",
        "upload",
        "upload",
        ".hvae-upload",
        (View("result table with verdict", ".hvae-upload-result", contains="data-verdict"),),
    ),  # fmt: skip
    "teaching": Measure(
        "reconstructions k slider (its first slider)",
        "teaching",
        "slider",
        ".hvae-recon-k-slider",
        (GRID,),
    ),  # fmt: skip
    "training": None,  # no control but the model menu
    "draw": Measure("stroke", "draw", "stroke", ".hvae-canvas", INSPECTOR[1:]),
    "reference: one slider": Measure(
        "slider",
        "reference",
        "slider",
        f".{REFERENCE_SLIDER}",
        (View("its value, echoed by the kernel", ".hvae-reference-out"),),
    ),  # fmt: skip
    "reference: one slider + one figure": Measure(
        "slider",
        "reference",
        "slider",
        f".{REFERENCE_SLIDER}",
        (View("the figure", ".hvae-reference-fig", "figure"),),
    ),  # fmt: skip
}


def measures_for(pages: list[str]) -> list[Measure]:
    return [m for m in MEASURES if m.page in pages]


def print_table(measures: list[Measure], pages: list[str] | None = None, file=None) -> None:
    """The table above as text: each move and the views it must update."""
    out = file or sys.stdout
    print(
        "What each move must update before it counts as done (every view waited for, wherever "
        "it is on the page: none may wait until scrolled into view):",
        file=out,
    )
    for m in measures:
        control = m.control.replace("|", " labelled ")
        print(f"  {m.key}  [{m.driver} {control}]", file=out)
        for v in m.views:
            extra = f", containing {v.contains!r}" if v.contains else ""
            lazy = ", may wait until scrolled into view" if v.lazy else ""
            when = f", if {v.when} changed" if v.when else ""
            print(f"      - {v.name}: {v.kind} {v.selector}{extra}{lazy}{when}", file=out)
        if m.setup:
            print(f"      setup: {', '.join(f'{c} = {o!r}' for c, o in m.setup)}", file=out)
        if m.note:
            print(f"      ({m.note})", file=out)
    pages = set(pages or {m.page for m in measures})
    print("The first control of each page (page to interactive), and the view it must change:",
          file=out)  # fmt: skip
    for name, m in FIRST_CONTROL.items():
        if name not in pages and (m is None or m.page != "reference"):
            continue
        if m is None:
            print(f"  {name}: none (no control but the model menu)", file=out)
        else:
            views = ", ".join(f"{v.name} ({v.selector})" for v in m.views)
            prep = f", after nudging {m.prep.replace('|', ' labelled ')}" if m.prep else ""
            print(f"  {name}: {m.key} [{m.driver} {m.control}{prep}] -> {views}", file=out)


# ------------------------------------------------------------------------------- in the page
# The state of each view, as strings: 'null' where it is missing or not drawn yet.
SIGNATURE_JS = """
([root, views]) => {
  let base = document;
  if (root) { base = document.querySelectorAll(root[0])[root[1]]; }
  if (!base) return views.map(() => 'null');
  // every trace attribute (style included: a highlighted curve), typed arrays as lists,
  // plotly's own underscore keys left out; the layout's title, shapes and annotations
  const plain = (k, v) => k.startsWith('_') ? undefined
    : (v && ArrayBuffer.isView(v)) ? Array.from(v) : v;
  const fig = (gd) => {
    if (!Array.isArray(gd.data) || !gd._fullLayout || !gd.querySelector('.main-svg')) return null;
    const l = gd.layout || {};
    return JSON.stringify([gd.data, l.title ?? null, l.shapes ?? null, l.annotations ?? null],
      plain);
  };
  const inView = (e) => { const r = e.getBoundingClientRect();
    return r.bottom > 0 && r.top < window.innerHeight && (r.width > 0 || r.height > 0); };
  const state = ([sel, kind, contains, lazy]) => {
    const els = [...base.querySelectorAll(sel)];
    if (!els.length) return 'null';
    if (lazy && !els.some(inView)) return 'lazy';
    let s;
    if (kind === 'figure') {
      const gds = els.flatMap((e) => e.matches('.js-plotly-plot') ? [e]
        : [...e.querySelectorAll('.js-plotly-plot')]);
      if (!gds.length) return 'null';
      const parts = gds.map(fig);
      if (parts.some((p) => p === null)) return 'null';
      s = parts.join('\\u0001');
    } else {
      s = els.map((e) => e.innerHTML).join('\\u0001');
    }
    if (contains && !s.includes(contains)) return 'null';
    return s;
  };
  // a view with `when`: the state of that element, '\\u0002', its own state
  return views.map((v) => v[4] ? state([v[4], 'html', '', false]) + '\\u0002' + state(v)
    : state(v));
}
"""

# True (and __hvaeChangedAt stamped) once every view differs from `before` ('lazy': out of view).
CHANGED_JS = (
    "([root, views, before, rev]) => {\n  const read = "
    + SIGNATURE_JS.strip()
    + """;
  if (rev !== null) {  // the kernel's answer to the stroke is here (canvas.js)
    const c = document.querySelector('.hvae-canvas');
    if (!c || Number(c.dataset.answeredRevision) < rev) return false;
  }
  const now = read([root, views]);
  const done = (s, b) => {
    if (s.includes('\\u0002')) {
      const [w, v] = s.split('\\u0002'), [wb, vb] = b.split('\\u0002');
      if (w === wb && v !== 'null') return true;  // its trigger did not change: not needed
      s = v; b = vb;
    }
    return s === 'lazy' || (s !== b && s !== 'null');
  };
  if (!now.every((s, i) => done(s, before[i]))) return false;
  window.__hvaeChangedAt = performance.now();
  return true;
}
"""
)

# Interactive, part 1: the ready marker, and every figure whose box is in the window drawn.
# Stamps __hvaeReadyAt (marker first seen) and __hvaeFiguresAt (both true), ms since navigation.
FIGURE_BOXES = ".hvae-figure, .hvae-inspect-density, .hvae-inspect-roc, .hvae-inspect-kl"
READY_FIGURES_JS = """
(boxes) => {
  if (!document.querySelector('.hvae-ready')) return false;
  if (window.__hvaeReadyAt === undefined) window.__hvaeReadyAt = performance.now();
  const inView = (e) => { const r = e.getBoundingClientRect();
    return r.bottom > 0 && r.top < window.innerHeight && r.width > 0 && r.height > 0; };
  const drawn = (gd) => Array.isArray(gd.data) && !!gd._fullLayout
    && !!gd.querySelector('.main-svg');
  for (const box of document.querySelectorAll(boxes)) {
    if (!inView(box)) continue;
    const gds = box.querySelectorAll('.js-plotly-plot');
    if (!gds.length || ![...gds].every(drawn)) return false;
  }
  for (const gd of document.querySelectorAll('.js-plotly-plot')) {
    if (inView(gd) && !drawn(gd)) return false;
  }
  window.__hvaeFiguresAt = performance.now();
  return true;
}
"""


def _js_views(views: tuple[View, ...]) -> list[list]:
    return [[v.selector, v.kind, v.contains, v.lazy, v.when] for v in views]


def signature(page, views: tuple[View, ...], root: list | None = None) -> list[str]:
    return page.evaluate(SIGNATURE_JS, [root, _js_views(views)])


def wait_changed(
    page,
    views: tuple[View, ...],
    before: list[str],
    root: list | None = None,
    revision: int | None = None,
    timeout_ms: float = UPDATE_TIMEOUT_MS,
) -> None:
    """Block until every view differs from ``before`` (and the canvas has the kernel's answer
    to ``revision``); names the views that did not change if it times out."""
    try:
        page.wait_for_function(
            CHANGED_JS,
            arg=[root, _js_views(views), before, revision],
            polling="raf",
            timeout=timeout_ms,
        )
    except Exception as exc:
        now = signature(page, views, root)
        stale = [
            v.name for v, b, n in zip(views, before, now, strict=True) if n == b or "null" in n
        ]
        raise MoveError(
            f"after {timeout_ms / 1000:.0f} s these views still show their old state (or "
            f"none): {stale} ({exc.__class__.__name__})"
        ) from exc


class MoveError(RuntimeError):
    """A move whose views did not all update, or a control missing: the page misbehaves."""


class NotApplicable(RuntimeError):
    """A move this page cannot make (a menu with one option for this checkpoint)."""


def moved_ms(page) -> float:
    return float(page.evaluate("() => window.__hvaeChangedAt - window.__hvaeMovedAt"))


def below_fold(page, views: tuple[View, ...], root: list | None = None) -> list[str]:
    """Names of the views with no part in the window now."""
    out = page.evaluate(
        """([root, sels]) => { let base = document;
          if (root) base = document.querySelectorAll(root[0])[root[1]];
          return sels.map((s) => { const els = base ? [...base.querySelectorAll(s)] : [];
            return els.length > 0 && !els.some((e) => { const r = e.getBoundingClientRect();
              return r.bottom > 0 && r.top < window.innerHeight; }); }); }""",
        [root, [v.selector for v in views]],
    )
    return [v.name for v, below in zip(views, out, strict=True) if below]


# ------------------------------------------------------------------------------------ drivers
# Finds a control: "SELECTOR" or "SELECTOR|LABEL" (the one whose .widget-label reads LABEL).
FIND_JS = """
(spec) => {
  const [sel, label] = spec.split('|');
  const norm = (t) => (t || '').replace(/\\u00a0/g, ' ').trim();
  const els = [...document.querySelectorAll(sel)];
  const el = label === undefined ? els[0] : els.find((e) =>
    norm(e.querySelector('.widget-label')?.textContent) === label);
  return el || null;
}
"""


def control(page, spec: str):
    """The control's element handle (raises if the page has none)."""
    handle = page.evaluate_handle(FIND_JS, spec).as_element()
    if handle is None:
        raise MoveError(f"no control {spec!r} on the page")
    return handle


def nudge(page, spec: str) -> None:
    """One keyboard step of a slider (right, or left at its maximum); stamps __hvaeMovedAt just
    before the key press (as harness.nudge_slider)."""
    handle = control(page, spec).query_selector(".noUi-handle")
    if handle is None:
        raise MoveError(f"{spec!r} is not a slider")
    if handle.evaluate(
        "(h) => h.closest('[disabled], .mod-disabled, [aria-disabled=true]') !== null"
    ):
        raise MoveError(f"the slider {spec!r} is disabled")  # fmt: skip
    now = float(handle.get_attribute("aria-valuenow"))
    top = float(handle.get_attribute("aria-valuemax"))
    handle.focus()
    page.evaluate("() => { window.__hvaeMovedAt = performance.now(); }")
    handle.press("ArrowLeft" if now >= top else "ArrowRight")


# Sets a Dropdown's <select> to the option labelled `label` (or the next one, cycling, when
# null) and fires the change event in the same task as the stamp. Returns [index, changed], or
# null (no such option).
SELECT_JS = """
([el, label]) => {
  const s = el.querySelector('select');
  if (!s) return null;
  const norm = (t) => (t || '').replace(/\\u00a0/g, ' ').trim();
  let i = (s.selectedIndex + 1) % s.options.length;
  if (label !== null) i = [...s.options].findIndex((o) => norm(o.textContent) === label);
  if (i < 0) return null;
  if (i === s.selectedIndex) return [i, false];
  s.selectedIndex = i;
  window.__hvaeMovedAt = performance.now();
  s.dispatchEvent(new Event('change', { bubbles: true }));
  return [i, true];
}
"""


def select(page, spec: str, label: str | None = None) -> bool:
    """Choose ``label`` (default: the next option) in the menu ``spec``; whether it changed."""
    r = page.evaluate(SELECT_JS, [control(page, spec), label])
    if r is None:
        raise MoveError(f"the menu {spec!r} has no option {label!r}")
    return bool(r[1])


def option_count(page, spec: str) -> int:
    return int(
        control(page, spec).evaluate("(e) => e.querySelector('select')?.options.length ?? 0")
    )


def click(page, spec: str) -> None:
    """Click a button in the page's own task, right after the stamp."""
    control(page, spec).evaluate(
        "(e) => { const b = e.matches('button') ? e : e.querySelector('button') || e;"
        " window.__hvaeMovedAt = performance.now(); b.click(); }"
    )


def png_bytes(i: int) -> bytes:
    """A distinct 28x28 PNG per ``i`` (a blob that wanders, on seeded noise)."""
    import io

    from PIL import Image

    rng = np.random.default_rng(i)
    yy, xx = np.mgrid[:28, :28]
    blob = 255 * np.exp(-((yy - 8 - i % 12) ** 2 + (xx - 14) ** 2) / 30.0)
    pixels = np.clip(blob + rng.normal(0, 25, (28, 28)), 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels, mode="L").save(buf, format="PNG")
    return buf.getvalue()


UPLOAD_EMPTY_JS = """
() => { const r = document.querySelector('.hvae-upload-result');
  return !!r && !r.innerHTML.includes('data-verdict'); }
"""


def upload(page, i: int) -> None:
    """Choose a new PNG in the upload widget; __hvaeMovedAt stamped just before the files are
    handed over (the browser then reads them and sends them to the kernel)."""
    with page.expect_file_chooser() as chooser:
        page.locator(".hvae-upload").first.click()
    page.evaluate("() => { window.__hvaeMovedAt = performance.now(); }")
    chooser.value.set_files(
        files=[{"name": f"bench{i}.png", "mimeType": "image/png", "buffer": png_bytes(i)}]
    )


def clear_uploads(page) -> None:
    """Press Clear (untimed) where the page shows scored uploads."""
    if not page.evaluate(UPLOAD_EMPTY_JS):
        page.locator(".hvae-upload-clear").first.click()
        page.wait_for_function(UPLOAD_EMPTY_JS, polling="raf", timeout=UPDATE_TIMEOUT_MS)


STROKE_END_JS = "() => Number(document.querySelector('.hvae-canvas').dataset.strokeEndAt)"


def stroke(page, rng: np.random.Generator) -> int:
    """Draw one stroke somewhere new; returns the canvas revision that shows it."""
    rev, _ = canvas_revisions(page)
    # the whole canvas in the window (JupyterLab shows the code above it): the mouse draws there
    page.locator(".hvae-canvas canvas").first.scroll_into_view_if_needed()
    x0, y0, x1, y1 = (float(v) for v in rng.uniform(30, 250, 4))
    draw_stroke(page, [(x0, y0), ((x0 + x1) / 2, (y0 + y1) / 2 + 10), (x1, y1)])
    return rev + 1


# -------------------------------------------------------------------------- doing the moves
@dataclass
class Samples:
    """The timings (ms) of one measure in one place (Voila or JupyterLab)."""

    measure: Measure
    where: str
    ms: list[float] = field(default_factory=list)
    error: str = ""
    load: tuple[float, float] | None = None  # 1-min load average before, after

    def stats(self) -> tuple[float, float, float] | None:
        if not self.ms:
            return None
        a = np.asarray(self.ms)
        return float(np.median(a)), float(np.percentile(a, 95)), float(a.max())


def setup(page, m: Measure, log: Callable[[str], None]) -> None:
    """Set the measure's menus (untimed) and wait until their views have settled."""
    for spec, label in m.setup:
        before = signature(page, m.views)
        if select(page, spec, label):
            with suppress(MoveError):  # some views may not change (the strip at S > 1)
                wait_changed(page, m.views, before, timeout_ms=5_000)
            time.sleep(0.5)
    if m.setup:
        log(f"    set {', '.join(label for _, label in m.setup)}")


def one_move(page, m: Measure, i: int, rng: np.random.Generator, root=None) -> float:
    """Do move ``i`` of measure ``m``; returns its time in ms."""
    views = m.views
    if m.driver == "upload":
        clear_uploads(page)
    if m.prep:
        nudge(page, m.prep)
        time.sleep(PAUSE_S)
    before = signature(page, views, root)
    revision = None
    if m.driver == "slider":
        nudge(page, m.control)
    elif m.driver == "select":
        select(page, m.control)
    elif m.driver == "click":
        click(page, m.control)
    elif m.driver == "upload":
        upload(page, i)
    elif m.driver == "stroke":
        revision = stroke(page, rng)
    else:
        raise ValueError(m.driver)
    wait_changed(page, views, before, root, revision)
    if m.driver == "stroke":
        # untimed: every view, the late figures outside the window included, shows the stroke
        # before the next one (the canvas's done revision)
        wait_drawn(page, revision, UPDATE_TIMEOUT_MS)
        end = float(page.evaluate(STROKE_END_JS))
        return float(page.evaluate("() => window.__hvaeChangedAt")) - end
    return moved_ms(page)


def run_moves(page, m: Measure, moves: int, log: Callable[[str], None]) -> list[float]:
    """``moves`` moves of ``m`` (not "reveal"/"choice": see the question functions)."""
    setup(page, m, log)
    if m.driver == "select" and option_count(page, m.control) < 2:
        raise NotApplicable(f"the menu {m.control.split('|')[-1]!r} offers one option only")
    hidden = below_fold(page, m.views)
    if hidden:
        lazy = {v.name for v in m.views if v.lazy}
        waited = [n for n in hidden if n not in lazy]
        late = [n for n in hidden if n in lazy]
        if waited:
            log(f"    below the fold now (waited for all the same): {', '.join(waited)}")
        if late:
            log(
                f"    below the fold now (redrawn after the move's frame, not waited for): "
                f"{', '.join(late)}"
            )
    rng = np.random.default_rng(0)
    out = []
    for i in range(moves):
        out.append(one_move(page, m, i, rng))
        time.sleep(PAUSE_S)
    return out


# The teaching page's questions
def question_count(page) -> int:
    return int(page.evaluate(f"() => document.querySelectorAll('{QUESTION}').length"))


def reveal(page, m: Measure, q: int) -> float:
    """Click question ``q``'s first choice (untimed), then its reveal button (timed) until its
    answer and the figures the reveal builds are drawn."""
    root = [QUESTION, q]
    choice = page.locator(QUESTION).nth(q).locator(".hvae-question-choice button").first
    choice.scroll_into_view_if_needed()
    choice.click()
    time.sleep(PAUSE_S)
    before = signature(page, m.views, root)
    page.locator(QUESTION).nth(q).locator(".hvae-question-reveal").evaluate(
        "(b) => { window.__hvaeMovedAt = performance.now(); b.click(); }"
    )
    wait_changed(page, m.views, before, root)
    return moved_ms(page)


FLIP_CHOICE_JS = """
(q) => {
  const box = document.querySelectorAll('.hvae-question')[q];
  const answer = box.querySelector('.hvae-question-answer').innerText;
  const m = answer.match(/Answer: (.*?)\\./);
  const buttons = [...box.querySelectorAll('.hvae-question-choice button')];
  const right = buttons.find((b) => m && b.textContent.trim() === m[1].trim());
  const current = buttons.find((b) => b.classList.contains('mod-active'));
  const target = (current && current === right) ? buttons.find((b) => b !== right) : right;
  if (!target) return false;
  window.__hvaeMovedAt = performance.now();
  target.click();
  return true;
}
"""


def choose(page, m: Measure, q: int) -> float:
    """After question ``q``'s reveal: click the choice that flips its verdict (right <-> not
    quite), timed until the answer shows it."""
    root = [QUESTION, q]
    before = signature(page, m.views, root)
    if not page.evaluate(FLIP_CHOICE_JS, q):
        raise MoveError(f"question {q}: no choice to flip to")
    wait_changed(page, m.views, before, root)
    return moved_ms(page)


# ------------------------------------------------------------------------ the machine's state
def wait_load(max_load: float, timeout_s: float) -> str:
    """Wait until the 1-minute load average is below ``max_load`` (at most ``timeout_s``);
    returns a line saying how it went."""
    t0 = time.monotonic()
    start = os.getloadavg()[0]
    now = start
    while now >= max_load and time.monotonic() - t0 < timeout_s:
        time.sleep(2)
        now = os.getloadavg()[0]
    waited = time.monotonic() - t0
    if now < max_load:
        return f"load {now:.2f} (waited {waited:.0f} s)"
    return f"load {now:.2f}: never below {max_load:g} in {timeout_s:.0f} s (started at {start:.2f})"


def load_now() -> float:
    return os.getloadavg()[0]


KERNEL_ID = re.compile(r"/api/kernels/([0-9a-f-]{36})/channels")


class KernelWatch:
    """The id of the kernel a page talks to, from its websocket address."""

    def __init__(self, page) -> None:
        self.ids: list[str] = []
        page.on("websocket", self._on)

    def _on(self, ws) -> None:
        m = KERNEL_ID.search(ws.url)
        if m and m.group(1) not in self.ids:
            self.ids.append(m.group(1))


def kernel_memory(server_pid: int, kernel_id: str | None) -> str:
    """The memory of the kernel process whose command line names ``kernel-<id>.json``."""
    if not kernel_id:
        return "kernel id not seen"
    try:
        family = psutil.Process(server_pid).children(recursive=True)
    except psutil.Error:
        return "server gone"
    for proc in family:
        with suppress(psutil.Error):
            if f"kernel-{kernel_id}.json" in " ".join(proc.cmdline()):
                mem = proc.memory_full_info()
                mb = 1024 * 1024
                parts = [f"RSS {mem.rss / mb:.0f} MB"]
                for name in ("uss", "pss"):
                    if hasattr(mem, name):
                        parts.append(f"{name.upper()} {getattr(mem, name) / mb:.0f} MB")
                return ", ".join(parts) + f" (pid {proc.pid})"
    return f"no process for kernel {kernel_id[:8]}"


class Traffic:
    """Bytes a page receives: HTTP responses (Network.loadingFinished encodedDataLength) and
    websocket frames (payload; binary frames come base64-encoded), through a CDP session opened
    before the navigation."""

    def __init__(self, context, page) -> None:
        self.http = self.ws_in = self.ws_out = 0
        self.cdp = context.new_cdp_session(page)
        self.cdp.on("Network.loadingFinished", self._finished)
        self.cdp.on("Network.webSocketFrameReceived", self._received)
        self.cdp.on("Network.webSocketFrameSent", self._sent)
        self.cdp.send("Network.enable")
        self.frozen: tuple[int, int, int] | None = None

    @staticmethod
    def _size(frame: dict) -> int:
        payload = frame.get("payloadData") or ""
        if frame.get("opcode") == 2:  # binary: base64
            return len(payload) * 3 // 4 - payload[-2:].count("=")
        return len(payload.encode("utf-8"))

    def _finished(self, e: dict) -> None:
        self.http += int(e.get("encodedDataLength") or 0)

    def _received(self, e: dict) -> None:
        self.ws_in += self._size(e.get("response") or {})

    def _sent(self, e: dict) -> None:
        self.ws_out += self._size(e.get("response") or {})

    def freeze(self) -> tuple[int, int, int]:
        """The counts now (what the page had received when it became interactive)."""
        self.frozen = (self.http, self.ws_in, self.ws_out)
        with suppress(Exception):
            self.cdp.detach()
        return self.frozen


def reveal_loads(moves: int, questions: int = 4) -> int:
    """Page loads needed for ``moves`` reveals (one per question and load)."""
    return max(1, math.ceil(moves / questions))

"""How fast the dashboards respond, measured in a real browser (Chromium driven by Playwright).

Issue 38: every interaction within 150 ms. Serves the dashboards with ``hvaelab dashboard`` (the
command, template and settings of ``make dashboard``, see ``tests/e2e/harness.py``) on a free
loopback port, from a temporary folder holding copies of the chosen pages' notebooks and the
reference pages (so one server serves both), and measures, timed inside the page
(``performance.now()``, so the driver's round trips are not counted):

- **moves** (``benchmarks/dashboard_moves.py``, :data:`MEASURES`: ONE table, printed first, of
  each move and every figure and text that must show the new state before the move counts as
  done): the explorer (page 01: k slider, score menu, S menu, in-distribution menu, OOD menu, l
  slider with the LLR>k<l family chosen first), the reconstructions (02: k slider, shuffle), the
  upload (04: a PNG chosen -> its verdict and the linked inspector, Clear pressed before each),
  the drawing (07: stroke end -> every linked view), the teaching page (05: its questions'
  reveals -> the answer and the figures the reveal builds, one per question and page load, so
  the page is loaded again for more; a choice after the reveal -> the answer; the toy's D and a
  sliders; the KL-gap k slider; and the explorer's and reconstructions' k sliders it shows).
  The teaching page's other controls drive nothing until another action (images per set before
  "compute", the FPR before an upload) or are measured on their own pages (the canvas). Each
  measure: ``--moves`` moves (default 40; the drawing: strokes; the teaching reveals: 4 per page
  load, on ``--moves``/4 loads), 0.15 s apart, ``window.__hvaeMovedAt`` set just before the
  input event and ``__hvaeChangedAt`` by a ``requestAnimationFrame``-polled
  ``wait_for_function`` once every listed view has changed; printed as median, p95 and max.
  Before each measure the 1-minute load average must fall below ``--max-load`` (default 0.5; at
  most ``--load-timeout`` s, default 120, else the load it started at is printed), and the load
  before and after each measure is printed. Measured with the last ``--serving`` mode (warm by
  default) on a page's last load, once the server is quiet (the preheated pool refilled);
- **kernel memory** after each page's moves: RSS, USS and PSS (psutil) of the page's kernel,
  found by the kernel id in the page's websocket address (``/api/kernels/<id>/channels``)
  matched against the kernel's command line (``-f .../kernel-<id>.json``);
- **page to interactive**, for each page (``--reps`` loads, default 3; more for the teaching
  page's reveals), served cold (``--pool-size 0``: a kernel starts and runs the notebook for
  each page) and warm (preheated kernels, each load waits until the pool has been refilled):
  navigation start -> the ready marker (``.hvae-ready``) and every figure whose box is in the
  window drawn (plotly's ``_fullLayout`` and ``.main-svg``), plus the round trip of the page's
  first control nudged right then (:data:`FIRST_CONTROL`: the first slider, the upload, the
  stroke, "compute" after nudging images/set; the training page has none) until the first view
  it drives has changed. The reference page "reference: one slider" (a slider whose value the
  kernel echoes into a text: Voila's own floor, page + kernel + widgets + one round trip) is
  served the same way, with warm serving always (the floor of the warm target), with cold
  serving under ``--baseline``, which also adds "one slider + one figure" and each page again
  with ``?plotly=full`` (the renderer's own full plotly.js);
- **bytes on load**: per page, what it received from navigation until interactive, through a
  CDP session (``Network.loadingFinished`` encodedDataLength: HTTP; ``webSocketFrameReceived``
  and ``...Sent`` payloads: websocket);
- ``--where lab``: the same moves in JupyterLab (the venv's, on copies of the notebooks, as
  ``benchmarks/layout_probe.py`` runs it: file browser open, a 1400 px wide window, Run All
  Cells; the teaching page's reveals: Run All Cells again for each further set of 4).

Targets (for the checkpoint ``fashionmnist``, the default; ``--checkpoint NAME`` serves the pages
with another model, ``hvaelab dashboard --checkpoint NAME`` and ``$HVAELAB_CHECKPOINT`` for
JupyterLab, and prints "-" instead of PASS/MISS): every move's median <= 150 ms and p95 <= 300 ms
in Voila; each JupyterLab median <= 1.2 x Voila's for the same move; warm page to interactive <=
1.15 x the one-slider reference of the same run, for every page; cold <= 8 s. A final table
prints each with its ratio and PASS/MISS. The exit status is 0 for a measurement, also with
targets missed; 1 only when the pages misbehave (console errors, requests leaving the machine,
a move whose views did not all update).

    .venv/bin/python benchmarks/dashboard_bench.py [--pages explorer ...] [--moves 40] [--reps 3]
        [--serving cold warm] [--where voila lab] [--baseline] [--checkpoint NAME]
        [--max-load 0.5] [--load-timeout 120] [--quick]

``--quick``: 5 moves, 1 load, warm only, no load wait (for trying changes). The checkpoints are
whatever ``hvaelab.checkpoint.load_model`` finds (``HVAELAB_CHECKPOINTS``, then the repository's
``checkpoints/``).
"""

from __future__ import annotations

import argparse
import importlib.util
import io
import os
import shutil
import statistics
import sys
import tempfile
import time
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "e2e"))

from dashboard_moves import (  # noqa: E402
    FIGURE_BOXES,
    FIRST_CONTROL,
    READY_FIGURES_JS,
    REFERENCE_SLIDER,
    KernelWatch,
    Measure,
    MoveError,
    NotApplicable,
    Samples,
    Traffic,
    choose,
    kernel_memory,
    load_now,
    measures_for,
    one_move,
    print_table,
    question_count,
    reveal,
    reveal_loads,
    run_moves,
    wait_load,
)
from harness import PAGES, REPO, PageGuard, launch_chromium, start_voila, wait_quiet  # noqa: E402

DEFAULT_CHECKPOINT = "fashionmnist"
TARGET_MEDIAN_MS = 150
TARGET_P95_MS = 300
TARGET_LAB_RATIO = 1.2
TARGET_WARM_RATIO = 1.15  # x the one-slider reference page
TARGET_COLD_MS = 8_000
READY_TIMEOUT_MS = 180_000
UPDATE_TIMEOUT_MS = 60_000
VERDICTS = ["OOD", "in-distribution"]  # what the upload page says (used by class_bench.py)
FLOOR = "reference: one slider"

# The reference pages (served from the same folder as the dashboards): the slider's value goes
# to the kernel and back into a text (or a figure): Voila's floor for one control's round trip.
REFERENCE_PAGES = {
    FLOOR: (
        "import ipywidgets as w\n"
        "from hvaelab.app.widgets import ready_marker\n"
        f"s = w.IntSlider(description='k')\ns.add_class('{REFERENCE_SLIDER}')\n"
        "out = w.HTML('0')\nout.add_class('hvae-reference-out')\n"
        "s.observe(lambda c: setattr(out, 'value', str(c['new'])), 'value')\n"
        "display(w.VBox([s, out, ready_marker()]))"
    ),
    "reference: one slider + one figure": (
        "import ipywidgets as w\n"
        "import plotly.graph_objects as go\n"
        "from hvaelab.app.widgets import FigureSlot, ready_marker\n"
        "fig = FigureSlot(go.Figure(go.Scatter(y=[1, 3, 2])), 'hvae-reference-fig')\n"
        f"s = w.IntSlider(description='k')\ns.add_class('{REFERENCE_SLIDER}')\n"
        "s.observe(lambda c: fig.show(go.Figure(go.Scatter(y=[1, 3, c['new']]))), 'value')\n"
        "display(w.VBox([s, fig.box, ready_marker()]))"
    ),
}


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def png_file(folder: Path, i: int) -> Path:
    """A distinct 28x28 PNG per ``i`` (a blob that wanders, on seeded noise); class_bench.py."""
    rng = np.random.default_rng(i)
    yy, xx = np.mgrid[:28, :28]
    blob = 255 * np.exp(-((yy - 8 - i % 12) ** 2 + (xx - 14) ** 2) / 30.0)
    pixels = np.clip(blob + rng.normal(0, 25, (28, 28)), 0, 255).astype(np.uint8)
    path = folder / f"bench{i}.png"
    buf = io.BytesIO()
    Image.fromarray(pixels, mode="L").save(buf, format="PNG")
    path.write_bytes(buf.getvalue())
    return path


# ---------------------------------------------------------------------------------- results
@dataclass
class Load:
    """One page load: ms since navigation start, and bytes received until interactive."""

    ready: float
    figures: float
    control: float | None
    traffic: tuple[int, int, int]
    problem: str = ""  # the first control did not answer

    @property
    def interactive(self) -> float:
        return self.figures + (self.control or 0.0)


@dataclass
class Results:
    loads: dict[tuple[str, str], list[Load]] = field(default_factory=dict)  # (mode, page)
    moves: dict[tuple[str, str], Samples] = field(default_factory=dict)  # (where, measure key)
    memory: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def run_measure(page, m: Measure, moves: int, where: str, res: Results, args) -> Samples:
    """``moves`` moves of ``m`` after the load wait, recorded in ``res`` (errors too)."""
    s = res.moves.setdefault((where, m.key), Samples(m, where))
    waited = wait_load(args.max_load, args.load_timeout)
    before = load_now()
    log(f"  [{where}] {m.key}: {moves} moves; {waited}")
    try:
        s.ms += run_moves(page, m, moves, log)
    except NotApplicable as e:
        s.error = f"n/a: {e}"
    except Exception as e:  # noqa: BLE001 - a measure that fails is reported, the run goes on
        s.error = f"FAILED: {e}"
        res.problems.append(f"{where} {m.key}: {e}")
    after = load_now()
    s.load = (before if s.load is None else s.load[0], after)
    print(f"{where:>5} {m.key}: {fmt_stats(s)}; {waited}, after {after:.2f}", flush=True)
    return s


def run_reveals(page, m: Measure, where: str, res: Results, args) -> None:
    """Reveal every question of the teaching page once (a choice clicked first)."""
    s = res.moves.setdefault((where, m.key), Samples(m, where))
    waited = wait_load(args.max_load, args.load_timeout)
    before = load_now()
    this: list[float] = []
    try:
        n = question_count(page)
        if not n:
            raise MoveError("no question on the teaching page")
        for q in range(n):
            this.append(reveal(page, m, q))
            time.sleep(0.3)
    except Exception as e:  # noqa: BLE001
        s.error = f"FAILED: {e}"
        res.problems.append(f"{where} {m.key}: {e}")
    s.ms.extend(this)
    after = load_now()
    s.load = (before if s.load is None else s.load[0], after)
    per_question = ", ".join(f"{ms:.0f}" for ms in this)  # where a slow reveal comes from
    print(f"{where:>5} {m.key} (so far): {fmt_stats(s)}; this load, question by question: "
          f"{per_question} ms; {waited}, after {after:.2f}", flush=True)  # fmt: skip


def run_choices(page, m: Measure, moves: int, where: str, res: Results, args) -> None:
    s = res.moves.setdefault((where, m.key), Samples(m, where))
    waited = wait_load(args.max_load, args.load_timeout)
    before = load_now()
    try:
        n = question_count(page)
        for i in range(moves):
            s.ms.append(choose(page, m, i % n))
            time.sleep(0.15)
    except Exception as e:  # noqa: BLE001
        s.error = f"FAILED: {e}"
        res.problems.append(f"{where} {m.key}: {e}")
    after = load_now()
    s.load = (before, after)
    print(f"{where:>5} {m.key}: {fmt_stats(s)}; {waited}, after {after:.2f}", flush=True)


def page_moves(page, name: str, where: str, res: Results, args, reveals_only: bool) -> None:
    """Every measure of page ``name`` (``reveals_only``: the teaching page's reveals alone)."""
    for m in measures_for([name]):
        if m.driver == "reveal":
            run_reveals(page, m, where, res, args)
        elif reveals_only:
            continue
        elif m.driver == "choice":
            run_choices(page, m, args.moves, where, res, args)
        else:
            run_measure(page, m, args.moves, where, res, args)


def fmt_stats(s: Samples) -> str:
    st = s.stats()
    if st is None:
        return s.error or "no samples"
    med, p95, top = st
    err = f" ({s.error})" if s.error else ""
    return f"n {len(s.ms)}, median {med:.0f} ms, p95 {p95:.0f} ms, max {top:.0f} ms{err}"


# ------------------------------------------------------------------------------------ Voila
def serve_folder(folder: Path, pages: list[str], references: list[str]) -> dict[str, str]:
    """Copies of the pages' notebooks and the reference notebooks in ``folder``;
    returns {name: notebook file}."""
    import nbformat

    folder.mkdir(parents=True, exist_ok=True)
    files = {}
    for name in pages:
        shutil.copy(REPO / "notebooks" / PAGES[name], folder / PAGES[name])
        files[name] = PAGES[name]
    for i, name in enumerate(references):
        nb = nbformat.v4.new_notebook()
        nb.cells = [nbformat.v4.new_code_cell(REFERENCE_PAGES[name])]
        files[name] = f"reference_{i}.ipynb"
        nbformat.write(nb, folder / files[name])
    return files


def before_load(server, mode: str) -> None:
    """Served warm, each load finds the pool refilled (--fill-delay 5) and the server idle."""
    if mode == "warm":
        time.sleep(6)
        wait_quiet(server)


def open_interactive(browser, url: str, name: str, guard: PageGuard, i: int):
    """A fresh page on ``url``: (context, page, Load, KernelWatch)."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    context.set_default_timeout(UPDATE_TIMEOUT_MS)
    page = context.new_page()
    guard.attach(page)
    watch = KernelWatch(page)
    traffic = Traffic(context, page)
    response = page.goto(url, timeout=READY_TIMEOUT_MS)
    if response is not None and response.status == 503:
        raise RuntimeError(f"{name}: the server is full (--max-kernels)")
    page.wait_for_function(
        READY_FIGURES_JS, arg=FIGURE_BOXES, polling="raf", timeout=READY_TIMEOUT_MS
    )
    ready, figures = page.evaluate("() => [window.__hvaeReadyAt, window.__hvaeFiguresAt]")
    first = FIRST_CONTROL.get(name)
    control, problem = None, ""
    if first is not None:
        try:  # a stroke or an upload of its own (the moves use seeds from 0)
            control = one_move(page, first, 1000 + i, np.random.default_rng(1000 + i))
        except MoveError as e:
            problem = f"{name}: first control ({first.key}): {e}"
    load = Load(float(ready), float(figures), control, traffic.freeze(), problem)
    return context, page, load, watch


def mb(n: float) -> str:
    return f"{n / 1e6:.2f} MB" if n >= 1e5 else f"{n / 1e3:.1f} kB"


def voila_mode(mode: str, args, folder: Path, res: Results, guard: PageGuard, moves_here: bool):
    from playwright.sync_api import sync_playwright

    references = [FLOOR] if mode == "warm" or args.baseline else []
    if args.baseline:
        references.append("reference: one slider + one figure")
    names = [*references, *args.pages]
    files = serve_folder(folder / f"notebooks-{mode}", args.pages, references)
    # Many page views in a row: closed pages' kernels are culled after 30 s, and the cap is
    # out of the way (this measures speed; class_bench.py measures the cap).
    serving = ["--pool-size", "0" if mode == "cold" else "1", "--cull-seconds", "30"]
    serving += ["--cull-interval", "10", "--max-kernels", "64"]
    serving += ["--notebooks", str(folder / f"notebooks-{mode}")]
    if args.checkpoint != DEFAULT_CHECKPOINT:
        serving += ["--checkpoint", args.checkpoint]
    server = start_voila(folder / f"voila-{mode}.log", args=serving)
    try:
        with sync_playwright() as playwright:
            browser = launch_chromium(playwright)
            for name in names:
                teaching_reveals = moves_here and name == "teaching"
                n = max(args.reps, reveal_loads(args.moves) if teaching_reveals else 0)
                for rep in range(n):
                    variants = [""] + (["?plotly=full"] if args.baseline and name in PAGES else [])
                    for query in variants:
                        before_load(server, mode)
                        url = server.page_url(files[name]) + query
                        context, page, load, watch = open_interactive(
                            browser, url, name, guard, rep
                        )
                        key = name + (" (full plotly.js)" if query else "")
                        res.loads.setdefault((mode, key), []).append(load)
                        if load.problem:
                            res.problems.append(f"{mode} {load.problem}")
                            log(f"  {mode} {load.problem}")
                        ctl = "-" if load.control is None else f"{load.control:.0f} ms"
                        log(
                            f"  {mode} {key} load {rep + 1}: ready {load.ready:.0f} ms, figures "
                            f"{load.figures:.0f} ms, first control {ctl} -> interactive "
                            f"{load.interactive:.0f} ms; HTTP {mb(load.traffic[0])}, websocket "
                            f"in {mb(load.traffic[1])}, out {mb(load.traffic[2])}"
                        )
                        last = rep == n - 1
                        if (
                            moves_here
                            and not query
                            and name in PAGES
                            and (last or teaching_reveals)
                        ):
                            wait_quiet(server)  # the pool's refill has run its notebook
                            page_moves(page, name, "voila", res, args, reveals_only=not last)
                            if last:
                                kid = watch.ids[-1] if watch.ids else None
                                line = (
                                    f"voila {name}: kernel {kernel_memory(server.process.pid, kid)}"
                                )
                                res.memory.append(line)
                                print(line, flush=True)
                        context.close()
            browser.close()
    finally:
        server.stop()


# ------------------------------------------------------------------------------- JupyterLab
def layout_probe_module():
    """benchmarks/layout_probe.py (its JupyterLab server and helpers), under its own name: the
    name ``layout_probe`` is tests/e2e's probe."""
    spec = importlib.util.spec_from_file_location(
        "bench_layout_probe", Path(__file__).with_name("layout_probe.py")
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def lab_run_all(lp, page) -> float:
    t0 = time.monotonic()
    page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
    page.wait_for_timeout(2000)
    page.wait_for_function(lp.LAB_DONE_JS, polling=500, timeout=lp.RUN_ALL_MS)
    page.wait_for_selector(".hvae-ready", state="attached", timeout=60_000)
    return time.monotonic() - t0


def lab_pages(args, res: Results, guard: PageGuard) -> None:
    from playwright.sync_api import sync_playwright

    lp = layout_probe_module()
    if args.checkpoint != DEFAULT_CHECKPOINT:
        os.environ["HVAELAB_CHECKPOINT"] = args.checkpoint  # JupyterLab's kernels inherit it
    lab = lp.Lab()
    try:
        with sync_playwright() as playwright:
            browser = launch_chromium(playwright)
            for name in args.pages:
                if not measures_for([name]):
                    continue
                notebook = PAGES[name]
                context = browser.new_context(viewport={"width": 1400, "height": 1000})
                context.set_default_timeout(UPDATE_TIMEOUT_MS)
                page = context.new_page()
                guard.attach(page)
                watch = KernelWatch(page)
                page.goto(f"{lab.url}lab/tree/notebooks/{notebook}?reset", timeout=lp.READY_MS)
                page.wait_for_function(lp.LAB_OPENED_JS, arg=notebook, timeout=lp.READY_MS)
                lp._side_panel(page, True)  # the file browser open
                log(f"  lab {name}: ran all cells in {lab_run_all(lp, page):.0f} s")
                wait_quiet(lab)
                page_moves(page, name, "lab", res, args, reveals_only=False)
                if name == "teaching":
                    for _ in range(reveal_loads(args.moves) - 1):
                        log(f"  lab {name}: ran all cells again in {lab_run_all(lp, page):.0f} s")
                        wait_quiet(lab)
                        page_moves(page, name, "lab", res, args, reveals_only=True)
                kid = watch.ids[-1] if watch.ids else None
                line = f"  lab {name}: kernel {kernel_memory(lab.process.pid, kid)}"
                res.memory.append(line.strip())
                print(line.strip(), flush=True)
                with suppress(Exception):
                    page.evaluate(
                        "() => window.jupyterapp.shell.currentWidget.sessionContext.shutdown()"
                    )
                context.close()
            browser.close()
    finally:
        lab.stop()


# ---------------------------------------------------------------------------------- reports
def median(xs: list[float]) -> float:
    return float(statistics.median(xs))


def verdict(ok: bool, targets: bool) -> str:
    return ("PASS" if ok else "MISS") if targets else "-"


def target_row(
    name: str, value: float, limit: str, ratio: float, most: float, targets: bool
) -> tuple[str, str, str, str, str]:
    """One line of the targets' table: ``value`` ms against ``limit`` (its words), PASS when
    ``ratio <= most``."""
    return name, f"{value:.0f} ms", limit, f"{ratio:.2f}", verdict(ratio <= most, targets)


def report(args, res: Results) -> None:
    targets = args.checkpoint == DEFAULT_CHECKPOINT
    summary: list[tuple[str, str, str, str, str]] = []

    if res.loads:
        print("\nPage to interactive (ms from navigation start; median over loads):")
        head = (
            f"  {'page':<44} {'mode':<5} {'n':>2} {'ready':>7} {'figures':>8} {'control':>8} "
            f"{'interact.':>9} {'min':>7} {'max':>7}"
        )
        print(head)
        for (mode, name), loads in res.loads.items():
            inter = [ld.interactive for ld in loads]
            ctl = [ld.control for ld in loads if ld.control is not None]
            print(
                f"  {name:<44} {mode:<5} {len(loads):>2} {median([ld.ready for ld in loads]):>7.0f}"
                f" {median([ld.figures for ld in loads]):>8.0f} "
                f"{(f'{median(ctl):.0f}' if ctl else '-'):>8} {median(inter):>9.0f} "
                f"{min(inter):>7.0f} {max(inter):>7.0f}"
            )
        print("\nBytes received on load, navigation -> interactive (median over loads):")
        print(f"  {'page':<44} {'mode':<5} {'HTTP':>10} {'ws in':>10} {'ws out':>10}")
        for (mode, name), loads in res.loads.items():
            http, wsi, wso = (median([ld.traffic[j] for ld in loads]) for j in range(3))
            print(f"  {name:<44} {mode:<5} {mb(http):>10} {mb(wsi):>10} {mb(wso):>10}")
        floor = res.loads.get(("warm", FLOOR))
        for (mode, name), loads in res.loads.items():
            if name not in PAGES:
                continue
            value = median([ld.interactive for ld in loads])
            if mode == "warm" and floor:
                ref = median([ld.interactive for ld in floor])
                ratio = value / ref
                limit = f"<= {TARGET_WARM_RATIO} x floor {ref:.0f} ms"
                summary.append(target_row(
                    f"warm page to interactive: {name}", value, limit, ratio, TARGET_WARM_RATIO,
                    targets,
                ))  # fmt: skip
            elif mode == "cold":
                summary.append(target_row(
                    f"cold page to interactive: {name}", value, f"<= {TARGET_COLD_MS} ms",
                    value / TARGET_COLD_MS, 1.0, targets,
                ))  # fmt: skip

    if res.moves:
        print("\nMoves (ms, timed in the page; load = 1-min load average before/after):")
        print(f"  {'measure':<42} {'where':<5} {'n':>3} {'median':>7} {'p95':>7} {'max':>7}  load")
        for (where, key), s in res.moves.items():
            st = s.stats()
            load = f"{s.load[0]:.2f}/{s.load[1]:.2f}" if s.load else "-"
            if st is None:
                print(f"  {key:<42} {where:<5} {0:>3} {'-':>7} {'-':>7} {'-':>7}  {load}  "
                      f"{s.error}")  # fmt: skip
                continue
            print(
                f"  {key:<42} {where:<5} {len(s.ms):>3} {st[0]:>7.0f} {st[1]:>7.0f} "
                f"{st[2]:>7.0f}  {load}" + (f"  {s.error}" if s.error else "")
            )
        for (where, key), s in res.moves.items():
            st = s.stats()
            if st is None:
                why = "n/a" if s.error.startswith("n/a") else "FAILED"
                summary.append((f"{key} ({where})", "-", s.error[:28], "-", why))
                continue
            if where != "voila":
                continue
            for what, value, limit in (
                ("median", st[0], TARGET_MEDIAN_MS),
                ("p95", st[1], TARGET_P95_MS),
            ):
                summary.append(target_row(
                    f"{key}: {what}", value, f"<= {limit} ms", value / limit, 1.0, targets
                ))  # fmt: skip
        for (where, key), s in res.moves.items():
            v = res.moves.get(("voila", key))
            if where != "lab" or not s.ms or v is None or not v.ms:
                continue
            ratio = median(s.ms) / median(v.ms)
            summary.append(target_row(
                f"{key}: JupyterLab / Voila median", median(s.ms),
                f"<= {TARGET_LAB_RATIO} x {median(v.ms):.0f} ms", ratio, TARGET_LAB_RATIO, targets,
            ))  # fmt: skip

    if res.memory:
        print("\nKernel memory after the moves:")
        for line in res.memory:
            print(f"  {line}")

    print(f"\nTargets (checkpoint {args.checkpoint}" + ("" if targets else ": no targets") + "):")
    print(f"  {'target':<58} {'value':>9}  {'limit':<28} {'ratio':>6}  result")
    for name, value, limit, ratio, result in summary:
        print(f"  {name:<58} {value:>9}  {limit:<28} {ratio:>6}  {result}")
    missed = sum(1 for row in summary if row[4] == "MISS")
    if targets:
        print(f"  {len(summary) - missed} of {len(summary)} targets met")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, help="page loads per page (default 3)")
    parser.add_argument("--moves", type=int, help="moves per measure (default 40)")
    parser.add_argument(
        "--pages", nargs="+", choices=list(PAGES), default=list(PAGES), help="pages to load"
    )
    parser.add_argument(
        "--serving", nargs="+", choices=["cold", "warm"],
        help="serve without preheated kernels (cold) and with them (warm); default both",
    )  # fmt: skip
    parser.add_argument(
        "--where", nargs="+", choices=["voila", "lab"], default=["voila", "lab"],
        help="measure in Voila and/or JupyterLab (default both)",
    )  # fmt: skip
    parser.add_argument(
        "--baseline", action="store_true",
        help="also time each page with the renderer's full plotly.js, and a slider+figure page",
    )  # fmt: skip
    parser.add_argument(
        "--checkpoint", default=DEFAULT_CHECKPOINT,
        help="the model every page shows (default fashionmnist; others: no targets)",
    )  # fmt: skip
    parser.add_argument("--max-load", type=float, help="1-min load average to wait for (0.5)")
    parser.add_argument("--load-timeout", type=float, help="longest wait for it, s (120)")
    parser.add_argument(
        "--quick", action="store_true",
        help="5 moves, 1 load, warm serving only, no load wait (explicit options win)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    quick = {"reps": 1, "moves": 5, "serving": ["warm"], "max_load": 99.0, "load_timeout": 0}
    full = {"reps": 3, "moves": 40, "serving": ["cold", "warm"], "max_load": 0.5,
            "load_timeout": 120.0}  # fmt: skip
    for key, value in (quick if args.quick else full).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.checkpoint != DEFAULT_CHECKPOINT:
        from hvaelab.checkpoint import resolve_checkpoint

        resolve_checkpoint(args.checkpoint)  # a clear error now rather than on every page

    print_table(measures_for(args.pages), args.pages)
    print(
        f"\ncheckpoint {args.checkpoint}; pages {' '.join(args.pages)}; moves {args.moves}; "
        f"loads {args.reps}; serving {' '.join(args.serving)}; where {' '.join(args.where)}; "
        f"load wait: below {args.max_load:g} for at most {args.load_timeout:g} s; load now "
        f"{load_now():.2f}; {os.cpu_count()} CPUs\n",
        flush=True,
    )
    res = Results()
    guard = PageGuard()
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="hvaelab-bench-") as tmp:
        if "voila" in args.where:
            for mode in args.serving:
                voila_mode(mode, args, Path(tmp), res, guard, moves_here=mode == args.serving[-1])
        if "lab" in args.where:
            lab_pages(args, res, guard)
    report(args, res)
    problems = guard.problems() + res.problems
    print(f"\n{time.monotonic() - t0:.0f} s")
    if problems:
        print("\nThe pages misbehaved:\n  " + "\n  ".join(problems))
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())

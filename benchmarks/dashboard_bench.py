"""How fast the dashboards respond, measured in a real browser (Chromium driven by Playwright).

Starts the dashboards exactly like ``make dashboard`` (see ``tests/e2e/harness.py``) on a free
loopback port and times, inside the page (``performance.now()``, so the driver's round trips are
not counted):

- page to interactive: navigation start -> ``.hvae-ready`` rendered, for each page, served
  cold (``--pool-size 0``: a kernel starts and runs the notebook for each page) and warm
  (the default: preheated kernels, each rep waits until the pool has been refilled);
- with ``--baseline``, in the same run: each page again with ``?plotly=full`` (the figures drawn
  by plotly's JupyterLab renderer with its own full plotly.js instead of the template's partial
  bundle), and two reference pages served the same way from a temporary folder: one slider (what
  Voila itself takes: page, kernel, widget manager) and one slider + one figure (plus plotly.js);
  ratios against them are printed;
- the first k move right after a page opened (while the pool's refill is pending);
- likelihood-ratio explorer: k-slider key press -> new density AND ROC trace data;
- reconstructions: k-slider key press, and the shuffle button (16 new inputs x all k) -> new grid;
- upload: file chosen -> a verdict ("OOD" / "in-distribution") shown;
- draw: a stroke's end (the pointer lifted on the canvas) -> every view of the drawing updated
  (the kernel's done mark for that stroke, the reconstructions, the scores table, and the
  density, ROC and per-layer KL figures all show new data), timed once the server is quiet
  (the preheated pool's refill, which runs a whole notebook, has finished).

Prints one table (median, min, max over the repetitions; ratio = median / target).

    .venv/bin/python benchmarks/dashboard_bench.py [--reps 3] [--moves 10] [--pages explorer ...]
        [--serving cold warm] [--baseline]

The checkpoints are whatever ``hvaelab.checkpoint.load_model`` finds (``HVAELAB_CHECKPOINTS``,
then the repository's ``checkpoints/``).
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "e2e"))

from harness import (  # noqa: E402
    PAGES,
    PageGuard,
    canvas_revisions,
    draw_stroke,
    elapsed_ms,
    figure_signature,
    launch_chromium,
    nudge_slider,
    start_voila,
    wait_figures_changed,
    wait_quiet,
)

TARGET_READY_MS = {"cold": 15_000, "warm": 2_000}
TARGET_K_MS = 300
TARGET_GRID_MS = 1_000
TARGET_UPLOAD_MS = 1_000
TARGET_STROKE_MS = 300
READY_TIMEOUT_MS = 180_000
UPDATE_TIMEOUT_MS = 30_000
VERDICTS = ["OOD", "in-distribution"]

READY_JS = """
() => {
  if (!document.querySelector('.hvae-ready')) return false;
  window.__hvaeReadyAt = performance.now();
  return true;
}
"""

VERDICT_CHANGED_JS = """
([old, verdicts]) => {
  const t = document.querySelector('.hvae-upload-result')?.innerText;
  if (!t || t === old || !verdicts.some((v) => t.includes(v))) return false;
  window.__hvaeChangedAt = performance.now();
  return true;
}
"""


@dataclass
class Timing:
    """Repeated measurements (ms) of one thing against its target."""

    name: str
    target_ms: float
    samples: list[float] = field(default_factory=list)

    def row(self) -> str:
        if not self.samples:
            return f"{self.name:<52} {'-':>9} {'-':>9} {'-':>9} {0:>3} {self.target_ms:>8.0f}   -"
        med = statistics.median(self.samples)
        return (
            f"{self.name:<52} {med:>9.0f} {min(self.samples):>9.0f} {max(self.samples):>9.0f} "
            f"{len(self.samples):>3} {self.target_ms:>8.0f} {med / self.target_ms:>6.2f}"
            + ("" if med <= self.target_ms else "  (over target)")
        )


# The reference pages of --baseline (served from a temporary folder, like the dashboards).
REFERENCE_PAGES = {
    "reference: one slider": (
        "import ipywidgets as w\n"
        "from hvaelab.app.widgets import ready_marker\n"
        "display(w.VBox([w.IntSlider(description='k'), ready_marker()]))"
    ),
    "reference: one slider + one figure": (
        "import ipywidgets as w\n"
        "import plotly.graph_objects as go\n"
        "from hvaelab.app.widgets import FigureSlot, ready_marker\n"
        "fig = FigureSlot(go.Figure(go.Scatter(y=[1, 3, 2])), 'hvae-reference-fig')\n"
        "display(w.VBox([w.IntSlider(description='k'), fig.box, ready_marker()]))"
    ),
}


def write_reference_pages(folder: Path) -> dict[str, str]:
    """The reference notebooks in ``folder``; returns {name: notebook file}."""
    import nbformat

    folder.mkdir(parents=True, exist_ok=True)
    files = {}
    for i, (name, source) in enumerate(REFERENCE_PAGES.items()):
        nb = nbformat.v4.new_notebook()
        nb.cells = [nbformat.v4.new_code_cell(source)]
        files[name] = f"reference_{i}.ipynb"
        nbformat.write(nb, folder / files[name])
    return files


def before_load(server, mode: str) -> None:
    """Served warm, each load finds the pool refilled (--fill-delay 5) and the server idle."""
    if mode == "warm":
        time.sleep(6)
        wait_quiet(server)


def open_page(
    browser, server, notebook: str, guard: PageGuard, query: str = ""
) -> tuple[object, object, float]:
    """A fresh page on ``notebook``; returns (context, page, ms from navigation to ready)."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    context.set_default_timeout(UPDATE_TIMEOUT_MS)
    page = context.new_page()
    guard.attach(page)
    response = page.goto(server.page_url(notebook) + query, timeout=READY_TIMEOUT_MS)
    if response is not None and response.status == 503:
        raise RuntimeError(f"{notebook}: the server is full (--max-kernels)")
    page.wait_for_function(READY_JS, polling="raf", timeout=READY_TIMEOUT_MS)
    return context, page, float(page.evaluate("() => window.__hvaeReadyAt"))


def png_file(folder: Path, i: int) -> Path:
    """A distinct 28x28 PNG per ``i`` (a blob that wanders, on seeded noise)."""
    rng = np.random.default_rng(i)
    yy, xx = np.mgrid[:28, :28]
    blob = 255 * np.exp(-((yy - 8 - i % 12) ** 2 + (xx - 14) ** 2) / 30.0)
    pixels = np.clip(blob + rng.normal(0, 25, (28, 28)), 0, 255).astype(np.uint8)
    path = folder / f"bench{i}.png"
    buf = io.BytesIO()
    Image.fromarray(pixels, mode="L").save(buf, format="PNG")
    path.write_bytes(buf.getvalue())
    return path


def bench_explorer(page, moves: int, timing: Timing) -> None:
    figs = [".hvae-density-fig", ".hvae-roc-fig"]
    for _ in range(moves):
        before = [figure_signature(page, f) for f in figs]
        nudge_slider(page, "hvae-k-slider")
        wait_figures_changed(page, figs, before, UPDATE_TIMEOUT_MS)
        timing.samples.append(elapsed_ms(page))


def bench_reconstructions(page, moves: int, slider: Timing, shuffle: Timing) -> None:
    grid = [".hvae-recon-grid"]
    for _ in range(moves):
        before = [figure_signature(page, grid[0])]
        nudge_slider(page, "hvae-recon-k-slider")
        wait_figures_changed(page, grid, before, UPDATE_TIMEOUT_MS)
        slider.samples.append(elapsed_ms(page))
    button = page.locator(".hvae-recon-shuffle").first
    if button.count() == 0:
        return
    for _ in range(max(1, moves // 2)):
        before = [figure_signature(page, grid[0])]
        page.evaluate("() => { window.__hvaeMovedAt = performance.now(); }")
        button.click()
        wait_figures_changed(page, grid, before, UPDATE_TIMEOUT_MS)
        shuffle.samples.append(elapsed_ms(page))


def bench_upload(page, uploads: int, timing: Timing, folder: Path) -> None:
    for i in range(uploads):
        image = png_file(folder, i)
        old = page.locator(".hvae-upload-result").first.inner_text()
        with page.expect_file_chooser() as chooser:
            page.locator(".hvae-upload").first.click()
        page.evaluate("() => { window.__hvaeMovedAt = performance.now(); }")
        chooser.value.set_files(str(image))
        page.wait_for_function(
            VERDICT_CHANGED_JS, arg=[old, VERDICTS], polling="raf", timeout=UPDATE_TIMEOUT_MS
        )
        timing.samples.append(elapsed_ms(page))


DRAW_VIEWS = [".hvae-inspect-density", ".hvae-inspect-roc", ".hvae-inspect-kl"]
DRAW_HTML = [".hvae-inspect-recons", ".hvae-inspect-scores"]
DRAW_SIGNATURE_JS = """
([figs, htmls]) => {
  const fig = (c) => { const gd = document.querySelector(c + ' .js-plotly-plot');
    if (!gd || !Array.isArray(gd.data)) return 'null';
    return JSON.stringify([gd.data.map((t) => [t.x, t.y]), gd.layout.shapes || []]); };
  const text = (c) => document.querySelector(c)?.innerHTML ?? 'null';
  return [...figs.map(fig), ...htmls.map(text)];
}
"""
DRAW_DONE_JS = """
([figs, htmls, before, rev]) => {
  const e = document.querySelector('.hvae-canvas');
  if (!e || Number(e.dataset.doneRevision) < rev) return false;
  const now = (SIGNATURE)([figs, htmls]);
  if (now.some((s, i) => s === before[i] || s === 'null')) return false;
  window.__hvaeChangedAt = performance.now();
  return true;
}
""".replace("(SIGNATURE)", "(" + DRAW_SIGNATURE_JS.strip() + ")")


def bench_draw(page, strokes: int, timing: Timing) -> None:
    """Strokes at distinct places; each timed from the pointer lifted to every view updated."""
    rng = np.random.default_rng(0)
    for _ in range(strokes):
        before = page.evaluate(DRAW_SIGNATURE_JS, [DRAW_VIEWS, DRAW_HTML])
        rev, _ = canvas_revisions(page)
        x0, y0, x1, y1 = (float(v) for v in rng.uniform(30, 250, 4))
        draw_stroke(page, [(x0, y0), ((x0 + x1) / 2, (y0 + y1) / 2 + 10), (x1, y1)])
        page.wait_for_function(
            DRAW_DONE_JS, arg=[DRAW_VIEWS, DRAW_HTML, before, rev + 1], polling="raf",
            timeout=UPDATE_TIMEOUT_MS,
        )  # fmt: skip
        end = page.evaluate(
            "() => Number(document.querySelector('.hvae-canvas').dataset.strokeEndAt)"
        )
        timing.samples.append(float(page.evaluate("() => window.__hvaeChangedAt")) - end)
        parts = page.evaluate(
            "() => [Number(document.querySelector('.hvae-canvas').dataset.doneAt),"
            " ...[...document.querySelectorAll('.hvae-live-figure')].map((e) =>"
            " [Number(e.dataset.receivedAt), Number(e.dataset.drawnAt)])]"
        )
        print(
            "  stroke: done after",
            round(parts[0] - end),
            "figures received/drawn",
            [(round(a - end), round(b - end)) for a, b in parts[1:]],
            file=sys.stderr,
        )


def bench_references(
    folder: Path, mode: str, serving: list[str], reps: int, timings: dict, guard: PageGuard
) -> None:
    """Time the reference pages, served like the dashboards (same command, template, settings)."""
    from playwright.sync_api import sync_playwright

    files = write_reference_pages(folder)
    server = start_voila(
        folder.parent / f"voila-{mode}-reference.log",
        args=[*serving, "--notebooks", str(folder)],
    )
    try:
        with sync_playwright() as playwright:
            browser = launch_chromium(playwright)
            for name, notebook in files.items():
                for _ in range(reps):
                    before_load(server, mode)
                    context, _page, ms = open_page(browser, server, notebook, guard)
                    timings[mode, name].samples.append(ms)
                    print(f"  {mode} {name}: ready in {ms:.0f} ms", file=sys.stderr, flush=True)
                    context.close()
            browser.close()
    finally:
        server.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=3, help="page loads per page (default 3)")
    parser.add_argument("--moves", type=int, default=10, help="slider moves / uploads (10)")
    parser.add_argument(
        "--pages", nargs="+", choices=list(PAGES), default=list(PAGES), help="pages to load"
    )
    parser.add_argument(
        "--serving", nargs="+", choices=["cold", "warm"], default=["cold", "warm"],
        help="serve without preheated kernels (cold) and with them (warm)",
    )  # fmt: skip
    parser.add_argument(
        "--baseline", action="store_true",
        help="also time each page with the renderer's full plotly.js, and two reference pages",
    )  # fmt: skip
    args = parser.parse_args(argv)

    from playwright.sync_api import sync_playwright

    ready = {
        (mode, name): Timing(f"page to interactive ({mode}): {name}", TARGET_READY_MS[mode])
        for mode in args.serving
        for name in args.pages
    }
    full = {
        (mode, name): Timing(f"  same, renderer's full plotly.js: {name}", TARGET_READY_MS[mode])
        for mode in args.serving
        for name in (args.pages if args.baseline else [])
    }
    reference = {
        (mode, name): Timing(f"page to interactive ({mode}): {name}", TARGET_READY_MS[mode])
        for mode in args.serving
        for name in (REFERENCE_PAGES if args.baseline else [])
    }
    first_k = {
        mode: Timing(f"explorer ({mode}): first k move after opening", TARGET_K_MS)
        for mode in args.serving
    }
    k_move = Timing("explorer: k move -> density+ROC data", TARGET_K_MS)
    recon_k = Timing("reconstructions: k move -> grid", TARGET_GRID_MS)
    recon_shuffle = Timing("reconstructions: shuffle 16 inputs x all k", TARGET_GRID_MS)
    upload = Timing("upload: PNG chosen -> verdict shown", TARGET_UPLOAD_MS)
    stroke = Timing("draw: stroke end -> every view updated", TARGET_STROKE_MS)
    guard = PageGuard()

    with tempfile.TemporaryDirectory(prefix="hvaelab-bench-") as tmp:
        folder = Path(tmp)
        for mode in args.serving:
            # Many page views in a row: closed pages' kernels are culled after 30 s, and the cap
            # is out of the way (this measures speed; class_bench.py measures the cap).
            serving = ["--pool-size", "0" if mode == "cold" else "1"]
            serving += ["--cull-seconds", "30", "--cull-interval", "10", "--max-kernels", "64"]
            server = start_voila(folder / f"voila-{mode}.log", args=serving)
            try:
                with sync_playwright() as playwright:
                    browser = launch_chromium(playwright)
                    for name in args.pages:
                        for rep in range(args.reps):
                            before_load(server, mode)
                            context, page, ms = open_page(browser, server, PAGES[name], guard)
                            ready[mode, name].samples.append(ms)
                            print(f"  {mode} {name}: ready in {ms:.0f} ms", file=sys.stderr,
                                  flush=True)  # fmt: skip
                            if name == "explorer":
                                bench_explorer(page, 1, first_k[mode])
                            if rep == args.reps - 1 and mode == args.serving[-1]:
                                # interact once per page, on a page open for a while
                                if name == "explorer":
                                    bench_explorer(page, args.moves, k_move)
                                elif name == "reconstructions":
                                    bench_reconstructions(page, args.moves, recon_k, recon_shuffle)
                                elif name == "upload":
                                    bench_upload(page, args.moves, upload, folder)
                                elif name == "draw":
                                    # steady state: after the pool's refill has run its notebook
                                    wait_quiet(server)
                                    bench_draw(page, 2 * args.moves, stroke)
                            context.close()
                            if args.baseline:  # the same page, the renderer's own plotly.js
                                before_load(server, mode)
                                context, page, ms = open_page(
                                    browser, server, PAGES[name], guard, query="?plotly=full"
                                )
                                full[mode, name].samples.append(ms)
                                print(f"  {mode} {name} (full plotly.js): ready in {ms:.0f} ms",
                                      file=sys.stderr, flush=True)  # fmt: skip
                                context.close()
                    browser.close()
            finally:
                server.stop()
            if args.baseline:
                bench_references(folder / "reference", mode, serving, args.reps, reference, guard)

    header = (
        f"{'measure':<52} {'median':>9} {'min':>9} {'max':>9} {'n':>3} {'target':>8} {'ratio':>6}"
    )
    print(header)
    print("-" * len(header))
    for timing in [
        *[t for key, r in ready.items() for t in (r, full.get(key)) if t is not None],
        *reference.values(),
        *first_k.values(),
        k_move,
        recon_k,
        recon_shuffle,
        upload,
        stroke,
    ]:
        print(timing.row())
    print("(ms; ratio = median / target; timed in the page with performance.now())")
    if args.baseline:
        print("\nRatios in this run (median / median):")
        for (mode, name), timing in ready.items():
            base = full[mode, name]
            floor = reference[mode, "reference: one slider"]
            if timing.samples and base.samples and floor.samples:
                med = statistics.median(timing.samples)
                print(
                    f"  {mode} {name}: {med / statistics.median(base.samples):.2f} x the page "
                    f"with the full plotly.js, {med / statistics.median(floor.samples):.2f} x "
                    f"Voila's floor (one slider)"
                )
    problems = guard.problems()
    if problems:
        print("\nThe pages misbehaved:\n  " + "\n  ".join(problems))
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())

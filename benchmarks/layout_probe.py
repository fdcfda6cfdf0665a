"""Do the dashboards fit their windows? Measured in Chromium, in Voilà or in JupyterLab.

Runs the layout probe of ``tests/e2e/layout_probe.py`` (widgets, figures, canvases and images
past their containers or the visible area, horizontal scrollbars, cut labels, overlapped
controls, responsive figures not at their container's width, cut plotly titles) on each page at
each window size, and prints one table of what it found (always exit status 0: a measurement).

- ``--where voila``: the pages served as ``make dashboard`` serves them (``hvaelab dashboard``);
  each page is opened once at the first size, then the window is resized to the others.
- ``--where lab``: JupyterLab (the venv's, on a free loopback port, no token) on COPIES of the
  notebooks in a temporary folder (running them can never write outputs into the repository's
  notebooks; autosave is off too). Each notebook is opened and run once (Run All Cells, until
  the kernel is idle and every code cell has run), then measured inside its output areas
  (``.jp-OutputArea-output``) at each size with the left side panel (file browser) open and
  closed. ``--screenshots DIR`` saves a PNG of each state.

    .venv/bin/python benchmarks/layout_probe.py --where voila|lab [--sizes 1280x800 1920x1080]
        [--pages explorer reconstructions ...] [--panel open closed] [--screenshots DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from contextlib import suppress
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "e2e"))

from harness import (  # noqa: E402
    PAGES,
    REPO,
    free_port,
    launch_chromium,
    start_voila,
    wait_quiet,
)
from layout_probe import (  # noqa: E402
    LAB_ROOTS,
    VOILA_ROOTS,
    Finding,
    probe_layout,
    resize,
    settle_layout,
)

READY_MS = 240_000
RUN_ALL_MS = 600_000

# JupyterLab settings for the measurement: every cell in the DOM (no windowing, so outputs
# below the fold are measured too), no autosave, no update/news checks.
LAB_SETTINGS = {
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
    "@jupyterlab/docmanager-extension/plugin.jupyterlab-settings": {"autosave": False},
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
        "fetchNews": "false",
        "checkForUpdates": False,
        "doNotDisturbMode": True,
    },
}

# Whether the notebook in the main area is ``nb`` and its kernel has started (is idle).
LAB_OPENED_JS = """
(nb) => {
  const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;
  const kernel = w && w.sessionContext && w.sessionContext.session &&
    w.sessionContext.session.kernel;
  return !!(w && w.context && w.context.path.endsWith(nb) && kernel && kernel.status === 'idle');
}
"""

# Whether the notebook in the main area has run every code cell and its kernel is idle.
LAB_DONE_JS = """
() => {
  const app = window.jupyterapp, nb = app && app.shell.currentWidget;
  if (!nb || !nb.content || !nb.sessionContext || !nb.sessionContext.session) return false;
  const kernel = nb.sessionContext.session.kernel;
  if (!kernel || kernel.status !== 'idle') return false;
  const cells = nb.content.widgets.filter((c) => c.model.type === 'code');
  return cells.length > 0 && cells.every((c) => c.model.executionCount != null);
}
"""


def parse_size(text: str) -> tuple[int, int]:
    w, h = text.lower().split("x")
    return int(w), int(h)


def _row(page: str, size: tuple[int, int], state: str, findings: list[Finding]) -> dict:
    return {"page": page, "size": f"{size[0]}x{size[1]}", "state": state, "findings": findings}


# ------------------------------------------------------------------------------------ Voilà
def measure_voila(browser, pages: list[str], sizes: list[tuple[int, int]], shots: Path | None):
    server = start_voila(Path(tempfile.mkdtemp(prefix="layout-voila-")) / "voila.log")
    rows = []
    try:
        wait_quiet(server)
        for name in pages:
            context = browser.new_context(viewport={"width": sizes[0][0], "height": sizes[0][1]})
            try:
                page = context.new_page()
                page.goto(server.page_url(PAGES[name]), timeout=READY_MS)
                page.wait_for_selector(".hvae-ready", state="attached", timeout=READY_MS)
                for i, (w, h) in enumerate(sizes):
                    if i:
                        resize(page, w, h, VOILA_ROOTS)
                    else:
                        settle_layout(page, VOILA_ROOTS)
                    rows.append(_row(name, (w, h), "voila", probe_layout(page, VOILA_ROOTS)))
                    if shots:
                        page.screenshot(path=shots / f"voila_{name}_{w}x{h}.png", full_page=True)
            finally:
                context.close()
    finally:
        server.stop()
    return rows


# ------------------------------------------------------------------------------- JupyterLab
class Lab:
    """JupyterLab on a free loopback port serving a temporary copy of ``notebooks/``."""

    def __init__(self) -> None:
        self.home = Path(tempfile.mkdtemp(prefix="layout-lab-"))
        shutil.copytree(REPO / "notebooks", self.home / "notebooks")
        settings = self.home / "settings"
        for rel, value in LAB_SETTINGS.items():
            (settings / rel).parent.mkdir(parents=True, exist_ok=True)
            (settings / rel).write_text(json.dumps(value))
        self.port = free_port()
        env = {
            **os.environ,
            "JUPYTERLAB_SETTINGS_DIR": str(settings),
            "JUPYTERLAB_WORKSPACES_DIR": str(self.home / "workspaces"),
            "JUPYTER_RUNTIME_DIR": str(self.home / "runtime"),
            "JUPYTER_CONFIG_DIR": str(self.home / "config"),
        }
        self.log = (self.home / "lab.log").open("wb")
        self.process = subprocess.Popen(
            [
                str(Path(sys.executable).with_name("jupyter")),
                "lab",
                "--no-browser",
                "--ServerApp.token=",
                "--ServerApp.password=",
                "--ServerApp.ip=127.0.0.1",
                f"--ServerApp.port={self.port}",
                "--ServerApp.port_retries=0",
                f"--ServerApp.root_dir={self.home}",
                "--LabApp.expose_app_in_browser=True",
                "--LabApp.news_url=",
                "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
                "--LabApp.extension_manager=readonly",
                "--allow-root",
            ],
            cwd=self.home,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 120
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"JupyterLab exited; see {self.home / 'lab.log'}")
            with suppress(urllib.error.URLError, OSError):
                with urllib.request.urlopen(f"{self.url}api/status", timeout=5) as r:
                    if r.status == 200:
                        break
            if time.monotonic() > deadline:
                raise RuntimeError(f"JupyterLab did not answer; see {self.home / 'lab.log'}")
            time.sleep(0.5)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def stop(self) -> None:
        import signal

        with suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            with suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
        self.log.close()
        shutil.rmtree(self.home, ignore_errors=True)


def _side_panel(page, open_: bool) -> None:
    page.evaluate(
        """(open) => { const app = window.jupyterapp;
          if (open) { app.shell.activateById('filebrowser'); app.shell.expandLeft(); }
          else { app.shell.collapseLeft(); } }""",
        open_,
    )


# Scrolls the notebook to its first widget output (step 0), or one screen further (step > 0).
SCROLL_JS = """
(step) => {
  const first = document.querySelector('.jp-OutputArea-output .jupyter-widgets');
  if (!first) return false;
  let box = first.parentElement;
  while (box && !(box.scrollHeight > box.clientHeight &&
                  ['auto', 'scroll'].includes(getComputedStyle(box).overflowY))) {
    box = box.parentElement;
  }
  if (!box) return false;
  if (step === 0) {
    box.scrollTop += first.getBoundingClientRect().top - box.getBoundingClientRect().top - 8;
  } else {
    box.scrollTop += box.clientHeight - 60;
  }
  return true;
}
"""


def lab_screenshots(page, stem: Path, screens: int = 2) -> list[Path]:
    """PNGs of the window scrolled to the first widget output, then one screen down each."""
    paths = []
    for i in range(screens):
        if not page.evaluate(SCROLL_JS, i):
            break
        page.wait_for_timeout(400)
        path = stem.with_name(f"{stem.name}_{i + 1}.png")
        page.screenshot(path=path)
        paths.append(path)
    return paths


def measure_lab(
    browser,
    pages: list[str],
    sizes: list[tuple[int, int]],
    panels: list[str],
    shots: Path | None,
):
    lab = Lab()
    rows = []
    try:
        for name in pages:
            notebook = PAGES[name]
            w0, h0 = sizes[0]
            context = browser.new_context(viewport={"width": w0, "height": h0})
            try:
                page = context.new_page()
                page.goto(f"{lab.url}lab/tree/notebooks/{notebook}?reset", timeout=READY_MS)
                page.wait_for_function(LAB_OPENED_JS, arg=notebook, timeout=READY_MS)
                _side_panel(page, panels[0] == "open")
                t0 = time.monotonic()
                page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
                page.wait_for_timeout(2000)
                page.wait_for_function(LAB_DONE_JS, polling=500, timeout=RUN_ALL_MS)
                page.wait_for_selector(".hvae-ready", state="attached", timeout=60_000)
                print(f"{name}: ran in {time.monotonic() - t0:.0f} s", file=sys.stderr)
                # every (size, panel) state, changing one thing at a time
                states, flip = [], False
                for size in sizes:
                    order = panels[::-1] if flip else panels
                    states += [(size, p) for p in order]
                    flip = not flip
                for (w, h), panel in states:
                    page.set_viewport_size({"width": w, "height": h})
                    page.wait_for_function("(w) => window.innerWidth === w", arg=w)
                    _side_panel(page, panel == "open")
                    settle_layout(page, LAB_ROOTS)
                    page.wait_for_timeout(500)
                    findings = probe_layout(page, LAB_ROOTS)
                    rows.append(_row(name, (w, h), f"lab, panel {panel}", findings))
                    if shots:
                        lab_screenshots(page, shots / f"lab_{name}_{w}x{h}_panel_{panel}")
                page.evaluate(
                    "() => window.jupyterapp.shell.currentWidget.sessionContext.shutdown()"
                )
            finally:
                context.close()
    finally:
        lab.stop()
    return rows


def print_table(rows: list[dict]) -> None:
    print(f"{'page':<16} {'size':<10} {'where':<18} {'n':>3}  worst")
    for r in rows:
        worst = max(r["findings"], key=lambda f: f.px, default=None)
        print(
            f"{r['page']:<16} {r['size']:<10} {r['state']:<18} {len(r['findings']):>3}  "
            + (f"{worst.kind} {worst.px:.0f} px" if worst else "-")
        )
    for r in rows:
        if r["findings"]:
            print(f"\n{r['page']} {r['size']} {r['state']}:")
            for f in r["findings"]:
                print(f"  {f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--where", choices=["voila", "lab"], default="voila")
    parser.add_argument("--sizes", nargs="+", default=["1280x800", "1920x1080"])
    parser.add_argument("--pages", nargs="+", choices=list(PAGES), default=list(PAGES))
    parser.add_argument(
        "--panel", nargs="+", choices=["open", "closed"], default=["open", "closed"]
    )
    parser.add_argument("--screenshots", type=Path, help="save a PNG of every measured state")
    args = parser.parse_args(argv)
    sizes = [parse_size(s) for s in args.sizes]
    if args.screenshots:
        args.screenshots.mkdir(parents=True, exist_ok=True)
    from playwright.sync_api import sync_playwright

    t0 = time.monotonic()
    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        try:
            if args.where == "voila":
                rows = measure_voila(browser, args.pages, sizes, args.screenshots)
            else:
                rows = measure_lab(browser, args.pages, sizes, args.panel, args.screenshots)
        finally:
            browser.close()
    print_table(rows)
    print(f"\n{sum(len(r['findings']) for r in rows)} finding(s); {time.monotonic() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

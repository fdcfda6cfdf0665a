"""Drive the dashboards in a real browser: a local Voila server and a guarded Chromium page.

Shared by the browser tests (``tests/e2e``) and ``benchmarks/dashboard_bench.py``. The server is
started exactly like ``make dashboard`` (``hvaelab dashboard``: the offline "hvaelab" template,
127.0.0.1 only) on a free loopback port, from a neutral folder (not the checkout). Pages are
watched by :class:`PageGuard`, which records browser console errors, uncaught page errors and
every request that would leave the machine.

Checkpoints are whatever :func:`hvaelab.checkpoint.load_model` finds by default (the
repository's ``checkpoints/``); the server inherits the environment, so a developer can point
``HVAELAB_CHECKPOINTS`` elsewhere.
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psutil

REPO = Path(__file__).resolve().parents[2]
COMMAND_ENV = "HVAELAB_E2E_COMMAND"  # the hvaelab that serves the pages (JSON list)
CHROMIUM = Path("/usr/bin/chromium")  # Debian's Chromium; `playwright install` is never used
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
LOCAL_HOSTS = {"127.0.0.1", "localhost", "[::1]", "::1"}
# Schemes that never reach the network: inline data, blobs made by the page, blank frames.
LOCAL_SCHEMES = {"data", "blob", "about"}

PAGES = {
    "explorer": "01_likelihood_ratio_explorer.ipynb",
    "reconstructions": "02_latent_reconstructions.ipynb",
    "correlations": "03_layer_correlations.ipynb",
    "upload": "04_score_your_images.ipynb",
    "teaching": "05_teaching_the_likelihood_ratio.ipynb",
    "training": "06_training_curves.ipynb",
    "draw": "07_draw_and_inspect.ipynb",
}


class DashboardServerError(RuntimeError):
    """The Voila server did not start or answer; the message carries the end of its log."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (bind port 0, read it back, release)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class VoilaServer:
    """A running ``hvaelab dashboard`` process (its own process group) and its address."""

    process: subprocess.Popen
    port: int
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def page_url(self, notebook: str) -> str:
        return f"{self.url}voila/render/{notebook}"

    def log_tail(self, n: int = 40) -> str:
        with suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        return "(no log)"

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM the server's process group (Voila shuts its kernels down), then SIGKILL
        whatever it started that is still alive: kernels run in process groups of their own."""
        try:
            family = psutil.Process(self.process.pid).children(recursive=True)
        except psutil.Error:
            family = []
        with suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            with suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(5)
        _, alive = psutil.wait_procs(family, timeout=5)
        for proc in alive:
            with suppress(psutil.Error):
                proc.kill()
        psutil.wait_procs(alive, timeout=5)


def start_voila(
    log_path: Path,
    timeout: float = 120.0,
    env: dict[str, str] | None = None,
    args: Sequence[str] = (),
    command: Sequence[str] | None = None,
    port: int | None = None,
) -> VoilaServer:
    """Start the dashboards on a free loopback port and wait until the tree page answers.

    ``args``: more ``hvaelab dashboard`` flags (``--pool-size 0``...); ``command``: the
    ``hvaelab`` to run, e.g. another environment's ``[".../bin/hvaelab"]`` (default: the JSON
    list in ``$HVAELAB_E2E_COMMAND``, which scripts/smoke_install.py sets to serve an installed
    package to these tests, else this interpreter's ``python -m hvaelab``); ``port``: this one
    (a restart on the same address) instead of a free one."""
    port = port or free_port()
    hvaelab = list(command or json.loads(os.environ.get(COMMAND_ENV) or "null") or [])
    hvaelab = hvaelab or [sys.executable, "-m", "hvaelab"]
    argv = [*hvaelab, "dashboard", "--port", str(port), *map(str, args)]
    environment = {**os.environ, **(env or {})}
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            argv,
            cwd=log_path.parent,  # a neutral folder: nothing found relative to the checkout
            env=environment,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, so stop() reaches all of it
        )
    server = VoilaServer(process, port, log_path)
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise DashboardServerError(
                f"Voila exited with status {process.returncode} before answering on port "
                f"{port}. Its log ({log_path}):\n{server.log_tail()}"
            )
        try:
            with urllib.request.urlopen(server.url, timeout=5) as response:
                if response.status == 200:
                    return server
        except (urllib.error.URLError, OSError):
            pass
        if time.monotonic() > deadline:
            server.stop()
            raise DashboardServerError(
                f"Voila did not answer on {server.url} within {timeout:.0f} s. "
                f"Its log ({log_path}):\n{server.log_tail()}"
            )
        time.sleep(0.3)


def launch_chromium(playwright: Any):
    """Debian's Chromium, headless, with background networking (updates, sync...) off."""
    if not CHROMIUM.exists():
        raise FileNotFoundError(
            f"{CHROMIUM} is missing; the browser tests use Debian's Chromium. Install it with "
            "`sudo apt-get install -y chromium` (or run `bash scripts/ensure-chromium` as root)."
        )
    return playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)


def is_local(url: str) -> bool:
    """Whether a request stays on this machine (loopback host, or a data:/blob: URL)."""
    parts = urlsplit(url)
    if parts.scheme in LOCAL_SCHEMES:
        return True
    return parts.scheme in {"http", "https", "ws", "wss"} and parts.hostname in LOCAL_HOSTS


@dataclass
class PageGuard:
    """Everything a page did that a dashboard must not do: console errors, uncaught
    exceptions, requests to other hosts."""

    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    external_requests: list[str] = field(default_factory=list)

    def attach(self, page: Any) -> PageGuard:
        page.on("console", self._on_console)
        page.on("pageerror", lambda exc: self.page_errors.append(exc.stack or str(exc)))
        page.on("request", self._on_request)
        # WebSockets are not "requests" for Playwright; check their addresses too.
        page.on("websocket", lambda ws: self._on_url(ws.url))
        return self

    def _on_console(self, message: Any) -> None:
        if message.type == "error":
            location = message.location or {}
            self.console_errors.append(f"{message.text} (at {location.get('url', '?')})")

    def _on_request(self, request: Any) -> None:
        self._on_url(request.url)

    def _on_url(self, url: str) -> None:
        if not is_local(url):
            self.external_requests.append(url)

    def problems(self) -> list[str]:
        return (
            [f"request leaving localhost: {u}" for u in self.external_requests]
            + [f"console error: {m}" for m in self.console_errors]
            + [f"uncaught page error: {m}" for m in self.page_errors]
        )

    def assert_clean(self) -> None:
        problems = self.problems()
        assert not problems, "the page misbehaved:\n  " + "\n  ".join(problems)


class _StaticHandler(http.server.SimpleHTTPRequestHandler):
    """Serves a folder with the static site's types; keeps each request's path and status."""

    extensions_map = {
        **http.server.SimpleHTTPRequestHandler.extensions_map,
        ".mjs": "text/javascript",
        ".js": "text/javascript",
        ".wasm": "application/wasm",
        ".json": "application/json",
        ".onnx": "application/octet-stream",
    }

    def __init__(self, *args, requests: list[tuple[str, int]], **kwargs) -> None:
        self.requests = requests
        super().__init__(*args, **kwargs)

    def log_request(self, code: Any = "-", size: Any = "-") -> None:  # noqa: ARG002
        self.requests.append((self.path, int(code)))

    def log_message(self, format, *args) -> None:  # noqa: A002 - the base class's name
        pass


class StaticServer:
    """``python -m http.server`` for ``folder`` on a free loopback port, in a thread (the
    static lesson site's tests: no Jupyter process); ``requests``: (path, status) of each."""

    def __init__(self, folder: Path) -> None:
        self.requests: list[tuple[str, int]] = []
        handler = functools.partial(_StaticHandler, directory=str(folder), requests=self.requests)
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        if self.thread.is_alive():
            self.httpd.shutdown()
            self.httpd.server_close()
            self.thread.join(10)


# --------------------------------------------------------------------------- page helpers
# Trace data of the plotly graph div inside a container, JSON-ready (typed arrays -> lists).
# Plotly.js keeps the traces on the graph div as `.data`; a FigureWidget, a `fig.show()` output
# and a static plot all have one.
FIGURE_DATA_JS = """
(container) => {
  const gd = document.querySelector(container + ' .js-plotly-plot');
  if (!gd || !Array.isArray(gd.data)) return null;
  const plain = (v) => (v && ArrayBuffer.isView(v)) ? Array.from(v) : v;
  return gd.data.map((t) => ({
    type: t.type || 'scatter', name: t.name ?? null, x: plain(t.x), y: plain(t.y),
    z: plain(t.z), source: t.source ?? null, text: plain(t.text ?? t.hovertext ?? null),
  }));
}
"""

# Waits (inside the page, polled each animation frame) until every container's figure data
# differs from `before`; stamps performance.now() so timings exclude the test's round trips.
WAIT_CHANGED_JS = (
    "([containers, before]) => {\n  const read = "
    + FIGURE_DATA_JS.strip()
    + """;
  const now = containers.map((c) => JSON.stringify(read(c)));
  if (now.some((s, i) => s === before[i] || s === 'null')) return false;
  window.__hvaeChangedAt = performance.now();
  return true;
}
"""
)


# how long a page of a freshly started server (kernels still starting) may take to be ready
SERVER_READY_MS = 150_000


def open_ready(browser: Any, server: Any, notebook: str) -> tuple[Any, Any, PageGuard]:
    """``(context, page, guard)``: ``notebook`` opened on ``server`` in a new browser context
    (1400x1000), guarded, once its ready marker is on the page."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    guard = PageGuard().attach(page)
    page.goto(server.page_url(notebook), timeout=SERVER_READY_MS)
    page.wait_for_selector(".hvae-ready", state="attached", timeout=SERVER_READY_MS)
    return context, page, guard


def figure_data(page: Any, container: str) -> list[dict] | None:
    """The traces of the plotly figure inside ``container`` (a CSS selector), or None."""
    return page.evaluate(FIGURE_DATA_JS, container)


def figure_signature(page: Any, container: str) -> str:
    """The figure's trace data as the JSON string :data:`WAIT_CHANGED_JS` compares."""
    return page.evaluate(f"(c) => JSON.stringify(({FIGURE_DATA_JS.strip()})(c))", container)


def wait_figures_changed(
    page: Any, containers: list[str], before: list[str], timeout_ms: float
) -> None:
    """Block until every container's figure data differs from ``before``."""
    try:
        page.wait_for_function(
            WAIT_CHANGED_JS, arg=[containers, before], polling="raf", timeout=timeout_ms
        )
    except Exception as exc:
        unchanged = [
            c
            for c, b in zip(containers, before, strict=True)
            if figure_signature(page, c) in (b, "null")
        ]
        raise AssertionError(
            f"after {timeout_ms / 1000:.0f} s these figures still show their old data (or "
            f"none): {unchanged} ({exc.__class__.__name__})"
        ) from exc


def slider_handle(page: Any, slider_class: str) -> Any:
    """The keyboard-focusable handle of an ipywidgets slider carrying ``slider_class``."""
    return page.locator(f".{slider_class} .noUi-handle").first


def nudge_slider(page: Any, slider_class: str) -> tuple[int, int]:
    """Move an ipywidgets slider one step with the keyboard (right, or left at its maximum).

    Returns the handle's (before, after) values as the slider reports them (aria-valuenow).
    Stamps ``window.__hvaeMovedAt`` just before the key press.
    """
    handle = slider_handle(page, slider_class)
    handle.wait_for(state="visible")
    now = float(handle.get_attribute("aria-valuenow"))
    top = float(handle.get_attribute("aria-valuemax"))
    handle.focus()
    page.evaluate("() => { window.__hvaeMovedAt = performance.now(); }")
    handle.press("ArrowLeft" if now >= top else "ArrowRight")
    after = float(handle.get_attribute("aria-valuenow"))
    return int(now), int(after)


def elapsed_ms(page: Any, start: str = "__hvaeMovedAt", end: str = "__hvaeChangedAt") -> float:
    """Milliseconds between two performance.now() stamps set on ``window`` by the helpers."""
    return float(page.evaluate(f"() => window.{end} - window.{start}"))


# The tallest scrolling box: Voila's page scrolls inside a panel, not the document, so a
# "full page" screenshot alone would cut at the window's height.
CONTENT_HEIGHT_JS = """
() => {
  const scrolls = (el) => ['auto', 'scroll'].includes(getComputedStyle(el).overflowY);
  const scrollers = Array.from(document.querySelectorAll('*')).filter(
    (el) => el.scrollHeight > el.clientHeight && scrolls(el));
  const extra = scrollers.map((el) => el.scrollHeight - el.clientHeight);
  return document.documentElement.clientHeight + Math.max(0, ...extra);
}
"""


def screenshot(page: Any, path: Path, max_height: int = 8000) -> Path:
    """Save the whole page (up to ``max_height`` px) by growing the window to its content."""
    size = page.viewport_size or {"width": 1400, "height": 1000}
    height = min(max_height, max(size["height"], int(page.evaluate(CONTENT_HEIGHT_JS)) + 40))
    page.set_viewport_size({"width": size["width"], "height": height})
    try:
        page.screenshot(path=path, full_page=True)
    finally:
        page.set_viewport_size(size)
    return path


def wait_quiet(server, quiet_s: float = 3.0, timeout: float = 300.0) -> float:
    """Wait until the server and its kernels have used under 5% of a core for ``quiet_s``
    seconds in a row (preheated kernels have finished running their notebooks)."""

    def cpu() -> float:
        total = 0.0
        try:
            procs = [psutil.Process(server.process.pid)]
            procs += procs[0].children(recursive=True)
        except psutil.Error:
            return 0.0
        for proc in procs:
            try:
                t = proc.cpu_times()
                total += t.user + t.system
            except psutil.Error:
                pass
        return total

    t0 = time.monotonic()
    last, calm = cpu(), 0.0
    while time.monotonic() - t0 < timeout:
        time.sleep(0.5)
        now = cpu()
        calm = calm + 0.5 if now - last < 0.025 else 0.0
        last = now
        if calm >= quiet_s:
            return time.monotonic() - t0
    raise TimeoutError(f"the server was still busy after {timeout:.0f} s")


def kernel_count(server) -> int:
    """Kernel processes (ipykernel) the server has started and that are alive."""
    try:
        family = psutil.Process(server.process.pid).children(recursive=True)
    except psutil.Error:
        return 0
    n = 0
    for proc in family:
        try:
            if "ipykernel" in " ".join(proc.cmdline()) and proc.status() != psutil.STATUS_ZOMBIE:
                n += 1
        except psutil.Error:
            pass
    return n


# ------------------------------------------------------------------------ the drawing canvas
CANVAS = ".hvae-canvas"


def canvas_revisions(page: Any) -> tuple[int, int]:
    """``(revision, done_revision)`` the canvas shows: changes made, changes every view shows."""
    # the canvas is created once the page has settled (hvaelab.app.widgets.AnySlot)
    page.wait_for_selector(f"{CANVAS}[data-revision]", state="attached", timeout=60_000)
    r = page.evaluate(
        "(c) => { const e = document.querySelector(c); "
        "return e ? [Number(e.dataset.revision), Number(e.dataset.doneRevision)] : null; }",
        CANVAS,
    )
    if r is None:
        raise AssertionError("no drawing canvas on the page")
    return int(r[0]), int(r[1])


def wait_drawn(page: Any, revision: int, timeout_ms: float = 60_000) -> None:
    """Block until the canvas has made ``revision`` changes and every view shows them."""
    page.wait_for_function(
        "([c, r]) => { const e = document.querySelector(c); if (!e) return false;"
        " const rev = Number(e.dataset.revision), done = Number(e.dataset.doneRevision);"
        " if (rev >= r && done >= rev) { window.__hvaeDoneAt = performance.now(); return true; }"
        " return false; }",
        arg=[CANVAS, revision],
        polling="raf",
        timeout=timeout_ms,
    )


def set_brush(page: Any, width: float, ink: float, shape: str) -> None:
    """Set the canvas's brush through its own controls (as a user would)."""
    page.locator(f"{CANVAS} .hvae-canvas-shape").select_option(shape)
    page.locator(f"{CANVAS} .hvae-canvas-width").fill(str(width))
    page.locator(f"{CANVAS} .hvae-canvas-ink").fill(str(ink))


def draw_stroke(page: Any, points: Any) -> None:
    """Drag the mouse along ``points`` (canvas px, 0..280) on the canvas: one stroke."""
    box = page.locator(f"{CANVAS} canvas").bounding_box()
    scale = box["width"] / 280.0
    xy = [(box["x"] + x * scale, box["y"] + y * scale) for x, y in points]
    page.mouse.move(*xy[0])
    page.mouse.down()
    for p in xy[1:]:
        page.mouse.move(*p, steps=2)
    page.mouse.up()


def image_of(page: Any, selector: str) -> Any:
    """The PNG data-URI image of the <img> at ``selector`` as a uint8 array."""
    import base64
    import io

    import numpy as np
    from PIL import Image

    src = page.locator(selector).first.get_attribute("src")
    if not src or not src.startswith("data:image/png;base64,"):
        raise AssertionError(f"{selector} shows no PNG data image: {str(src)[:60]}")
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1]))))


def shown_scores(page: Any) -> dict[str, Any]:
    """What the example inspector shows: ``{"value": {score: v}, "p": {score: p}, "bpd",
    "verdict", "header"}`` read from its data attributes."""
    return page.evaluate(
        """() => {
          const read = (cls) => Object.fromEntries([...document.querySelectorAll(cls)]
            .map((e) => [e.dataset.score, Number(e.dataset.value)]));
          const v = document.querySelector('.hvae-inspect-verdict');
          const b = document.querySelector('.hvae-inspect-bpd');
          const h = document.querySelector('.hvae-inspect-header');
          return {value: read('.hvae-inspect-value'), p: read('.hvae-inspect-p'),
                  bpd: b ? Number(b.dataset.value) : null, verdict: v ? v.dataset.verdict : null,
                  header: h ? h.innerText : null};
        }"""
    )

"""A class at once: N visitors open the upload page together, each scores an image, then leave.

Starts the dashboards exactly like ``make dashboard`` (``hvaelab dashboard``, with its serving
settings; ``--cull-seconds`` shortens the culler's wait so the run ends sooner) on a free
loopback port, waits for the preheated pool, then opens N pages of ``04_score_your_images`` at
once in Chromium (Playwright's async API), uploads a PNG on each and reports

- the time from the first navigation to the last verdict shown,
- the peak memory of the server and all its kernels (RSS summed, sampled every 0.5 s),
- how many visitors got the "busy" page (past ``--max-kernels``),
- the kernel count after the pages are closed, over time, and when it is back to the pool,
- how often Voila gave up waiting for a cell's outputs while rendering a page ("Timeout waiting
  for IOPub output" in its log: a page that lost an output may never become interactive).

    .venv/bin/python benchmarks/class_bench.py [--visitors 10] [--cull-seconds 60] [--watch 300]
        [--pool-size 1] [--max-kernels 12]

Session mode (``--session-minutes``: a class for an hour, issue 39): ``--students`` arrive at
seeded times within ``--arrival-seconds``; each runs a scripted session in Chromium (one browser,
one context per student) for the set minutes once in -- the explorer's score menu and k moves,
uploads on the upload page, strokes on the drawing page, each verdict read, pages changed, the
tab sometimes closed (seeded choices); a busy page (503) is retried after a seeded back-off
(``--retry-min``/``--retry-max``). Interactions are timed in the page (performance.now() stamps,
as dashboard_moves.py), page loads by the driver; a page hangs when nothing updates within 60 s.
See :func:`report` and :func:`targets` (exit status 1 when one is missed):

    .venv/bin/python benchmarks/class_bench.py --session-minutes 60 --students 30 \
        --max-kernels 12 --seed 0 [--arrival-seconds 120] [--cull-seconds 60] [--watch 300]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import psutil
from playwright.async_api import TimeoutError as PlaywrightTimeout

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "e2e"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from dashboard_bench import VERDICTS, png_file  # noqa: E402
from dashboard_moves import (  # noqa: E402
    CHANGED_JS,
    FAMILY_LLR,
    FAMILY_LLR_LT,
    FIND_JS,
    FIRST_CONTROL,
    MEASURES,
    SCORE,
    SELECT_JS,
    SIGNATURE_JS,
    STROKE_END_JS,
    UPLOAD_EMPTY_JS,
    MoveError,
    _js_views,
    png_bytes,
)
from harness import (  # noqa: E402
    CANVAS,
    CHROMIUM,
    CHROMIUM_ARGS,
    PAGES,
    REPO,
    PageGuard,
    kernel_count,
    start_voila,
    wait_quiet,
)

READY_MS = 300_000
IOPUB_TIMEOUT = "Timeout waiting for IOPub output"  # nbclient's warning when it drops outputs


def family(server) -> list[psutil.Process]:
    try:
        root = psutil.Process(server.process.pid)
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return []


def rss_gb(server) -> float:
    total = 0
    for proc in family(server):
        try:
            total += proc.memory_info().rss
        except psutil.Error:
            pass
    return total / 2**30


def tree(root_pid: int, without: set[int] = frozenset()) -> list[psutil.Process]:
    """The process ``root_pid`` and all its descendants, less the trees rooted at ``without``."""
    try:
        root = psutil.Process(root_pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return []
    skip = set()
    for pid in without:
        with suppress(psutil.Error):
            skip |= {pid, *(c.pid for c in psutil.Process(pid).children(recursive=True))}
    return [p for p in procs if p.pid not in skip]


def is_kernel(proc: psutil.Process) -> bool:
    with suppress(psutil.Error):
        return "ipykernel" in " ".join(proc.cmdline())
    return False


class CpuMeter:
    """CPU seconds (user + system) a changing set of processes used since ``start()``: each
    process's cumulative time read at every sample, summed over every process ever seen (keyed
    by pid and start time). A process that ends loses at most its last sampling interval."""

    def __init__(self) -> None:
        self._first: dict[tuple[int, float], float] = {}
        self._last: dict[tuple[int, float], float] = {}
        self._started = False

    def sample(self, procs: list[psutil.Process]) -> None:
        for proc in procs:
            with suppress(psutil.Error):
                key = (proc.pid, proc.create_time())
                t = proc.cpu_times()
                now = t.user + t.system
                # a process born after the start counts from zero
                self._first.setdefault(key, now if not self._started else 0.0)
                self._last[key] = now
        self._started = True

    @property
    def seconds(self) -> float:
        return sum(self._last[k] - self._first[k] for k in self._last)


class PeakMemory:
    """Samples the server's RSS (with its kernels) every 0.5 s in a thread.

    ``peak``: the largest sum of RSS over the server's process tree (GB); ``largest_kernel``:
    the largest RSS of one kernel process seen; ``server_own``: the largest RSS of the server's
    other processes (itself: no kernel). With ``load_root`` (a pid: this driver), it also
    meters the CPU of the server's tree (``server_cpu``) and of the load generator's
    (``load_cpu``: ``load_root`` and its descendants -- Playwright's driver, Chromium -- less
    the server's tree)."""

    def __init__(self, server, load_root: int | None = None, interval: float = 0.5) -> None:
        self.server, self.peak, self._stop = server, 0.0, threading.Event()
        self.largest_kernel = self.server_own = 0.0
        self.load_root, self.interval = load_root, interval
        self.server_cpu, self.load_cpu = CpuMeter(), CpuMeter()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def sample(self) -> None:
        procs = family(self.server)
        total = own = 0.0
        for proc in procs:
            with suppress(psutil.Error):
                rss = proc.memory_info().rss / 2**30
                total += rss
                if is_kernel(proc):
                    self.largest_kernel = max(self.largest_kernel, rss)
                else:
                    own += rss
        self.peak = max(self.peak, total)
        self.server_own = max(self.server_own, own)
        if self.load_root is not None:
            self.server_cpu.sample(procs)
            self.load_cpu.sample(tree(self.load_root, {self.server.process.pid}))

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            time.sleep(self.interval)

    def __enter__(self) -> PeakMemory:
        self.sample()  # the CPU meters' starting point
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()


async def visitor(browser, server, image: Path, t0: float) -> dict:
    context = await browser.new_context(viewport={"width": 1400, "height": 1000})
    page = await context.new_page()
    try:
        response = await page.goto(server.page_url(PAGES["upload"]), timeout=READY_MS)
        if response is not None and response.status == 503:
            return {"busy": True, "context": context}
        await page.wait_for_selector(".hvae-ready", state="attached", timeout=READY_MS)
        ready = time.monotonic() - t0
        async with page.expect_file_chooser() as chooser:
            await page.locator(".hvae-upload").first.click()
        await (await chooser.value).set_files(str(image))
        await page.wait_for_function(
            "(verdicts) => { const t = document.querySelector('.hvae-upload-result')?.innerText;"
            " return !!t && verdicts.some((v) => t.includes(v)); }",
            arg=list(VERDICTS),
            timeout=READY_MS,
        )
        return {"busy": False, "ready": ready, "verdict": time.monotonic() - t0, "context": context}
    except Exception as exc:  # reported, not hidden
        return {"busy": False, "error": f"{type(exc).__name__}: {exc}"[:300], "context": context}


async def visit(server, n: int, folder: Path) -> list[dict]:
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        t0 = time.monotonic()
        images = [png_file(folder, i) for i in range(n)]
        results = await asyncio.gather(*(visitor(browser, server, im, t0) for im in images))
        for r in results:  # the visitors leave: their pages close
            await r.pop("context").close()
        await browser.close()
    return results


# ------------------------------------------------------------------------------ session mode
# A class for an hour: students arrive in a burst and each runs a scripted session (open a page,
# move the k slider, choose a score, upload an image or draw a stroke, read the verdict, move to
# another page, sometimes close the tab) until their time is up. See run_class().
SESSION_PAGES = ("explorer", "upload", "draw")
K_MOVE = next(m for m in MEASURES if m.key == "explorer: k move")
SCORE_MENU = next(m for m in MEASURES if m.key == "explorer: score menu")
UPLOAD = FIRST_CONTROL["upload"]  # the result table with its verdict
STROKE = FIRST_CONTROL["draw"]  # the inspector: reconstructions, scores + verdict, figures
VERDICT_JS = {
    "upload": "() => document.querySelector('.hvae-upload-result [data-verdict]')"
    "?.dataset.verdict ?? null",
    "draw": "() => document.querySelector('.hvae-inspect-verdict')?.dataset.verdict ?? null",
}
BUSY_CONSOLE = "status of 503"  # the browser's "Failed to load resource: ... 503": busy page
# Voila's page posts /voila/api/shutdown/<kernel> when it unloads (a student moving on), which
# frees the place at once. Voila alone refused it (403: its pages set no _xsrf cookie,
# voila#1458); hvaelab.app.serving.PageHandler sets it. A refusal is an error, and counted.
UNLOAD_SHUTDOWN = "/voila/api/shutdown/"
STAMP_JS = "() => { window.__hvaeMovedAt = performance.now(); }"
ELAPSED_JS = "() => window.__hvaeChangedAt - window.__hvaeMovedAt"
KERNEL_BACK_TARGET_S = 300.0  # kernels back to the pool within 5 minutes of the last student


@dataclass
class SessionOptions:
    """One measurement: ``students`` arrive within ``arrival_s`` (seeded), each for
    ``session_s`` once in; the server's cap ``max_kernels``, pool ``pool_size`` per page."""

    students: int = 30
    session_s: float = 3600.0
    max_kernels: int = 12
    seed: int = 0
    arrival_s: float = 120.0
    pool_size: int = 1
    cull_seconds: int = 60
    watch_s: float = 300.0
    retry_s: tuple[float, float] = (10.0, 30.0)  # seeded back-off after a busy page
    give_up_s: float = 600.0  # a refused student keeps trying this long after arriving
    hang_ms: float = 60_000  # no verdict / no update in this time: the page hung
    ready_ms: float = 120_000  # no ready page in this time (kernel start included): hung
    think_s: tuple[float, float] = (1.0, 4.0)  # a student's pause between interactions
    close_tab_p: float = 0.25  # chance to close the tab (not navigate) for the next page
    retry: bool = True


@dataclass
class Visit:
    """One page a student opened: busy answers (503), whether it became ready, its
    interactions' times (ms, by kind), verdicts read, hangs and errors."""

    student: int
    page: str
    busy: int = 0
    served: bool = False
    timings: dict[str, list[float]] = field(default_factory=dict)
    verdicts: list[str] = field(default_factory=list)
    hung: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def timed(self, kind: str, ms: float) -> None:
        self.timings.setdefault(kind, []).append(ms)


@dataclass
class Student:
    """A student's session: arrival, busy pages seen, when they first got a page (s from the
    start; None: never), when they left, their visits and their pages' console/page errors."""

    index: int
    arrival_s: float
    busy: int = 0
    busy_before_in: int = 0
    got_in_s: float | None = None
    left_s: float = 0.0
    visits: list[Visit] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    unload_refused: int = 0

    @property
    def served(self) -> bool:
        return self.got_in_s is not None


@dataclass
class Target:
    name: str
    met: bool
    detail: str


@dataclass
class ClassResult:
    """Everything a session-mode run measured (see :func:`report` for how)."""

    options: SessionOptions
    students: list[Student]
    pool: int
    peak_gb: float
    largest_kernel_gb: float
    server_own_gb: float
    kernels_when_left: int
    kernels_at_end: int
    back_s: float | None  # s from the last student leaving until kernels <= pool; None: never
    counts: list[tuple[int, int]]  # (s after the last student, kernels)
    load_cpu_s: float
    server_cpu_s: float
    wall_s: float
    iopub_timeouts: int

    @property
    def bound_gb(self) -> float:
        """(cap + pool) x the largest kernel, plus the server's own processes."""
        return (self.options.max_kernels + self.pool) * self.largest_kernel_gb + self.server_own_gb

    @property
    def visits(self) -> list[Visit]:
        return [v for s in self.students for v in s.visits]


class Hung(RuntimeError):
    """No verdict, update or ready page within the time allowed."""


class Busy(RuntimeError):
    """The server answered 503: every place is taken."""


async def wait_views(page, views, before: list[str], revision: int | None, timeout_ms: float):
    """Until every view differs from ``before`` (dashboard_moves.CHANGED_JS, in the page)."""
    try:
        await page.wait_for_function(
            CHANGED_JS, arg=[None, _js_views(views), before, revision], polling="raf",
            timeout=timeout_ms,
        )  # fmt: skip
    except PlaywrightTimeout as exc:
        raise Hung(f"no update within {timeout_ms / 1000:.0f} s") from exc


async def views_now(page, views) -> list[str]:
    return await page.evaluate(SIGNATURE_JS, [None, _js_views(views)])


async def open_page(page, server, name: str, opt: SessionOptions, visit: Visit) -> None:
    """Navigate to the page; raises Busy on a 503, Hung when not ready in ``ready_ms``."""
    t = time.monotonic()
    console, listener = keep_console(page, t)
    try:
        response = await page.goto(server.page_url(PAGES[name]), timeout=opt.ready_ms)
        if response is not None and response.status == 503:
            raise Busy(name)
        try:
            await page.wait_for_selector(".hvae-ready", state="attached", timeout=opt.ready_ms)
        except PlaywrightTimeout as exc:
            seen = await what_the_page_shows(page)
            said = "\n".join(f"      {line}" for line in console) or "      (nothing)"
            raise Hung(f"not ready within {opt.ready_ms / 1000:.0f} s ({seen}); its console "
                       f"from navigation:\n{said}") from exc  # fmt: skip
    finally:
        page.remove_listener("console", listener)
    visit.timed("page ready (driver)", (time.monotonic() - t) * 1000)


# What a page that never got ready shows: its kernel (to find in Voila's log), its cells, the
# widgets that could not be displayed (ipywidgets writes this text in their place) or are still
# loading, and the page's widget manager: whether it has loaded the kernel's widgets
# (restoredStatus), its kernel connection, and its models against the widgets the kernel holds
# (asked with a comm_info request): models the kernel has and the page lacks point at a load
# that missed them; a page showing a widget the kernel no longer has, at a closed widget.
PAGE_STATE_JS = """async () => {
  const out = {kernel: "?"};
  try {
    out.kernel = JSON.parse(document.getElementById("jupyter-config-data").textContent).kernelId;
  } catch (e) {}
  const text = document.body ? document.body.innerText : "";
  out.cells = document.querySelectorAll(".jp-Cell").length;
  out.missing = (text.match(/Error displaying widget/g) || []).length;
  out.loading = (text.match(/Loading widget/g) || []).length;
  const m = window.jupyterapp && window.jupyterapp.widgetManager;
  if (!m) { out.manager = "no widget manager"; return out; }
  const k = m.kernel;
  out.manager = `restored ${m.restoredStatus}, restoring ${m._kernelRestoreInProgress}, ` +
    `kernel ${k ? k.connectionStatus + "/" + k.status : "none"}`;
  const onPage = Object.keys(m._models || {});
  out.models = onPage.length;
  try {
    const reply = await Promise.race([
      k.requestCommInfo({target_name: "jupyter.widget"}),
      new Promise((_, no) => setTimeout(() => no(new Error("no comm_info in 10 s")), 10000))]);
    const inKernel = Object.keys(reply.content.comms || {});
    const had = new Set(onPage);
    out.kernel_widgets = `${inKernel.length} in the kernel, ` +
      `${inKernel.filter((id) => !had.has(id)).length} of them not on the page, ` +
      `${onPage.filter((id) => !inKernel.includes(id)).length} on the page not in the kernel`;
  } catch (e) { out.kernel_widgets = String(e); }
  return out;
}"""


async def what_the_page_shows(page) -> str:
    """What a page that never got ready shows (:data:`PAGE_STATE_JS`), for a hung page's
    report."""
    try:
        st = await page.evaluate(PAGE_STATE_JS)
    except Exception as exc:  # noqa: BLE001 (the page may be gone)
        return f"page not readable: {type(exc).__name__}"
    said = (f"kernel {st['kernel']}, {st.get('cells')} cells, {st.get('missing')} widgets not "
            f"displayed, {st.get('loading')} loading; widget manager: {st['manager']}")  # fmt: skip
    if "models" in st:
        said += f"; {st['models']} models on the page; widgets: {st['kernel_widgets']}"
    return said


# A hung page's console, kept while it loads, without webpack's notes on the versions of the
# modules the page's extensions share (every page logs a few dozen).
CONSOLE_KEPT = 40
WEBPACK_VERSION_NOTES = ("Unsatisfied version", "No satisfying version", "Available versions")


def keep_console(page, t0: float) -> tuple[list[str], Callable[[Any], None]]:
    """A list that ``page``'s console messages are appended to, timed from ``t0``, and the
    listener (to remove once the page is ready)."""
    kept: list[str] = []

    def on_console(msg) -> None:
        if len(kept) >= CONSOLE_KEPT or any(n in msg.text for n in WEBPACK_VERSION_NOTES):
            return
        kept.append(f"{time.monotonic() - t0:6.1f} s {msg.type}: {msg.text[:240]}")

    page.on("console", on_console)
    return kept, on_console


async def choose_score(page, opt: SessionOptions, visit: Visit) -> None:
    """The score menu set to a ratio family (LLR>k or LLR>k<l: both have k) other than the
    shown one; timed in the page until every explorer view shows it."""
    menu = (await page.evaluate_handle(FIND_JS, SCORE)).as_element()
    if menu is None:
        raise MoveError("no score menu")
    for _, label in (FAMILY_LLR, FAMILY_LLR_LT):
        before = await views_now(page, SCORE_MENU.views)
        changed = await page.evaluate(SELECT_JS, [menu, label])
        if changed is None:
            raise MoveError(f"the score menu has no option {label!r}")
        if changed[1]:
            await wait_views(page, SCORE_MENU.views, before, None, opt.hang_ms)
            visit.timed("score menu", await page.evaluate(ELAPSED_JS))
            return


async def move_k(page, opt: SessionOptions, visit: Visit) -> None:
    """One keyboard step of the k slider (right, or left at its end), timed in the page."""
    handle = page.locator(f"{K_MOVE.control} .noUi-handle").first
    await handle.wait_for(state="visible", timeout=opt.hang_ms)
    now = float(await handle.get_attribute("aria-valuenow"))
    top = float(await handle.get_attribute("aria-valuemax"))
    before = await views_now(page, K_MOVE.views)
    await handle.focus()
    await page.evaluate(STAMP_JS)
    await handle.press("ArrowLeft" if now >= top else "ArrowRight")
    await wait_views(page, K_MOVE.views, before, None, opt.hang_ms)
    visit.timed("k move", await page.evaluate(ELAPSED_JS))


async def upload_image(page, i: int, opt: SessionOptions, visit: Visit) -> None:
    """Clear (untimed), then a new PNG (dashboard_moves.png_bytes) timed in the page until the
    result table shows its verdict; the verdict is read."""
    if not await page.evaluate(UPLOAD_EMPTY_JS):
        await page.locator(".hvae-upload-clear").first.click()
        await page.wait_for_function(UPLOAD_EMPTY_JS, polling="raf", timeout=opt.hang_ms)
    before = await views_now(page, UPLOAD.views)
    async with page.expect_file_chooser(timeout=opt.hang_ms) as chooser:
        await page.locator(UPLOAD.control).first.click()
    await page.evaluate(STAMP_JS)
    png = {"name": f"student{i}.png", "mimeType": "image/png", "buffer": png_bytes(i)}
    await (await chooser.value).set_files(files=[png])
    await wait_views(page, UPLOAD.views, before, None, opt.hang_ms)
    visit.timed("upload -> verdict", await page.evaluate(ELAPSED_JS))
    await read_verdict(page, "upload", visit)


async def draw(page, rng: random.Random, opt: SessionOptions, visit: Visit) -> None:
    """One stroke on the canvas, timed in the page from the canvas's stroke-end stamp to the
    kernel's answer in every view in the window (as dashboard_moves); the verdict is read."""
    canvas = page.locator(f"{CANVAS}[data-revision]")
    await canvas.first.wait_for(state="attached", timeout=opt.hang_ms)
    revision = int(await canvas.first.get_attribute("data-revision")) + 1
    area = page.locator(f"{CANVAS} canvas").first
    await area.scroll_into_view_if_needed()
    box = await area.bounding_box()
    scale = box["width"] / 280.0
    x0, y0, x1, y1 = (rng.uniform(30, 250) for _ in range(4))
    points = [(x0, y0), ((x0 + x1) / 2, (y0 + y1) / 2 + 10), (x1, y1)]
    before = await views_now(page, STROKE.views)
    await page.mouse.move(box["x"] + x0 * scale, box["y"] + y0 * scale)
    await page.mouse.down()
    for x, y in points[1:]:
        await page.mouse.move(box["x"] + x * scale, box["y"] + y * scale, steps=2)
    await page.mouse.up()
    await wait_views(page, STROKE.views, before, revision, opt.hang_ms)
    ms = await page.evaluate(f"() => window.__hvaeChangedAt - ({STROKE_END_JS})()")
    visit.timed("stroke -> verdict", ms)
    await read_verdict(page, "draw", visit)


async def read_verdict(page, name: str, visit: Visit) -> None:
    verdict = await page.evaluate(VERDICT_JS[name])
    if not verdict:
        raise Hung("no verdict shown")
    visit.verdicts.append(verdict)


async def interact(page, student: Student, name: str, rng: random.Random, opt, visit) -> None:
    """What a student does on one page (seeded): the explorer's score menu and 1-3 k moves,
    1-2 uploads, or 1-2 strokes, with a think time before each."""
    if name == "explorer":
        moves = [choose_score] + [move_k] * rng.randint(1, 3)
    elif name == "upload":
        moves = [lambda p, o, v: upload_image(p, rng.randrange(10**6), o, v)] * rng.randint(1, 2)
    else:
        moves = [lambda p, o, v: draw(p, rng, o, v)] * rng.randint(1, 2)
    for move in moves:
        await asyncio.sleep(rng.uniform(*opt.think_s))
        await move(page, opt, visit)


async def student_session(browser, server, student: Student, t0: float, opt) -> None:
    """A student's whole session (see the module's session mode); fills ``student``."""
    rng = random.Random(f"{opt.seed}-{student.index}")
    await asyncio.sleep(max(0.0, t0 + student.arrival_s - time.monotonic()))
    context = await browser.new_context(viewport={"width": 1400, "height": 1000})
    context.set_default_timeout(opt.hang_ms)
    guard = PageGuard()
    page = await context.new_page()
    guard.attach(page)
    name = rng.choice(SESSION_PAGES)
    give_up = t0 + student.arrival_s + opt.give_up_s
    end = None  # once in: the session runs session_s from then
    try:
        while end is None or time.monotonic() < end:
            visit = Visit(student.index, name)
            student.visits.append(visit)
            try:
                await open_page(page, server, name, opt, visit)
                visit.served = True
                if student.got_in_s is None:
                    student.got_in_s = time.monotonic() - t0
                    end = time.monotonic() + opt.session_s
                await interact(page, student, name, rng, opt, visit)
            except Busy:
                visit.busy += 1
                student.busy += 1
                student.busy_before_in += student.got_in_s is None
                wait = rng.uniform(*opt.retry_s)
                if not opt.retry or time.monotonic() + wait > (end or give_up):
                    break
                await asyncio.sleep(wait)
                continue  # the same page again
            except Hung as exc:
                visit.hung.append(f"at {time.monotonic() - t0:.0f} s: {exc}")
            except Exception as exc:  # reported, not hidden
                visit.errors.append(f"{type(exc).__name__}: {exc}"[:300])
            name = rng.choice([p for p in SESSION_PAGES if p != name])
            if rng.random() < opt.close_tab_p:  # close the tab, open a new one
                await page.close()
                page = await context.new_page()
                guard.attach(page)
    finally:
        student.left_s = time.monotonic() - t0
        problems = [p for p in guard.problems() if BUSY_CONSOLE not in p]
        student.problems = problems
        student.unload_refused = sum(UNLOAD_SHUTDOWN in p for p in problems)
        await context.close()


def arrivals(opt: SessionOptions) -> list[float]:
    """Seeded arrival times (s), uniform within ``arrival_s``, sorted: the burst."""
    rng = random.Random(opt.seed)
    return sorted(rng.uniform(0, opt.arrival_s) for _ in range(opt.students))


async def run_students(server, opt: SessionOptions) -> list[Student]:
    """One Chromium, one context per student, every session concurrently."""
    from playwright.async_api import async_playwright

    students = [Student(i, a) for i, a in enumerate(arrivals(opt))]
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        t0 = time.monotonic()
        await asyncio.gather(*(student_session(browser, server, s, t0, opt) for s in students))
        await browser.close()
    return students


def start_class_server(folder: Path, opt_pool: int, cap: int, cull_s: int):
    """``hvaelab dashboard`` with these serving settings (this checkout on PYTHONPATH), once
    its preheated pool has run its notebooks."""
    serving = ["--cull-seconds", str(cull_s), "--cull-interval", str(min(10, max(1, cull_s // 2)))]
    serving += ["--pool-size", str(opt_pool), "--max-kernels", str(cap)]
    path = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    server = start_voila(folder / "voila.log", args=serving, env={"PYTHONPATH": path})
    pool = opt_pool * len(PAGES)
    t = time.monotonic()
    while kernel_count(server) < pool and time.monotonic() - t < 300:
        time.sleep(1)
    wait_quiet(server, timeout=600)
    return server


def watch_kernels(server, pool: int, watch_s: float) -> tuple[float | None, list]:
    """Seconds until the kernel count is back to ``pool`` (None: not within ``watch_s``),
    and the (s, count) seen, every 2 s."""
    left, counts = time.monotonic(), []
    while time.monotonic() - left < watch_s:
        k = kernel_count(server)
        counts.append((round(time.monotonic() - left), k))
        if k <= pool:
            return time.monotonic() - left, counts
        time.sleep(2)
    return None, counts


def run_class(opt: SessionOptions, folder: Path) -> ClassResult:
    """Start the server, run the class, watch the kernels go back to the pool; the server is
    stopped at the end."""
    server = start_class_server(folder, opt.pool_size, opt.max_kernels, opt.cull_seconds)
    pool = opt.pool_size * len(PAGES)
    try:
        print(f"pool ready: {kernel_count(server)} kernels, {rss_gb(server):.2f} GB, "
              f"load {os.getloadavg()[0]:.1f}", flush=True)  # fmt: skip
        t0 = time.monotonic()
        with PeakMemory(server, load_root=os.getpid()) as mem:
            # a loop of its own, in a thread: the caller may be running one (the e2e session's
            # sync Playwright), where asyncio.run refuses to start
            with ThreadPoolExecutor(1) as runner:
                students = runner.submit(asyncio.run, run_students(server, opt)).result()
            kernels_when_left = kernel_count(server)
            back, counts = watch_kernels(server, pool, opt.watch_s)
        log = (folder / "voila.log").read_text(errors="replace")
        return ClassResult(
            options=opt, students=students, pool=pool, peak_gb=mem.peak,
            largest_kernel_gb=mem.largest_kernel, server_own_gb=mem.server_own,
            kernels_when_left=kernels_when_left, kernels_at_end=kernel_count(server),
            back_s=back, counts=counts, load_cpu_s=mem.load_cpu.seconds,
            server_cpu_s=mem.server_cpu.seconds, wall_s=time.monotonic() - t0,
            iopub_timeouts=log.count(IOPUB_TIMEOUT),
        )  # fmt: skip
    finally:
        server.stop()


def percentiles(ms: list[float]) -> str:
    if not ms:
        return "none"
    a = np.asarray(ms)
    return (f"n {len(a)}, p50 {np.median(a):.0f} ms, p95 {np.percentile(a, 95):.0f} ms, "
            f"max {a.max():.0f} ms")  # fmt: skip


def page_lines(visits: list[Visit]) -> list[str]:
    served = sum(v.served for v in visits)
    busy = sum(v.busy for v in visits)
    hung = sum(len(v.hung) for v in visits)
    errors = sum(len(v.errors) for v in visits)
    out = [f"visits {len(visits)}, served {served}, busy pages {busy}, hung {hung}, "
           f"errors {errors}, verdicts read {sum(len(v.verdicts) for v in visits)}"]  # fmt: skip
    kinds: dict[str, list[float]] = {}
    for v in visits:
        for kind, ms in v.timings.items():
            kinds.setdefault(kind, []).extend(ms)
    out += [f"  {kind}: {percentiles(ms)}" for kind, ms in sorted(kinds.items())]
    return out


def targets(r: ClassResult) -> list[Target]:
    """The issue's targets: no hung page, no error, memory within the bound, every student
    served (or busy then served), kernels back to the pool within 5 minutes of the last one."""
    hung = [f"student {v.student} {v.page}: {h}" for v in r.visits for h in v.hung]
    errors = [f"student {v.student} {v.page}: {e}" for v in r.visits for e in v.errors]
    errors += [f"student {s.index}: {p[:200]}" for s in r.students for p in s.problems]
    unserved = [s.index for s in r.students if not s.served]
    back_ok = r.back_s is not None and r.back_s <= KERNEL_BACK_TARGET_S
    return [
        Target("no hung page", not hung, "; ".join(hung[:5]) or "none"),
        Target("no error", not errors, "; ".join(errors[:5]) or "none"),
        Target("memory within the bound", r.peak_gb <= r.bound_gb,
               f"peak {r.peak_gb:.2f} GB vs bound {r.bound_gb:.2f} GB"),
        Target("every student served (or busy, then served)", not unserved,
               f"never got in: {unserved}" if unserved else "all"),
        Target("kernels back to the pool within 5 min", back_ok,
               f"{r.back_s:.0f} s" if r.back_s is not None
               else f"not within {r.options.watch_s:.0f} s"),
    ]  # fmt: skip


def waited_line(busy_students: list[Student]) -> str:
    """How long the students who first met the busy page waited, from arrival to their first
    page (s): what the server's waiting line decides."""
    waits = [s.got_in_s - s.arrival_s for s in busy_students if s.got_in_s is not None]
    if not waits:
        return "waited to get in (students who met the busy page first): none got in"
    return (
        f"waited to get in (students who met the busy page first, from arrival): n {len(waits)}, "
        f"median {np.median(waits):.0f} s, max {max(waits):.0f} s"
    )


def report(r: ClassResult) -> list[str]:
    """The run as text lines: per page and overall, then memory, kernels, CPU and targets."""
    o = r.options
    busy_students = [s for s in r.students if s.busy_before_in]
    lines = [f"class: {o.students} students (seed {o.seed}) arriving within {o.arrival_s:.0f} s, "
             f"sessions of {o.session_s:.0f} s, cap {o.max_kernels} visitors' kernels, pool "
             f"{r.pool}, cull after {o.cull_seconds} s; ran {r.wall_s:.0f} s"]  # fmt: skip
    for name in SESSION_PAGES:
        lines += [f"page {name}: " + page_lines([v for v in r.visits if v.page == name])[0]]
        lines += page_lines([v for v in r.visits if v.page == name])[1:]
    lines += ["overall: " + page_lines(r.visits)[0], *page_lines(r.visits)[1:]]
    lines += [
        f"students served {sum(s.served for s in r.students)} of {len(r.students)}; got the "
        f"busy page before getting in {len(busy_students)}, of whom got in on retry "
        f"{sum(s.served for s in busy_students)}; busy pages later in a session (moving to "
        f"another page) {sum(s.busy - s.busy_before_in for s in r.students)}",
        waited_line(busy_students),
        f"unload shutdowns refused (each also an error above): "
        f"{sum(s.unload_refused for s in r.students)}",
        "  (page ready and interactions: 'driver' = timed by the driver from navigation; the "
        "others timed in the page by performance.now() stamps)",
        f"peak memory, server + kernels (RSS summed over the process tree, sampled every 0.5 s): "
        f"{r.peak_gb:.2f} GB; bound (cap {o.max_kernels} + pool {r.pool}) x largest kernel "
        f"{r.largest_kernel_gb:.2f} GB + server's own {r.server_own_gb:.2f} GB = "
        f"{r.bound_gb:.2f} GB",
        f"kernels when the last student left: {r.kernels_when_left}; at the end: "
        f"{r.kernels_at_end} (pool {r.pool}); "
        + (f"back to the pool after {r.back_s:.0f} s" if r.back_s is not None
           else f"not back to the pool within {o.watch_s:.0f} s"),
        f"CPU (user + system, process trees sampled every 0.5 s): load generator (Chromium + "
        f"driver) {r.load_cpu_s:.0f} s, server + kernels {r.server_cpu_s:.0f} s, over "
        f"{r.wall_s:.0f} s on {os.cpu_count()} cores",
        f"outputs Voila gave up waiting for: {r.iopub_timeouts}",
    ]  # fmt: skip
    lines += [f"{'PASS' if t.met else 'MISS'}  {t.name}: {t.detail}" for t in targets(r)]
    return lines


def session_options(args: argparse.Namespace) -> SessionOptions:
    """The session mode's options from the command line."""
    return SessionOptions(
        students=args.students, session_s=args.session_minutes * 60, max_kernels=args.max_kernels,
        seed=args.seed, arrival_s=args.arrival_seconds, pool_size=args.pool_size,
        cull_seconds=args.cull_seconds, watch_s=args.watch,
        retry_s=(args.retry_min, args.retry_max), give_up_s=args.give_up_seconds,
    )  # fmt: skip


def keep_server_log(folder: Path, name: str) -> Path:
    """Copy the server's log out of the run's temporary ``folder`` into artifacts/``name``, for
    a look at what happened when a run went wrong; returns where."""
    keep = REPO / "artifacts" / name
    keep.parent.mkdir(parents=True, exist_ok=True)
    keep.write_bytes((folder / "voila.log").read_bytes())
    return keep


def session_main(args: argparse.Namespace) -> int:
    """Run the session mode, print its report; 0 when every target is met, else 1."""
    opt = session_options(args)
    with tempfile.TemporaryDirectory(prefix="hvaelab-class-") as tmp:
        result = run_class(opt, Path(tmp))
        met = all(t.met for t in targets(result))
        if not met:
            keep = keep_server_log(Path(tmp), "class_bench-session-voila.log")
    for line in report(result):
        print(line)
    if not met:
        print(f"Voila's log: {keep}")
    return 0 if met else 1


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--visitors", type=int, default=10)
    p.add_argument("--cull-seconds", type=int, default=60, help="hvaelab dashboard's (60)")
    p.add_argument("--pool-size", type=int, default=1, help="hvaelab dashboard's (1)")
    p.add_argument("--max-kernels", type=int, default=12, help="hvaelab dashboard's (12)")
    p.add_argument("--watch", type=float, default=300, help="seconds to watch the kernel count")
    s = p.add_argument_group("session mode (a class for an hour: students arrive in a burst)")
    s.add_argument(
        "--session-minutes",
        type=float,
        default=None,
        help="each student's session once in (minutes); turns the session mode on",
    )
    s.add_argument("--students", type=int, default=30)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument(
        "--arrival-seconds",
        type=float,
        default=120,
        help="the students arrive within this (seeded)",
    )
    s.add_argument("--retry-min", type=float, default=10, help="busy page: back-off from (s)")
    s.add_argument("--retry-max", type=float, default=30, help="... to (s), seeded")
    s.add_argument(
        "--give-up-seconds",
        type=float,
        default=600,
        help="a refused student keeps retrying this long after arriving",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.session_minutes is not None:
        return session_main(args)
    serving = ["--cull-seconds", str(args.cull_seconds), "--cull-interval", "10"]
    serving += ["--pool-size", str(args.pool_size), "--max-kernels", str(args.max_kernels)]
    pool = args.pool_size * len(PAGES)
    with tempfile.TemporaryDirectory(prefix="hvaelab-class-") as tmp:
        folder = Path(tmp)
        server = start_voila(folder / "voila.log", args=serving)
        try:
            t = time.monotonic()
            while kernel_count(server) < pool and time.monotonic() - t < 300:
                time.sleep(1)
            wait_quiet(server, timeout=600)  # the pool's kernels have run their notebooks
            print(f"pool ready: {kernel_count(server)} kernels, {rss_gb(server):.2f} GB, "
                  f"load {os.getloadavg()[0]:.1f}", flush=True)  # fmt: skip
            with PeakMemory(server) as mem:
                results = asyncio.run(visit(server, args.visitors, folder))
                left = time.monotonic()
                print(f"visitors: {args.visitors}; kernels when they leave: "
                      f"{kernel_count(server)}", flush=True)  # fmt: skip
                counts = []
                back = None
                while time.monotonic() - left < args.watch:
                    k = kernel_count(server)
                    counts.append((round(time.monotonic() - left), k))
                    if k <= pool and back is None:
                        back = time.monotonic() - left
                        break
                    time.sleep(5)
            served = [r for r in results if "verdict" in r]
            busy = sum(r["busy"] for r in results)
            errors = [r["error"] for r in results if "error" in r]
            print(f"served {len(served)}, busy page {busy}, errors {len(errors)}")
            if served:
                print(f"last page ready after {max(r['ready'] for r in served):.1f} s; "
                      f"last verdict after {max(r['verdict'] for r in served):.1f} s")  # fmt: skip
            print(f"peak memory (server + kernels): {mem.peak:.2f} GB")
            print("kernels after the visitors left (s, count): " + ", ".join(
                f"{s}:{k}" for s, k in counts[:: max(1, len(counts) // 12)]))  # fmt: skip
            print(f"back to the pool ({pool}) after {back:.0f} s" if back is not None
                  else f"not back to the pool ({pool}) within {args.watch:.0f} s")  # fmt: skip
            print(f"load average now: {os.getloadavg()[0]:.1f} (2 cores)")
            log = (folder / "voila.log").read_text(errors="replace")
            print(f"outputs Voila gave up waiting for: {log.count(IOPUB_TIMEOUT)}")
            for e in errors:
                print("  error:", e)
            if errors:
                print(f"Voila's log: {keep_server_log(folder, 'class_bench-voila.log')}")
            return 1 if errors or back is None else 0
        finally:
            server.stop()


if __name__ == "__main__":
    raise SystemExit(main())

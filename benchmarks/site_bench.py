"""The static lesson site (``hvaelab export-site``, issue 41), measured in Chromium against a real
``python -m http.server``: every visitor computes in their own browser, so the server only
hands out files.

For the checkpoint (``fashionmnist`` by default; another one's numbers are printed, not
targeted) the site is exported into a temporary folder (or ``--site DIR``, already exported),
served by ``python -m http.server`` on a free loopback port, and measured:

- **size**: every file's bytes and gzip-compressed bytes (what a server that compresses would
  send), grouped by kind (the model, ONNX Runtime Web, plotly.js, the pages' data, the rest);
- **page to interactive**, for each page the site has (explore, draw, learn), timed inside the
  page from navigation start (``performance.now()``) to the frame where the page says it is
  ready (``body.site-ready``: its data loaded and first view drawn; the draw page: the model
  loaded and the empty canvas scored), ``--loads`` times each:
  *cold*: a new browser profile every time (empty HTTP cache, nothing compiled);
  *warm*: the same page again in the profile of a cold load (a visitor's second visit: the
  disk cache, with the compiled WebAssembly Chromium keeps beside it; an incognito context's
  memory cache does not keep the 14 MB wasm);
- **moves**, timed inside the page, ``--moves`` each, median, p95 and max: the explore page's
  k slider (input event -> the first frame after both figures and Table 2 show the new k); the
  draw page's stroke (a real mouse stroke: the canvas's stroke-end stamp -> the frame after
  every view shows its result: ``body.dataset.revision`` bumped);
- **many visitors**: ``--requests`` page loads (default 200) from ``--clients`` concurrent
  clients (default 20, Python threads), each load fetching every file that a browser's cold load
  of that page fetched (the pages in turn); all must be served in full (status 200, the
  file's bytes); printed: the wall time, each load's p50/p95/max, and the server's CPU seconds
  (its process's user + system time) per page load: the bound on a server's work, since nothing
  else runs on it.

The browser runs ONNX Runtime Web's WebAssembly backend on one thread (the site sets it: a
static page is not cross-origin isolated). The CPU, the load average before and after, and the
versions are printed first. Targets (fashionmnist): cold <= 2.5 s and warm <= 1 s for every
page, stroke median <= 50 ms, k move median <= 30 ms. The exit status is 0 for a measurement,
also with targets missed; 1 when a page misbehaved (console errors, a request leaving the
machine, a file not served).

    .venv/bin/python benchmarks/site_bench.py [--checkpoint fashionmnist] [--site DIR]
        [--loads 5] [--moves 40] [--requests 200] [--clients 20] [--reference-limit N]
"""

from __future__ import annotations

import argparse
import gzip
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "e2e"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import CHROMIUM, CHROMIUM_ARGS, PageGuard, launch_chromium  # noqa: E402
from onnx_bench import _cpu  # noqa: E402  (the CPU's name, as the ONNX benchmark prints it)

DEFAULT_CHECKPOINT = "fashionmnist"
TARGET_COLD_MS = 2_500
TARGET_WARM_MS = 1_000
TARGET_STROKE_MS = 50
TARGET_K_MS = 30
READY_TIMEOUT_MS = 120_000
PAGES = ("explore", "draw", "learn")  # the site's interactive pages, <name>.html

# ms since navigation start at the first frame where the page says it is ready
READY_JS = """() => {
  if (!document.body || !document.body.classList.contains('site-ready')) return false;
  return performance.now();
}"""

# One k move on the explore page, timed inside the page: the slider's input event, then the
# first frame after the handler has redrawn both figures and Table 2 (Plotly.react is
# synchronous for these figures; the frame after is when the reader sees them).
K_MOVE_JS = """async () => {
  const k = document.getElementById('k');
  const next = Number(k.value) >= Number(k.max) ? Number(k.min) : Number(k.value) + 1;
  const before = document.body.dataset.view;
  const t0 = performance.now();
  k.value = String(next);
  k.dispatchEvent(new Event('input', { bubbles: true }));
  await new Promise((r) => requestAnimationFrame(() => setTimeout(r, 0)));
  if (document.body.dataset.view === before) throw new Error('the view did not change');
  return performance.now() - t0;
}"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _stats(ms: list[float]) -> str:
    if not ms:
        return "n 0"
    s = sorted(ms)
    p95 = s[min(len(s) - 1, round(0.95 * (len(s) - 1)))]
    return f"n {len(s)}, median {statistics.median(s):.0f} ms, p95 {p95:.0f} ms, max {s[-1]:.0f} ms"


# ------------------------------------------------------------------------------- the site
def kind_of(name: str) -> str:
    if name.startswith("model.onnx"):
        return "the model (graph + sidecar)"
    if name.startswith("vendor/"):
        return "ONNX Runtime Web"
    if name.startswith("plotly"):
        return "plotly.js"
    if name.endswith(".json"):
        return "the pages' data"
    return "pages, scripts, the rest"


def site_size(site: Path) -> list[str]:
    kinds: dict[str, list[int]] = {}
    total = [0, 0]
    for path in sorted(p for p in site.rglob("*") if p.is_file()):
        data = path.read_bytes()
        z = len(gzip.compress(data, 6))
        k = kinds.setdefault(kind_of(path.relative_to(site).as_posix()), [0, 0, 0])
        k[0] += 1
        k[1] += len(data)
        k[2] += z
        total[0] += len(data)
        total[1] += z
    lines = [f"  {'kind':<30} {'files':>5} {'bytes':>10} {'gzip':>10}"]
    for name, (n, b, z) in sorted(kinds.items(), key=lambda kv: -kv[1][1]):
        lines.append(f"  {name:<30} {n:>5} {b / 1e6:>8.2f} MB {z / 1e6:>8.2f} MB")
    lines.append(f"  {'total':<30} {'':>5} {total[0] / 1e6:>8.2f} MB {total[1] / 1e6:>8.2f} MB")
    return lines


class HttpServer:
    """``python -m http.server`` serving ``site`` on the loopback, in its own process."""

    def __init__(self, site: Path) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        argv = [sys.executable, "-m", "http.server", str(self.port), "--bind", "127.0.0.1"]
        self.process = subprocess.Popen(
            [*argv, "--directory", str(site)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(self.url, timeout=2):
                    return
            except OSError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    self.stop()
                    raise RuntimeError("python -m http.server did not answer within 30 s") from None
                time.sleep(0.2)

    def cpu_seconds(self) -> float:
        t = psutil.Process(self.process.pid).cpu_times()
        return float(t.user + t.system)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()


# ------------------------------------------------------------------------------- in Chromium
class Run:
    def __init__(self) -> None:
        self.problems: list[str] = []

    def open(self, context, url: str) -> tuple[object, PageGuard, float, list[str]]:
        """Navigate to ``url`` in ``context``; (page, guard, ms to ready, URLs fetched)."""
        page = context.new_page()
        guard = PageGuard().attach(page)
        fetched: list[str] = []
        page.on("requestfinished", lambda r: fetched.append(r.url))
        page.goto(url, wait_until="commit", timeout=READY_TIMEOUT_MS)
        ms = page.wait_for_function(READY_JS, polling="raf", timeout=READY_TIMEOUT_MS).json_value()
        return page, guard, float(ms), fetched

    def check(self, what: str, guard: PageGuard) -> None:
        try:
            guard.assert_clean()
        except AssertionError as e:
            self.problems.append(f"{what}: {e}")


def page_loads(run: Run, playwright, url: str, loads: int) -> tuple[list[float], list[float], list]:
    """``loads`` cold loads of ``url``, each in a new browser profile (an empty HTTP cache and
    code cache), each followed by a warm load in that profile (a visitor's second visit: the
    disk cache, and the compiled WebAssembly that Chromium keeps with it)."""
    cold, warm, urls = [], [], []
    for i in range(loads):
        with tempfile.TemporaryDirectory(prefix="hvaelab-site-profile-") as profile:
            context = playwright.chromium.launch_persistent_context(
                profile,
                executable_path=str(CHROMIUM),
                args=CHROMIUM_ARGS,
                viewport={"width": 1400, "height": 1000},
            )
            try:
                page, guard, ms, fetched = run.open(context, url)
                cold.append(ms)
                if i == 0:
                    urls = sorted(set(fetched))
                run.check(f"{url} cold", guard)
                page.close()
                page, guard, ms, _ = run.open(context, url)
                warm.append(ms)
                run.check(f"{url} warm", guard)
            finally:
                context.close()
    return cold, warm, urls


def k_moves(run: Run, browser, url: str, moves: int) -> list[float]:
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    try:
        page, guard, _, _ = run.open(context, url)
        out = []
        for _ in range(moves):
            out.append(float(page.evaluate(K_MOVE_JS)))
            time.sleep(0.1)
        run.check("explore: k moves", guard)
        return out
    finally:
        context.close()


STROKE_DONE_JS = """(rev) => {
  const b = document.body.dataset;
  if (Number(b.revision) < rev) return false;
  return performance.now() - Number(b.strokeEndAt);
}"""


def strokes(run: Run, browser, url: str, moves: int) -> list[float]:
    """Real mouse strokes on the draw page's canvas; each timed from the page's stroke-end
    stamp to the first frame where its revision (every view showing the stroke) is reached."""
    import numpy as np

    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    try:
        page, guard, _, _ = run.open(context, url)
        box = page.locator("canvas").first.bounding_box()
        rng = np.random.default_rng(0)
        out = []
        for _ in range(moves):
            rev = int(page.evaluate("() => Number(document.body.dataset.revision)"))
            x0, y0, x1, y1 = (float(v) for v in rng.uniform(0.1, 0.9, 4))
            page.mouse.move(box["x"] + x0 * box["width"], box["y"] + y0 * box["height"])
            page.mouse.down()
            for t in (0.33, 0.66, 1.0):
                page.mouse.move(
                    box["x"] + (x0 + t * (x1 - x0)) * box["width"],
                    box["y"] + (y0 + t * (y1 - y0)) * box["height"],
                )
            page.mouse.up()
            ms = page.wait_for_function(
                STROKE_DONE_JS, arg=rev + 1, polling="raf", timeout=60_000
            ).json_value()
            out.append(float(ms))
            time.sleep(0.1)
        run.check("draw: strokes", guard)
        return out
    finally:
        context.close()


# ------------------------------------------------------------------------------- many visitors
def many_visitors(
    server: HttpServer, loads: dict[str, list[str]], requests: int, clients: int
) -> tuple[list[str], bool]:
    """``requests`` page loads (the pages in turn) from ``clients`` threads: every file of the
    page fetched whole; returns the printed lines and whether all were served."""
    sizes: dict[str, int] = {}
    for urls in loads.values():
        for u in urls:
            with urllib.request.urlopen(u, timeout=60) as r:
                sizes[u] = len(r.read())
    names = sorted(loads)
    failures: list[str] = []
    lock = threading.Lock()

    def one(i: int) -> float:
        t0 = time.perf_counter()
        for u in loads[names[i % len(names)]]:
            try:
                with urllib.request.urlopen(u, timeout=120) as r:
                    n = len(r.read())
                    ok = r.status == 200 and n == sizes[u]
            except OSError as e:
                ok, n = False, -1
                with lock:
                    failures.append(f"{u}: {e}")
            if not ok:
                with lock:
                    failures.append(f"{u}: {n} bytes")
        return (time.perf_counter() - t0) * 1000

    cpu0 = server.cpu_seconds()
    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=clients) as pool:
        times = list(pool.map(one, range(requests)))
    wall = time.perf_counter() - t0
    cpu = server.cpu_seconds() - cpu0
    mb = sum(sum(sizes[u] for u in loads[names[i % len(names)]]) for i in range(requests)) / 1e6
    lines = [
        f"  {requests} page loads ({', '.join(names)} in turn; {mb:.0f} MB) from {clients} "
        f"concurrent clients: {requests - len({f.split(':')[0] for f in failures})} served "
        f"whole in {wall:.1f} s",
        f"  each load: {_stats(times)}",
        f"  the server's CPU: {cpu:.2f} s in all, {1000 * cpu / requests:.1f} ms per page load "
        f"(the clients ran on the same 2 cores)",
    ]
    lines += [f"  NOT SERVED: {f}" for f in failures[:10]]
    return lines, not failures


# ------------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", default=DEFAULT_CHECKPOINT)
    ap.add_argument("--site", type=Path, help="a folder exported already (else exported now)")
    ap.add_argument("--loads", type=int, default=5, help="cold (and warm) loads of each page")
    ap.add_argument("--moves", type=int, default=40, help="k moves and strokes")
    ap.add_argument("--requests", type=int, default=200, help="page loads of the load test")
    ap.add_argument("--clients", type=int, default=20, help="concurrent clients of the load test")
    ap.add_argument(
        "--reference-limit",
        type=int,
        default=None,
        help="export: the reference's size (default: the whole test split)",
    )
    a = ap.parse_args(argv)
    from playwright.sync_api import sync_playwright

    import hvaelab

    targeted = a.checkpoint == DEFAULT_CHECKPOINT
    print(
        f"CPU: {_cpu()} ({os.cpu_count()} cores); Python {platform.python_version()}; "
        f"hvaelab {hvaelab.__version__}; load {os.getloadavg()[0]:.2f}"
    )
    with tempfile.TemporaryDirectory(prefix="hvaelab-site-bench-") as tmp:
        site = a.site
        if site is None:
            from hvaelab.app.static_site import export_site

            site = Path(tmp) / "site"
            t0 = time.perf_counter()
            kw = {} if a.reference_limit is None else {"reference_limit": a.reference_limit}
            export_site(site, a.checkpoint, **kw)
            print(f"exported {a.checkpoint} in {time.perf_counter() - t0:.1f} s")
        print("\nSize of the site:")
        print("\n".join(site_size(site)))
        pages = [p for p in PAGES if (site / f"{p}.html").exists()]
        server = HttpServer(site)
        run = Run()
        results: dict[str, tuple[list[float], list[float]]] = {}
        loads: dict[str, list[str]] = {}
        k_ms: list[float] = []
        stroke_ms: list[float] = []
        try:
            with sync_playwright() as p:
                browser = launch_chromium(p)
                for name in pages:
                    cold, warm, urls = page_loads(run, p, f"{server.url}{name}.html", a.loads)
                    results[name] = (cold, warm)
                    loads[name] = urls
                if "explore" in pages:
                    k_ms = k_moves(run, browser, f"{server.url}explore.html", a.moves)
                if "draw" in pages:
                    stroke_ms = strokes(run, browser, f"{server.url}draw.html", a.moves)
                browser.close()
            print(f"\nPage to interactive (ms from navigation start; {a.loads} loads each):")
            for name, (cold, warm) in results.items():
                print(f"  {name:<8} cold: {_stats(cold)}")
                print(f"  {name:<8} warm: {_stats(warm)}")
            print("\nMoves (ms, timed in the page):")
            if k_ms:
                print(f"  explore: k move: {_stats(k_ms)}")
            if stroke_ms:
                print(f"  draw: stroke -> every view: {_stats(stroke_ms)}")
            print("\nMany visitors (python -m http.server):")
            lines, served = many_visitors(server, loads, a.requests, a.clients)
            print("\n".join(lines))
        finally:
            server.stop()
    print(f"\nload after: {os.getloadavg()[0]:.2f}")

    rows = []
    for name, (cold, warm) in results.items():
        rows.append((f"page to interactive, cold: {name}", statistics.median(cold), TARGET_COLD_MS))
        rows.append((f"page to interactive, warm: {name}", statistics.median(warm), TARGET_WARM_MS))
    if k_ms:
        rows.append(("explore: k move, median", statistics.median(k_ms), TARGET_K_MS))
    if stroke_ms:
        rows.append(
            ("draw: stroke -> every view, median", statistics.median(stroke_ms), TARGET_STROKE_MS)
        )
    print(f"\nTargets (checkpoint {a.checkpoint}{'' if targeted else ': printed, not targeted'}):")
    met = 0
    for what, value, limit in rows:
        verdict = ("PASS" if value <= limit else "MISS") if targeted else "-"
        met += verdict == "PASS"
        print(f"  {what:<45} {value:>7.0f} ms  <= {limit:>5} ms  {value / limit:>5.2f}  {verdict}")
    if targeted:
        print(f"  {met} of {len(rows)} targets met")
    for problem in run.problems:
        print(f"PROBLEM: {problem}")
    return 1 if run.problems or not served else 0


if __name__ == "__main__":
    sys.exit(main())

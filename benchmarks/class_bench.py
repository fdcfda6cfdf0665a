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
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "e2e"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from dashboard_bench import VERDICTS, png_file  # noqa: E402
from harness import (  # noqa: E402
    CHROMIUM,
    CHROMIUM_ARGS,
    PAGES,
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


class PeakMemory:
    """Samples the server's RSS (with its kernels) every 0.5 s in a thread."""

    def __init__(self, server) -> None:
        self.server, self.peak, self._stop = server, 0.0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_gb(self.server))
            time.sleep(0.5)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


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


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--visitors", type=int, default=10)
    p.add_argument("--cull-seconds", type=int, default=60, help="hvaelab dashboard's (60)")
    p.add_argument("--pool-size", type=int, default=1, help="hvaelab dashboard's (1)")
    p.add_argument("--max-kernels", type=int, default=12, help="hvaelab dashboard's (12)")
    p.add_argument("--watch", type=float, default=300, help="seconds to watch the kernel count")
    args = p.parse_args(argv)
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
            if errors:  # keep the server's log for a look at what happened
                keep = Path(__file__).resolve().parents[1] / "artifacts" / "class_bench-voila.log"
                keep.parent.mkdir(parents=True, exist_ok=True)
                keep.write_bytes((folder / "voila.log").read_bytes())
                print(f"Voila's log: {keep}")
            return 1 if errors or back is None else 0
        finally:
            server.stop()


if __name__ == "__main__":
    raise SystemExit(main())

"""End to end: how ``hvaelab dashboard`` serves a class (hvaelab/app/serving.py), in Chromium.

Each test starts its own server with short serving settings (the flags of ``hvaelab dashboard``)
and counts the server's kernels as processes.
"""

from __future__ import annotations

import re
import time

import pytest
from harness import (
    PAGES,
    SERVER_READY_MS,
    PageGuard,
    figure_signature,
    kernel_count,
    nudge_slider,
    open_ready,
    start_voila,
)
from harness import wait_figures_changed as figures_changed

pytestmark = pytest.mark.e2e

READY_MS = SERVER_READY_MS


def serving(pool: int = 0, cull_s: int | None = None, *more: str) -> list[str]:
    """The ``hvaelab dashboard`` flags of a server with these serving settings."""
    args = ["--pool-size", str(pool), *more]
    if cull_s is not None:
        args += ["--cull-seconds", str(cull_s), "--cull-interval", "2"]
    return args


def wait_kernels(server, want: int, timeout: float) -> float:
    """Seconds until the server holds ``want`` kernels; fails with the count after timeout."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if kernel_count(server) == want:
            return time.monotonic() - t0
        time.sleep(0.5)
    raise AssertionError(f"{kernel_count(server)} kernels after {timeout:.0f} s, expected {want}")


def test_closed_pages_lose_their_kernel_open_idle_pages_keep_it(browser, tmp_path):
    server = start_voila(tmp_path / "voila.log", args=serving(cull_s=6))
    try:
        kept, page, guard = open_ready(browser, server, PAGES["explorer"])
        closed, _, _ = open_ready(browser, server, PAGES["training"])
        assert kernel_count(server) == 2
        closed.close()  # the visitor leaves: no connection, idle -> shut down
        waited = wait_kernels(server, 1, timeout=60)
        assert waited < 40
        assert "Culling" in server.log_tail(200)
        time.sleep(10)  # the open page sat idle longer than the cull timeout ...
        assert kernel_count(server) == 1
        figs = [".hvae-density-fig", ".hvae-roc-fig"]
        before = [figure_signature(page, f) for f in figs]
        nudge_slider(page, "hvae-k-slider")  # ... and still answers
        figures_changed(page, figs, before, 30_000)
        guard.assert_clean()
        kept.close()
    finally:
        server.stop()


def test_a_page_left_frees_its_place_at_once_without_the_culler(browser, tmp_path):
    """Voila's unload beacon (POST /voila/api/shutdown/<kernel> with the _xsrf form field) is
    accepted: a visitor who moves to another page frees the place at once, with the culler off.
    Without the page's _xsrf cookie (serving.PageHandler) it was refused with 403 (voila#1458)."""
    server = start_voila(tmp_path / "voila.log", args=serving(0, 0, "--max-kernels", "1"))
    try:
        context, page, guard = open_ready(browser, server, PAGES["training"])
        assert "_xsrf" in {c["name"] for c in context.cookies()}
        assert kernel_count(server) == 1
        page.goto(server.url)  # the visitor goes back to the list of pages
        waited = wait_kernels(server, 0, timeout=30)
        log = server.log_tail(400)
        assert "403 POST /voila/api/shutdown" not in log, log
        assert "Culling" not in log  # the culler is off (--cull-seconds 0)
        print(f"kernel freed {waited:.1f} s after the page was left")
        # the place is free: the cap of one lets the same visitor open another page
        again = context.new_page()
        response = again.goto(server.page_url(PAGES["explorer"]), timeout=READY_MS)
        assert response.status == 200
        guard.assert_clean()
        context.close()
    finally:
        server.stop()


def test_past_the_cap_visitors_get_a_busy_page_and_get_in_first_come_first_served(
    browser, tmp_path
):
    """Past the cap a visitor gets the busy page (503), not a dying server, with their place in
    the waiting line (serving.WaitingLine, kept by a cookie); the place that frees up goes to
    the first in line, not to whoever asks first."""
    args = serving(0, 3, "--max-kernels", "1")
    server = start_voila(tmp_path / "voila.log", args=args)
    try:
        first, _, _ = open_ready(browser, server, PAGES["training"])
        waiting = []
        for place in (1, 2):
            context = browser.new_context()
            page = context.new_page()
            response = page.goto(server.page_url(PAGES["explorer"]), timeout=READY_MS)
            assert response.status == 503
            text = page.inner_text("body")
            assert re.search(r"All 1 places of this server are taken", text), text
            assert f"You are number {place} in line" in text and "try again" in text, text
            waiting.append((context, page))
        assert kernel_count(server) == 1
        first.close()  # the visitor leaves; once the culler has freed the place ...
        wait_kernels(server, 0, timeout=60)
        (b_context, b_page), (c_context, c_page) = waiting
        # ... the second in line asks first, and is still second: the place is the first's
        response = c_page.goto(server.page_url(PAGES["explorer"]), timeout=READY_MS)
        assert response.status == 503
        assert "You are number 2 in line" in c_page.inner_text("body")
        guard = PageGuard().attach(b_page)
        response = b_page.goto(server.page_url(PAGES["explorer"]), timeout=READY_MS)
        assert response.status == 200
        b_page.wait_for_selector(".hvae-ready", state="attached", timeout=READY_MS)
        guard.assert_clean()
        b_context.close()
        c_context.close()
    finally:
        server.stop()


def test_preheated_pool_serves_at_once_is_refilled_and_never_culled(browser, tmp_path):
    args = serving(1, 4, "--fill-delay", "1")
    server = start_voila(tmp_path / "voila.log", args=args)
    try:
        n_pages = len(PAGES)
        wait_kernels(server, n_pages, timeout=240)  # one preheated kernel per page
        deadline = time.monotonic() + 240
        while server.log_tail(400).count("is filled with 1 kernel") < n_pages:
            assert time.monotonic() < deadline, server.log_tail(60)
            time.sleep(1)
        time.sleep(8)  # longer than the cull timeout: pooled kernels stay
        assert kernel_count(server) == n_pages
        context, page, guard = open_ready(browser, server, PAGES["explorer"])
        assert "Using pre-heated kernel" in server.log_tail(200)
        wait_kernels(server, n_pages + 1, timeout=120)  # the pool is refilled
        guard.assert_clean()
        context.close()
        wait_kernels(server, n_pages, timeout=60)  # the visitor left: back to the pool
    finally:
        server.stop()

"""Fixtures of the browser tests: one Voila server and one Chromium for the whole session.

The server is ``hvaelab dashboard`` (what ``make dashboard`` runs) on a free loopback port; it
is stopped, kernels included, when the session ends. Screenshots go to ``$HVAELAB_SCREENSHOTS``
(default ``artifacts/screenshots/``, git-ignored).
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import (  # noqa: E402
    REPO,
    PageGuard,
    VoilaServer,
    launch_chromium,
    screenshot,
    start_voila,
    wait_quiet,
)

# Opening a page starts a kernel that imports torch and loads the model: slow on a busy machine.
PAGE_READY_TIMEOUT_MS = 150_000
ACTION_TIMEOUT_MS = 30_000
GRACE_MS = 20_000  # from "Voila executed every cell" to the widgets on screen
READY_OR_DONE_JS = """
() => {
  if (document.querySelector('.hvae-ready')) return true;
  const cells = document.getElementById('rendered_cells');
  return !document.getElementById('loading') && cells && cells.style.display !== 'none';
}
"""
STDERR = "[data-mime-type='application/vnd.jupyter.stderr']"
FAILED_TEXT = re.compile(r"Traceback|Error", re.IGNORECASE)


@pytest.fixture(scope="session")
def dashboard_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VoilaServer]:
    # the tests close pages by closing their browser context, which sends no unload beacon: a
    # short culler frees their places, as a closed tab's beacon would (the cap of 12 holds)
    args = ["--cull-seconds", "10", "--cull-interval", "2"]
    server = start_voila(tmp_path_factory.mktemp("voila") / "voila.log", args=args)
    try:
        wait_quiet(server)  # the preheated kernels have run their notebooks (serving.py)
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = launch_chromium(playwright)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture(scope="session")
def screenshots() -> Path:
    folder = Path(os.environ.get("HVAELAB_SCREENSHOTS") or REPO / "artifacts" / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("0[0-9]_*.png"):  # this suite's names only: no stale pictures
        old.unlink()
    return folder


@pytest.fixture
def open_dashboard(
    browser, dashboard_server: VoilaServer, screenshots: Path
) -> Iterator[Callable[[str], tuple[object, PageGuard]]]:
    """``open_dashboard(notebook, viewport=None) -> (page, guard)``: a fresh page (window
    ``viewport``, default 1400 x 1000), watched from its first request, whose widgets are on the
    page (``.hvae-ready`` rendered; it may be empty) and which shows no error."""
    contexts = []

    def _open(notebook: str, viewport: dict | None = None) -> tuple[object, PageGuard]:
        context = browser.new_context(viewport=viewport or {"width": 1400, "height": 1000})
        contexts.append(context)
        context.set_default_timeout(ACTION_TIMEOUT_MS)
        page = context.new_page()
        guard = PageGuard().attach(page)
        page.goto(dashboard_server.page_url(notebook), timeout=PAGE_READY_TIMEOUT_MS)
        try:
            # Ready, or Voila done executing (spinner gone) without it: a cell failed.
            page.wait_for_function(READY_OR_DONE_JS, timeout=PAGE_READY_TIMEOUT_MS)
            page.wait_for_selector(".hvae-ready", state="attached", timeout=GRACE_MS)
        except Exception as exc:
            screenshot(page, screenshots / f"{Path(notebook).stem}_not_ready.png")
            raise AssertionError(
                f"{notebook}: no .hvae-ready ({exc.__class__.__name__}).\n"
                f"Problems: {guard.problems()}\nPage text:\n{page.inner_text('body')[-3000:]}\n"
                f"Voila log:\n{dashboard_server.log_tail()}"
            ) from exc
        failures = page.locator(f".hvae-page-error, {STDERR}").filter(has_text=FAILED_TEXT)
        assert failures.count() == 0, (
            f"{notebook} shows an error:\n" + "\n".join(failures.all_inner_texts())[-3000:]
        )
        return page, guard

    try:
        yield _open
    finally:
        for context in contexts:
            context.close()

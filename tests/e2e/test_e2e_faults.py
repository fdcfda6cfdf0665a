"""End to end: pages that survive their faults (issue 37, part 2), in Chromium.

A kernel SIGKILLed (as the out-of-memory killer would) in the preheated pool or under a
visitor's page, and the server stopped and started again while a page is open. Each test serves
one notebook (the explorer, copied to a folder of its own) so that only its kernels start.
The server side is hvaelab/app/serving.py; the page side, the connection banner of the template
(share/jupyter/voila/templates/hvaelab/index.html.j2).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import time

import psutil
import pytest
from harness import (
    PAGES,
    REPO,
    SERVER_READY_MS,
    PageGuard,
    figure_signature,
    nudge_slider,
    open_ready,
    start_voila,
)
from harness import wait_figures_changed as figures_changed

pytestmark = pytest.mark.e2e

READY_MS = SERVER_READY_MS
NOTEBOOK = PAGES["explorer"]
FIGS = [".hvae-density-fig", ".hvae-roc-fig"]
BANNER = "#hvae-connection-banner"


def one_notebook(tmp_path, notebook: str = NOTEBOOK):
    folder = tmp_path / "notebooks"
    folder.mkdir()
    shutil.copy(REPO / "notebooks" / notebook, folder)
    return folder


def kernel_pids(server) -> dict[str, int]:
    """Kernel id -> process id of the server's live kernels (from their connection files)."""
    found = {}
    for proc in psutil.Process(server.process.pid).children(recursive=True):
        try:
            if proc.status() == psutil.STATUS_ZOMBIE:
                continue
            m = re.search(r"kernel-([0-9a-f-]{36})\.json", " ".join(proc.cmdline()))
        except psutil.Error:
            continue
        if m:
            found[m.group(1)] = proc.pid
    return found


def wait_for(what, check, timeout: float):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        value = check()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(f"{what}: not within {timeout:.0f} s")


def open_page(browser, server, notebook: str = NOTEBOOK):
    return open_ready(browser, server, notebook)


def page_kernel(page) -> str:
    return page.evaluate(
        "() => JSON.parse(document.getElementById('jupyter-config-data').textContent).kernelId"
    )


def answers(page) -> None:
    """The page's widgets still work: a slider step redraws its figures."""
    before = [figure_signature(page, f) for f in FIGS]
    nudge_slider(page, "hvae-k-slider")
    figures_changed(page, FIGS, before, 30_000)


def banner(page, reason: str, timeout_ms: float = 20_000) -> str:
    page.wait_for_selector(f"{BANNER}[data-reason='{reason}']", timeout=timeout_ms)
    return page.inner_text(BANNER)


def test_a_dead_kernel_is_never_used_again_in_the_pool_or_under_a_page(browser, tmp_path):
    args = ["--notebooks", one_notebook(tmp_path), "--pool-size", "1", "--fill-delay", "1"]
    server = start_voila(tmp_path / "voila.log", args=[*args, "--cull-seconds", "4"])
    try:
        wait_for("the pool filled", lambda: "is filled with 1 kernel" in server.log_tail(200), 180)
        [(pooled, pid)] = kernel_pids(server).items()
        os.kill(pid, signal.SIGKILL)  # the preheated kernel dies in the pool ...
        first, a, _ = open_page(browser, server)  # ... the next visitor gets a working page
        assert page_kernel(a) != pooled
        answers(a)
        wait_for("the pool refilled", lambda: len(kernel_pids(server)) == 2, 120)
        second, b, b_guard = open_page(browser, server)

        dead = page_kernel(a)
        os.kill(kernel_pids(server)[dead], signal.SIGKILL)  # a visitor's kernel dies
        text = banner(a, "kernel")
        assert "stopped working" in text and "Reload" in text, text
        assert a.evaluate("() => window.hvaelabConnectionLost()") == "kernel"
        removed = f"Kernel {dead} died, removing from map"  # its place is free at once
        wait_for("the dead kernel removed", lambda: removed in server.log_tail(400), 10)
        assert "restarting kernel" not in server.log_tail(400)  # never brought back empty
        assert dead not in kernel_pids(server)
        answers(b)  # the other visitor's page keeps working
        b_guard.assert_clean()

        t0 = time.monotonic()
        a.reload(timeout=READY_MS)
        a.wait_for_selector(".hvae-ready", state="attached", timeout=30_000)
        answers(a)
        assert time.monotonic() - t0 < 30
        assert a.locator(BANNER).count() == 0
        first.close()
        second.close()
    finally:
        server.stop()


def test_a_server_restart_says_the_connection_is_lost_and_a_reload_works(browser, tmp_path):
    notebook = PAGES["training"]  # the lightest page: its widgets come from a live kernel
    args = ["--notebooks", one_notebook(tmp_path, notebook), "--pool-size", "0"]
    server = start_voila(tmp_path / "voila.log", args=args)
    context = None
    try:
        context, page, guard = open_page(browser, server, notebook)
        guard.assert_clean()
        server.stop()
        text = banner(page, "server")
        assert "connection to the server is lost" in text and "Reload" in text, text
        server = start_voila(tmp_path / "voila2.log", args=args, port=server.port)
        assert "server is back" in banner(page, "server-back")
        page.reload(timeout=READY_MS)
        page.wait_for_selector(".hvae-ready", state="attached", timeout=READY_MS)
        assert page.locator(".hvae-page-error").count() == 0
        assert page.locator(BANNER).count() == 0
    finally:
        if context is not None:
            context.close()
        server.stop()


def test_broken_files_beside_the_checkpoint_fail_only_the_parts_that_need_them(browser, tmp_path):
    """Truncated score tables and training history in a copy of the checkpoint: the explorer
    and the training curves say in one line which file and which command restores it; the
    other pieces of those pages work; nothing is rewritten."""
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    for f in (REPO / "checkpoints").glob("fashionmnist.*"):
        shutil.copy(f, folder / f.name)
    for suffix in (".scores.safetensors", ".history.csv"):
        path = folder / f"fashionmnist{suffix}"
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    before = {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in folder.iterdir()}
    env = {"HVAELAB_CHECKPOINTS": str(folder)}
    server = start_voila(tmp_path / "voila.log", env=env, args=["--pool-size", "0"])
    try:
        for notebook, name, fix in (
            (PAGES["explorer"], "fashionmnist.scores.safetensors", "hvaelab tables --checkpoint"),
            (PAGES["training"], "fashionmnist.history.csv", "force-reinstall hvaelab-models"),
        ):
            context = browser.new_context(viewport={"width": 1400, "height": 1000})
            page = context.new_page()
            guard = PageGuard().attach(page)
            page.goto(server.page_url(notebook), timeout=READY_MS)
            page.wait_for_selector(".hvae-ready", state="attached", timeout=READY_MS)
            errors = page.locator(".hvae-page-error").all_inner_texts()
            assert errors  # the pieces that need the file ...
            for text in errors:  # ... say which and what restores it, in one line
                title, message = text.split("\n")
                assert title.endswith("cannot be shown.") and name in message and fix in message
            assert "Traceback" not in page.inner_text("body")
            assert page.locator(".hvae-model-menu").count() == 1  # the rest of the page is there
            guard.assert_clean()
            context.close()
    finally:
        server.stop()
    assert {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in folder.iterdir()} == before


SLOW_WIDGET = '''
import anywidget
import traitlets


class Slow(anywidget.AnyWidget):
    # the module takes 3.5 s to import, as on a page whose main thread is kept from running
    _esm = """
await new Promise((resolve) => setTimeout(resolve, 3500));
export default {
  render({ model, el }) {
    el.className = "slow-widget-drawn";
    const show = () => { el.textContent = "echo " + model.get("echo"); };
    show();
    model.on("change:echo", show);
    el.onclick = () => { model.set("n", model.get("n") + 1); model.save_changes(); };
  },
};
"""
    n = traitlets.Int(0).tag(sync=True)
    echo = traitlets.Int(0).tag(sync=True)


w = Slow()
w.observe(lambda change: setattr(w, "echo", 10 * change["new"]), "n")
w
'''


def test_a_widget_module_slower_than_anywidgets_2_s_still_works(browser, tmp_path):
    """anywidget gives a model 2 s to import its module, and one that misses them is dead: its
    view may draw but no longer talks to the kernel (a page that hangs). The template's patience
    (the first script of index.html.j2) keeps a slow one (a page starved of CPU, issue 39)
    alive: a click goes to the kernel and its answer comes back, with no page error."""
    import nbformat

    folder = tmp_path / "notebooks"
    folder.mkdir()
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(SLOW_WIDGET)])
    nbformat.write(notebook, folder / "slow.ipynb")
    server = start_voila(tmp_path / "voila.log", args=["--notebooks", folder, "--pool-size", "0"])
    context = browser.new_context()
    try:
        page = context.new_page()
        guard = PageGuard().attach(page)
        page.goto(server.page_url("slow.ipynb"), timeout=READY_MS)
        page.wait_for_selector(".slow-widget-drawn", timeout=60_000)
        page.click(".slow-widget-drawn")
        page.wait_for_function(
            "() => document.querySelector('.slow-widget-drawn').textContent === 'echo 10'",
            timeout=30_000,
        )
        guard.assert_clean()
    finally:
        context.close()
        server.stop()

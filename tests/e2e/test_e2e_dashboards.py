"""End to end: the dashboards served by Voila (as ``make dashboard`` does), driven in Chromium.

Each test opens a page, waits for ``.hvae-ready``, works its widgets the way a user would
(keyboard on slider handles, the file chooser of the upload button) and checks what the page
shows. Any browser console error, uncaught page error or request to a host other than this
machine fails the test. Screenshots are saved for a human to look at (see conftest.py).
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from harness import (
    PAGES,
    figure_data,
    figure_signature,
    is_local,
    nudge_slider,
    screenshot,
    wait_figures_changed,
)
from PIL import Image

pytestmark = pytest.mark.e2e

UPDATE_TIMEOUT_MS = 30_000
DENSITY, ROC = ".hvae-density-fig", ".hvae-roc-fig"
VERDICTS = ("OOD", "in-distribution")


def test_is_local_accepts_only_this_machine():
    assert is_local("http://127.0.0.1:8866/voila/static/x.js")
    assert is_local("ws://localhost:1/api/kernels/abc/channels")
    assert is_local("data:image/png;base64,AAAA")
    assert is_local("blob:http://127.0.0.1:8866/0b1c")
    assert not is_local("https://cdn.jsdelivr.net/npm/font-awesome@4.5.0/css/font-awesome.css")
    assert not is_local("https://unpkg.com/@jupyter-widgets/html-manager@^1.0.0/dist/embed.js")
    assert not is_local("http://127.0.0.1.example.com/x")


def test_tree_lists_every_dashboard(browser, dashboard_server, screenshots):
    from harness import PageGuard

    page = browser.new_page()
    try:
        guard = PageGuard().attach(page)
        page.goto(dashboard_server.url)
        page.wait_for_load_state("networkidle")
        text = page.inner_text("body")
        missing = [nb for nb in PAGES.values() if nb not in text]
        assert not missing, f"the tree page does not list {missing}; it shows:\n{text}"
        # each page with its title and what it shows, not a bare file name
        about = page.locator(".hvae-tree-about")
        assert about.count() == len(PAGES), text
        assert "Draw and inspect" in text and "watch every k decide" in text, text
        screenshot(page, screenshots / "00_tree.png")
        guard.assert_clean()
    finally:
        page.close()


def _traces_summary(traces: list[dict] | None) -> str:
    return json.dumps(traces)[:300]


def test_explorer_k_slider_updates_density_and_roc(open_dashboard, screenshots):
    page, guard = open_dashboard(PAGES["explorer"])
    density, roc = figure_data(page, DENSITY), figure_data(page, ROC)
    assert density, f"no plotly figure with trace data inside {DENSITY}"
    assert roc, f"no plotly figure with trace data inside {ROC}"
    assert any(t["x"] is not None or t["y"] is not None for t in density + roc)
    screenshot(page, screenshots / "01_explorer.png")

    before = [figure_signature(page, DENSITY), figure_signature(page, ROC)]
    k0, k1 = nudge_slider(page, "hvae-k-slider")
    assert k0 != k1, "the k slider did not move with the keyboard"
    wait_figures_changed(page, [DENSITY, ROC], before, UPDATE_TIMEOUT_MS)
    after = figure_data(page, DENSITY), figure_data(page, ROC)
    assert after[0] != density and after[1] != roc, (
        f"k {k0} -> {k1} left the figures unchanged: {_traces_summary(after[0])}"
    )
    screenshot(page, screenshots / "01_explorer_k_moved.png")
    table = page.locator(".hvae-metrics-table")
    assert "AUROC" in table.inner_text(), "the metrics table has no AUROC column"
    # every figure of this page has a view: none is warmed up off screen (live_figure.js warms
    # only a figure whose model came without a view, such as a question's answer)
    page.wait_for_timeout(5_000)  # past the 2 s after which a model without a view is warmed
    assert page.evaluate("() => window.hvaelabWarmUps || 0") == 0
    guard.assert_clean()


def test_reconstruction_k_slider_changes_grid(open_dashboard, screenshots):
    page, guard = open_dashboard(PAGES["reconstructions"])
    grid = ".hvae-recon-grid"
    before = figure_signature(page, grid)
    assert before != "null", f"no plotly figure with trace data inside {grid}"
    screenshot(page, screenshots / "02_reconstructions.png")
    k0, k1 = nudge_slider(page, "hvae-recon-k-slider")
    assert k0 != k1, "the reconstruction k slider did not move with the keyboard"
    wait_figures_changed(page, [grid], [before], UPDATE_TIMEOUT_MS)
    screenshot(page, screenshots / "02_reconstructions_k_moved.png")
    guard.assert_clean()


def _png(path: Path, seed: int) -> Path:
    """A 28x28 grayscale PNG: a bright blob on noise (seeded, so two calls differ)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:28, :28]
    blob = 255 * np.exp(-((yy - 14) ** 2 + (xx - 10 - 4 * seed) ** 2) / 40.0)
    pixels = np.clip(blob + rng.normal(0, 20, (28, 28)), 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels, mode="L").save(buf, format="PNG")
    path.write_bytes(buf.getvalue())
    return path


def _upload(page, files: list[Path]) -> None:
    """Pick files in the FileUpload's chooser (its <input type=file> is not in the DOM)."""
    with page.expect_file_chooser() as chooser:
        page.locator(".hvae-upload").first.click()
    chooser.value.set_files([str(f) for f in files])


def test_upload_scores_images_and_rejects_non_images(open_dashboard, screenshots, tmp_path):
    page, guard = open_dashboard(PAGES["upload"])
    result, error = page.locator(".hvae-upload-result"), page.locator(".hvae-upload-error")

    _upload(page, [_png(tmp_path / "blob.png", seed=0)])
    page.wait_for_function(
        "(v) => v.some((w) => document.querySelector('.hvae-upload-result')?.innerText"
        ".includes(w))",
        arg=list(VERDICTS),
        timeout=UPDATE_TIMEOUT_MS,
    )
    first = result.inner_text()
    assert any(v in first for v in VERDICTS), first
    # the upload is inspected at once: its header, verdict and marks in the linked views
    page.wait_for_function(
        "() => (document.querySelector('.hvae-inspect-header')?.innerText || '')"
        ".includes('blob.png') && !!document.querySelector('.hvae-inspect-verdict')",
        timeout=UPDATE_TIMEOUT_MS,
    )
    shown = page.locator(".hvae-inspect-verdict").get_attribute("data-verdict")
    assert shown in VERDICTS and shown in first, (shown, first)
    screenshot(page, screenshots / "04_upload_png.png")

    fake = tmp_path / "notes.png"
    fake.write_text("these are notes, not pixels\n")
    _upload(page, [fake])
    error.filter(has_text="not an image").wait_for(state="visible", timeout=UPDATE_TIMEOUT_MS)
    assert "notes.png" in error.inner_text(), "the error does not name the bad file"
    screenshot(page, screenshots / "04_upload_not_an_image.png")

    # The page still works after the bad file: a new image gets its own verdict.
    shown = result.inner_text()
    _upload(page, [_png(tmp_path / "second.png", seed=1)])
    page.wait_for_function(
        "([old, v]) => { const t = document.querySelector('.hvae-upload-result')?.innerText;"
        " return t && t !== old && v.some((w) => t.includes(w)); }",
        arg=[shown, list(VERDICTS)],
        timeout=UPDATE_TIMEOUT_MS,
    )
    screenshot(page, screenshots / "04_upload_after_error.png")
    guard.assert_clean()


@pytest.mark.parametrize(
    ("name", "container"),
    [("correlations", ".hvae-corr-fig"), ("teaching", ".hvae-density-fig"), ("training", "body")],
)
def test_other_pages_render_offline_and_clean(open_dashboard, screenshots, name, container):
    page, guard = open_dashboard(PAGES[name])
    page.wait_for_selector(f"{container} .js-plotly-plot", state="attached")
    assert figure_data(page, container), f"{name}: no plotly trace data in {container}"
    screenshot(page, screenshots / f"0{list(PAGES).index(name) + 1}_{name}.png")
    guard.assert_clean()


PLOTLY_SOURCE_JS = """
async () => {
  const ext = window._JUPYTERLAB && window._JUPYTERLAB['jupyterlab-plotly'];
  const Rendered = (await ext.get('./mimeExtension'))().RenderedPlotly;
  return {
    bundle: typeof window.hvaelabPlotly === 'object' && typeof window.hvaelabPlotly.react,
    renderer_uses_bundle: Rendered.Plotly === window.hvaelabPlotly,
    plots: document.querySelectorAll('.hvae-figure .js-plotly-plot').length,
    drawn: [...document.querySelectorAll('.hvae-figure .js-plotly-plot')]
      .filter((gd) => gd._fullLayout && gd.querySelector('.main-svg')).length,
    snapshots: [...document.querySelectorAll('.jp-RenderedPlotly > img.plot-img')]
      .filter((img) => img.src.startsWith('data:')).length,
  };
}
"""


def test_figures_are_drawn_by_the_templates_plotly_bundle(open_dashboard):
    """The explorer's figures are drawn by the template's partial plotly.js bundle (not the
    renderer's own full bundle), without a PNG snapshot of each."""
    page, guard = open_dashboard(PAGES["explorer"])
    page.wait_for_selector(".hvae-density-fig .js-plotly-plot .main-svg", state="attached")
    page.wait_for_selector(".hvae-roc-fig .js-plotly-plot .main-svg", state="attached")
    source = page.evaluate(PLOTLY_SOURCE_JS)
    assert source["bundle"] == "function", source
    assert source["renderer_uses_bundle"], source
    assert source["plots"] >= 2 and source["drawn"] >= 2, source
    assert source["snapshots"] == 0, source
    guard.assert_clean()


def test_the_model_menu_switches_the_whole_page(open_dashboard, screenshots):
    """The menu at the top of a page lists the checkpoints; choosing one redraws the page for
    it (here the training curves of the second FashionMNIST model), and back."""
    page, guard = open_dashboard(PAGES["training"])
    menu = page.locator(".hvae-model-menu select")
    raw = menu.locator("option").evaluate_all("(os) => os.map((o) => o.textContent)")
    values = {v.replace("\xa0", " "): v for v in raw}  # ipywidgets shows spaces as nbsp
    assert any(v.startswith("fashionmnist · HVAE · FashionMNIST") for v in values), values
    assert any(v.startswith("fashionmnist-seed1 · ") for v in values), values
    title = ".hvae-history-fig .gtitle"
    page.wait_for_selector(title)
    assert page.locator(title).text_content() == "Training curves of fashionmnist"
    for name in ("fashionmnist-seed1", "fashionmnist"):
        menu.select_option(label=next(r for v, r in values.items() if v.startswith(f"{name} · ")))
        page.locator(".hvae-model-status").filter(has_text=f"✓ {name}").wait_for(
            timeout=UPDATE_TIMEOUT_MS
        )
        page.wait_for_function(
            "([sel, want]) => document.querySelector(sel)?.textContent === want",
            arg=[title, f"Training curves of {name}"],
            timeout=UPDATE_TIMEOUT_MS,
        )
        assert page.locator(".hvae-page-error").count() == 0
        if name == "fashionmnist-seed1":
            screenshot(page, screenshots / "06_training_other_model.png")
    guard.assert_clean()


def test_switching_the_explorers_model_leaves_no_page_error(open_dashboard):
    """The explorer's live figures are closed when the menu rebuilds the page for another model
    (the BIVA where it is installed); their resize observers must not call plotly on a div that
    is no longer displayed ("Resize must be passed a displayed plot div element")."""
    page, guard = open_dashboard(PAGES["explorer"])
    page.wait_for_selector(".hvae-live-figure-box .main-svg")
    menu = page.locator(".hvae-model-menu select")
    raw = menu.locator("option").evaluate_all("(os) => os.map((o) => o.textContent)")
    values = {v.replace("\xa0", " "): v for v in raw}
    other = next(
        n
        for n in ("fashionmnist-biva", "fashionmnist-seed1")
        if any(v.startswith(f"{n} · ") for v in values)
    )
    for name in (other, "fashionmnist"):
        menu.select_option(label=next(r for v, r in values.items() if v.startswith(f"{name} · ")))
        page.locator(".hvae-model-status").filter(has_text=f"✓ {name}").wait_for(
            timeout=UPDATE_TIMEOUT_MS
        )
        page.wait_for_timeout(1000)  # the observers of the closed figures fire after the swap
    page.wait_for_selector(".hvae-live-figure-box .main-svg")
    guard.assert_clean()


# Three figures' first draws queued far below the window, in one task: "page" before the reader's
# first input, then (after a key press) "answer", then "changed" twice (changed before its first
# draw). Resolves to the draws in the order they ran and what each queued call learnt.
QUEUE_ORDER_JS = """async () => {
  const box = (name) => {
    const el = document.createElement('div');
    el.style.cssText = 'position:absolute; top:20000px; height:10px; width:10px';
    el.dataset.name = name;
    document.body.appendChild(el);
    return el;
  };
  const ran = [];
  const draw = (name) => async () => { ran.push(name); };
  const queued = [window.hvaelabQueueDraw(box('page'), draw('page'))];
  window.dispatchEvent(new KeyboardEvent('keydown', { key: 'Shift' }));
  queued.push(window.hvaelabQueueDraw(box('answer'), draw('answer')));
  const changed = box('changed');
  queued.push(window.hvaelabQueueDraw(changed, draw('changed (old state)')));
  queued.push(window.hvaelabQueueDraw(changed, draw('changed (new state)')));
  await Promise.all(queued);
  return ran;
}"""


def test_the_answers_to_moves_are_drawn_before_the_pages_own_figures(open_dashboard):
    """The template's draw queue: a figure that comes after the reader's first input (a move's
    answer) is drawn before the page's own figures outside the window, and a figure changed
    before its first draw is drawn once, in its newest state, first."""
    page, guard = open_dashboard(PAGES["reconstructions"])
    ran = page.evaluate(QUEUE_ORDER_JS)
    assert ran == ["changed (new state)", "answer", "page"], ran
    guard.assert_clean()

"""Every dashboard notebook runs top to bottom in a fresh kernel, headless, without an error.

The kernel (``python3``, this environment's) inherits ``HVAELAB_CHECKPOINTS`` from the
``app_checkpoints`` fixture. Widget state is kept so that the test can check what each page
shows: its ``hvae-ready`` marker and no error box.
"""

from __future__ import annotations

import asyncio
import json
import os
import traceback
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
EXPECTED = [
    "01_likelihood_ratio_explorer.ipynb",
    "02_latent_reconstructions.ipynb",
    "03_layer_correlations.ipynb",
    "04_score_your_images.ipynb",
    "05_teaching_the_likelihood_ratio.ipynb",
    "06_training_curves.ipynb",
    "07_draw_and_inspect.ipynb",
]
# Classes each page must show (the DOM contract of the browser tests).
CLASSES = {
    "01_likelihood_ratio_explorer.ipynb": {
        "hvae-k-slider",
        "hvae-score-select",
        "hvae-density-fig",
        "hvae-roc-fig",
        "hvae-metrics-table",
        "hvae-upload",
        "hvae-example-strip",
        "hvae-inspect-density",
    },
    "02_latent_reconstructions.ipynb": {
        "hvae-recon-k-slider",
        "hvae-recon-mode",
        "hvae-recon-grid",
        "hvae-recon-shuffle",
        "hvae-kl-fig",
        "hvae-samples-fig",
        "hvae-recon-inspect",
        "hvae-inspect-recons",
    },
    "03_layer_correlations.ipynb": {"hvae-corr-fig", "hvae-corr-a", "hvae-corr-b"},
    "04_score_your_images.ipynb": {
        "hvae-upload",
        "hvae-upload-result",
        "hvae-upload-error",
        "hvae-fpr",
        "hvae-upload-inspect",
        "hvae-inspect-recons",
    },
    "05_teaching_the_likelihood_ratio.ipynb": {
        "hvae-k-slider",
        "hvae-density-fig",
        "hvae-recon-grid",
        "hvae-corr-fig",
        "hvae-upload",
        "hvae-draw-view",
        "hvae-question",
        # the toy and the layer terms show their questions' answers: built on the reveal
        # (test_lesson_view, test_e2e_lesson)
        "hvae-gap-fig",
        "hvae-compare-fig",
    },
    "06_training_curves.ipynb": {"hvae-history-fig"},
    "07_draw_and_inspect.ipynb": {
        "hvae-draw-view",
        "hvae-draw-start",
        "hvae-inspect-recons",
        "hvae-inspect-scores",
        "hvae-inspect-density",
        "hvae-inspect-roc",
        "hvae-inspect-kl",
    },
}
EVERY_PAGE = {"hvae-model-menu", "hvae-model-status"}  # the page's model menu (model_menu)
CELL_TIMEOUT_S = 180
ESM_CANVAS = (Path(__file__).resolve().parents[1] / "hvaelab/app/js/canvas.js").read_text()
ESM_STRIP = (Path(__file__).resolve().parents[1] / "hvaelab/app/js/strip.js").read_text()
ESM_LIVE = (Path(__file__).resolve().parents[1] / "hvaelab/app/js/live_figure.js").read_text()


def test_all_notebooks_are_there_and_stored_without_outputs():
    assert sorted(p.name for p in NOTEBOOKS.glob("*.ipynb")) == EXPECTED
    for name in EXPECTED:
        nb = nbformat.read(NOTEBOOKS / name, as_version=4)
        nbformat.validate(nb)
        assert nb.metadata.kernelspec.name == "python3", name
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert code and all(not c.outputs and c.execution_count is None for c in code), (
            f"{name}: clear the outputs before committing (jupyter nbconvert --clear-output)"
        )
        assert nb.cells[0].cell_type == "markdown", f"{name}: start with an explanation"
        assert "widgets" not in nb.metadata, f"{name}: stored widget state"


def _widget_states(nb) -> dict[str, dict]:
    state = nb.metadata.get("widgets", {}).get("application/vnd.jupyter.widget-state+json", {})
    return {k: v["state"] for k, v in state.get("state", {}).items()}


async def _execute(name: str, limit: asyncio.Semaphore):
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    client = NotebookClient(
        nb,
        timeout=CELL_TIMEOUT_S,
        kernel_name="python3",
        resources={"metadata": {"path": str(NOTEBOOKS)}},
        store_widget_state=True,
    )
    async with limit:
        try:
            await client.async_execute()
        except Exception:  # noqa: BLE001 - reported by the notebook's own test
            return nb, traceback.format_exc()
    return nb, None


@pytest.fixture(scope="module")
def executed(app_checkpoints) -> dict[str, tuple]:
    """Every notebook executed, a few at a time (kernel start-up dominates: overlap it)."""
    return _run_all()


def _run_all() -> dict[str, tuple]:
    async def run_all():
        limit = asyncio.Semaphore(3)
        results = await asyncio.gather(*(_execute(n, limit) for n in EXPECTED))
        return dict(zip(EXPECTED, results, strict=True))

    # A fresh thread has no running event loop, even when an earlier test (Playwright's sync
    # API in tests/e2e) left one running in this thread.
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, run_all()).result()


@pytest.fixture(scope="module")
def executed_biva(app_checkpoints, datasets, tmp_path_factory) -> dict[str, tuple]:
    """Every notebook executed with a tiny BIVA as the page's model (``HVAELAB_CHECKPOINT``):
    trained for a short epoch, with a second stage, tables at S = 1 and samples, beside the
    dashboards' HVAEs."""
    from hvaelab.checkpoint import copy_checkpoint
    from hvaelab.cli import main as cli_main
    from hvaelab.train import TrainConfig, Trainer

    folder = tmp_path_factory.mktemp("biva-pages")
    for name in ("fashionmnist", "fashionmnist-seed1", "mnist-testsplit"):
        copy_checkpoint(app_checkpoints / name, folder / name)
    stem = folder / "biva-tiny"
    cfg = TrainConfig(
        dataset=datasets.fashionmnist,
        ood=(datasets.mnist,),
        preset="biva-tiny",
        model_overrides={"channels": 8},
        train_examples=256,
        val_examples=64,
        batch_size=64,
        init_examples=64,
        epochs=1,
        device="cpu",
    )
    Trainer(cfg, log=lambda _s: None).run(stem)
    stage = ["second-stage", "--checkpoint", str(stem), "--n-fit", "200", "--n-select", "64"]
    assert cli_main([*stage, "--components", "1"]) == 0
    tables = ["tables", "--checkpoint", str(stem), "--in", datasets.fashionmnist, "--samples", "1"]
    tables += ["--ood", datasets.mnist]
    assert cli_main([*tables, "--limit", "96", "--samples-per-set", "32"]) == 0
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HVAELAB_CHECKPOINTS", str(folder))
        mp.setenv("HVAELAB_CHECKPOINT", "biva-tiny")
        return _run_all()


def _check_page(name: str, nb, error: str | None) -> dict[str, dict]:
    """The executed page ran without an error, shows the contract's classes, figures with
    their data, its ready marker and no error box; returns its widget states."""
    assert error is None, f"{name} failed:\n{error[-4000:]}"
    assert error is None, f"{name} failed:\n{error[-4000:]}"
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            assert out.output_type != "error", f"{name}: {out.ename}: {out.evalue}"
            if out.output_type == "stream" and out.name == "stderr":
                assert "Traceback" not in out.text, f"{name}: {out.text[-2000:]}"
    states = _widget_states(nb)
    classes = {c for s in states.values() for c in s.get("_dom_classes", [])}
    missing = (CLASSES[name] | EVERY_PAGE) - classes
    assert not missing, f"{name} does not show {sorted(missing)}"
    # Plots are hvaelab's small plot anywidgets drawing with the page's one plotly.js (redrawn
    # in place with Plotly.react), never FigureWidgets (anywidget: a copy of plotly.js per
    # figure). The only anywidget models are hvaelab's own small ones (the drawing canvas, the
    # example strip, the figures).
    ours = {ESM_CANVAS, ESM_STRIP, ESM_LIVE}
    for s in states.values():
        if s.get("_model_module") == "anywidget":
            assert s.get("_esm") in ours, f"{name} creates a foreign anywidget (a FigureWidget?)"
    boxes = [s for s in states.values() if "hvae-figure" in s.get("_dom_classes", [])]
    plots = [s for s in states.values() if "hvae-figure-plot" in s.get("_dom_classes", [])]
    live = [s for s in states.values() if "hvae-live-figure" in s.get("_dom_classes", [])]
    assert plots or live, f"{name} shows no figure"
    assert len(plots) == len(boxes), f"{name}: a figure's box without its plot"
    for s in [*plots, *live]:  # the figure is there from the start
        assert s.get("base", {}).get("data"), f"{name}: a figure without data {s['_dom_classes']}"
    assert "hvae-ready" in classes, f"{name} has no hvae-ready marker"
    errors = [
        s.get("value", "")
        for s in states.values()
        if "hvae-page-error" in s.get("_dom_classes", [])
    ]
    assert not errors, f"{name} shows an error: {json.dumps(errors)[:2000]}"
    last = [o for o in nb.cells[-1].get("outputs", []) if o.output_type == "execute_result"]
    assert last and "application/vnd.jupyter.widget-view+json" in last[0].data, (
        f"{name}: the last cell should display the page's widgets"
    )
    return states


@pytest.mark.parametrize("name", EXPECTED)
def test_notebook_runs_headless(name, executed, app_checkpoints):
    assert os.environ["HVAELAB_CHECKPOINTS"] == str(app_checkpoints)
    _check_page(name, *executed[name])


@pytest.mark.parametrize("name", EXPECTED)
def test_every_page_runs_with_a_biva_as_its_model(name, executed_biva):
    """BIVA keeps the HVAE's forward contract, so every page works with it unchanged: ten
    latent layers in the k sliders, the reconstruction grid and the per-layer figures."""
    states = _check_page(name, *executed_biva[name])
    menus = [s for s in states.values() if "hvae-model-menu" in s.get("_dom_classes", [])]
    assert len(menus) == 1 and menus[0]["_options_labels"][menus[0]["index"]].startswith(
        "biva-tiny · BIVA · "
    )
    sliders = [s for s in states.values() if "hvae-k-slider" in s.get("_dom_classes", [])]
    assert all(s["max"] == 10 for s in sliders), [s["max"] for s in sliders]

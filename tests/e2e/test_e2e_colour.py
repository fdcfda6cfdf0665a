"""End to end: a tiny colour model (the natural-image path) served on every dashboard page.

A CIFAR-10-format and an SVHN-format file are written here, a tiny ``hvae-natural`` model is
trained on them for one short epoch, its tables and samples are written, and ``hvaelab dashboard
--checkpoint`` serves it as every page's checkpoint. Each page must reach
``.hvae-ready`` with no error on the page, in the console or in the network log.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from colour_data import write_colour_data
from harness import PAGES, PageGuard, figure_data, screenshot, start_voila

pytestmark = pytest.mark.e2e

READY_MS = 150_000
ERRORS = ".hvae-page-error, [data-mime-type='application/vnd.jupyter.stderr']"


@pytest.fixture(scope="module")
def colour_checkpoints(tmp_path_factory) -> Path:
    from hvaelab import data
    from hvaelab.cli import main as cli_main
    from hvaelab.train import TrainConfig, Trainer

    root = tmp_path_factory.mktemp("colour-e2e")
    write_colour_data(root / "data", 32, 40)
    saved = data.REGISTRY["svhn"]
    data.REGISTRY["svhn"] = dataclasses.replace(saved, md5={}, urls=())  # our own file
    try:
        cfg = TrainConfig(
            dataset="cifar10",
            preset="hvae-natural",
            model_overrides={"channels": 8, "blocks_per_stage": 1},
            train_examples=160,
            val_examples=24,
            batch_size=32,
            init_examples=32,
            epochs=1,
            ood=("svhn",),
            data_dir=str(root / "data"),
            device="cpu",
        )
        stem = root / "checkpoints" / "cifar-tiny"
        Trainer(cfg, log=lambda _: None).run(stem)
        args = ["tables", "--checkpoint", str(stem), "--data-dir", str(root / "data")]
        args += ["--in", "cifar10", "--ood", "svhn", "--samples-per-set", "8"]
        assert cli_main(args) == 0
    finally:
        data.REGISTRY["svhn"] = saved
        data.clear_cache()
    return stem.parent


def test_a_colour_model_runs_through_every_page(browser, colour_checkpoints, screenshots, tmp_path):
    env = {"HVAELAB_CHECKPOINTS": str(colour_checkpoints)}
    # cold kernels (--pool-size 0): each page loads the colour model itself
    args = ["--checkpoint", "cifar-tiny", "--pool-size", "0"]
    server = start_voila(tmp_path / "voila.log", env=env, args=args)
    shots = screenshots
    try:
        for name, notebook in PAGES.items():
            context = browser.new_context(viewport={"width": 1400, "height": 1000})
            try:
                page = context.new_page()
                guard = PageGuard().attach(page)
                page.goto(server.page_url(notebook), timeout=READY_MS)
                try:
                    page.wait_for_selector(".hvae-ready", state="attached", timeout=READY_MS)
                except Exception as exc:
                    screenshot(page, shots / f"colour_{name}_not_ready.png")
                    raise AssertionError(
                        f"{name}: not ready with a colour model.\n{page.inner_text('body')[-2000:]}"
                        f"\nVoila log:\n{server.log_tail()}"
                    ) from exc
                errors = page.locator(ERRORS)
                assert errors.count() == 0, f"{name}: " + "\n".join(errors.all_inner_texts())
                text = page.inner_text("body")
                assert "Traceback" not in text, f"{name} shows a traceback"
                if name == "draw":  # the canvas makes grey images: the page says so
                    assert page.locator(".hvae-draw-unavailable").count() == 1, text[-1500:]
                elif name not in ("training",):
                    page.wait_for_selector(".js-plotly-plot", state="attached")
                    assert figure_data(page, "body"), f"{name}: no plotly data"
                if name == "explorer":
                    assert "CIFAR" in text or "cifar10" in text
                screenshot(page, shots / f"colour_{name}.png")
                guard.assert_clean()
            finally:
                context.close()
    finally:
        server.stop()

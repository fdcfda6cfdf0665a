"""``hvaelab export-site``: the draw page in Chromium scores every stroke like the Python.

The site is exported (reference: the mean path of 500 seeded FashionMNIST test images) and
served by a plain loopback static server (no Jupyter process). The page is driven by real mouse
strokes on its canvas and by ``window.hvaelabDraw.replay`` (the page's test hook: it ends each
stroke through the same path as the pointer) with FashionMNIST and MNIST test images replayed as
strokes (:func:`~hvaelab.data.strokes.image_to_strokes`). After each, what the page shows is
compared with :func:`~hvaelab.mean_path.mean_path_report` (PyTorch) of
:func:`~hvaelab.data.strokes.strokes_to_image` of the page's own strokes, scored against the same
reference:

* the 28x28 image (the "as drawn" picture's pixels) and the binarized input, exactly; each
  reconstruction's pixels within one grey level;
* rec>k, the KL of each layer, every LLR>k and the second stage's score, and their p-values, on
  the tolerances of tests/e2e/mean_path_tolerance.py; the verdict and the decisive score equal.

No request leaves the loopback, the page logs no error, no request fails; with the server stopped,
the page still scores new strokes and "start from a test image". The time from a stroke's end to
every view showing its result is printed (``-s``), not asserted.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from harness import PageGuard, StaticServer
from mean_path_tolerance import P_ATOL, RTOL, llr_scale, second_stage_tolerance

from hvaelab.app.static_site import DRAW_DATA, MODEL
from hvaelab.checkpoint import load_model
from hvaelab.data.strokes import image_to_strokes, strokes_from_json, strokes_to_image
from hvaelab.mean_path import SECOND_STAGE, mean_path_report, reference_from_dataset
from hvaelab.onnx_export import read_sidecar, sidecar_path

pytestmark = pytest.mark.e2e

N_REF = 500
CHECKPOINT = "fashionmnist"

# What the page shows, read from its DOM: the numbers' full values are in data-value.
SHOWN_JS = """
() => {
  const pixels = (fig) => {
    const c = fig.querySelector("canvas");
    const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
    return Array.from({length: d.length / 4}, (_, k) => d[4 * k]);
  };
  const values = (sel) => Object.fromEntries(Array.from(document.querySelectorAll(sel),
    (e) => [e.dataset.score || e.dataset.stat, Number(e.dataset.value)]));
  const v = document.getElementById("verdict").dataset;
  return {
    revision: Number(document.body.dataset.revision),
    nStrokes: Number(document.body.dataset.strokes),
    strokes: window.hvaelabDraw.strokes(),
    given: pixels(document.querySelector("#images figure.given")),
    seen: pixels(document.querySelector("#images figure.seen")),
    recons: Array.from(document.querySelectorAll("#images figure.recon"), pixels),
    scores: values("td.score-value"), pValues: values("td.score-p"), stats: values(".stat"),
    verdict: v.verdict, decisive: v.decisive, minP: Number(v.minP),
    timing: Number(document.body.dataset.scoredAt) - Number(document.body.dataset.strokeEndAt),
  };
}
"""


@pytest.fixture(scope="module")
def site(exported_site, site_reference_limit) -> Path:
    """The session's one export (tests/conftest.py), with N_REF reference images."""
    assert site_reference_limit == N_REF
    return exported_site[0]


@pytest.fixture(scope="module")
def python(site, site_reference):
    """The model and its mean-path reference, as the export computed it (checked against the
    sidecar's)."""
    lm = load_model(CHECKPOINT)
    reference = reference_from_dataset(lm.model, site_reference, "test", limit=N_REF)
    side = read_sidecar(sidecar_path(site / MODEL))
    for name, values in reference.scores.items():
        np.testing.assert_allclose(side["reference"]["scores"][name], values, rtol=1e-6)
    return lm.model, reference, side


@pytest.fixture(scope="module")
def served(site, browser):
    server = StaticServer(site)
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    guard = PageGuard().attach(page)
    try:
        page.goto(server.url + "draw.html")
        page.wait_for_selector("body.site-ready", timeout=60_000)
        yield {"server": server, "page": page, "guard": guard}
    finally:
        server.stop()
        context.close()


def _wait(page, revision: int) -> dict:
    """What the page shows once every view shows change number ``revision``."""
    try:
        page.wait_for_function(f"() => Number(document.body.dataset.revision) >= {revision}")
    except Exception as exc:
        raise AssertionError(
            f"the page never showed change {revision} ({exc.__class__.__name__}); it shows "
            f"{page.evaluate('() => document.body.dataset.revision')}, its error line says: "
            f"{page.inner_text('#error')!r}"
        ) from exc
    shown = page.evaluate(SHOWN_JS)
    assert shown["revision"] == revision, "the page showed a later change than this one"
    return shown


def _replay(page, strokes) -> dict:
    revision = page.evaluate(
        "(s) => window.hvaelabDraw.replay(s)", json.dumps([s.to_dict() for s in strokes])
    )
    return _wait(page, revision)


def _clear(page) -> dict:
    revision = int(page.evaluate("() => document.body.dataset.revision"))
    page.click("#clear")
    return _wait(page, revision + 1)


def _check(shown: dict, python, base: np.ndarray | None = None, what: str = "") -> None:
    """The page's views against mean_path_report of strokes_to_image of the page's strokes."""
    model, reference, side = python
    strokes = strokes_from_json(shown["strokes"])
    assert shown["nStrokes"] == len(strokes)
    image = strokes_to_image(strokes, base)
    report = mean_path_report(model, image, reference)

    assert shown["given"] == image.reshape(-1).tolist(), f"{what}: the 28x28 image differs"
    bits = (report.model_input.reshape(-1) * 255).astype(int).tolist()
    assert shown["seen"] == bits, f"{what}: the binarized input differs"
    recons = np.rint(255 * report.reconstructions[0].reshape(len(shown["recons"]), -1))
    assert np.abs(np.asarray(shown["recons"]) - recons).max() <= 1, f"{what}: reconstructions"

    L = len(report.llr)
    rec = np.array([[report.stats[f"rec>{k}"][0] for k in range(L + 1)]], np.float64)
    kl = np.array([[report.stats[f"kl{i}"][0] for i in range(1, L + 1)]], np.float64)
    for name, want in report.stats.items():
        got, b = shown["stats"][name], float(want[0])
        assert abs(got - b) <= RTOL * max(abs(b), 1.0), f"{what} {name}: {got} vs {b}"

    llr = np.array([[v[0] for v in report.llr.values()]], np.float64)
    scale = llr_scale(rec, kl)[0]
    stage_tol = second_stage_tolerance({"rec": rec, "kl": kl, "llr": llr}, side)[0]
    assert sorted(shown["scores"]) == sorted(report.scores()), what
    for name, want in report.scores().items():
        got, b = shown["scores"][name], float(want[0])
        if name == SECOND_STAGE:
            tol = max(RTOL * max(abs(b), 1.0), stage_tol)
        else:
            tol = RTOL * scale[list(report.llr).index(name)]
        assert abs(got - b) <= tol, f"{what} {name}: {got} vs {b} (tolerance {tol:.2e})"
        p, pb = shown["pValues"][name], float(report.p_values[name][0])
        assert abs(p - pb) <= P_ATOL, f"{what} p({name}): {p} vs {pb}"
    verdict = "OOD" if report.is_ood[0] else "in-distribution"
    assert shown["verdict"] == verdict, f"{what}: verdict {shown['verdict']}, Python {verdict}"
    assert shown["decisive"] == report.decisive[0], what
    assert abs(shown["minP"] - float(report.min_p[0])) <= P_ATOL, what


def test_replayed_test_images_show_the_python_numbers(served, python, datasets) -> None:
    page = served["page"]
    images = [
        ("FashionMNIST test 0", datasets.images("fashionmnist")[0]),
        ("MNIST test 0", datasets.images("mnist")[0]),
    ]
    verdicts = []
    for what, img in images:
        _clear(page)
        strokes = image_to_strokes(img)
        shown = _replay(page, strokes)
        assert len(shown["strokes"]) == len(strokes) > 10, what
        _check(shown, python, what=what)
        verdicts.append(shown["verdict"])
    # the two are told apart (a page stuck on one verdict would not be)
    assert verdicts[0] != verdicts[1], verdicts
    served["guard"].assert_clean()


def test_mouse_strokes_with_the_brush_controls_and_undo(served, python) -> None:
    page = served["page"]
    empty = _clear(page)
    _check(empty, python, what="empty canvas")
    page.focus("#width")  # the brush size: 20 -> 30 with the keyboard
    for _ in range(10):
        page.keyboard.press("ArrowRight")
    page.select_option("#shape", "square")
    # the drawing's (0, 0) on the screen: inside the canvas's border
    box = page.evaluate(
        "() => { const c = document.getElementById('canvas'), r = c.getBoundingClientRect();"
        " return {x: r.left + c.clientLeft, y: r.top + c.clientTop}; }"
    )
    timings = []
    for n, (x0, y0, dx, dy) in enumerate([(70, 60, 9, 11), (200, 40, -4, 12)], start=1):
        revision = empty["revision"] + n
        page.mouse.move(box["x"] + x0, box["y"] + y0)
        page.mouse.down()
        for i in range(1, 16):
            page.mouse.move(box["x"] + x0 + dx * i, box["y"] + y0 + dy * i)
        page.mouse.up()
        shown = _wait(page, revision)
        timings.append(shown["timing"])
        assert len(shown["strokes"]) == n
        stroke = shown["strokes"][-1]
        assert stroke["width"] == 30 and stroke["shape"] == "square" and stroke["ink"] == 1
        assert len(stroke["points"]) > 10
        assert stroke["points"][0] == [x0, y0] and stroke["points"][-1] == [
            x0 + 15 * dx,
            y0 + 15 * dy,
        ]
        _check(shown, python, what=f"mouse stroke {n}")
    print(f"\nstroke end to every view shown (mouse): {', '.join(f'{t:.0f} ms' for t in timings)}")
    page.click("#undo")
    undone = _wait(page, shown["revision"] + 1)
    assert len(undone["strokes"]) == 1
    _check(undone, python, what="undo")
    served["guard"].assert_clean()


def test_the_page_scores_without_the_server(served, python, site) -> None:
    page, server = served["page"], served["server"]
    server.stop()
    _clear(page)
    stroke = {"points": [[60, 60], [200, 60], [120, 230]], "width": 22, "ink": 1.0}
    shown = _replay(page, strokes_from_json([stroke]))
    _check(shown, python, what="a stroke, server stopped")
    # "start from a test image" (the first shipped FashionMNIST test image), then a stroke on it
    first = json.loads((site / DRAW_DATA).read_text())["sets"][0]
    assert first["value"] == CHECKPOINT and len(first["images"]) == 8
    page.select_option("#start-set", first["value"])
    page.click("#start")
    started = _wait(page, shown["revision"] + 1)
    base = np.asarray(first["images"][0], np.uint8).reshape(28, 28)
    _check(started, python, base, what="start image")
    eraser = {"points": [[40, 140], [240, 140]], "width": 30, "ink": 0.0, "shape": "round"}
    _check(_replay(page, strokes_from_json([eraser])), python, base, what="start image + eraser")
    served["guard"].assert_clean()
    failed = [(p, c) for p, c in server.requests if c >= 400]
    assert not failed, f"requests that failed: {failed}"
    paths = {p for p, _ in server.requests}
    assert {"/draw.html", "/model.onnx", "/model.onnx.json", "/js/draw.js"} <= paths
    assert "/vendor/onnxruntime-web/ort-wasm-simd-threaded.wasm" in paths

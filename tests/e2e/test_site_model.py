"""The lesson site's model in Chromium (ONNX Runtime Web) gives the Python's numbers.

The shipped ``fashionmnist`` HVAE (with its second stage) is exported as in
tests/test_onnx_export.py (reference: the mean path of the first 1,000 FashionMNIST test images
of this run's data) into a temporary site folder beside a copy of ``hvaelab/site`` (the JS
modules and the vendored ONNX Runtime Web). A plain loopback static server serves it; a
Chromium page imports ``js/model.js``, loads the model and scores uint8 images with
``score``: FashionMNIST and MNIST test images, a shipped noise sample, and strokes drawn in
the page (``preprocess.js``, equal to :func:`~hvaelab.data.strokes.strokes_to_image`).

For each image, the page's results are compared with onnxruntime (Python) on the binarized
image that :func:`~hvaelab.data.binarize_fixed` gives, scored by
:func:`~hvaelab.onnx_export.score_with_sidecar`:

* the graph's input: the same bits, exactly;
* statistics (rec>k, KLs, LLR>k) within 1e-5 relative on
  :func:`~hvaelab.onnx_export.compare_with_torch`'s scales (``max(|b|, 1)``; LLR>k relative to
  the terms it is the difference of), reconstructions within 1e-5 absolute;
* the LLR>k scores on the same scale; the second stage's score within 1e-5 relative or within
  what the statistics' own 1e-5 tolerance moves it (``second_stage_tolerance`` of
  tests/e2e/mean_path_tolerance.py: it is ``-log q`` of standardised statistics, and the two
  runtimes' float32 differences of about 1e-6 move it by up to 2e-5 of its size where it is
  about 1 nat);
* p-values within 1e-3, the same verdict, decisive score and threshold;
* and ``sidecar.js`` on the page's own outputs against ``score_with_sidecar`` on the same
  outputs: scores within 1e-9 relative, p-values, min p, verdict and decisive score equal (the
  port alone, without the runtimes' differences), also with every LLR>k voting (the decisive
  score an argmin over several).

No request leaves the loopback and the page logs no error (:class:`PageGuard`); it fetches its
modules, the vendored runtime (``vendor/onnxruntime-web``) and the model, nothing else; once loaded,
the page scores the same numbers with the server stopped (the session lives in memory). The
load time and the median time of one ``score`` are printed (``-s``), not asserted.
"""

from __future__ import annotations

import shutil
import statistics
from pathlib import Path

import numpy as np
import pytest
from harness import PageGuard, StaticServer
from mean_path_tolerance import P_ATOL, RTOL, llr_scale, second_stage_tolerance

from hvaelab.app.resources import load_shipped_samples
from hvaelab.checkpoint import load_model
from hvaelab.data import binarize_fixed, to_tensor
from hvaelab.data.strokes import strokes_from_json, strokes_to_image
from hvaelab.mean_path import SECOND_STAGE, mean_path_reference
from hvaelab.onnx_export import (
    export_onnx,
    onnx_session,
    read_sidecar,
    run_onnx,
    score_with_sidecar,
    sidecar_path,
)

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
SITE = REPO / "hvaelab" / "site"
VENDOR = SITE / "vendor" / "onnxruntime-web"
N_REF = 1000  # reference images (the first FashionMNIST test images)
ATOL_RECON = 1e-5  # reconstructions, absolute
PORT_RTOL = 1e-9  # sidecar.js against score_with_sidecar on the same outputs
N_TIMED = 30
SITE_FILES = {
    "index.html",
    "js/model.js",
    "js/preprocess.js",
    "js/sidecar.js",
    "vendor/onnxruntime-web/ort.wasm.bundle.min.mjs",
    "vendor/onnxruntime-web/ort-wasm-simd-threaded.wasm",
    "model.onnx",
    "model.onnx.json",
}

# A "7" and a ring, drawn on the 280 x 280 canvas (the page rasterizes them with preprocess.js).
STROKES = [
    {"points": [[60, 60], [200, 60], [120, 230]], "width": 22, "ink": 1.0, "shape": "round"},
    {"points": [[200, 180], [240, 210], [220, 250], [180, 240], [200, 180]], "width": 12},
]

INDEX_HTML = """<!doctype html>
<html><head><meta charset="utf-8"><link rel="icon" href="data:,">
<title>hvaelab model (test)</title></head><body>
<script type="module">
import * as M from "./js/model.js";
import * as P from "./js/preprocess.js";
import * as S from "./js/sidecar.js";
window.M = M;
window.P = P;
window.S = S;
window.modulesLoaded = true;
</script></body></html>
"""

LOAD_JS = """
async () => {
  const t0 = performance.now();
  window.model = await M.loadModel("./");
  return {timings: model.timings, total: (performance.now() - t0) / 1000,
          sidecarSecondStage: model.sidecar.second_stage !== null};
}
"""

# Score each image (uint8 lists; a stroke list is rasterized in the page first) -> JSON-ready.
SCORE_JS = """
async (images) => {
  const plain = (o) => Object.fromEntries(Object.entries(o).map(([k, v]) => [k, Array.from(v)]));
  const out = [];
  for (const item of images) {
    const image = item.strokes ? P.strokesToImage(item.strokes) : Uint8Array.from(item.image);
    const {input, outputs, report} = await model.score(image);
    out.push({
      image: Array.from(image), input: Array.from(input), outputs: plain(outputs),
      report: {scores: plain(report.scores), pValues: plain(report.pValues),
               minP: Array.from(report.minP), decisive: report.decisive,
               threshold: report.threshold, isOod: report.isOod, voted: report.voted},
    });
  }
  return out;
}
"""

WARM_SESSION_JS = """
async () => {
  const bytes = new Uint8Array(await (await fetch("./model.onnx")).arrayBuffer());
  const t0 = performance.now();
  await M.ort.InferenceSession.create(bytes, {executionProviders: ["wasm"]});
  return (performance.now() - t0) / 1000;
}
"""

# sidecar.js on outputs given as lists (one input each), concatenated -> the verdict's numbers
PORT_JS = """
([outs, side]) => {
  const cat = (name) => Float32Array.from(outs.flatMap((o) => o[name]));
  const r = S.scoreWithSidecar({rec: cat("rec"), kl: cat("kl"), llr: cat("llr")}, side);
  return {decisive: r.decisive, isOod: r.isOod, minP: Array.from(r.minP)};
}
"""

TIME_JS = """
async ([image, n]) => {
  const img = Uint8Array.from(image);
  await model.score(img);  // warm
  const ms = [];
  const bin = [];
  for (let k = 0; k < n; k++) {
    const t0 = performance.now();
    await model.score(img);
    const t1 = performance.now();
    model.binarize(img);
    ms.push(t1 - t0);
    bin.push(performance.now() - t1);
  }
  return [ms, bin];
}
"""


def _site(folder: Path, datasets) -> Path:
    """The site folder: hvaelab/site copied, the exported model, a page importing model.js."""
    missing = [
        f
        for f in ("ort.wasm.bundle.min.mjs", "ort-wasm-simd-threaded.wasm")
        if not (VENDOR / f).is_file()
    ]
    assert not missing, (
        f"{missing} missing in {VENDOR}: run `python scripts/fetch_onnxruntime_web.py` "
        "(make test does)"
    )
    site = folder / "site"
    shutil.copytree(SITE, site)
    lm = load_model(REPO / "checkpoints" / "fashionmnist")
    assert getattr(lm.model, "second_stage", None) is not None, (
        "the shipped HVAE has a second stage"
    )
    images = datasets.images("fashionmnist")[:N_REF]
    meta = {"dataset": datasets.fashionmnist, "split": "test", "indices": f"first {N_REF}"}
    reference = mean_path_reference(lm.model, images, meta)
    info = {"name": "fashionmnist", "weights_sha256": lm.card["weights_sha256"]}
    export_onnx(lm.model, site / "model.onnx", reference, info)
    (site / "index.html").write_text(INDEX_HTML, encoding="utf-8")
    return site


@pytest.fixture(scope="module")
def served(tmp_path_factory, datasets, browser):
    site = _site(tmp_path_factory.mktemp("site-model"), datasets)
    server = StaticServer(site)
    context = browser.new_context()
    page = context.new_page()
    guard = PageGuard().attach(page)
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    try:
        page.goto(server.url + "index.html")
        page.wait_for_function("() => window.modulesLoaded === true", timeout=30_000)
        loaded = page.evaluate(LOAD_JS)
        assert loaded["sidecarSecondStage"]
        # what the page fetched: its own files, the runtime from the vendored folder
        paths = {url.removeprefix(server.url) for url in requested}
        assert paths == SITE_FILES, paths
        yield {"site": site, "server": server, "page": page, "guard": guard, "loaded": loaded}
    finally:
        server.stop()
        context.close()


def _images(datasets) -> list[tuple[str, dict, np.ndarray | None]]:
    """(name, what the page gets, the uint8 image Python scores: None for strokes)."""
    fashion = datasets.images("fashionmnist")
    mnist = datasets.images("mnist")
    noise = load_shipped_samples("fashionmnist")["noise-uniform"][0]
    out = [(f"fashionmnist test {i}", fashion[i]) for i in (0, 1, 2)]
    out += [(f"mnist test {i}", mnist[i]) for i in (0, 1, 2)]
    out += [("noise-uniform sample 0", noise)]
    items = [(name, {"image": img.reshape(-1).tolist()}, img) for name, img in out]
    items.append(("drawn strokes", {"strokes": STROKES}, None))
    return items


def _python(site: Path, images: np.ndarray) -> tuple[dict, dict, np.ndarray, dict]:
    """The bits, onnxruntime's outputs and score_with_sidecar's report of uint8 images."""
    side = read_sidecar(sidecar_path(site / "model.onnx"))
    seed = side["preprocessing"]["seed"]
    x = binarize_fixed(to_tensor(images), seed=seed).numpy().astype(np.float32)
    outputs = run_onnx(onnx_session(site / "model.onnx"), x)
    return side, outputs, x, score_with_sidecar(outputs, side)


def _stat_errors(got: dict, want: dict) -> dict[str, float]:
    """compare_with_torch's scales: |a - b| / max(|b|, 1) for rec, kl; LLR>k relative to the
    terms it is the difference of; reconstructions absolute."""
    rec, kl = want["rec"].astype(np.float64), want["kl"].astype(np.float64)
    scale = {
        "rec": np.maximum(np.abs(rec), 1.0),
        "kl": np.maximum(np.abs(kl), 1.0),
        "llr": np.abs(rec[:, :1]) + np.abs(rec[:, 1:]) + np.cumsum(np.abs(kl), 1),
        "reconstructions": 1.0,
    }
    return {
        name: float((np.abs(got[name] - want[name].astype(np.float64)) / scale[name]).max())
        for name in scale
    }


def _page_arrays(results: list[dict], want: dict) -> dict[str, np.ndarray]:
    return {
        name: np.stack([np.asarray(r["outputs"][name], np.float64) for r in results]).reshape(
            want[name].shape
        )
        for name in want
    }


def test_page_scores_like_python(served, datasets) -> None:
    page, site = served["page"], served["site"]
    items = _images(datasets)
    results = page.evaluate(SCORE_JS, [payload for _, payload, _ in items])
    assert len(results) == len(items)

    # the drawn image: preprocess.js's bytes are strokes_to_image's
    drawn = strokes_to_image(strokes_from_json(STROKES))
    assert results[-1]["image"] == drawn.reshape(-1).tolist()
    images = np.stack([img if img is not None else drawn for _, _, img in items])
    side, want, x, report = _python(site, images)
    names = [name for name, _, _ in items]

    # the graph's input: the fixed binarization, bit for bit
    for k, r in enumerate(results):
        assert r["input"] == x[k].reshape(-1).tolist(), f"{names[k]}: the binarized input differs"

    # ONNX Runtime Web against onnxruntime: the statistics and reconstructions
    got = _page_arrays(results, want)
    errors = _stat_errors(got, want)
    print(f"\nORT Web vs onnxruntime: {errors}")
    for name in ("rec", "kl", "llr"):
        assert errors[name] <= RTOL, f"{name}: {errors[name]:.2e} relative"
    assert errors["reconstructions"] <= ATOL_RECON, errors

    # the report: scores, p-values, verdict (each input against Python on Python's outputs)
    assert sorted(report["scores"]) == sorted(results[0]["report"]["scores"])
    assert SECOND_STAGE in report["scores"]
    stage_tol = second_stage_tolerance(want, side)
    # LLR>k: relative to the terms it is the difference of, as the llr output above
    llr_terms = llr_scale(want["rec"], want["kl"])
    llr_columns = side["outputs"]["llr"]["columns"]
    stage_err = []
    for k, r in enumerate(results):
        rep = r["report"]
        for s, want_s in report["scores"].items():
            a, b = rep["scores"][s][0], float(want_s[k])
            if s in llr_columns:
                tol = RTOL * llr_terms[k, llr_columns.index(s)]
            else:  # the second stage, a function of the statistics: their tolerance, propagated
                assert s == SECOND_STAGE
                stage_err.append((abs(a - b) / max(abs(b), 1.0), abs(a - b), stage_tol[k]))
                tol = max(RTOL * max(abs(b), 1.0), stage_tol[k])
            assert abs(a - b) <= tol, f"{names[k]} {s}: {a} vs {b} (tolerance {tol:.2e})"
            pa, pb = rep["pValues"][s][0], float(report["p_values"][s][k])
            assert abs(pa - pb) <= P_ATOL, f"{names[k]} p({s}): {pa} vs {pb}"
        assert abs(rep["minP"][0] - float(report["min_p"][k])) <= P_ATOL, names[k]
        assert rep["decisive"] == [report["decisive"][k]], f"{names[k]}: decisive score"
        assert rep["isOod"] == [bool(report["is_ood"][k])], f"{names[k]}: verdict"
        assert rep["threshold"] == report["threshold"]
        assert rep["voted"] == side["verdict"]["scores"]
    print(
        "second stage, ORT Web vs onnxruntime: largest relative difference "
        f"{max(e[0] for e in stage_err):.2e}; largest |difference| / propagated tolerance "
        f"{max(e[1] / e[2] for e in stage_err):.2f}"
    )
    # the images are not all alike to the detector: some in-distribution, some not
    verdicts = [bool(v) for v in report["is_ood"]]
    assert any(verdicts) and not all(verdicts), dict(zip(names, verdicts, strict=True))

    # sidecar.js alone: on the page's outputs, as score_with_sidecar on the same outputs
    mine = score_with_sidecar({n: got[n].astype(np.float32) for n in got}, side)
    for k, r in enumerate(results):
        rep = r["report"]
        for s, want_s in mine["scores"].items():
            a, b = rep["scores"][s][0], float(want_s[k])
            assert abs(a - b) <= PORT_RTOL * max(abs(b), 1.0), f"port, {names[k]} {s}: {a} vs {b}"
            assert rep["pValues"][s][0] == float(mine["p_values"][s][k]), f"port p, {names[k]}"
        assert rep["minP"][0] == float(mine["min_p"][k])
        assert rep["decisive"] == [mine["decisive"][k]]
        assert rep["isOod"] == [bool(mine["is_ood"][k])]

    # ... and with the paper's rule (every LLR>k votes: the decisive one is an argmin over L)
    llr_side = {**side, "verdict": {**side["verdict"], "scores": llr_columns}}
    page_llr = page.evaluate(PORT_JS, [[r["outputs"] for r in results], llr_side])
    mine = score_with_sidecar({n: got[n].astype(np.float32) for n in got}, llr_side)
    assert page_llr["decisive"] == mine["decisive"]
    assert page_llr["isOod"] == [bool(v) for v in mine["is_ood"]]
    assert page_llr["minP"] == [float(v) for v in mine["min_p"]]
    assert len(set(mine["decisive"])) > 1, mine["decisive"]  # not one column every time

    served["guard"].assert_clean()
    served["results"] = results


def test_page_scores_without_the_server_and_timings(served, datasets) -> None:
    page = served["page"]
    items = _images(datasets)
    before = served.get("results") or page.evaluate(SCORE_JS, [p for _, p, _ in items])
    warm = page.evaluate(WARM_SESSION_JS)  # (fetches the graph again: before the server stops)
    served["server"].stop()
    after = page.evaluate(SCORE_JS, [p for _, p, _ in items])
    assert after == before, "the page scores differently once the server is gone"

    ms, binarize = page.evaluate(TIME_JS, [items[0][2].reshape(-1).tolist(), N_TIMED])
    t = served["loaded"]["timings"]
    print(
        f"\nloadModel, cold: fetch {t['fetch']:.2f} s, session {t['session']:.2f} s (wasm "
        f"instantiated, graph loaded); a second session, warm: {warm:.2f} s; "
        f"one score ({N_TIMED} runs, 1 thread): median {statistics.median(ms):.1f} ms, "
        f"min {min(ms):.1f} ms, max {max(ms):.1f} ms (of which the binarization: median "
        f"{statistics.median(binarize):.1f} ms)"
    )
    served["guard"].assert_clean()

"""The lesson site's preprocessing in JavaScript equals the Python's, bit for bit, in Chromium.

``hvaelab/site/js/preprocess.js`` is imported as an ES module into a blank page (no server, no
network) and given the same inputs as :mod:`hvaelab.data.strokes` and
:func:`hvaelab.data.binarize.binarize_fixed`:

* random stroke sets (fixed seed: both brushes, fractional, tiny, 0 and 1 inks, fractional and
  tiny widths, points on the half-pixel grid where brush edges fall exactly on pixel centres,
  points off the canvas, single points, overlaps, uint8 and float base images): the 28x28 bytes
  must equal :func:`~hvaelab.data.strokes.strokes_to_image`'s and the float32 raster
  :func:`~hvaelab.data.strokes.rasterize`'s (a checksum of its bits);
* cases built so that ``255 v`` is exactly ``k + 0.5`` with k even (a ``Math.round`` port gives
  k + 1) and one where only numpy's summation order keeps a tiny ink's contribution;
* the float64 block means of random float32 rasters, bit for bit (numpy's pairwise order);
* the fixed binarization of all those images, the shipped drawings and dataset samples, for
  three seeds, and of raw float32 probabilities (-0.0 included);
* the errors the module throws on invalid strokes and bases.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from harness import PageGuard

from hvaelab.data.binarize import binarize_fixed, to_tensor
from hvaelab.data.errors import InvalidInputError
from hvaelab.data.strokes import CANVAS_PX, rasterize, strokes_from_json, strokes_to_image

pytestmark = pytest.mark.e2e

MODULE = Path(__file__).resolve().parents[2] / "hvaelab" / "site" / "js" / "preprocess.js"
SEEDS = (0, 12345, -1)
N_RANDOM = 60

# Imports the module from a blob: URL (the page has no origin to serve it from) as window.P,
# with helpers that turn JSON-friendly inputs into the typed arrays the module takes.
LOAD_JS = """
async (source) => {
  const url = URL.createObjectURL(new Blob([source], {type: "text/javascript"}));
  window.P = await import(url);
  const bits = (u32) => new Float32Array(Uint32Array.from(u32).buffer);
  window.baseOf = (b) => b === null ? null
    : b.dtype === "uint8" ? Uint8Array.from(b.values) : Float64Array.from(b.values);
  window.checksum = (raster) => {
    const w = new Uint32Array(raster.buffer);
    let h = 0;
    for (let k = 0; k < w.length; k++) h = (h + Math.imul(w[k], 2 * k + 1)) >>> 0;
    return h;
  };
  window.hex = (arr) => Array.from(new Uint8Array(arr.buffer),
    (b) => b.toString(16).padStart(2, "0")).join("");
  window.f32 = bits;
  return Object.keys(window.P).sort();
}
"""

IMAGES_JS = """
(payload) => JSON.parse(payload).map(({strokes, base}) => {
  const raster = P.rasterize(strokes, baseOf(base));
  return {image: Array.from(P.toModelImage(raster)), checksum: checksum(raster),
          direct: Array.from(P.strokesToImage(strokes, baseOf(base)))};
})
"""

BITS_JS = """
([images, raw, seeds]) => {
  const seed = (s) => BigInt(s);
  return {
    images: images.map((img) => seeds.map((s) =>
      Array.from(P.binarizeFixed(P.toProbabilities(Uint8Array.from(img)), seed(s))))),
    raw: raw.map((u32) => seeds.map((s) => Array.from(P.binarizeFixed(f32(u32), seed(s))))),
    numberSeed: Array.from(P.binarizeFixed(P.toProbabilities(Uint8Array.from(images[0])), 12345)),
  };
}
"""

MEANS_JS = "(rasters) => rasters.map((u32) => hex(P.blockMeans(f32(u32))))"

ERRORS_JS = """
(cases) => cases.map(([strokes, base]) => {
  try { P.strokesToImage(strokes, baseOf(base)); return null; }
  catch (e) { return e instanceof Error ? e.message : "not an Error: " + String(e); }
})
"""


def _checksum(raster: np.ndarray) -> int:
    words = raster.astype(np.float32).reshape(-1).view(np.uint32).astype(np.uint64)
    weights = 2 * np.arange(words.size, dtype=np.uint64) + 1
    with np.errstate(over="ignore"):
        return int((words * weights).sum(dtype=np.uint64) % np.uint64(2**32))


def _ink(rng: np.random.Generator) -> float:
    pick = int(rng.integers(10))
    if pick < 3:
        return float(rng.random())
    return [0.0, 1.0, 0.5, 0.1, 0.3, 1e-15, 0.7][pick - 3]


def _width(rng: np.random.Generator) -> float:
    pick = rng.integers(6)
    if pick == 0:
        return float(rng.uniform(0.05, 80.0))
    if pick == 1:
        return float(rng.uniform(0.01, 0.6))  # tiny: may cover no pixel centre at all
    if pick == 2:
        return float(rng.integers(1, 41))  # integer widths: edges on pixel centres
    if pick == 3:
        return float(2 * rng.integers(1, 16))  # even: r^2 an integer, as grid distances are
    if pick == 4:
        return float(rng.choice([10.0, 20.0, 60.0, 280.0, 3.3]))
    return float(rng.integers(1, 20) + 0.5)


def _point(rng: np.random.Generator) -> list[float]:
    pick = rng.integers(4)
    if pick == 0:  # anywhere, a little off the canvas included
        return [float(v) for v in rng.uniform(-40.0, CANVAS_PX + 40.0, 2)]
    if pick == 1:  # on the half-pixel grid: distances to pixel centres are exact
        return [float(v) / 2 for v in rng.integers(-20, 2 * CANVAS_PX + 20, 2)]
    if pick == 2:  # integers
        return [float(v) for v in rng.integers(0, CANVAS_PX + 1, 2)]
    return [float(v) for v in rng.uniform(-5000.0, 5000.0, 2)]  # mostly far off the canvas


def _random_set(rng: np.random.Generator) -> dict:
    strokes = []
    for _ in range(int(rng.integers(1, 9))):
        n = 1 if rng.random() < 0.3 else int(rng.integers(2, 7))
        points = [_point(rng)]
        for _ in range(n - 1):  # a wandering polyline, its steps on the half-pixel grid or not
            step = rng.normal(0.0, 30.0, 2)
            if rng.random() < 0.5:
                step = np.round(2 * step) / 2
            points.append([float(v) for v in np.asarray(points[-1]) + step])
        strokes.append(
            {
                "points": points,
                "width": _width(rng),
                "ink": _ink(rng),
                "shape": str(rng.choice(["round", "square"])),
            }
        )
    pick = rng.integers(3)
    base = None
    if pick == 1:
        base = {"dtype": "uint8", "values": rng.integers(0, 256, 28 * 28).tolist()}
    elif pick == 2:
        values = rng.random(28 * 28) * rng.choice([1.0, 1e-9, 0.0], 28 * 28)
        base = {"dtype": "float", "values": values.tolist()}
    return {"strokes": strokes, "base": base}


def _row(y: float, ink: float, width: float, x0: float = 0.5, x1: float = 9.5) -> dict:
    """A square stroke along the pixel centres of row(s) around y, columns x0..x1."""
    return {"points": [[x0, y], [x1, y]], "width": width, "ink": ink, "shape": "square"}


# 255 * mean exactly k + 0.5 with k even in block (0, 0): 30 or 70 pixels of ink 1, 60 of 0.5,
# 40 of 0.75 (-> 76, 178, 76, 76; Math.round gives 77, 179, 77, 77).
HALF_CASES = [
    {"strokes": [_row(1.5, 1.0, 3.0)], "base": None},  # rows 0..2 (and 3 pixels of block (0, 1))
    {"strokes": [_row(3.5, 1.0, 7.0)], "base": None},  # rows 0..6
    {"strokes": [_row(3.0, 0.5, 5.0)], "base": None},  # rows 0..5 at 0.5 (edges on centres)
    {"strokes": [_row(1.5, 0.75, 4.0)], "base": None},  # rows 0..3 at 0.75 (edge at 3.5: <=)
    # the same block in the middle of the canvas, over a black uint8 base, round brushes around
    {
        "strokes": [
            {"points": [[40.0, 40.0]], "width": 30.0, "ink": 0.2, "shape": "round"},
            _row(131.5, 1.0, 3.0, 130.5, 139.5),
        ],
        "base": {"dtype": "uint8", "values": [0] * 784},
    },
]
# Numpy sums each block row by row (a pairwise sum of the row's 10 pixels) from 0.0: the ten
# pixels of ink 1e-15 in row 3 add up to 1e-14 before meeting the 30 of rows 0..2, which keeps
# them (76.50000000000003 -> 77). Summed one pixel at a time, or in float32, they vanish (76).
ORDER_CASE = {"strokes": [_row(1.5, 1.0, 3.0), _row(3.5, 1e-15, 1.0)], "base": None}
# Brush edges exactly on pixel centres: a round disc of radius 5 centred on a pixel centre
# (12 centres at distance exactly 5) and a square of half-side 2.
EDGE_CASES = [
    {"strokes": [{"points": [[140.5, 140.5]], "width": 10.0, "shape": "round"}], "base": None},
    {"strokes": [{"points": [[100.5, 60.5]], "width": 4.0, "shape": "square"}], "base": None},
    {
        "strokes": [
            {"points": [[20.5, 20.5], [60.5, 50.5]], "width": 10.0, "ink": 0.3},
            {"points": [[20.5, 20.5], [60.5, 50.5]], "width": 6.0, "ink": 0.1, "shape": "square"},
            {"points": [[40.5, 35.5]], "width": 8.0, "ink": 0.0},  # erases
        ],
        "base": None,
    },
]


def _python_image(case: dict) -> tuple[np.ndarray, int]:
    base = case["base"]
    if base is not None:
        dtype = np.uint8 if base["dtype"] == "uint8" else np.float64
        base = np.asarray(base["values"], dtype=dtype).reshape(28, 28)
    strokes = strokes_from_json(case["strokes"])
    image = strokes_to_image(strokes, base=base)
    return image, _checksum(rasterize(strokes, base=base))


def _bits(image: np.ndarray, seed: int) -> list[int]:
    x = to_tensor(image[None])
    return binarize_fixed(x, seed=seed).reshape(-1).to(torch.uint8).tolist()


def _mean_fragile(case: dict, image: np.ndarray) -> tuple[bool, bool]:
    """Whether the case has a block with 255 * mean exactly k + 0.5, k even (Math.round gives
    k + 1), and whether summing each block's pixels one by one in float64 changes a byte."""
    strokes, base = strokes_from_json(case["strokes"]), case["base"]
    if base is not None:
        dtype = np.uint8 if base["dtype"] == "uint8" else np.float64
        base = np.asarray(base["values"], dtype=dtype).reshape(28, 28)
    blocks = rasterize(strokes, base=base).astype(np.float64).reshape(28, 10, 28, 10)
    scaled = 255.0 * blocks.mean(axis=(1, 3))
    half_even = bool(np.any((scaled - np.floor(scaled) == 0.5) & (np.floor(scaled) % 2 == 0)))
    naive = np.zeros((28, 28))
    for i in range(10):
        for j in range(10):
            naive += blocks[:, i, :, j]
    naive_bytes = np.clip(np.rint(255.0 * (naive / 100)), 0, 255).astype(np.uint8)
    return half_even, bool(np.any(naive_bytes != image))


@pytest.fixture(scope="module")
def page(browser):
    context = browser.new_context()
    page = context.new_page()
    guard = PageGuard().attach(page)
    page.set_content("<!doctype html><html><head><meta charset='utf-8'></head><body></body></html>")
    names = page.evaluate(LOAD_JS, MODULE.read_text(encoding="utf-8"))
    for name in ("binarizeFixed", "rasterize", "strokesToImage", "toModelImage", "toProbabilities"):
        assert name in names, f"preprocess.js does not export {name} (it exports {names})"
    try:
        yield page
    finally:
        assert not guard.problems(), guard.problems()
        context.close()


def test_strokes_images_and_bits_equal_python(page) -> None:
    rng = np.random.default_rng(41)
    random_sets = [_random_set(rng) for _ in range(N_RANDOM)]
    built = HALF_CASES + [ORDER_CASE] + EDGE_CASES
    cases = built + random_sets
    expected = [_python_image(c) for c in cases]

    # The built cases do what they are built for (else they would prove nothing).
    for case, (image, _) in zip(HALF_CASES, expected[: len(HALF_CASES)], strict=True):
        assert _mean_fragile(case, image)[0], f"no exact even half in {case}"
    assert _mean_fragile(ORDER_CASE, expected[len(HALF_CASES)][0])[1]
    assert expected[len(HALF_CASES)][0][0, 0] == 77

    got = page.evaluate(IMAGES_JS, json.dumps(cases))
    assert len(got) == len(cases)
    for k, (case, (image, checksum), js) in enumerate(zip(cases, expected, got, strict=True)):
        js_image = np.asarray(js["image"], dtype=np.uint8).reshape(28, 28)
        diff = np.argwhere(js_image != image)
        assert diff.size == 0, (
            f"case {k}: {len(diff)} pixels differ, first {diff[:5].tolist()}: JS "
            f"{js_image[tuple(diff[0])]} vs Python {image[tuple(diff[0])]}\n"
            f"{json.dumps(case)[:2000]}"
        )
        assert js["direct"] == js["image"], f"case {k}: strokesToImage != toModelImage(rasterize)"
        assert js["checksum"] == checksum, f"case {k}: float32 rasters differ\n{json.dumps(case)}"
    # the random sets are not all black, all one level or all alike
    levels = {int(v) for image, _ in expected[len(built) :] for v in np.unique(image)}
    assert len(levels) > 100

    # Fixed binarization: of these images, shipped drawings, dataset samples; three seeds.
    from hvaelab.app.resources import load_shipped_samples
    from hvaelab.data.drawings import drawing_names, load_drawing

    samples = load_shipped_samples("fashionmnist")
    images = [image for image, _ in expected]
    images += [load_drawing(name).image for name in drawing_names()]
    for name in ("fashionmnist", "mnist", "fashionmnist-inverted", "noise-uniform", "constant"):
        images += list(samples[name][:3])
    raw = [
        np.array([-0.0, 0.0, 1.0, 0.5, 1e-30, 0.99999994] * 10, dtype=np.float32),
        rng.random(784, dtype=np.float32),
    ]
    got = page.evaluate(
        BITS_JS,
        [
            [img.reshape(-1).tolist() for img in images],
            [r.view(np.uint32).tolist() for r in raw],
            [str(s) for s in SEEDS],
        ],
    )
    for k, img in enumerate(images):
        for s, bits in zip(SEEDS, got["images"][k], strict=True):
            assert bits == _bits(img, s), f"image {k}, seed {s}: binarized bits differ"
    for k, r in enumerate(raw):
        for s, bits in zip(SEEDS, got["raw"][k], strict=True):
            want = binarize_fixed(torch.from_numpy(r)[None], seed=s).reshape(-1).to(torch.uint8)
            assert bits == want.tolist(), f"raw probabilities {k}, seed {s}: bits differ"
    assert got["numberSeed"] == _bits(images[0], 12345)
    # the bits depend on the seed (uniform random probabilities: about half differ)
    assert 200 < sum(a != b for a, b in zip(*got["raw"][1][:2], strict=True)) < 600


def test_block_means_follow_numpys_summation(page) -> None:
    rng = np.random.default_rng(7)
    rasters = [
        rng.random((280, 280), dtype=np.float32),
        (rng.random((280, 280)) * rng.choice([1.0, 1e-8, 1e-16], (280, 280))).astype(np.float32),
    ]
    got = page.evaluate(MEANS_JS, [r.reshape(-1).view(np.uint32).tolist() for r in rasters])
    for k, r in enumerate(rasters):
        want = r.astype(np.float64).reshape(28, 10, 28, 10).mean(axis=(1, 3))
        js = np.frombuffer(bytes.fromhex(got[k]), dtype="<f8").reshape(28, 28)
        diff = np.argwhere(js != want)
        assert diff.size == 0, f"raster {k}: {len(diff)} block means differ, first {diff[:3]}"


ERROR_CASES = [
    ([{"points": [[1.0, 2.0]], "ink": 1.5}], None, "strokes[0]: Stroke ink: must be in [0, 1]"),
    ([{"points": []}], None, "at least one point"),
    ([{"points": [[1.0, 2.0]], "width": 0}], None, "Stroke width: must be in (0, 280]"),
    ([{"points": [[1.0, 2.0]], "shape": "oval"}], None, "Stroke shape: must be one of"),
    ([{"points": [[1.0, 2.0]], "colour": 1}], None, "unknown field(s)"),
    ([{"points": [[2e6, 2.0]]}], None, "coordinates must be within"),
    ([], {"dtype": "float", "values": [1.5] * 784}, "float images must be in [0, 1]"),
]


def test_invalid_input_throws_like_python(page) -> None:
    messages = page.evaluate(ERRORS_JS, [[s, b] for s, b, _ in ERROR_CASES])
    for (strokes, base, needle), message in zip(ERROR_CASES, messages, strict=True):
        assert message is not None and needle in message, (strokes, message)
        with pytest.raises(InvalidInputError):  # the Python refuses the same input
            _python_image({"strokes": strokes, "base": base})

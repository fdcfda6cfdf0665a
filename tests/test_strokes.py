"""Strokes on a canvas -> the 28x28 model image (hvaelab.data.strokes)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hvaelab.data.errors import InvalidInputError
from hvaelab.data.strokes import (
    CANVAS_PX,
    GRID,
    MAX_POINTS,
    Stroke,
    image_to_strokes,
    quantize,
    rasterize,
    strokes_from_json,
    strokes_to_image,
    to_model_image,
)

# --- slow, per-pixel references (independent of the vectorised code) ---------------------------


def _round_covers(x, y, stroke):
    r = stroke.width / 2.0
    pts = stroke.points
    segs = list(zip(pts[:-1], pts[1:], strict=True)) if len(pts) > 1 else [(pts[0], pts[0])]
    for (ax, ay), (bx, by) in segs:
        dx, dy = bx - ax, by - ay
        L2 = dx * dx + dy * dy
        t = 0.0 if L2 == 0.0 else min(max(((x - ax) * dx + (y - ay) * dy) / L2, 0.0), 1.0)
        ex, ey = x - (ax + t * dx), y - (ay + t * dy)
        if ex * ex + ey * ey <= r * r:
            return True
    return False


def _t_range(c, a, d, h):
    if d == 0.0:
        return (-math.inf, math.inf) if abs(c - a) <= h else (math.inf, -math.inf)
    t1, t2 = (c - a - h) / d, (c - a + h) / d
    return (min(t1, t2), max(t1, t2))


def _square_covers(x, y, stroke):
    h = stroke.width / 2.0
    pts = stroke.points
    segs = list(zip(pts[:-1], pts[1:], strict=True)) if len(pts) > 1 else [(pts[0], pts[0])]
    for (ax, ay), (bx, by) in segs:
        lox, hix = _t_range(x, ax, bx - ax, h)
        loy, hiy = _t_range(y, ay, by - ay, h)
        if max(lox, loy, 0.0) <= min(hix, hiy, 1.0):
            return True
    return False


def _slow_rasterize(strokes, size):
    out = np.zeros((size, size), dtype=np.float32)
    for s in strokes:
        covers = _round_covers if s.shape == "round" else _square_covers
        for i in range(size):
            for j in range(size):
                if covers(j + 0.5, i + 0.5, s):
                    out[i, j] = s.ink
    return out


def _seven() -> np.ndarray:
    img = np.zeros((GRID, GRID), dtype=np.uint8)
    img[5:8, 6:22] = 255  # the bar
    img[4, 6:22] = 120  # antialiased top edge
    for i in range(8, 24):  # the diagonal
        j = 21 - (i - 8) // 2
        img[i, j - 1 : j + 2] = 255
        img[i, j - 2] = 90
        img[i, j + 2] = 40
    return img


# --- the round brush -----------------------------------------------------------------------------


def test_horizontal_round_stroke_covers_the_band():
    img = strokes_to_image([Stroke(points=((45.0, 145.0), (235.0, 145.0)), width=20.0)])
    # canvas rows 135..154 are covered (centres 135.5..154.5 are within 10 of y=145)
    assert img[14, 10] == 255  # fully inside the band
    assert img[13, 10] == 128  # rows 135..139 of 130..139: half -> rint(127.5) = 128
    assert img[15, 10] == 128  # rows 150..154 of 150..159
    assert img[12, 10] == 0 and img[16, 10] == 0
    assert img[0, 0] == 0 and img[20, 10] == 0 and img[14, 0] == 0 and img[14, 27] == 0
    assert (img[14, 4:24] == 255).all()  # canvas columns 40..239 lie within 10 of the segment
    # the round caps reach canvas columns 35..39 (and 240..244): at |dx| = 9.5 only the rows
    # with |dy| <= 2.5 (6 of 10), at |dx| = 5.5..8.5 all 10 -> 46 of 100 px -> rint(117.3)
    assert img[14, 3] == 117 and img[14, 24] == 117
    assert img[14, 2] == 0 and img[14, 25] == 0


def test_single_point_disc_at_a_model_pixel_corner():
    n = sum(
        1
        for i in range(CANVAS_PX)
        for j in range(CANVAS_PX)
        if (j + 0.5 - 140.0) ** 2 + (i + 0.5 - 140.0) ** 2 <= 100.0
    )
    assert abs(n - math.pi * 100) < 10
    raster = rasterize([Stroke(points=((140.0, 140.0),), width=20.0)])
    assert raster.sum() == n
    img = to_model_image(raster)
    assert n % 4 == 0
    expected = round(255 * (n // 4) / 100)
    assert img[13, 13] == img[13, 14] == img[14, 13] == img[14, 14] == expected
    mask = np.ones_like(img, dtype=bool)
    mask[13:15, 13:15] = False
    assert (img[mask] == 0).all()
    assert abs(int(img[13:15, 13:15].sum()) * 100 / 255 - n) < 4


@pytest.mark.parametrize("shape", ["round", "square"])
def test_rasterize_matches_a_per_pixel_reference(shape):
    rng = np.random.default_rng(7)
    size = 60
    strokes = []
    for k in range(4):
        n = int(rng.integers(1, 6))
        pts = tuple((float(x), float(y)) for x, y in rng.uniform(-10, size + 10, size=(n, 2)))
        strokes.append(
            Stroke(
                points=pts,
                width=float(rng.uniform(1.0, 15.0)),
                ink=float(rng.uniform(0, 1)) if k else 1.0,
                shape=shape,
            )
        )
    # vertical, horizontal and zero-length segments, and integer/half-integer coordinates
    strokes.append(
        Stroke(
            points=((20.0, 5.0), (20.0, 40.0), (50.0, 40.0), (50.0, 40.0)), width=7.0, shape=shape
        )
    )
    strokes.append(Stroke(points=((30.5, 30.5),), width=10.0, ink=0.25, shape=shape))
    strokes.append(Stroke(points=((-50.0, -50.0), (-40.0, -45.0)), width=5.0, shape=shape))
    fast = rasterize(strokes, size=size)
    slow = _slow_rasterize(strokes, size)
    np.testing.assert_array_equal(fast, slow)
    assert fast.max() > 0


def test_square_brush_is_an_axis_aligned_square():
    raster = rasterize([Stroke(points=((100.0, 100.0),), width=20.0, shape="square")])
    ys, xs = np.nonzero(raster)
    assert (ys.min(), ys.max(), xs.min(), xs.max()) == (90, 109, 90, 109)
    assert raster.sum() == 400
    # a diagonal drag sweeps a hexagon: corners (90, 110) and (130, 90) stay empty
    raster = rasterize(
        [Stroke(points=((100.0, 100.0), (120.0, 120.0)), width=20.0, shape="square")]
    )
    assert raster[90, 90] == 1 and raster[129, 129] == 1
    assert raster[129, 90] == 0 and raster[90, 129] == 0
    assert raster[115, 95] == 1  # within the swept band


# --- the square-brush replay ---------------------------------------------------------------------


@pytest.mark.parametrize("levels", [2, 4])
def test_replay_of_images_gives_their_quantization_exactly(levels):
    rng = np.random.default_rng(levels)
    images = [rng.integers(0, 256, size=(GRID, GRID), dtype=np.uint8) for _ in range(3)]
    images.append(_seven())
    for img in images:
        strokes = image_to_strokes(img, levels, "square")
        assert all(s.shape == "square" and s.width == 10.0 for s in strokes)
        np.testing.assert_array_equal(strokes_to_image(strokes), quantize(img, levels))


def test_quantize_values():
    img = np.array([0, 42, 43, 127, 128, 212, 213, 255] * 3 + [0] * 4, dtype=np.uint8)
    img = np.tile(img, (GRID, 1))
    assert quantize(img, 4)[0, :8].tolist() == [0, 0, 85, 85, 170, 170, 255, 255]
    assert quantize(img, 2)[0, :8].tolist() == [0, 0, 0, 0, 255, 255, 255, 255]
    assert set(np.unique(quantize(img, 256)).tolist()) == set(img[0].tolist())


def test_image_to_strokes_runs():
    img = np.zeros((GRID, GRID), dtype=np.uint8)
    img[3, 2:6] = 255
    img[3, 6] = 100
    strokes = image_to_strokes(img, levels=4, shape="round")
    assert [s.points for s in strokes] == [
        ((25.0, 35.0), (55.0, 35.0)),
        ((65.0, 35.0), (65.0, 35.0)),
    ]
    assert [s.ink for s in strokes] == [1.0, 1 / 3]
    assert all(s.shape == "round" for s in strokes)
    assert image_to_strokes(np.zeros((GRID, GRID), dtype=np.uint8)) == []


# --- painting order and the base image -----------------------------------------------------------


def test_later_strokes_paint_over_earlier_ones():
    line = ((45.0, 145.0), (235.0, 145.0))
    img = strokes_to_image(
        [Stroke(points=line), Stroke(points=((140.0, 145.0),), width=40.0, ink=0.0)]
    )
    assert img[14, 14] == 0  # erased
    assert img[14, 6] == 255  # untouched part of the line
    half = strokes_to_image([Stroke(points=line), Stroke(points=line, ink=0.5)])
    assert half[14, 10] == 128  # opaque, not max(1, 0.5)
    under = strokes_to_image([Stroke(points=line, ink=0.5), Stroke(points=line)])
    assert under[14, 10] == 255


def test_base_is_upsampled_and_preserved():
    base = np.random.default_rng(0).integers(0, 256, size=(GRID, GRID), dtype=np.uint8)
    np.testing.assert_array_equal(strokes_to_image([], base), base)
    raster = rasterize([], base)
    assert raster.dtype == np.float32 and raster.shape == (CANVAS_PX, CANVAS_PX)
    assert raster[37, 52] == np.float32(base[3, 5]) / np.float32(255)
    img = strokes_to_image([Stroke(points=((5.0, 5.0),), width=10.0, shape="square")], base)
    assert img[0, 0] == 255
    np.testing.assert_array_equal(img.ravel()[1:], base.ravel()[1:])
    fbase = base.astype(np.float64) / 255.0
    np.testing.assert_array_equal(strokes_to_image([], fbase), base)
    assert rasterize([], base, size=56).shape == (56, 56)


@pytest.mark.parametrize(
    "base",
    [
        np.zeros((27, 28), dtype=np.uint8),
        np.zeros((1, 28, 28), dtype=np.uint8),
        np.full((28, 28), np.nan),
        np.full((28, 28), 1.5),
        np.zeros((28, 28), dtype=np.int32),
        [[0] * 28] * 28,
    ],
)
def test_bad_base_raises(base):
    with pytest.raises(InvalidInputError, match="base"):
        rasterize([], base)


def test_size_must_be_a_multiple_of_the_grid_with_a_base():
    with pytest.raises(ValueError, match="multiple"):
        rasterize([], np.zeros((28, 28), dtype=np.uint8), size=100)
    assert rasterize([Stroke(points=((5.0, 5.0),))], size=100).shape == (100, 100)
    with pytest.raises(ValueError):
        to_model_image(np.zeros((100, 100)))
    with pytest.raises(ValueError):
        to_model_image(np.zeros((280, 140)))


# --- validation ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"points": ((math.nan, 1.0),)}, "points"),
        ({"points": ((1.0, math.inf),)}, "points"),
        ({"points": ()}, "points"),
        ({"points": ((1.0, 2.0, 3.0),)}, "points"),
        ({"points": ((1.0, 2.0),) * (MAX_POINTS + 1)}, "points"),
        ({"points": ((1.0, 2.0),), "ink": 1.5}, "ink"),
        ({"points": ((1.0, 2.0),), "ink": -0.1}, "ink"),
        ({"points": ((1.0, 2.0),), "ink": math.nan}, "ink"),
        ({"points": ((1.0, 2.0),), "width": 0.0}, "width"),
        ({"points": ((1.0, 2.0),), "width": 281.0}, "width"),
        ({"points": ((1.0, 2.0),), "width": True}, "width"),
        ({"points": ((1.0, 2.0),), "shape": "star"}, "shape"),
    ],
)
def test_invalid_strokes_raise(kwargs, field):
    with pytest.raises(InvalidInputError, match=field):
        Stroke(**kwargs)


@pytest.mark.parametrize(
    ("d", "field"),
    [
        ("points", "Stroke"),
        ({"width": 3}, "points"),
        ({"points": [[1]]}, "points"),
        ({"points": [[1, "2"]]}, "points"),
        ({"points": [[True, 2]]}, "points"),
        ({"points": "12"}, "points"),
        ({"points": [[1, 2]], "ink": True}, "ink"),
        ({"points": [[1, 2]], "width": "20"}, "width"),
        ({"points": [[1, 2]], "colour": "red"}, "colour"),
        (True, "Stroke"),
    ],
)
def test_from_dict_rejects_garbage(d, field):
    with pytest.raises(InvalidInputError, match=field):
        Stroke.from_dict(d)


def test_dict_round_trip_and_json():
    s = Stroke(points=((1.5, 2.0), (300.0, -4.0)), width=3.0, ink=0.25, shape="square")
    assert Stroke.from_dict(s.to_dict()) == s
    d = Stroke.from_dict({"points": [[1, 2]]})
    assert (d.width, d.ink, d.shape, d.points) == (20.0, 1.0, "round", ((1.0, 2.0),))
    strokes = strokes_from_json([s.to_dict(), {"points": [[10, 20], [30, 40]]}])
    assert strokes[0] == s and strokes[1].points == ((10.0, 20.0), (30.0, 40.0))
    assert strokes_from_json('[{"points": [[1, 2]]}]')[0].points == ((1.0, 2.0),)
    assert strokes_from_json([]) == []
    with pytest.raises(InvalidInputError, match=r"strokes\[1\].*ink"):
        strokes_from_json([s.to_dict(), {"points": [[1, 2]], "ink": 2}])
    with pytest.raises(InvalidInputError, match="strokes"):
        strokes_from_json({"points": [[1, 2]]})
    with pytest.raises(InvalidInputError, match="strokes"):
        rasterize([{"points": [[1, 2]]}])


def test_long_round_stroke_rasterizes():
    t = np.linspace(0, 2 * np.pi, 300)
    pts = tuple(
        zip((140 + 100 * np.cos(t)).tolist(), (140 + 100 * np.sin(t)).tolist(), strict=True)
    )
    img = strokes_to_image([Stroke(points=pts, width=20.0)])
    assert img[14, 24] == 255 and img[14, 14] == 0 and img[4, 14] == 255

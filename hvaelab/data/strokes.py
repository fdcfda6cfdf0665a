"""From strokes drawn on a canvas to the 28x28 grey image a model sees.

The preprocessing, exactly:

* The canvas is ``CANVAS_PX = 280`` logical pixels square: 10 canvas px per model pixel. Like
  MNIST it is white ink on black: 0 = black background, 1 = white ink.
* A stroke is a polyline of points ``(x, y)`` in canvas px (x = column, y = row, the canvas
  spans 0..280 on both axes; points may lie outside it, what falls off the canvas is clipped),
  a brush ``width``, an ``ink`` level in [0, 1] and a brush ``shape``:

  - ``"round"``: canvas pixel (row i, column j) is covered when its centre
    ``(x = j + 0.5, y = i + 0.5)`` is at Euclidean distance <= width / 2 from the polyline (the
    union of its segments; a single point is a disc);
  - ``"square"``: an axis-aligned square of side ``width`` dragged along the polyline: the
    centre is covered when for some t in [0, 1] on some segment ``A + t (B - A)`` both
    ``|x - x(t)| <= width / 2`` and ``|y - y(t)| <= width / 2``.

* Strokes are painted in order on a 280x280 float32 raster in [0, 1] (black, or the
  nearest-neighbour upsampled ``base`` image), each one opaquely: every pixel it covers is set to
  its ink level, whatever was below (ink 0 erases).
* The 28x28 image is the area average of each 10x10 block (grey levels in [0, 1]), stored as
  uint8 ``= rint(255 * v)`` (numpy's rint: halves round to even), clipped to 0..255.

Binarization is not done here: it happens later, at the model's input door, only for models
that binarize.

:func:`image_to_strokes` goes the other way, to replay an image as strokes (e.g. a browser test
driving a canvas): with square brushes the replay gives exactly :func:`quantize` of the image.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from numbers import Real

import numpy as np

from .errors import InvalidInputError
from .images import validate_images

__all__ = [
    "BRUSH_SHAPES",
    "CANVAS_PX",
    "GRID",
    "MAX_POINTS",
    "MAX_STROKES",
    "Stroke",
    "image_to_strokes",
    "quantize",
    "rasterize",
    "strokes_from_json",
    "strokes_to_image",
    "to_model_image",
]

CANVAS_PX = 280  # canvas side in logical pixels
GRID = 28  # model image side; CANVAS_PX // GRID = 10 canvas px per model pixel
BRUSH_SHAPES = ("round", "square")
MAX_POINTS = 20_000  # points per stroke
MAX_STROKES = 2_000  # strokes per drawing
_COORD_LIMIT = 1e6  # |x|, |y| beyond this are refused (far off-canvas; keeps arithmetic finite)
_STROKE_KEYS = ("points", "width", "ink", "shape")


def _is_number(value) -> bool:
    return isinstance(value, Real) and not isinstance(value, (bool, np.bool_))


def _number(value, field: str) -> float:
    """``value`` as a finite float, or InvalidInputError naming ``field``."""
    if not _is_number(value):
        raise InvalidInputError(f"Stroke {field}: must be a number, got {value!r}.")
    v = float(value)
    if not math.isfinite(v):
        raise InvalidInputError(f"Stroke {field}: must be finite, got {value!r}.")
    return v


def _points(value) -> tuple[tuple[float, float], ...]:
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise InvalidInputError(
            f"Stroke points: must be a list of [x, y] pairs, got {type(value).__name__}."
        )
    if len(value) == 0:
        raise InvalidInputError("Stroke points: a stroke needs at least one point, got none.")
    if len(value) > MAX_POINTS:
        raise InvalidInputError(
            f"Stroke points: at most {MAX_POINTS:,} points per stroke, got {len(value):,}."
        )
    out = []
    for k, p in enumerate(value):
        if isinstance(p, (str, bytes)) or not isinstance(p, Sequence) or len(p) != 2:
            raise InvalidInputError(f"Stroke points[{k}]: must be an [x, y] pair, got {p!r}.")
        x, y = (_number(c, f"points[{k}]") for c in p)
        if abs(x) > _COORD_LIMIT or abs(y) > _COORD_LIMIT:
            raise InvalidInputError(
                f"Stroke points[{k}]: coordinates must be within +-{_COORD_LIMIT:g} canvas px, "
                f"got {p!r}."
            )
        out.append((x, y))
    return tuple(out)


@dataclass(frozen=True)
class Stroke:
    """One stroke: a polyline painted with a brush of one ink level (see the module docstring)."""

    # (x, y) = (column, row) in canvas px, 0..CANVAS_PX; outside points are clipped when painted
    points: tuple[tuple[float, float], ...]
    # brush diameter (round) or side (square) in canvas px: 20 = 2 model pixels, a pen-like line
    width: float = 20.0
    # grey level painted: 1 = white ink (MNIST's digits), 0 = black, i.e. an eraser
    ink: float = 1.0
    # "round" for drawing by hand; "square" tiles model pixels exactly (used for replay)
    shape: str = "round"

    def __post_init__(self) -> None:
        object.__setattr__(self, "points", _points(self.points))
        width = _number(self.width, "width")
        if not 0.0 < width <= CANVAS_PX:
            raise InvalidInputError(
                f"Stroke width: must be in (0, {CANVAS_PX}] canvas px, got {self.width!r}."
            )
        ink = _number(self.ink, "ink")
        if not 0.0 <= ink <= 1.0:
            raise InvalidInputError(f"Stroke ink: must be in [0, 1], got {self.ink!r}.")
        if not isinstance(self.shape, str) or self.shape not in BRUSH_SHAPES:
            raise InvalidInputError(
                f"Stroke shape: must be one of {BRUSH_SHAPES}, got {self.shape!r}."
            )
        object.__setattr__(self, "width", width)
        object.__setattr__(self, "ink", ink)

    @classmethod
    def from_dict(cls, d: Mapping) -> Stroke:
        """A stroke from ``{"points": [[x, y], ...], "width": w, "ink": v, "shape": s}`` (parsed
        JSON, as a browser sends it; width, ink and shape are optional)."""
        if not isinstance(d, Mapping):
            raise InvalidInputError(
                'Stroke: expected an object {"points": [[x, y], ...], "width": ..., "ink": ..., '
                f'"shape": ...}}, got {type(d).__name__}.'
            )
        unknown = sorted(str(k) for k in d if k not in _STROKE_KEYS)
        if unknown:
            raise InvalidInputError(
                f"Stroke: unknown field(s) {unknown}; the fields are {list(_STROKE_KEYS)}."
            )
        if "points" not in d:
            raise InvalidInputError('Stroke points: missing (expected "points": [[x, y], ...]).')
        kwargs = {k: d[k] for k in _STROKE_KEYS if k in d}
        return cls(**kwargs)

    def to_dict(self) -> dict:
        """The JSON-ready dict that :meth:`from_dict` reads back."""
        return {
            "points": [[x, y] for x, y in self.points],
            "width": self.width,
            "ink": self.ink,
            "shape": self.shape,
        }


def strokes_from_json(value) -> list[Stroke]:
    """Strokes from parsed JSON: a list of stroke dicts (a JSON string is parsed first).
    Errors name the stroke's index."""
    if isinstance(value, (str, bytes, bytearray)):
        try:
            value = json.loads(value)
        except (ValueError, UnicodeDecodeError) as e:
            raise InvalidInputError(f"strokes: not valid JSON ({e}).") from None
    if not isinstance(value, (list, tuple)):
        raise InvalidInputError(f"strokes: expected a list of strokes, got {type(value).__name__}.")
    if len(value) > MAX_STROKES:
        raise InvalidInputError(f"strokes: at most {MAX_STROKES:,} strokes, got {len(value):,}.")
    out = []
    for k, d in enumerate(value):
        try:
            out.append(Stroke.from_dict(d))
        except InvalidInputError as e:
            raise InvalidInputError(f"strokes[{k}]: {e}") from None
    return out


def _check_base(base, size: int) -> np.ndarray:
    """The start raster: black, or ``base`` (uint8 or float (28,28)) upsampled."""
    if base is None:
        return np.zeros((size, size), dtype=np.float32)
    if size % GRID:
        raise ValueError(f"size must be a multiple of {GRID} to upsample a base, got {size}.")
    if not isinstance(base, np.ndarray):
        raise InvalidInputError(f"base: expected a numpy array, got {type(base).__name__}.")
    if base.shape != (GRID, GRID):
        raise InvalidInputError(f"base: expected shape ({GRID}, {GRID}), got {base.shape}.")
    if base.dtype == np.uint8:
        img = base.astype(np.float32) / np.float32(255.0)
    elif base.dtype.kind == "f":
        if not np.isfinite(base).all():
            raise InvalidInputError("base: contains NaN or infinite values.")
        lo, hi = float(base.min()), float(base.max())
        if lo < 0.0 or hi > 1.0:
            raise InvalidInputError(
                f"base: float images must be in [0, 1], got values in [{lo:g}, {hi:g}]."
            )
        img = base.astype(np.float32)
    else:
        raise InvalidInputError(
            f"base: must be uint8 (0..255) or float in [0, 1], got dtype {base.dtype}."
        )
    k = size // GRID
    return np.ascontiguousarray(np.repeat(np.repeat(img, k, axis=0), k, axis=1))


def _span(lo: float, hi: float, size: int) -> tuple[int, int]:
    """Pixel indices k (clipped to the canvas) whose centres k + 0.5 may lie in [lo, hi], with a
    one-pixel margin against rounding; the exact test decides. Empty when start > stop."""
    return max(0, math.ceil(lo - 0.5) - 1), min(size - 1, math.floor(hi - 0.5) + 1)


def _round_cover(xs, ys, ax, ay, bx, by, r2):
    dx, dy = bx - ax, by - ay
    L2 = dx * dx + dy * dy
    if L2 == 0.0:
        t = 0.0
    else:
        t = np.clip(((xs - ax) * dx + (ys - ay) * dy) / L2, 0.0, 1.0)
    ex = xs - (ax + t * dx)
    ey = ys - (ay + t * dy)
    return ex * ex + ey * ey <= r2


def _interval(c, a: float, d: float, h: float):
    """Bounds (lo, hi) of the t allowed by one coordinate: |c - (a + t d)| <= h."""
    if d == 0.0:
        ok = np.abs(c - a) <= h
        return np.where(ok, -np.inf, np.inf), np.where(ok, np.inf, -np.inf)
    u = c - a
    t1, t2 = (u - h) / d, (u + h) / d
    return (t1, t2) if d > 0 else (t2, t1)


def _square_cover(xs, ys, ax, ay, bx, by, h):
    lox, hix = _interval(xs, ax, bx - ax, h)
    loy, hiy = _interval(ys, ay, by - ay, h)
    lo = np.maximum(np.maximum(lox, loy), 0.0)
    hi = np.minimum(np.minimum(hix, hiy), 1.0)
    return lo <= hi


def _paint(raster: np.ndarray, stroke: Stroke) -> None:
    size = raster.shape[0]
    h = stroke.width / 2.0
    pts = stroke.points
    px = [p[0] for p in pts]
    py = [p[1] for p in pts]
    j0, j1 = _span(min(px) - h, max(px) + h, size)
    i0, i1 = _span(min(py) - h, max(py) + h, size)
    if j0 > j1 or i0 > i1:
        return  # entirely off the canvas
    mask = np.zeros((i1 - i0 + 1, j1 - j0 + 1), dtype=bool)
    segments = list(zip(pts[:-1], pts[1:], strict=True)) if len(pts) > 1 else [(pts[0], pts[0])]
    for (ax, ay), (bx, by) in segments:
        sj0, sj1 = _span(min(ax, bx) - h, max(ax, bx) + h, size)
        si0, si1 = _span(min(ay, by) - h, max(ay, by) + h, size)
        if sj0 > sj1 or si0 > si1:
            continue
        xs = (np.arange(sj0, sj1 + 1, dtype=np.float64) + 0.5)[None, :]
        ys = (np.arange(si0, si1 + 1, dtype=np.float64) + 0.5)[:, None]
        if stroke.shape == "round":
            cov = _round_cover(xs, ys, ax, ay, bx, by, h * h)
        else:
            cov = _square_cover(xs, ys, ax, ay, bx, by, h)
        mask[si0 - i0 : si1 - i0 + 1, sj0 - j0 : sj1 - j0 + 1] |= cov
    window = raster[i0 : i1 + 1, j0 : j1 + 1]
    window[mask] = stroke.ink


def rasterize(strokes: Iterable[Stroke], base=None, size: int = CANVAS_PX) -> np.ndarray:
    """Paint ``strokes`` in order on a float32 (size, size) raster in [0, 1] and return it.

    ``base`` (optional): the start image, uint8 (28,28) (divided by 255) or float (28,28) in
    [0, 1], upsampled nearest-neighbour by ``size // 28`` (``size`` must then be a multiple of
    28). Without it the canvas starts black."""
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size <= 0:
        raise ValueError(f"size must be a positive int, got {size!r}.")
    size = int(size)
    if isinstance(strokes, Stroke):
        strokes = [strokes]
    strokes = list(strokes)
    if len(strokes) > MAX_STROKES:
        raise InvalidInputError(f"strokes: at most {MAX_STROKES:,} strokes, got {len(strokes):,}.")
    for k, s in enumerate(strokes):
        if not isinstance(s, Stroke):
            raise InvalidInputError(
                f"strokes[{k}]: expected a Stroke, got {type(s).__name__} (use "
                "Stroke.from_dict or strokes_from_json for dicts)."
            )
    raster = _check_base(base, size)
    for s in strokes:
        _paint(raster, s)
    return raster


def _to_uint8(v: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(255.0 * np.asarray(v, dtype=np.float64)), 0, 255).astype(np.uint8)


def to_model_image(raster: np.ndarray, grid: int = GRID) -> np.ndarray:
    """Area average of each block of a square raster -> uint8 (grid, grid), ``rint(255 v)``."""
    raster = np.asarray(raster)
    if raster.ndim != 2 or raster.shape[0] != raster.shape[1] or raster.shape[0] % grid:
        raise ValueError(
            f"raster must be square with a side that is a multiple of {grid}, got shape "
            f"{raster.shape}."
        )
    k = raster.shape[0] // grid
    v = raster.astype(np.float64).reshape(grid, k, grid, k).mean(axis=(1, 3))
    return _to_uint8(v)


def strokes_to_image(strokes: Iterable[Stroke], base=None) -> np.ndarray:
    """The uint8 (28,28) model image of ``strokes`` drawn on the canvas (over ``base``)."""
    return to_model_image(rasterize(strokes, base=base, size=CANVAS_PX), GRID)


def _image_and_levels(image, levels: int) -> tuple[np.ndarray, int]:
    if isinstance(levels, bool) or not isinstance(levels, (int, np.integer)) or levels < 2:
        raise ValueError(f"levels must be an int >= 2, got {levels!r}.")
    arr = validate_images(image, name="image")
    if arr.shape != (1, GRID, GRID):
        raise InvalidInputError(f"image: expected one grey 28x28 image, got shape {arr.shape}.")
    return arr[0], int(levels)


def _level_index(img: np.ndarray, levels: int) -> np.ndarray:
    """Index k of the nearest level k / (levels - 1) to v / 255 (exact integer arithmetic; no
    ties occur for integer v)."""
    v = img.astype(np.int64)
    return (2 * v * (levels - 1) + 255) // 510


def quantize(image, levels: int) -> np.ndarray:
    """uint8 (28,28): each pixel at the nearest of ``levels`` evenly spaced grey levels, exactly
    what ``strokes_to_image(image_to_strokes(image, levels, "square"))`` gives."""
    img, levels = _image_and_levels(image, levels)
    k = _level_index(img, levels)
    # the ink a stroke carries is the float k / (levels - 1), stored as float32 in the raster
    ink = (k.astype(np.float64) / (levels - 1)).astype(np.float32)
    return _to_uint8(ink)


def image_to_strokes(image, levels: int = 4, shape: str = "square") -> list[Stroke]:
    """Replay a 28x28 image as strokes: one horizontal stroke per maximal run of equal nonzero
    quantized level in each row, from the centre of its first pixel to that of its last,
    width 10, ink = the level (level 0, the background, is not drawn)."""
    img, levels = _image_and_levels(image, levels)
    k = _level_index(img, levels)
    scale = CANVAS_PX // GRID
    out = []
    for i in range(GRID):
        row = k[i]
        j = 0
        while j < GRID:
            level = int(row[j])
            end = j
            while end + 1 < GRID and row[end + 1] == level:
                end += 1
            if level:
                y = float(scale * i + scale / 2)
                out.append(
                    Stroke(
                        points=(
                            (float(scale * j + scale / 2), y),
                            (float(scale * end + scale / 2), y),
                        ),
                        width=float(scale),
                        ink=level / (levels - 1),
                        shape=shape,
                    )
                )
            j = end + 1
    return out

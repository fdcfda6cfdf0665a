"""A drawing canvas (anywidget): the user draws, the kernel gets each finished stroke.

The browser keeps the pointer events to itself: a stroke (its points, brush width, ink level and
brush shape) is sent to the kernel when the pointer is lifted, never every mouse move. What the
model sees is computed in the kernel from the strokes by :mod:`hvaelab.data.strokes` (a
280x280 raster, white ink on black, averaged over 10x10 blocks to 28x28 grey levels in [0, 1];
binarization happens at the model's input door for models that binarize), so the browser's
drawing is only a picture of the strokes and the model's input is exact and testable.

While the kernel is busy with one drawing the browser does not queue more: strokes drawn in the
meantime are sent together when the kernel reports the last one done (``done_revision``), so a
fast drawer never builds a backlog. The widget is self-contained (no CDN): it works offline in
Voilà and JupyterLab.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import anywidget
import numpy as np
import traitlets

from ..data.strokes import CANVAS_PX, GRID, Stroke, strokes_from_json, strokes_to_image

_ESM = (Path(__file__).with_name("js") / "canvas.js").read_text()  # the browser side


class DrawCanvas(anywidget.AnyWidget):
    """A 280x280 drawing canvas whose strokes give the 28x28 image a model sees.

    ``strokes`` (what the browser sends, one dict per stroke: see
    :class:`hvaelab.data.strokes.Stroke`), ``base`` (an optional start image, 784 grey levels
    0..255 row by row), ``revision`` (bumped by every change) and ``done_revision`` (set by the
    page when every view shows ``revision``); ``width``/``ink``/``shape`` are the brush.
    :attr:`image` is the model's input as uint8 (28, 28).
    """

    _esm = _ESM
    strokes = traitlets.List(traitlets.Dict()).tag(sync=True)
    base = traitlets.List(traitlets.Int()).tag(sync=True)
    revision = traitlets.Int(0).tag(sync=True)
    done_revision = traitlets.Int(0).tag(sync=True)
    width = traitlets.Float(20.0).tag(sync=True)  # brush size in canvas px (10 = a model pixel)
    ink = traitlets.Float(1.0).tag(sync=True)  # grey level painted: 1 white, 0 the eraser
    shape = traitlets.Unicode("round").tag(sync=True)  # "round" or "square"

    @property
    def base_image(self) -> np.ndarray | None:
        """The start image as uint8 (28, 28), or None for an empty canvas."""
        if len(self.base) != GRID * GRID:
            return None
        return np.asarray(self.base, dtype=np.uint8).reshape(GRID, GRID)

    @property
    def stroke_list(self) -> list[Stroke]:
        """The strokes as validated :class:`Stroke` objects (bad browser input: a clear error)."""
        return strokes_from_json(self.strokes)

    @property
    def image(self) -> np.ndarray:
        """What the model is given: uint8 (28, 28), white ink on black (hvaelab.data.strokes)."""
        return strokes_to_image(self.stroke_list, self.base_image)

    def load(self, image: np.ndarray | None, strokes: Sequence[Stroke] = ()) -> None:
        """Start over from ``image`` (uint8 (28, 28), or None for an empty canvas) plus
        ``strokes``: the kernel's side of "start from a test image" and "clear"."""
        if image is None:
            base: list[int] = []
        else:
            arr = np.asarray(image)
            if arr.shape != (GRID, GRID) or arr.dtype != np.uint8:
                raise ValueError(
                    f"a start image is uint8 ({GRID}, {GRID}), got {arr.dtype} {arr.shape}"
                )
            base = [int(v) for v in arr.reshape(-1)]
        with self.hold_sync():
            self.base = base
            self.strokes = [s.to_dict() for s in strokes]
            self.revision = max(self.revision, self.done_revision) + 1

    def add_stroke(self, stroke: Stroke) -> None:
        """Draw ``stroke`` from the kernel (as if the user had drawn it)."""
        with self.hold_sync():
            self.strokes = [*self.strokes, stroke.to_dict()]
            self.revision = max(self.revision, self.done_revision) + 1

    def undo(self) -> None:
        """Take back the last stroke (what the browser's undo button does)."""
        if self.strokes:
            with self.hold_sync():
                self.strokes = self.strokes[:-1]
                self.revision = max(self.revision, self.done_revision) + 1


__all__ = ["CANVAS_PX", "DrawCanvas"]

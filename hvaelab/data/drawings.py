"""Drawings shipped with hvaelab: strokes as people draw them on the drawing page.

Each file ``hvaelab/data/drawings/NAME.json`` holds ``{"name", "what", "strokes"}``: the
canvas's own stroke format (:mod:`hvaelab.data.strokes`), drawn with the page's brushes (round,
size 20 = the default or 60 = the largest, ink 1) along hand-like paths (``scripts/make-drawings``
writes them, seeded). The drawing page offers them in its *drawings* menu; the lesson's claims
about what a drawing does are tested on them (``tests/test_drawings.py``, and replayed with the
mouse in ``tests/e2e/test_e2e_draw.py``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources

import numpy as np

from .errors import InvalidInputError
from .strokes import Stroke, strokes_from_json, strokes_to_image

__all__ = ["Drawing", "drawing_names", "load_drawing"]


@dataclass(frozen=True)
class Drawing:
    """A shipped drawing: its name, what it shows, and its strokes."""

    name: str
    what: str
    strokes: tuple[Stroke, ...]

    @property
    def image(self) -> np.ndarray:
        """What the model is given: uint8 (28, 28) (:func:`~hvaelab.data.strokes_to_image`)."""
        return strokes_to_image(self.strokes)


def _folder():
    return resources.files(__package__).joinpath("drawings")


@cache
def drawing_names() -> tuple[str, ...]:
    """The shipped drawings' names, sorted."""
    return tuple(sorted(p.name[:-5] for p in _folder().iterdir() if p.name.endswith(".json")))


@cache
def load_drawing(name: str) -> Drawing:
    """The shipped drawing ``name`` (one of :func:`drawing_names`)."""
    if name not in drawing_names():
        raise InvalidInputError(
            f"no shipped drawing {name!r}; the drawings are {', '.join(drawing_names())}"
        )
    doc = json.loads(_folder().joinpath(f"{name}.json").read_text())
    return Drawing(doc["name"], doc["what"], tuple(strokes_from_json(doc["strokes"])))

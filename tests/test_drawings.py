"""The shipped drawings, and every outcome the drawing page tells students to expect from them.

The page's list (:data:`hvaelab.app.draw_view.TRY_THESE`) predicts, for a shipped drawing, the
paper's verdict, the LLR>k that decides it, and which drawing the ELBO prefers; the verdict on
top (the second stage) is said to flag every drawing. Each is checked here on the shipped model
through :func:`hvaelab.data.strokes.strokes_to_image` and :func:`hvaelab.scores.score_inputs`,
the same path the page takes (the e2e suite replays them with the mouse).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from hvaelab.app.draw_view import SECOND_STAGE_CLAIM, TRY_THESE, try_these_html
from hvaelab.data import InvalidInputError
from hvaelab.data.drawings import drawing_names, load_drawing
from hvaelab.data.strokes import strokes_to_image

ROOT = Path(__file__).resolve().parents[1]
NAMES = (
    "bag-filled",
    "one",
    "one-serif",
    "seven",
    "seven-crossed",
    "shirt-filled",
    "shirt-outline",
    "trousers-filled",
    "zero",
)


def test_the_drawings_are_shipped_with_the_pages_brushes():
    assert drawing_names() == NAMES
    for name in NAMES:
        d = load_drawing(name)
        assert d.name == name and d.what and d.strokes
        # the canvas's brushes: round, the default size 20 or the largest 60, white ink
        assert {(s.shape, s.ink) for s in d.strokes} == {("round", 1.0)}
        assert {s.width for s in d.strokes} <= {20.0, 60.0}
        img = d.image
        assert img.shape == (28, 28) and img.dtype == np.uint8
        assert np.array_equal(img, strokes_to_image(d.strokes))
        assert 0.03 < (img > 127).mean() < 0.6, name  # ink on the canvas, not all of it
    with pytest.raises(InvalidInputError, match="no shipped drawing 'cat'; the drawings are"):
        load_drawing("cat")


def test_the_files_are_what_the_generator_writes(tmp_path, monkeypatch):
    """scripts/make-drawings reproduces the shipped files byte for byte (seeded)."""
    import runpy

    gen = runpy.run_path(str(ROOT / "scripts" / "make-drawings"))
    monkeypatch.setitem(gen["main"].__globals__, "OUT", tmp_path)
    gen["main"]()
    shipped = ROOT / "hvaelab" / "data" / "drawings"
    for name in NAMES:
        assert (tmp_path / f"{name}.json").read_bytes() == (shipped / f"{name}.json").read_bytes()
        assert json.loads((shipped / f"{name}.json").read_text())["name"] == name


@pytest.fixture(scope="module")
def scored():
    """Every drawing scored by the shipped model against its reference, as the page does."""
    from hvaelab.app.resources import load_checkpoint, load_score_tables
    from hvaelab.scores import reference_key, score_inputs

    lm = load_checkpoint("fashionmnist")
    tables = load_score_tables("fashionmnist")
    ref = tables[reference_key(tables, "fashionmnist")]
    images = np.stack([load_drawing(n).image for n in NAMES])
    res = score_inputs(lm.model, images, ref, fpr=0.05, names=list(NAMES), lt=False)
    return {n: i for i, n in enumerate(NAMES)}, res


def test_every_claim_of_the_drawing_page_holds(scored):
    at, res = scored
    assert res.rule == "second-stage" and res.llr_verdict == ["LLR>1", "LLR>2"]
    for claim in TRY_THESE:
        i = at[claim.drawing]
        said = "OOD" if res.paper.is_ood[i] else "in-distribution"
        assert said == claim.paper, (claim.drawing, said, res.paper.min_p[i])
        if claim.decided_by:
            assert res.llr_verdict[res.paper.decisive[i]] == claim.decided_by, claim.drawing
        if claim.likelier_than:  # fewer bits/dim = more likely under the ELBO
            j = at[claim.likelier_than]
            assert res.bits_per_dim[i] < res.bits_per_dim[j], (claim.drawing, claim.likelier_than)
    # the verdict on top, the second stage's, flags every drawing
    assert "flags <i>every</i> drawing" in SECOND_STAGE_CLAIM
    assert res.is_ood.all(), dict(zip(NAMES, res.min_p, strict=True))
    assert set(res.decisive) == {"second-stage"}


def test_the_list_names_each_claim_once():
    html = try_these_html()
    assert html.count("<li>") == len(TRY_THESE) and SECOND_STAGE_CLAIM in html
    assert {c.drawing for c in TRY_THESE} <= set(NAMES)

"""Draw an input and watch every k decide: the canvas page (and the teaching page's section).

Each finished stroke on the :class:`~hvaelab.app.canvas.DrawCanvas` becomes the 28x28 image the
model sees (:mod:`hvaelab.data.strokes`: a 280x280 raster of the strokes, white ink on black,
averaged over 10x10 blocks to grey levels in [0, 1]; the model's input door then binarizes it
for a model with a Bernoulli likelihood, keyed by the image's content as for the test sets).
The drawing is selected in a :class:`~hvaelab.app.linked.Selection`, so its latent
reconstructions for every k, every LLR>k with its p-value, the per-layer KL, the markers on the
densities and ROC curves and the verdict all follow the stroke. "Start from a test image" puts
a shipped test image on the canvas to draw over.
"""

from __future__ import annotations

import html
from dataclasses import dataclass

import ipywidgets as widgets
import numpy as np

from ..data import InvalidInputError
from ..data.drawings import drawing_names, load_drawing
from ..data.strokes import strokes_to_image
from .canvas import DrawCanvas
from .linked import Example, ExampleInspector, comparison_sets, selection_for
from .resources import dataset_label, sample_images
from .widgets import AnySlot, status_html, with_class

PREPROCESSING = (
    "What the model sees: the 280×280 canvas (white ink on black, like the training images) is "
    "averaged over "
    "10×10 blocks to a 28×28 image with grey levels in [0, 1]"
)


@dataclass(frozen=True)
class DrawingClaim:
    """One thing the page tells students to try, with the outcome it predicts for the shipped
    drawing of that name (``tests/test_drawings.py`` checks each against the shipped model)."""

    drawing: str  # a shipped drawing (hvaelab.data.drawings)
    text: str  # HTML shown in the list under the canvas
    paper: str  # the paper's verdict over LLR>k: "OOD" or "in-distribution"
    decided_by: str | None = None  # the LLR>k that decides it, where the text names one
    likelier_than: str | None = None  # a drawing it beats on the ELBO, where the text says so


# What the page tells students to try; every outcome is checked (tests/test_drawings.py).
TRY_THESE = (
    DrawingClaim(
        "one",
        "A <b>1</b> in one stroke: the ELBO rates it <i>more</i> likely than the coloured-in "
        "T-shirt below (fewer bits/dim), yet LLR<sup>&gt;1</sup> flags it: the paper's "
        "phenomenon, on a drawing.",
        "OOD",
        decided_by="LLR>1",
        likelier_than="shirt-filled",
    ),
    DrawingClaim(
        "shirt-filled",
        "A <b>T-shirt coloured in</b> with the largest brush (size 60): the likelihood ratios "
        "call it in-distribution.",
        "in-distribution",
    ),
    DrawingClaim(
        "shirt-outline",
        "The same T-shirt as an <b>outline</b> with the default brush: flagged. FashionMNIST "
        "holds photos of garments, not line drawings; MNIST's pen strokes are out of "
        "distribution for the same reason.",
        "OOD",
    ),
    DrawingClaim(
        "seven", "A <b>7</b> in two strokes: flagged by LLR<sup>&gt;1</sup>.", "OOD", "LLR>1"
    ),
)
# said of every shipped drawing (checked on each): the default verdict, the second stage's
SECOND_STAGE_CLAIM = (
    "The verdict on top is the second stage's (beyond the paper): it flags <i>every</i> drawing, "
    "the coloured-in shirt too: flat white ink with hard edges is unlike any photographed "
    "garment. The line below it gives the paper's verdict."
)


def try_these_html() -> str:
    """The list of drawings to try, as the page shows it under the canvas."""
    items = "".join(f"<li>{c.text}</li>" for c in TRY_THESE)
    return (
        '<div class="hvae-draw-try" '
        'style="font-size:12px;line-height:1.35;color:#333;max-width:300px">'
        "<b>Try these</b> (draw them, or load ours from the menu):"
        f'<ol style="margin:2px 0 2px 0;padding-left:18px">{items}</ol>'
        f"{SECOND_STAGE_CLAIM}</div>"
    )


class DrawView(widgets.VBox):
    """A drawing canvas beside the views of what the model makes of the drawing."""

    def __init__(self, checkpoint: str, fpr: float = 0.05, seed: int = 0) -> None:
        # every stroke is scored: L>k and LLR>k only (the views show no L<l), a third faster
        self.selection, tables, in_name, _ = selection_for(checkpoint, fpr, lt=False)
        model = self.selection.model
        if model.config.colour:
            raise ValueError(
                f"the drawing canvas makes 28x28 grey images; {checkpoint!r} takes colour "
                "images (use the upload page)"
            )
        binarizes = model.config.likelihood == "bernoulli"
        self.checkpoint = checkpoint
        self.sets = comparison_sets(tables, in_name)
        self.rng = np.random.default_rng(seed)
        # the canvas (an anywidget) is created once the page has settled (AnySlot)
        self.canvas_slot = AnySlot(self._make_canvas, "hvae-canvas-box", min_height="330px")
        self.start_set = with_class(
            widgets.Dropdown(
                options=[(dataset_label(n), n) for n in self.sets],
                value=self.sets[0],
                layout=widgets.Layout(width="130px"),  # "FashionMNIST" whole
            ),
            "hvae-draw-start-set",
        )
        self.start = with_class(
            widgets.Button(
                description="start from test image",
                tooltip="put a shipped test image of the chosen set on the canvas",
                layout=widgets.Layout(width="172px"),
            ),
            "hvae-draw-start",
        )
        self.drawings = with_class(
            widgets.Dropdown(
                options=[("load a drawing…", "")]
                + [(load_drawing(n).what, n) for n in drawing_names()],
                value="",
                tooltip="put one of the shipped drawings (hand-like strokes) on the canvas",
                layout=widgets.Layout(width="302px"),
            ),
            "hvae-draw-drawings",
        )
        self.drawings.observe(self._on_drawing, "value")
        self.error = with_class(widgets.HTML(), "hvae-draw-error")
        self.status = widgets.HTML()
        note = widgets.HTML(
            f'<div style="font-size:12px;color:#444;max-width:290px">{PREPROCESSING}'
            + (
                "; this model then binarizes it (each pixel black or white, drawn with its grey "
                "level as probability, the same draw for the same image)."
                if binarizes
                else "."
            )
            + " Both are shown on the right.</div>"
        )
        left = widgets.VBox(
            [
                self.canvas_slot.box,
                widgets.HBox([self.start_set, self.start]),
                self.drawings,
                widgets.HTML(try_these_html()),
                note,
                self.status,
                self.error,
            ],
            layout=widgets.Layout(width="312px", min_width="312px"),
        )
        self.inspector = ExampleInspector(
            self.selection, tables, in_name, lead=left, checkpoint=checkpoint
        )
        self.start.on_click(lambda _b: self.start_from_test_image())
        super().__init__([self.inspector], layout=widgets.Layout(width="100%"))
        self.add_class("hvae-draw-view")
        self.update()  # the empty canvas: every view shows something from the start

    def start_from_test_image(self, dataset: str | None = None, index: int | None = None) -> None:
        """Put a shipped test image of ``dataset`` (default: the menu's) on the canvas."""
        name = dataset or self.start_set.value
        imgs = sample_images(name, self.checkpoint)
        i = int(self.rng.integers(len(imgs))) if index is None else int(index)
        self._start_label = f"{dataset_label(name)} test image {i + 1}"
        self.canvas.load(imgs[i])

    def load_drawing(self, name: str) -> None:
        """Put the shipped drawing ``name`` (:mod:`hvaelab.data.drawings`) on the canvas."""
        self._start_label = None
        self.canvas.load(None, load_drawing(name).strokes)

    def _on_drawing(self, change) -> None:
        if change["new"]:
            self.load_drawing(change["new"])

    def _make_canvas(self) -> DrawCanvas:
        canvas = DrawCanvas()
        canvas.observe(self._on_revision, "revision")
        return canvas

    @property
    def canvas(self) -> DrawCanvas:
        """The drawing canvas (created now if the page has not settled yet)."""
        return self.canvas_slot.build()

    def _on_revision(self, change) -> None:
        self.update()

    def update(self) -> None:
        """Score the canvas as it is now and redraw every view; then tell the browser."""
        if self.canvas_slot.widget is None:  # not on the page yet: an empty canvas
            self.selection.select(Example("your drawing", strokes_to_image([]), "empty canvas"))
            return
        revision = self.canvas.revision
        try:
            image = self.canvas.image
            self.error.value = ""
            n = len(self.canvas.strokes)
            base = (
                getattr(self, "_start_label", None) if self.canvas.base_image is not None else None
            )
            what = (f"{base} + " if base else "") + f"{n} stroke{'s' if n != 1 else ''}"
            self.selection.select(Example("your drawing", image, what))
        except (InvalidInputError, ValueError) as e:
            self.error.value = status_html(html.escape(str(e)), "error")
        finally:
            self.canvas.done_revision = max(revision, self.canvas.done_revision)


def draw_page(checkpoint: str, fpr: float = 0.05) -> widgets.Widget:
    """The drawing page of checkpoint NAME: a :class:`DrawView`, or for a colour model (the
    canvas makes 28x28 grey images) a notice saying so and where to go instead."""
    from .resources import load_checkpoint

    if load_checkpoint(checkpoint).model.config.colour:
        note = widgets.HTML(
            f'<div style="border:1px solid #1f77b4;background:#f3f8fc;padding:8px 12px;'
            f'border-radius:4px">The drawing canvas makes 28×28 grey images; '
            f"<b>{html.escape(checkpoint)}</b> takes 32×32 colour images. Score your own "
            "colour images on the upload page, or serve a grey-scale model "
            "(<code>hvaelab dashboard --checkpoint fashionmnist</code>) to draw.</div>"
        )
        return with_class(note, "hvae-draw-unavailable")
    return DrawView(checkpoint, fpr=fpr)


__all__ = ["PREPROCESSING", "DrawView", "draw_page"]

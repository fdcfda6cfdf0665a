"""The model a dashboard shows: one menu at the top of every page, followed by all of it.

Each page opens with :func:`model_menu` and builds its pieces with
:func:`hvaelab.app.widgets.page`. A piece whose build takes an argument is built for the page's
model (``page(lambda name: TrainingCurves(name), ...)``) and is registered here; choosing another
model in the menu rebuilds those pieces, in page order, for the new one (pieces that do not
depend on the model, e.g. the 2-D toy, stay as they are). A piece that cannot be shown for the
chosen model -- a checkpoint without score tables, say -- shows the same friendly message as on
a fresh page, and choosing a model that can brings it back.

The menu starts on :func:`.resources.page_checkpoint` (``$HVAELAB_CHECKPOINT``, else
``fashionmnist``) and lists every checkpoint the pages can find
(:func:`.resources.checkpoint_names`), labelled with its kind, training set and epochs, e.g.
``fashionmnist-biva · BIVA · FashionMNIST · 30 epochs``. There is one page model per kernel
(:func:`page_model`), i.e. per page under Voilà (one kernel per open page).
"""

from __future__ import annotations

import ctypes
import gc
import inspect
import sys
from collections.abc import Callable

import ipywidgets as widgets

from .resources import (
    MissingResourceError,
    checkpoint_card,
    checkpoint_names,
    dataset_label,
    error_html,
    page_checkpoint,
)
from .widget_tree import close_unshown

MENU_CLASS = "hvae-model-menu"  # the Dropdown (DOM contract of the browser tests)
MENU_STATUS_CLASS = "hvae-model-status"  # "✓ NAME" once every piece shows NAME


def checkpoint_label(name: str) -> str:
    """``"fashionmnist · HVAE · FashionMNIST · 40 epochs"`` from the card (the name alone if
    the card cannot be read: the pieces then say why)."""
    try:
        card = checkpoint_card(name)
    except MissingResourceError:  # a label only; the page's pieces show the real error
        return name
    parts = [name, str(card.get("kind", "hvae")).upper()]
    dataset = (card.get("train_config") or {}).get("dataset")
    if dataset:
        parts.append(dataset_label(dataset))
    if card.get("epochs_done") is not None:
        parts.append(f"{card['epochs_done']} epochs")
    return " · ".join(parts)


def takes_model(build: Callable) -> bool:
    """Whether ``build`` has a required positional parameter: the page model's name."""
    try:
        params = inspect.signature(build).parameters.values()
    except (TypeError, ValueError):
        return False
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return any(p.kind in kinds and p.default is inspect.Parameter.empty for p in params)


def build_piece(build: Callable, what: str, name: str | None) -> widgets.Widget:
    """``build(name)`` (or ``build()`` when ``name`` is None); a failure becomes a readable
    message box instead of a traceback."""
    try:
        return build(name) if name is not None else build()
    except Exception as e:  # noqa: BLE001 - shown to the reader instead of a traceback
        box = widgets.HTML(error_html(e, what))
        box.add_class("hvae-page-error")
        return box


class PageModel:
    """The checkpoint a page shows and the pieces built for it (see the module docstring).

    ``name`` is the model shown; :meth:`follow` registers a piece (a box whose first child is
    the piece, and how to build it); :meth:`select` rebuilds them all for another model;
    :meth:`menu` is the Dropdown and its status line.
    """

    def __init__(self, name: str | None = None) -> None:
        self.name = name or page_checkpoint()
        self._pieces: list[tuple[widgets.Box, Callable[[str], widgets.Widget], str]] = []
        self._owned: list[widgets.Widget] = []  # the page's other widgets (:meth:`own`)
        self._menu: widgets.HBox | None = None
        self.dropdown: widgets.Dropdown | None = None
        self.status = widgets.HTML()
        self.status.add_class(MENU_STATUS_CLASS)

    def follow(self, box: widgets.Box, build: Callable[[str], widgets.Widget], what: str) -> None:
        """Rebuild ``box``'s first child with ``build(name)`` whenever the model changes."""
        self._pieces.append((box, build, what))

    def own(self, widget: widgets.Widget) -> None:
        """Close ``widget`` with this page (:meth:`close`): for a page's widgets that are not in
        a piece, e.g. a ready marker of its own."""
        self._owned.append(widget)

    def close(self) -> None:
        """Close every widget of this page (its menu, the pieces that follow it and the widgets
        it owns) and hand the freed memory back to the system: a notebook re-run from the top
        replaces the page, and ipywidgets keeps every widget (and what its callbacks hold:
        models, figures, caches) until it is closed."""
        for box, _build, _what in self._pieces:
            close_unshown(box)
        for widget in self._owned:
            close_unshown(widget)
        self._pieces.clear()
        self._owned.clear()
        if self._menu is not None:
            close_unshown(self._menu)
            self._menu = None
            self.dropdown = None
        self.status.close()
        release_freed_memory()

    def options(self) -> list[tuple[str, str]]:
        names = checkpoint_names()
        if self.name not in names:  # asked for but not found: listed, its pieces say why
            names = [self.name, *names]
        return [(checkpoint_label(n), n) for n in names]

    def menu(self) -> widgets.HBox:
        """The menu (one per page; a second call returns the same widget)."""
        if self._menu is None:
            self.dropdown = widgets.Dropdown(
                options=self.options(),
                value=self.name,
                description="model",
                style={"description_width": "48px"},
                layout=widgets.Layout(width="min(100%, 460px)"),
            )
            self.dropdown.add_class(MENU_CLASS)
            self.dropdown.observe(lambda c: self.select(c["new"]), names="value")
            self.status.value = self._done_html()
            self._menu = widgets.HBox([self.dropdown, self.status])
            self._menu.layout.flex_flow = "row wrap"
            self._menu.layout.align_items = "center"
        return self._menu

    def _done_html(self) -> str:
        return f'<span style="color:#2a7a2a">✓ {self.name}</span>'

    def select(self, name: str) -> None:
        """Show ``name``: rebuild every following piece for it, in page order."""
        if name == self.name:
            return
        self.name = name
        if self.dropdown is not None:
            self.dropdown.value = name
            self.dropdown.disabled = True
        n = len(self._pieces)
        try:
            for i, (box, build, what) in enumerate(self._pieces):
                self.status.value = (
                    f'<span style="color:#1f77b4">loading {name}: {i + 1} of {n} parts…</span>'
                )
                old = box.children[0] if box.children else None
                box.children = (build_piece(build, what, name), *box.children[1:])
                if old is not None:
                    close_unshown(old)
        finally:
            if self.dropdown is not None:
                self.dropdown.disabled = False
            self.status.value = self._done_html()


def release_freed_memory() -> None:
    """Collect garbage and return the C heap's free pages to the system (glibc's
    ``malloc_trim``; nothing elsewhere). Without it a kernel whose notebook is re-run keeps the
    freed pages of each earlier page: measured, the teaching notebook re-run 6 times in one
    kernel grew from 439 to 557 MB with its earlier pages closed, and to 457 MB with this."""
    gc.collect()
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL("libc.so.6").malloc_trim(0)
        except (OSError, AttributeError):  # not glibc (e.g. musl): nothing to hand back
            pass


# The page model of this kernel (one Voilà page per kernel): created by model_menu(), or on
# first use by a page without a menu.
_PAGE_MODEL: PageModel | None = None


def page_model() -> PageModel:
    """This kernel's :class:`PageModel`."""
    global _PAGE_MODEL
    if _PAGE_MODEL is None:
        _PAGE_MODEL = PageModel()
    return _PAGE_MODEL


def model_menu(name: str | None = None) -> widgets.HBox:
    """Start a page: a fresh :class:`PageModel` on ``name`` (else ``$HVAELAB_CHECKPOINT``, else
    ``fashionmnist``) and its menu, the first thing on every dashboard. The pieces built after
    it follow it. Re-running a notebook from the top starts over: the previous page's widgets
    are closed (:meth:`PageModel.close`), so a kernel re-run many times holds one page."""
    global _PAGE_MODEL
    if _PAGE_MODEL is not None:
        _PAGE_MODEL.close()
    _PAGE_MODEL = PageModel(name)
    return _PAGE_MODEL.menu()


__all__ = [
    "MENU_CLASS",
    "MENU_STATUS_CLASS",
    "PageModel",
    "build_piece",
    "checkpoint_label",
    "model_menu",
    "page_model",
    "release_freed_memory",
    "takes_model",
]

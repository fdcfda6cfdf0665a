"""Closing parts of a widget tree that a page builds but never shows.

The lowest layer of the dashboards' widget code: it imports nothing of hvaelab, so that both
:mod:`hvaelab.app.model_menu` and :mod:`hvaelab.app.widgets` (which re-exports
:func:`close_unshown`) can use it and imports run one way: ``widgets`` -> ``model_menu`` ->
``widget_tree``.
"""

from __future__ import annotations

from collections.abc import Iterable

import ipywidgets as widgets


def close_unshown(root: widgets.Widget, keep: Iterable[widgets.Widget] = ()) -> None:
    """Close ``root`` and every widget under it (children, layouts, styles) except the subtrees
    of ``keep``: for parts of a composite that a page builds but never shows, so the browser
    does not have to load their models (a closed widget sends nothing)."""
    kept = {id(w) for w in keep}

    def visit(w: widgets.Widget) -> None:
        if id(w) in kept:
            return
        for child in getattr(w, "children", ()):
            visit(child)
        for part in (getattr(w, "layout", None), getattr(w, "style", None)):
            if isinstance(part, widgets.Widget):
                visit(part)
        w.close()

    visit(root)


__all__ = ["close_unshown"]

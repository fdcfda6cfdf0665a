"""The page's model menu (hvaelab.app.model_menu): every checkpoint is offered, labelled from its
card; choosing one rebuilds every piece that depends on the model, in page order, and nothing
else; a model a piece cannot show gives that piece the friendly error, and choosing another
brings it back."""

from __future__ import annotations

import ipywidgets as widgets
import pytest
from ipywidgets.widgets.widget import _instances  # ipywidgets' registry of open widgets

from hvaelab.app import resources
from hvaelab.app.model_menu import (
    MENU_CLASS,
    checkpoint_label,
    model_menu,
    page_model,
    takes_model,
)
from hvaelab.app.training_view import TrainingCurves
from hvaelab.app.widgets import READY_CLASS, page, ready_marker
from hvaelab.checkpoint import CheckpointError, copy_checkpoint, read_card


@pytest.fixture
def folder(app_checkpoints, tmp_path, monkeypatch):
    """Two checkpoints: ``fashionmnist`` (with its training curve) and ``bare`` (without)."""
    copy_checkpoint(app_checkpoints / "fashionmnist", tmp_path / "fashionmnist")
    for suffix in (".json", ".safetensors"):
        (tmp_path / f"bare{suffix}").write_bytes(
            (app_checkpoints / f"mnist-testsplit{suffix}").read_bytes()
        )
    monkeypatch.setenv("HVAELAB_CHECKPOINTS", str(tmp_path))
    monkeypatch.delenv("HVAELAB_CHECKPOINT", raising=False)
    resources.clear_caches()
    yield tmp_path
    resources.clear_caches()


def test_the_menu_lists_every_checkpoint_labelled_from_its_card(folder, monkeypatch):
    menu = model_menu()
    dropdown = menu.children[0]
    assert MENU_CLASS in dropdown._dom_classes
    assert dropdown.value == "fashionmnist" and page_model().name == "fashionmnist"
    labels = dict((v, k) for k, v in dropdown.options)
    assert list(labels) == resources.checkpoint_names() and {"bare", "fashionmnist"} <= set(labels)
    card = read_card(folder / "fashionmnist")
    assert labels["fashionmnist"] == (
        f"fashionmnist · HVAE · FashionMNIST · {card['epochs_done']} epochs"
    )
    assert labels["bare"].startswith("bare · HVAE · MNIST · ")
    assert "✓ fashionmnist" in menu.children[1].value
    # $HVAELAB_CHECKPOINT chooses the model a page opens with; a missing one is still listed
    monkeypatch.setenv("HVAELAB_CHECKPOINT", "bare")
    assert model_menu().children[0].value == "bare"
    monkeypatch.setenv("HVAELAB_CHECKPOINT", "no-such-model")
    dropdown = model_menu().children[0]
    assert dropdown.value == "no-such-model" and dropdown.options[0] == (
        "no-such-model",
        "no-such-model",
    )


def test_choosing_a_model_rebuilds_the_pieces_that_follow_it_in_page_order(folder):
    built: list[tuple[str, str | None]] = []

    def piece(tag):
        def build(name):
            built.append((tag, name))
            return widgets.HTML(f"{tag}:{name}")

        return build

    def fixed():
        built.append(("fixed", None))
        return widgets.HTML("fixed")

    menu = model_menu()
    a = page(piece("a"), "A", ready=False)
    b = page(fixed, "B", ready=False)
    c = page(piece("c"), "C")
    assert built == [("a", "fashionmnist"), ("fixed", None), ("c", "fashionmnist")]
    old_a = a.children[0]
    built.clear()
    menu.children[0].value = "bare"
    assert built == [("a", "bare"), ("c", "bare")]  # page order; the fixed piece is left alone
    assert a.children[0].value == "a:bare" and c.children[0].value == "c:bare"
    assert b.children[0].value == "fixed"
    assert READY_CLASS in c.children[-1]._dom_classes and len(c.children) == 2
    assert old_a.comm is None  # the replaced piece is closed: the browser drops it
    assert "✓ bare" in menu.children[1].value and not menu.children[0].disabled
    built.clear()
    page_model().select("bare")  # the same model again: nothing to do
    assert built == []


def test_a_page_built_again_closes_the_previous_one_and_holds_one_page(folder):
    """Re-running a notebook from the top (a new ``model_menu()``) closes every widget of the
    page before: its menu, the pieces that follow the model, the fixed ones and a ready marker
    of its own. ipywidgets would keep them (and what they hold) for the kernel's life."""

    def build_page():
        menu = model_menu()
        pieces = [
            page(lambda name: widgets.VBox([widgets.HTML(name), widgets.IntSlider()]), "A"),
            page(lambda: widgets.HTML("fixed"), "B", ready=False),
        ]
        return [menu, *pieces, ready_marker()]

    def tree(w):  # a widget and everything under it
        parts = [getattr(w, "layout", None), getattr(w, "style", None)]
        out = [w]
        for child in [*getattr(w, "children", ()), *(p for p in parts if p is not None)]:
            out += tree(child)
        return out

    first = [w for top in build_page() for w in tree(top)]
    assert all(w.comm is not None for w in first)
    live = len(_instances)  # ipywidgets' registry of open widgets
    second = [w for top in build_page() for w in tree(top)]
    assert [w for w in first if w.comm is not None] == []  # the whole first page is closed
    assert all(w.comm is not None for w in second)
    assert len(_instances) == live  # one page, not two


def test_a_piece_the_model_cannot_show_says_why_and_comes_back(folder):
    menu = model_menu()
    out = page(lambda name: TrainingCurves(name), "The training curves")
    assert isinstance(out.children[0], TrainingCurves)
    assert "fashionmnist" in out.children[0].slot.figure.layout.title.text
    menu.children[0].value = "bare"  # a checkpoint without a training curve
    err = out.children[0]
    assert "hvae-page-error" in err._dom_classes
    assert "The training curves cannot be shown" in err.value and "training curve" in err.value
    menu.children[0].value = "fashionmnist"
    assert isinstance(out.children[0], TrainingCurves)
    assert out.children[0].slot.figure.layout.title.text == "Training curves of fashionmnist"


def test_only_a_build_with_a_required_argument_follows_the_model():
    assert takes_model(lambda name: name)
    assert not takes_model(lambda: 1)
    assert not takes_model(lambda name="x": name)
    assert not takes_model(TrainingCurves)  # the class: its one argument has a default


def test_a_label_falls_back_to_the_name_and_read_card_checks_without_the_weights(folder):
    (folder / "broken.json").write_text("{not json", encoding="utf-8")
    (folder / "broken.safetensors").write_bytes(b"")
    assert checkpoint_label("broken") == "broken"
    with pytest.raises(CheckpointError, match="not valid JSON"):
        read_card(folder / "broken")
    (folder / "foreign.json").write_text('{"name": "x"}', encoding="utf-8")
    with pytest.raises(CheckpointError, match="foreign JSON"):
        read_card(folder / "foreign.json")
    (folder / "bare.safetensors").unlink()  # the card alone is enough to read it
    assert read_card(folder / "bare")["kind"] == "hvae"
    with pytest.raises(CheckpointError, match="card .* is missing"):
        read_card(folder / "nothing")

"""One example in every view, without a browser: the report, the selection, the inspector's
markers, the drawing page's path from strokes to scores, and the explorer's marks.

Checkpoints come from the ``app_checkpoints`` fixture (tests/conftest.py).
"""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from hvaelab.app import resources
from hvaelab.app.canvas import DrawCanvas
from hvaelab.app.draw_view import DrawView
from hvaelab.app.explorer import LikelihoodRatioExplorer
from hvaelab.app.linked import (
    Example,
    ExampleInspector,
    Selection,
    _cover,
    linked_explorer,
    selection_for,
    upload_inspector,
)
from hvaelab.app.score_figures import roc_point
from hvaelab.app.widgets import LiveFigure
from hvaelab.data.strokes import Stroke, image_to_strokes, quantize, strokes_to_image
from hvaelab.example_report import example_report, reference_layer_kl
from hvaelab.latents import latent_reconstructions
from hvaelab.model import model_inputs
from hvaelab.scores import reference_key, score_inputs


@pytest.fixture
def shipped(app_checkpoints):
    lm = resources.load_checkpoint("fashionmnist")
    tables = resources.load_score_tables("fashionmnist")
    ref = tables[reference_key(tables, lm.dataset or "fashionmnist")]
    return lm.model, ref, resources.load_shipped_samples("fashionmnist")


def test_example_report_is_the_scoring_entry_point_plus_reconstructions(shipped):
    model, ref, samples = shipped
    image = samples["mnist"][3]
    r = example_report(model, image, ref, "a digit", fpr=0.05)
    direct = score_inputs(model, image[None], ref, fpr=0.05)
    for name, values in direct.scores.items():
        assert r.score(name) == pytest.approx(float(values[0]), rel=1e-6, abs=1e-6), name
        assert r.p_value(name) == pytest.approx(float(direct.p_values[name][0]))
    assert r.is_ood == bool(direct.is_ood[0])
    rec = latent_reconstructions(model, image[None], mode="mean")
    assert r.reconstructions.ks == list(range(model.n_layers + 1))
    assert torch.allclose(r.reconstructions.images, rec.images)
    # the per-layer KL is the table's closed-form kl<i>: they sum to rec>0 - (mean-path ELBO)
    assert r.layer_kl.shape == (model.n_layers,) and np.all(r.layer_kl >= 0)
    assert r.layer_kl.tolist() == pytest.approx(
        [float(direct.stats[f"kl{i}"][0]) for i in range(1, model.n_layers + 1)]
    )
    door = model_inputs(model, image[None], "fixed", int(ref.meta.get("seed", 0))).x01
    assert np.array_equal(r.model_input, door[0].numpy())
    # the same array always gives the same report
    again = example_report(model, image.copy(), ref, "again")
    assert again.score("LLR>1") == r.score("LLR>1")
    with pytest.raises(ValueError, match="ONE image"):
        example_report(model, samples["mnist"][:2], ref)


def test_scores_without_the_lower_bounds_keep_every_ratio_over_k(shipped):
    model, ref, samples = shipped
    batch = samples["fashionmnist"][:4]
    full = score_inputs(model, batch, ref)
    fast = score_inputs(model, batch, ref, lt=False)
    assert not any(s.startswith("-L<") for s in fast.scores)
    for name in full.verdict_scores + ["-ELBO", "-L>1"]:
        assert np.allclose(fast.scores[name], full.scores[name]), name
    assert np.array_equal(fast.is_ood, full.is_ood)


def test_reference_layer_kl_needs_the_kl_columns(shipped):
    _, ref, _ = shipped
    kl = reference_layer_kl(ref)
    assert kl.shape == (len(ref), ref.n_layers)
    stripped = type(ref)({k: v for k, v in ref.columns.items() if k != "kl2"}, ref.meta)
    with pytest.raises(ValueError, match="kl2"):
        reference_layer_kl(stripped)


def test_roc_point_by_hand():
    s_in = np.array([0.0, 1.0, 2.0, 3.0])
    s_ood = np.array([1.5, 2.5, 3.5, 4.5])
    # flag inputs scoring >= 2.5: in-distribution 3.0 (1 of 4), OOD 2.5, 3.5, 4.5 (3 of 4)
    assert roc_point(s_in, s_ood, 2.5) == (0.25, 0.75)
    assert roc_point(s_in, s_ood, 10.0) == (0.0, 0.0)
    assert roc_point(s_in, s_ood, -1.0) == (1.0, 1.0)


def test_cover_widens_a_range_only_when_needed():
    assert _cover([0.0, 10.0], 5.0) == [0.0, 10.0]
    lo, hi = _cover([0.0, 10.0], 30.0)
    assert lo == 0.0 and hi == pytest.approx(31.5)  # 5% of the new span beyond the value
    assert _cover([0.0, 10.0], -10.0)[0] == pytest.approx(-11.0)


def test_selection_tells_every_view_and_the_inspector_marks_each_figure(shipped, app_checkpoints):
    model, ref, samples = shipped
    tables = resources.load_score_tables("fashionmnist")
    sel = Selection(model, ref)
    seen = []
    sel.observe(lambda e, r: seen.append((e.name, r.score("LLR>1"))))
    inspector = ExampleInspector(sel, tables, "fashionmnist")
    image = samples["mnist"][5]
    report = sel.select(Example("digit 5", image, "MNIST test"))
    assert seen == [("digit 5", report.score("LLR>1"))]
    late = []
    sel.observe(lambda e, r: late.append(e.name))  # a view added later is shown the selection
    assert late == ["digit 5"]
    # density: one dashed line per LLR>k of the verdict (k below the top active layer: all
    # three layers are active, so k = 1, 2) at the example's value, with its p-value
    assert inspector.llr == ["LLR>1", "LLR>2"]
    dens = inspector.density.figure["layout"]
    lines = [s for s in dens["shapes"] if s["name"] == "digit 5"]
    assert [s["x0"] for s in lines] == pytest.approx(
        [report.score(f"LLR>{k}") for k in range(1, model.n_layers)]
    )
    notes = " ".join(a["text"] for a in dens["annotations"])
    assert f"p = {report.p_value('LLR>1'):.3f}" in notes
    for k, line in enumerate(lines, start=1):  # every marker is inside its panel's range
        ax = dens["xaxis" + ("" if k == 1 else str(k))]["range"]
        assert ax[0] <= line["x0"] <= ax[1]
    # ROC: the point where the example's own score is the threshold, on every LLR>k curve
    roc = inspector.roc.figure["data"][-1]
    s_in, s_ood = inspector.s_in, inspector.s_ood
    expect = [roc_point(s_in[s], s_ood[s], report.score(s)) for s in inspector.llr]
    assert list(zip(roc["x"], roc["y"], strict=True)) == expect
    # per-layer KL: one mark per layer at the report's KL
    kl = [s for s in inspector.kl.figure["layout"]["shapes"] if s["name"] == "digit 5"]
    assert [s["yanchor"] for s in kl] == pytest.approx(report.layer_kl.tolist())
    # the views show the verdict and the values
    assert (
        f'data-verdict="{"OOD" if report.is_ood else "in-distribution"}"' in inspector.table.value
    )
    shown = dict(re.findall(r'class="hvae-inspect-value" data-score="([^"]+)" data-value="([^"]+)"',
                            inspector.table.value))  # fmt: skip
    assert float(shown["LLR&gt;1"]) == pytest.approx(report.score("LLR>1"), rel=1e-5)
    assert inspector.recons.value.count('class="hvae-inspect-rec"') == model.n_layers + 1


def test_live_figure_sends_only_its_overlay():
    fig = LiveFigure({"data": [{"type": "scatter", "x": [1, 2]}], "layout": {"height": 200}}, "c")
    fig.show([{"type": "scatter", "x": [3]}], {"shapes": [{"type": "line"}]})
    plot = fig.plot
    assert "c" in fig.box._dom_classes and "hvae-live-figure" in plot._dom_classes
    assert fig.box.children == (plot,)
    assert plot.revision == 1 and plot.overlay == [{"type": "scatter", "x": [3]}]
    assert plot.base["data"] == [{"type": "scatter", "x": [1, 2]}]  # sent once, unchanged
    whole = fig.figure
    assert [t["x"] for t in whole["data"]] == [[1, 2], [3]]
    assert whole["layout"] == {"height": 200, "shapes": [{"type": "line"}]}


def test_under_voila_anywidgets_are_created_when_the_page_has_settled(monkeypatch):
    """anywidget gives a model 2 s from its creation in the browser to load; a page's models are
    all created at load, amid long tasks. So under Voila they (figures included) are created
    when the gate opens, in page order, with the state they have by then."""
    from hvaelab.app import widgets as app_widgets
    from hvaelab.app.linked import ExampleStrip

    gate = app_widgets.FrontEndGate(is_open=False)
    monkeypatch.setattr(app_widgets, "GATE", gate)
    live = LiveFigure({"data": [{"type": "bar"}], "layout": {}}, "live")
    live.show([{"type": "scatter", "x": [7]}])
    order = []
    slot = app_widgets.AnySlot(lambda: order.append("strip") or ExampleStrip(), "strip")
    slot.on_build(lambda w: order.append("callback"))
    figure = app_widgets.FigureSlot({"data": [{"type": "bar"}], "layout": {}}, "fig")
    made = figure._make
    monkeypatch.setattr(figure._slot, "_factory", lambda: order.append("figure") or made())
    marker = app_widgets.ready_marker()
    assert live.plot is None and slot.widget is None and live.box.children == ()
    assert figure.plot is None and "hvae-ready" not in marker._dom_classes
    marker._view_count = 1  # the browser has put the page on screen
    assert live.plot is not None and live.plot.overlay == [{"type": "scatter", "x": [7]}]
    assert live.plot.revision == 1 and slot.box.children == (slot.widget,)
    assert order == ["strip", "callback", "figure"]  # in page order, then the ready class
    assert figure.plot.base["data"] == [{"type": "bar"}] and "hvae-ready" in marker._dom_classes


def test_canvas_image_is_the_strokes_preprocessed(app_checkpoints):
    canvas = DrawCanvas()
    assert canvas.image.shape == (28, 28) and not canvas.image.any()
    stroke = Stroke(((40.0, 40.0), (200.0, 200.0)), width=20, ink=1.0)
    canvas.add_stroke(stroke)
    assert canvas.revision == 1
    assert np.array_equal(canvas.image, strokes_to_image([stroke]))
    canvas.undo()
    assert canvas.revision == 2 and not canvas.image.any()
    base = resources.load_shipped_samples("fashionmnist")["fashionmnist"][0]
    canvas.load(base)
    assert np.array_equal(canvas.image, base)
    with pytest.raises(ValueError, match="uint8"):
        canvas.load(base.astype(np.float32))
    canvas.strokes = [{"points": [[0, 0]], "ink": 7}]  # what a broken browser might send
    with pytest.raises(ValueError, match="ink"):
        canvas.image  # noqa: B018


def test_draw_view_scores_every_stroke_like_the_entry_point(shipped):
    model, ref, samples = shipped
    view = DrawView("fashionmnist")
    canvas = view.canvas
    assert canvas.done_revision == canvas.revision  # the empty canvas was shown at once
    digit = samples["mnist"][2]
    for s in image_to_strokes(digit, levels=4):
        canvas.add_stroke(s)
    assert canvas.done_revision == canvas.revision
    drawn = view.selection.report
    assert np.array_equal(drawn.image, quantize(digit, 4))
    direct = score_inputs(model, quantize(digit, 4)[None], ref)
    for name in direct.verdict_scores:
        assert drawn.score(name) == pytest.approx(float(direct.scores[name][0]), rel=1e-6)
    assert "your drawing" in view.inspector.header.value
    # start from a test image: the canvas shows it, and the views follow
    view.start_from_test_image("fashionmnist", index=4)
    assert np.array_equal(view.selection.report.image, samples["fashionmnist"][4])
    assert "test image 5" in view.inspector.header.value
    # bad strokes from the browser: a message, nothing lost, the browser is told it is done
    before = view.selection.report
    canvas.strokes = [{"points": [[float("nan"), 1.0]]}]
    canvas.revision += 1
    assert "hvae" not in view.error.value and "points" in view.error.value
    assert canvas.done_revision == canvas.revision and view.selection.report is before


def test_linked_explorer_marks_the_selected_example_everywhere(app_checkpoints):
    box = linked_explorer("fashionmnist")
    explorer, picker, inspector = box.explorer, box.picker, box.inspector
    strip = picker.strip
    n = len(picker.examples)
    assert len(strip.points) == n and strip.rows[0] == "FashionMNIST"
    # the strip follows the explorer's score
    llr1 = [p["x"] for p in strip.points]
    explorer.k_slider.value = 2
    assert [p["x"] for p in strip.points] != llr1 and "LLR" in strip.x_title
    index = n - 1
    strip.selected = index  # a click in the browser
    example = picker.examples[index]
    report = box.selection.report
    assert report.name == example.name and np.array_equal(report.image, example.image)
    assert example.name in inspector.header.value
    score = explorer.score_name
    marks = explorer.density_fig.data[-1]
    assert any(f"selected: {example.name}" in str(t) for t in marks.text)
    roc = explorer.roc_fig.data[-1]
    ctx = explorer._context()
    assert (roc.x[0], roc.y[0]) == roc_point(ctx.s_in[score], ctx.s_ood[score], report.score(score))
    # the strip's point sits at the example's score
    assert strip.points[index]["x"] == pytest.approx(report.score(score), rel=1e-5)  # float32


def test_upload_inspector_shows_the_chosen_upload(app_checkpoints):
    import datetime
    import io

    from PIL import Image

    box = upload_inspector("fashionmnist")
    samples = resources.load_shipped_samples("fashionmnist")

    def png(name, a):
        buf = io.BytesIO()
        Image.fromarray(a, mode="L").save(buf, format="PNG")
        data = buf.getvalue()
        return {"name": name, "type": "image/png", "size": len(data), "content": memoryview(data),
                "last_modified": datetime.datetime.now(datetime.UTC)}  # fmt: skip

    box.scorer.upload.value = (
        png("shirt.png", samples["fashionmnist"][1]),
        png("digit.png", samples["mnist"][1]),
    )
    assert box.selection.report.name == "shirt.png"
    box.chooser.value = 1
    assert box.selection.report.name == "digit.png"
    assert np.array_equal(box.selection.report.image, samples["mnist"][1])


def test_selection_for_uses_the_reference_of_the_training_set(app_checkpoints):
    sel, tables, in_name, key = selection_for("fashionmnist")
    assert in_name == "fashionmnist" and key.startswith("fashionmnist@")
    assert sel.reference is tables[key] and sel.reference.n_samples == 1


def test_explorer_set_selected_none_removes_the_mark(app_checkpoints):
    ex = LikelihoodRatioExplorer("fashionmnist")
    ex.set_selected("x", {s: 0.0 for s in ex._context().s_in})
    assert any("selected: x" in str(t) for t in ex.density_fig.data[-1].text)
    # named in the legend as what it is: a selected example, not "your images"
    assert ex.density_fig.data[-1].name == "selected example"
    ex.set_selected(None)
    assert not any("selected" in str(t) for t in (ex.density_fig.data[-1].text or ()))
    assert not any("selected" in (t.name or "") for t in ex.roc_fig.data)


def test_a_row_of_the_reconstruction_grid_is_inspected(app_checkpoints):
    from hvaelab.app.linked import linked_reconstructions

    box = linked_reconstructions("fashionmnist")
    recon, chooser = box.recon, box.chooser
    assert [label for label, _ in chooser.options] == recon.labels
    assert np.array_equal(box.selection.report.image, recon.images[0])  # the first row at once
    # the page opens on a FashionMNIST test image: in-distribution by the default verdict (the
    # second stage) and by the paper's (LLR>1, LLR>2); it said OOD by LLR>3 when k = L voted
    scores = box.selection.report.scores
    assert "FashionMNIST" in recon.labels[0] and not scores.is_ood[0] and not scores.paper.is_ood[0]
    assert 'data-verdict="in-distribution"' in box.inspector.table.value
    chooser.value = 3
    assert np.array_equal(box.selection.report.image, recon.images[3])
    assert recon.labels[3] in box.inspector.header.value
    recon.shuffle_inputs()  # new rows: the menu and the inspected input follow
    assert [label for label, _ in chooser.options] == recon.labels
    assert np.array_equal(box.selection.report.image, recon.images[0])


def test_reports_are_kept_and_prepared_ahead_for_the_next_shuffle(app_checkpoints, monkeypatch):
    """A report is computed once per example (name and pixels), also when prepared ahead in
    another thread; the reconstruction page prepares the next shuffle's first row, so the
    shuffle shows a report that took no model pass at the click. The cache is bounded."""
    from hvaelab.app import linked
    from hvaelab.app.linked import linked_reconstructions
    from hvaelab.app.widgets import AHEAD

    AHEAD.submit(lambda: None).result()  # earlier tests' work ahead has finished
    made: list[str] = []
    real = linked.example_report

    def counting(model, image, reference, name, *args):
        made.append(name)
        return real(model, image, reference, name, *args)

    monkeypatch.setattr(linked, "example_report", counting)
    box = linked_reconstructions("fashionmnist")
    recon, selection = box.recon, box.selection
    first = selection.report
    assert made == [recon.labels[0]]
    box.chooser.value = 1
    box.chooser.value = 0
    assert selection.report is first and made == [recon.labels[0], recon.labels[1]]
    same_pixels = Example(recon.labels[0], recon.images[0].copy(), "elsewhere")
    assert selection.report_for(same_pixels) is first  # by name and pixels, not by object
    other_name = Example("another name", recon.images[0], "")
    assert selection.report_for(other_name) is not first and made[-1] == "another name"
    recon.k_slider.value = 1  # the page is in use: the next shuffle is prepared in a thread
    recon._next.job.result()
    prepared = len(made)
    assert recon._next.labels[0] in {name for name, _ in selection._reports}
    recon.shuffle_inputs()
    assert len(made) == prepared and selection.report.name == recon.labels[0]
    assert np.array_equal(selection.report.image, recon.images[0])
    monkeypatch.setattr(linked, "REPORT_CACHE", 2)
    for i in range(4):
        selection.report_for(Example(f"row {i}", recon.images[i], ""))
    assert len(selection._reports) == 2


def test_an_uploads_report_scores_it_once_for_the_table_and_the_inspector(
    app_checkpoints, monkeypatch
):
    """The upload page scores an upload of one image by its report (one score_inputs call, no
    L<l passes): the table's scores, p-values and verdict are exactly what score_inputs gives,
    and the inspector shows the same report without a second pass."""
    import datetime
    import io

    from PIL import Image

    from hvaelab.app import linked
    from hvaelab.scores import score_inputs

    made: list = []
    real = linked.example_report

    def counting(model, image, reference, name, *args):
        made.append(name)
        return real(model, image, reference, name, *args)

    monkeypatch.setattr(linked, "example_report", counting)
    box = upload_inspector("fashionmnist")
    box.scorer.fpr.value = 0.2  # the table's verdict follows the page's FPR, not the report's
    image = resources.load_shipped_samples()["mnist"][2]
    buf = io.BytesIO()
    Image.fromarray(image, mode="L").save(buf, "PNG")
    data, now = buf.getvalue(), datetime.datetime.now(datetime.UTC)
    box.scorer.upload.value = (
        {"name": "two.png", "type": "image/png", "size": len(data), "content": memoryview(data),
         "last_modified": now},
    )  # fmt: skip
    assert box.selection.report.name == "two.png"
    assert made == ["two.png"]  # once, not again for the select
    got = box.scorer.result.scores
    want = score_inputs(
        box.selection.model, image[None], box.scorer.reference, fpr=0.2, names=["two.png"],
        lt=False,
    )  # fmt: skip
    assert got.scores.keys() == want.scores.keys()
    assert not any(k.startswith("L<") for k in got.scores)
    for k in want.scores:
        np.testing.assert_array_equal(got.scores[k], want.scores[k])
        np.testing.assert_array_equal(got.p_values[k], want.p_values[k])
    assert got.fpr == 0.2 and list(got.is_ood) == list(want.is_ood)
    assert box.selection.report.scores.fpr == 0.05  # the report's own verdict is left alone
    assert box.selection.report.score("LLR>1") == got.scores["LLR>1"][0]

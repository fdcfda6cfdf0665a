"""The static site's learn page (hvaelab.app.static_learn) without a browser: every question of
the Voilà teaching page, as its widgets show it for the same checkpoint; numbers that follow the
score tables; the toy and the divergences for every slider setting; the size; the command line.

The browser side (choices, reveals, sliders, offline) is tests/e2e/test_e2e_site_learn.py.
"""

from __future__ import annotations

import ast
import base64
import json
from pathlib import Path

import numpy as np
import pytest

from hvaelab.app import lesson, static_learn
from hvaelab.app.explorer import LikelihoodRatioExplorer
from hvaelab.score_names import TableKey
from hvaelab.scores import ScoreTable

NOTEBOOK = (
    Path(__file__).resolve().parents[1] / "notebooks" / "05_teaching_the_likelihood_ratio.ipynb"
)
MAX_BYTES = 3_000_000


@pytest.fixture(scope="module")
def site(app_checkpoints, tmp_path_factory) -> tuple[Path, dict]:
    folder = tmp_path_factory.mktemp("learn")
    static_learn.write_learn(folder, "fashionmnist")
    return folder, json.loads((folder / static_learn.LEARN_DATA).read_text())


def _notebook_questions() -> list[str]:
    """The ``*_question`` builders of hvaelab.app.lesson that notebook 05 calls, in its order."""
    cells = json.loads(NOTEBOOK.read_text())["cells"]
    called = []
    for cell in cells:
        if cell["cell_type"] != "code":
            continue
        for node in ast.walk(ast.parse("".join(cell["source"]))):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                name = node.func.id
                if name.endswith("_question") and hasattr(lesson, name) and name not in called:
                    called.append(name)
    return called


def _fresh_questions(checkpoint: str) -> dict[str, lesson.Question]:
    """The lesson's question widgets, built as notebook 05 builds them."""
    data = lesson.lesson_data(checkpoint)
    return {
        "likelihood": lesson.likelihood_question(data),
        "toy": lesson.toy_question(),
        "layer": lesson.layer_question(data),
        "ratio": lesson.ratio_question(data, k=lesson.RATIO_K),
    }


def _values(spec: dict) -> np.ndarray:
    """A typed array of a plotly JSON spec, decoded."""
    return np.frombuffer(base64.b64decode(spec["bdata"]), dtype="<" + spec["dtype"])


def test_every_question_of_the_voila_lesson_is_on_the_site_as_its_widget_shows_it(site):
    _, data = site
    ids = [q["id"] for q in data["questions"]]
    assert [f"{i}_question" for i in ids] == _notebook_questions()  # all of them, in order
    fresh = _fresh_questions("fashionmnist")
    assert list(fresh) == ids
    for stored in data["questions"]:
        q = fresh[stored["id"]]
        assert stored["prompt"] == q.head.value and "Question." in stored["prompt"]
        assert stored["choices"] == list(q.choice.options)
        assert stored["right"] == q.right_index
        q.show_answer()  # no choice made, then each choice clicked, as a student would
        assert stored["answer"] == q.answer_html.value
        for i, option in enumerate(q.choice.options):
            q.choice.value = option
            assert stored["answers"][i] == q.answer_html.value
            verdict = "✔ Right." if i == q.right_index else "✘ Not quite."
            assert verdict in stored["answers"][i]
    # the reveals: the explorer's views that notebook 05's snapshots show, and appendix C
    reveals = {q["id"]: q["reveal"] for q in data["questions"]}
    for name in ("likelihood", "ratio"):
        kwargs = dict(lesson.SNAPSHOTS[name])
        roc = kwargs.pop("roc", False)
        ex = LikelihoodRatioExplorer("fashionmnist", **kwargs)
        assert reveals[name]["info"] == ex.info.value
        assert reveals[name]["figures"] == [ex.density.spec, *([ex.roc.spec] if roc else [])]
    assert len(reveals["ratio"]["figures"]) == 2
    layer_fig = lesson.layer_terms_figure(lesson.lesson_data("fashionmnist"))
    assert reveals["layer"]["figures"] == [static_learn.figure_spec(layer_fig)]
    assert reveals["toy"]["toy"] and not reveals["likelihood"]["toy"]


def test_the_toy_and_the_divergences_for_every_slider_setting(site):
    _, data = site
    toy = data["toy"]
    assert toy["details"] == list(lesson.TOY_DETAILS)
    assert toy["slopes"] == pytest.approx([0.1 * i for i in range(1, 11)])
    assert len(toy["views"]) == 7 and all(len(row) == 10 for row in toy["views"])
    view = lesson.ToyView()
    assert toy["details"][toy["start"]["details"]] == view.details.value
    assert toy["slopes"][toy["start"]["slope"]] == view.slope.value
    for i, j in [(0, 4), (6, 4), (3, 9), (5, 0)]:
        view.details.value, view.slope.value = toy["details"][i], toy["slopes"][j]
        stored = toy["views"][i][j]
        assert stored["info"] == view.info.value
        want = view.slot.spec
        assert stored["figure"]["layout"] == want["layout"]
        for got, trace in zip(stored["figure"]["data"], want["data"], strict=True):
            # the arrays as float32 (7 digits), the rest as the widget sends it
            np.testing.assert_allclose(_values(got["x"]), _values(trace["x"]), rtol=1e-6)
            assert got["type"] == trace["type"] and got["name"] == trace["name"]
    figures = {json.dumps(v["figure"]) for row in toy["views"] for v in row}
    assert len(figures) == 70  # every setting its own figure
    gap = data["kl_gap"]
    kl = lesson.KLGapView(lesson.lesson_data("fashionmnist"))
    assert gap["ks"] == list(range(1, kl.k.max + 1)) and gap["ks"][gap["start"]] == kl.k.value
    for i, k in enumerate(gap["ks"]):
        kl.k.value = k
        assert gap["views"][i] == {"figure": kl.slot.spec, "info": kl.info.value}


def test_the_numbers_follow_the_score_tables(app_checkpoints, monkeypatch):
    """A planted change in the in-distribution table (its ELBO 50 nats lower) changes the numbers
    of the answers that read it, and only those."""
    before = {q["id"]: q for q in static_learn.question_views("fashionmnist")}
    load = lesson.load_score_tables
    in_name = lesson.lesson_data("fashionmnist").in_name

    def planted(checkpoint: str) -> dict[str, ScoreTable]:
        tables = dict(load(checkpoint))
        for key, table in tables.items():
            if TableKey.parse(key).dataset == in_name:
                cols = dict(table.columns)
                cols["elbo"] = cols["elbo"] - 50.0
                tables[key] = ScoreTable(cols, table.meta)
        return tables

    monkeypatch.setattr(lesson, "load_score_tables", planted)
    after = {q["id"]: q for q in static_learn.question_views("fashionmnist")}
    for name in ("likelihood", "ratio"):  # bits/dim, ELBO - L>1
        assert after[name]["answers"] != before[name]["answers"], name
    assert after["layer"]["answers"] == before["layer"]["answers"]  # reads rec>0 and kl<i>
    assert after["toy"]["answers"] == before["toy"]["answers"]  # the toy reads no table


def test_the_learn_data_fits_its_size_bound(site):
    folder, _ = site
    size = (folder / static_learn.LEARN_DATA).stat().st_size
    assert 100_000 < size < MAX_BYTES, size


def test_export_site_writes_the_learn_page_and_links_it(exported_site):
    out, printed = exported_site  # the session's one export, on the command line
    page = (out / static_learn.LEARN_PAGE).read_text()
    assert static_learn.LEARN_DATA in page and "site-ready" in page
    assert "http://" not in page and "https://" not in page  # nothing from another host
    assert (out / static_learn.LEARN_DATA).is_file()
    assert f'href="{static_learn.LEARN_PAGE}"' in (out / "index.html").read_text()
    assert "python -m http.server" in printed

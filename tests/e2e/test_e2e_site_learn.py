"""The static site's learn page (hvaelab.app.static_learn) in Chromium, served by a plain static
file server (no Jupyter process), offline.

A question tells nothing before its reveal; choosing, then revealing, shows the answer stored
for that choice (the Voilà widget's, tests/test_static_learn.py) and draws the reveal's figures;
the answer follows a later choice. The toy appears with its question's answer and its two
sliders switch its figure and AUROCs; the k slider switches the divergences of eqs. 7-8. No
request leaves the loopback (the favicon included: no 404); the page keeps working after the
server is stopped.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from harness import PageGuard, StaticServer

from hvaelab.app.static_learn import LEARN_DATA, LEARN_PAGE, write_learn
from hvaelab.app.static_site import FAVICON, PLOTLY
from hvaelab.package_files import template_dir

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> tuple[Path, dict]:
    """The learn page with what it needs beside it (not the whole site: no explorer views)."""
    folder = tmp_path_factory.mktemp("learn-site")
    write_learn(folder, "fashionmnist")
    (folder / PLOTLY).write_text((template_dir() / "static" / PLOTLY).read_text())
    (folder / "favicon.svg").write_text(FAVICON)
    return folder, json.loads((folder / LEARN_DATA).read_text())


# the traces plotly drew in the divs that match: [[name, x] per trace] per div (the full data:
# plotly's typed arrays decoded)
DRAWN_JS = """(sel) => Array.from(document.querySelectorAll(sel)).map((gd) =>
  gd._fullData ? gd._fullData.map((t) => [t.name ?? null, Array.from(t.x ?? [])]) : null)"""
# whether each plotly div that matches is drawn no wider than the div (the figures of a reveal
# stand side by side: each must be measured once all are in place)
FITS_JS = """(sel) => Array.from(document.querySelectorAll(sel)).map((gd) =>
  gd._fullLayout.width <= gd.getBoundingClientRect().width + 1)"""
TEXT_OF_HTML_JS = """(h) => { const d = document.createElement('div'); d.innerHTML = h;
  return d.textContent; }"""


def _open(browser, server: StaticServer):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    guard = PageGuard().attach(page)
    page.goto(server.url + LEARN_PAGE)
    page.wait_for_selector("body.site-ready")
    return context, page, guard


def _check_requests(server: StaticServer, guard: PageGuard) -> None:
    failed = [(p, c) for p, c in server.requests if c >= 400]
    assert not failed, f"requests that failed: {failed}"
    assert ("/favicon.svg", 200) in server.requests
    guard.assert_clean()


def test_a_choice_then_the_reveal_shows_the_answer_and_its_figures_offline(browser, site):
    folder, data = site
    server = StaticServer(folder)
    context, page, guard = _open(browser, server)
    try:
        server.stop()  # loaded: the page needs no server any more
        for q in data["questions"]:
            box = f"#question-{q['id']}"
            assert page.inner_html(f"{box} .prompt") != ""
            choices = page.locator(f"{box} .choice")
            assert choices.all_inner_texts() == q["choices"]
            # nothing gives the answer away before the reveal
            assert page.inner_text(f"{box} .answer") == ""
            assert page.locator(f"{box} .then .js-plotly-plot").count() == 0
            wrong = (q["right"] + 1) % len(q["choices"])
            choices.nth(wrong).click()
            assert choices.nth(wrong).get_attribute("aria-pressed") == "true"
            assert page.inner_text(f"{box} .answer") == ""  # a choice alone tells nothing
            page.click(f"{box} .reveal")
            page.wait_for_selector(f"{box}.revealed")
            shown = page.inner_text(f"{box} .answer")
            assert shown == page.evaluate(TEXT_OF_HTML_JS, q["answers"][wrong]).strip()
            assert shown.startswith("✘ Not quite.")
            assert f"Answer: {q['choices'][q['right']]}." in shown
            assert page.is_disabled(f"{box} .reveal")
            figures = page.evaluate(DRAWN_JS, f"{box} .then .figure")
            assert len(figures) == len(q["reveal"]["figures"])
            for drawn, stored in zip(figures, q["reveal"]["figures"], strict=True):
                assert drawn is not None and len(drawn) == len(stored["data"])
                assert [t[0] for t in drawn] == [t.get("name") for t in stored["data"]]
                assert any(len(t[1]) for t in drawn)
            assert all(page.evaluate(FITS_JS, f"{box} .then .figure"))
            # after the reveal, the answer follows the choice
            choices.nth(q["right"]).click()
            assert page.inner_text(f"{box} .answer").startswith("✔ Right.")
        # the toy appears with its question's answer, drawn
        assert page.is_visible("#question-toy #toy")
        assert page.evaluate(DRAWN_JS, "#toy-fig")[0] is not None
    finally:
        context.close()
        server.stop()
    _check_requests(server, guard)


def test_the_toys_sliders_and_the_k_slider_switch_their_views_offline(browser, site):
    folder, data = site
    toy, gap = data["toy"], data["kl_gap"]
    server = StaticServer(folder)
    context, page, guard = _open(browser, server)
    try:
        server.stop()
        assert not page.is_visible("#toy")  # the toy comes with its question's answer
        page.click("#question-toy .reveal")
        page.wait_for_selector("#question-toy.revealed")
        i0, j0 = toy["start"]["details"], toy["start"]["slope"]
        assert (
            page.get_attribute("#toy", "data-view") == f"{toy['details'][i0]}|{toy['slopes'][j0]}"
        )
        first = page.evaluate(DRAWN_JS, "#toy-fig")
        for slider, (i, j) in (("#toy-details", (i0 + 1, j0)), ("#toy-slope", (i0 + 1, j0 + 1))):
            page.focus(slider)
            page.keyboard.press("ArrowRight")
            want = f"{toy['details'][i]}|{toy['slopes'][j]}"
            page.wait_for_function(
                f"() => document.getElementById('toy').dataset.view === '{want}'"
            )
            moved = page.evaluate(DRAWN_JS, "#toy-fig")
            assert moved != first
            first = moved
            assert page.inner_text("#toy-info") == (
                page.evaluate(TEXT_OF_HTML_JS, toy["views"][i][j]["info"]).strip()
            )
            assert page.inner_text("#toy-details-value") == str(toy["details"][i])
        # the divergences of eqs. 7-8: one view per k
        assert page.get_attribute("#gap-fig", "data-k") == str(gap["ks"][gap["start"]])
        before = page.evaluate(DRAWN_JS, "#gap-fig")
        page.focus("#gap-k")
        page.keyboard.press("ArrowRight")
        k = gap["ks"][gap["start"] + 1]
        page.wait_for_function(f"() => document.getElementById('gap-fig').dataset.k === '{k}'")
        assert page.evaluate(DRAWN_JS, "#gap-fig") != before
        assert page.inner_text("#gap-info") == (
            page.evaluate(TEXT_OF_HTML_JS, gap["views"][gap["start"] + 1]["info"]).strip()
        )
    finally:
        context.close()
        server.stop()
    _check_requests(server, guard)

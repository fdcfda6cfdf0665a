"""``hvaelab export-site``: the static site's explore page in Chromium, served by a plain static
file server (no Jupyter process), offline.

The page's score menu, k slider and OOD menu switch both figures and Table 2 in the browser to
the views the Voilà explorer shows for the same controls; no request leaves the loopback (the
favicon included: no 404); the page keeps working after the server is stopped.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from harness import PageGuard, StaticServer

from hvaelab.app.static_site import EXPLORE_DATA

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def site(exported_site) -> Path:
    """The session's one export (tests/conftest.py)."""
    return exported_site[0]


# The figures shown (each view is drawn into divs of its own, one shown at a time), with the
# view each was drawn for.
FIGURES_JS = """() => ['density', 'roc'].map((id) => {
  const shown = document.querySelectorAll('#' + id + ' > .shown');
  if (shown.length !== 1) return null;
  const gd = shown[0], r = gd.getBoundingClientRect();
  const visible = getComputedStyle(gd).visibility === 'visible' && r.width > 0 && r.height > 0;
  return visible && gd.data
    ? JSON.stringify([gd.dataset.key, gd.data.map((t) => [t.name, t.x, t.y])]) : null;
})"""


def _view_of(page) -> tuple[str, str]:
    return tuple(page.evaluate(FIGURES_JS))


def test_the_explore_page_switches_its_views_in_the_browser_offline(browser, site):
    views = json.loads((site / EXPLORE_DATA).read_text())
    server = StaticServer(site)
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    guard = PageGuard().attach(page)
    try:
        page.goto(server.url + "explore.html")
        page.wait_for_selector("body.site-ready")
        first = _view_of(page)
        assert None not in first
        ood0 = views["start"]["ood"]  # the Voilà explorer's first view
        assert page.evaluate("() => document.body.dataset.view") == f"{ood0}|LLR>k|1"
        # the k slider: both figures change, to the stored view for k = 2
        page.focus("#k")
        page.keyboard.press("ArrowRight")
        page.wait_for_function("() => document.body.dataset.view.endsWith('|LLR>k|2')")
        moved = _view_of(page)
        assert moved[0] != first[0] and moved[1] != first[1]
        assert all(json.loads(m)[0] == f"{ood0}|LLR>k|2" for m in moved)
        # back to k = 1: the figures drawn first are shown again, unchanged
        page.keyboard.press("ArrowLeft")
        page.wait_for_function("() => document.body.dataset.view.endsWith('|LLR>k|1')")
        assert _view_of(page) == first
        page.keyboard.press("ArrowRight")
        page.wait_for_function("() => document.body.dataset.view.endsWith('|LLR>k|2')")
        assert _view_of(page) == moved
        stored = views["views"][f"{ood0}|LLR>k|2"]
        assert page.inner_html("#table") == stored["table"]
        server.stop()  # loaded: the page needs no server any more
        # the score menu: the ELBO has no k (the slider is disabled)
        page.select_option("#family", "ELBO")
        page.wait_for_function("() => document.body.dataset.view.includes('|ELBO|')")
        assert page.is_disabled("#k")
        elbo = _view_of(page)
        assert elbo[0] != moved[0]
        # the OOD menu
        other = next(o["value"] for o in views["ood"] if o["value"] != ood0)
        page.select_option("#ood", other)
        page.wait_for_function(f"() => document.body.dataset.view.startsWith('{other}|')")
        assert _view_of(page)[0] != elbo[0]
        assert page.inner_html("#table") == views["views"][f"{other}|ELBO|1"]["table"]
    finally:
        context.close()
        server.stop()
    missing = [(p, c) for p, c in server.requests if c >= 400]
    assert not missing, f"requests that failed: {missing}"
    assert ("/favicon.svg", 200) in server.requests
    guard.assert_clean()

"""``hvaelab export-site`` (hvaelab.app.static_site): the explore page's stored views are the Voilà
explorer's for the same controls; the site's files; the command line.

The browser side (the page switching its views, offline) is tests/e2e/test_e2e_static_site.py.
"""

from __future__ import annotations

import json

import pytest

from hvaelab.app.explorer import LikelihoodRatioExplorer
from hvaelab.app.static_site import EXPLORE_DATA, export_site
from hvaelab.cli import main


@pytest.fixture(scope="module")
def site(app_checkpoints, tmp_path_factory):
    folder = tmp_path_factory.mktemp("site")
    written = export_site(folder, "fashionmnist")
    return folder, written


def test_every_stored_view_is_the_voila_explorers_for_its_controls(site):
    folder, _ = site
    data = json.loads((folder / EXPLORE_DATA).read_text())
    ex = LikelihoodRatioExplorer("fashionmnist")
    assert data["start"] == {"ood": ex.ood_select.value, "family": ex.score_select.value, "k": 1}
    assert [f["value"] for f in data["families"]] == [v for _, v in ex.score_select.options]
    assert data["k_max"] == ex.n_layers >= 2
    oods = [o["value"] for o in data["ood"]]
    assert oods == [v for _, v in ex.ood_select.options]
    for family in [f["value"] for f in data["families"]]:
        has_k = next(f["k"] for f in data["families"] if f["value"] == family)
        ks = range(1, ex.n_layers + 1) if has_k else [1]
        assert {f"{o}|{family}|{k}" for o in oods for k in ks} <= set(data["views"])
        if not has_k:  # one view: the score has no k
            assert f"{oods[0]}|{family}|2" not in data["views"]
    # a few views against a fresh explorer set to the same controls
    for ood, family, k in [
        (oods[-1], "LLR>k", 2),
        (oods[0], "L>k", ex.n_layers),
        (oods[0], "ELBO", 1),
    ]:
        fresh = LikelihoodRatioExplorer("fashionmnist", ood_name=ood, family=family, k=k)
        view = data["views"][f"{ood}|{family}|{k}"]
        assert view["density"] == fresh.density.spec
        assert view["roc"] == fresh.roc.spec
        assert view["table"] == fresh.table.value and view["info"] == fresh.info.value
    # k moves the view
    a, b = (data["views"][f"{oods[0]}|LLR>k|{k}"]["density"] for k in (1, 2))
    assert a != b


def test_the_site_has_its_pages_scripts_licence_and_favicon(site):
    folder, written = site
    names = {p.relative_to(folder).as_posix() for p in written}
    assert {"index.html", "explore.html", "favicon.svg", "js/preprocess.js"} <= names
    assert {"plotly-hvaelab.min.js", "plotly-LICENSE.txt", EXPLORE_DATA} <= names
    index = (folder / "index.html").read_text()
    assert "python -m http.server" in index and 'href="explore.html"' in index
    for page in ("index.html", "explore.html"):
        text = (folder / page).read_text()
        assert 'rel="icon" href="favicon.svg"' in text
        assert "http://" not in text and "https://" not in text  # nothing from another host


def test_export_site_on_the_command_line(app_checkpoints, tmp_path, capsys):
    assert main(["export-site", str(tmp_path / "out"), "--checkpoint", "fashionmnist"]) == 0
    assert (tmp_path / "out" / "explore.html").is_file()
    assert "python -m http.server" in capsys.readouterr().out

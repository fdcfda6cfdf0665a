"""``hvaelab export-site`` (hvaelab.app.static_site): the explore page's stored views are the Voilà
explorer's for the same controls; the site's files (the model and its sidecar, the vendored ONNX
Runtime Web, the draw page); the command line; a missing dataset or runtime writes nothing.

The site is exported once for the whole run, on the command line (tests/conftest.py's
``exported_site``, shared with the browser tests), with a reference of ``site_reference_limit``
in-distribution test images (the export scores them and builds every explorer view: some ten
seconds to a minute).
The browser side is tests/e2e/test_e2e_static_site.py (explore) and tests/e2e/test_site_draw.py
(draw).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from hvaelab.app import static_site
from hvaelab.app.explorer import LikelihoodRatioExplorer
from hvaelab.app.static_site import DRAW_DATA, EXPLORE_DATA, MODEL, VENDOR, export_site
from hvaelab.cli import main
from hvaelab.data import DataNotFoundError, clear_cache
from hvaelab.onnx_export import read_sidecar, sidecar_path
from hvaelab.package_files import PackageDataError, site_dir

N_REF = 200  # the exports made here (the shared one scores site_reference_limit images)


@pytest.fixture(scope="module")
def site(exported_site):
    """The session's one export (tests/conftest.py), on the command line."""
    return exported_site


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
    folder, printed = site
    names = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}
    assert {"index.html", "explore.html", "draw.html", "favicon.svg"} <= names
    assert {f"js/{p.name}" for p in (site_dir() / "js").glob("*.js")} <= names
    assert {"js/draw.js", "js/model.js", "js/preprocess.js", "js/sidecar.js"} <= names
    assert {"plotly-hvaelab.min.js", "plotly-LICENSE.txt", EXPLORE_DATA, DRAW_DATA} <= names
    index = (folder / "index.html").read_text()
    assert "python -m http.server" in index and 'href="explore.html"' in index
    assert 'href="draw.html"' in index
    for page in ("index.html", "explore.html", "draw.html"):
        text = (folder / page).read_text()
        assert 'rel="icon" href="favicon.svg"' in text
        assert "http://" not in text and "https://" not in text  # nothing from another host
    for name in ("draw.js", "model.js"):
        text = (folder / "js" / name).read_text()
        assert "http://" not in text and "https://" not in text
    assert f"wrote {len(names)} files" in printed and "python -m http.server" in printed


def test_the_site_ships_the_model_and_the_runtime(site, datasets, site_reference_limit):
    folder, _ = site
    side = read_sidecar(sidecar_path(folder / MODEL))
    assert side["onnx"]["file"] == MODEL
    assert side["checkpoint"]["name"] == "fashionmnist"
    ref = side["reference"]
    # the reference: the in-distribution test split, read through the data registry
    n = site_reference_limit
    assert (ref["dataset"], ref["split"], ref["n"]) == (datasets.fashionmnist, "test", n)
    assert all(len(v) == n for v in ref["scores"].values())
    assert side["second_stage"] is not None
    assert (folder / MODEL).stat().st_size > 100_000
    runtime = ("ort.wasm.bundle.min.mjs", "ort-wasm-simd-threaded.wasm", "LICENSE")
    for name in runtime:  # byte for byte, the wasm included (js/model.js loads these two)
        src = site_dir() / VENDOR / name
        assert (folder / VENDOR / name).read_bytes() == src.read_bytes(), name
    draw = " ".join((folder / "draw.html").read_text().split())
    assert "js/draw.js" in draw and "mean-path statistics" in draw
    assert "S importance" in draw and "verdict rule is the same" in draw
    # "start from a test image": a few shipped test images of each real dataset
    sets = json.loads((folder / DRAW_DATA).read_text())["sets"]
    assert [s["value"] for s in sets][:2] == ["fashionmnist", "mnist"]
    for s in sets:
        imgs = np.asarray(s["images"])
        assert imgs.shape == (static_site.N_START_IMAGES, 784) and imgs.max() <= 255
        assert imgs.min() >= 0 and s["label"]


def _tree(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()
    }


def test_a_missing_dataset_writes_nothing(app_checkpoints, tmp_path, monkeypatch, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("HVAELAB_DATA", str(empty))
    monkeypatch.setenv("HVAELAB_DATA_ONLY", "1")
    clear_cache()
    checkpoint = str(app_checkpoints / "fashionmnist")
    try:
        # a new folder is not created
        out = tmp_path / "new"
        with pytest.raises(DataNotFoundError, match="Could not find dataset 'fashionmnist'") as e:
            export_site(out, checkpoint, reference_limit=N_REF)
        assert "hvaelab data fetch" in str(e.value) and str(empty) in str(e.value)
        assert not out.exists()
        # an existing site is left as it was (the command line: one line, where it looked)
        old = tmp_path / "old"
        (old / "js").mkdir(parents=True)
        (old / "index.html").write_text("an older site")
        (old / "js" / "draw.js").write_text("// older")
        before = _tree(old)
        other = tmp_path / "other-data"
        other.mkdir()
        args = ["--checkpoint", checkpoint, "--reference-limit", "50", "--data-dir", str(other)]
        rc = main(["export-site", str(old), *args])
        err = capsys.readouterr().err
        assert rc == 2 and "Traceback" not in err
        assert "hvaelab export-site: error: dataset 'fashionmnist'" in err, err
        # --data-dir is searched too: five places under it, five under $HVAELAB_DATA
        assert "not found in 10 places" in err and "hvaelab data fetch" in err, err
        assert _tree(old) == before
    finally:
        clear_cache()


def test_a_missing_runtime_says_how_to_fetch_it(tmp_path, monkeypatch):
    bare = tmp_path / "site-files"
    shutil.copytree(site_dir() / "js", bare / "js")
    (bare / VENDOR).mkdir(parents=True)
    (bare / VENDOR / "LICENSE").write_text("licence")
    monkeypatch.setattr(static_site, "site_dir", lambda: bare)
    out = tmp_path / "out"
    with pytest.raises(PackageDataError, match=r"python scripts/fetch_onnxruntime_web\.py") as e:
        export_site(out, "fashionmnist")
    assert "ort-wasm-simd-threaded.wasm" in str(e.value) and str(bare / VENDOR) in str(e.value)
    assert not out.exists()


def test_without_the_onnx_extra_the_command_says_what_to_install(monkeypatch, tmp_path, capsys):
    def no_onnx(*_args, **_kwargs):
        raise ImportError("onnxscript not installed")

    monkeypatch.setattr(static_site, "export_site", no_onnx)
    rc = main(["export-site", str(tmp_path / "site")])
    err = capsys.readouterr().err
    assert rc == 2 and "Traceback" not in err
    assert "pip install 'hvaelab[onnx]'" in err and "onnxscript not installed" in err, err
    assert not (tmp_path / "site").exists()

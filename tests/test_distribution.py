"""The two distributions: ``hvaelab`` (pyproject.toml) and ``hvaelab-models``
(packaging/hvaelab-models), built as ``python -m build`` builds them (sdist, then the wheel from
the sdist), and the installed package reading nothing outside itself."""

from __future__ import annotations

import email.parser
import hashlib
import importlib.util
import json
import os
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

import hvaelab
from hvaelab.artifacts import _SUFFIXES, SHIPPED_SUFFIXES, WORKING_SUFFIXES, Artifacts

ROOT = Path(__file__).resolve().parents[1]
MODELS_PROJECT = ROOT / "packaging" / "hvaelab-models"
LIMIT = 100 * 2**20  # bytes: the most a distribution may be
TEMPLATE = "hvaelab/jupyter/voila/templates/hvaelab"


def _hook():
    """packaging/hvaelab-models/hatch_build.py as a module (hatchling: the `test` extra)."""
    spec = importlib.util.spec_from_file_location(
        "hvaelab_models_hatch_build", MODELS_PROJECT / "hatch_build.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_models_hook_ships_the_suffixes_artifacts_names():
    hook = _hook()
    assert set(hook.SHIPPED_SUFFIXES) == set(SHIPPED_SUFFIXES)
    assert set(hook.WORKING_SUFFIXES) == set(WORKING_SUFFIXES)
    assert set(SHIPPED_SUFFIXES) | set(WORKING_SUFFIXES) == set(_SUFFIXES)
    roles = {p.name[len("x") :] for p in Artifacts(Path("x")).files().values()}
    assert roles == set(_SUFFIXES)  # every file of a checkpoint is one or the other


def test_the_models_hook_picks_finished_checkpoints_only(tmp_path):
    hook = _hook()
    for name in (
        "a.json", "a.safetensors", "a.history.csv", "a.scores.safetensors",
        "a.samples.safetensors", "a.second-stage.safetensors",
        "a.state.json", "a.state.safetensors", "a.scores.partial.safetensors",
        ".a.json.0123456789ab.tmp", "notes.json", "b.safetensors", "README.md",
    ):  # fmt: skip
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "training").mkdir()
    (tmp_path / "training" / "c.json").write_bytes(b"x")
    (tmp_path / "training" / "c.safetensors").write_bytes(b"x")
    shipped = [p.name for p in hook.shipped_files(tmp_path)]
    assert shipped == sorted(f"a{s}" for s in SHIPPED_SUFFIXES)


# ------------------------------------------------------------------------- the built files


def _shipped_in_repository() -> dict[str, Path]:
    """The files of checkpoints/ that hvaelab-models ships, named by hvaelab.artifacts."""
    out = {}
    for path in sorted((ROOT / "checkpoints").iterdir()):
        if not path.is_file() or path.name.startswith("."):
            continue
        a = Artifacts.of(path)
        if not (a.card.is_file() and a.weights.is_file()):
            continue
        if path.name[len(a.name) :] in SHIPPED_SUFFIXES:
            out[path.name] = path
    return out


@pytest.fixture(scope="module")
def dist(tmp_path_factory) -> Path:
    """Both distributions, sdist and wheel, built without isolation into one folder."""
    # build and hatchling come with the `test` extra; the checkout ships its checkpoints
    assert _shipped_in_repository(), f"no shipped checkpoints in {ROOT / 'checkpoints'}"
    out = tmp_path_factory.mktemp("dist")
    for project in (ROOT, MODELS_PROJECT):
        argv = [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(project)]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stdout + done.stderr
        # what a plain `python -m build` does (progress goes to stderr)
        assert "Building wheel from sdist" in done.stdout + done.stderr
    return out


def _one(folder: Path, pattern: str) -> Path:
    (found,) = folder.glob(pattern)
    return found


def _metadata(wheel: zipfile.ZipFile, name: str) -> email.message.Message:
    text = wheel.read(f"{name}-{hvaelab.__version__}.dist-info/METADATA").decode()
    return email.parser.Parser().parsestr(text)


@pytest.mark.slow
def test_the_main_wheel_holds_the_notebooks_template_scripts_and_licences(dist):
    with zipfile.ZipFile(_one(dist, "hvaelab-*.whl")) as wheel:
        names = set(wheel.namelist())
        for notebook in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")):
            assert wheel.read(f"hvaelab/notebooks/{notebook.name}") == notebook.read_bytes()
        assert len([n for n in names if n.startswith("hvaelab/notebooks/")]) == 7
        for name in ("conf.json", "index.html.j2", "static/plotly-hvaelab.min.js"):
            assert f"{TEMPLATE}/{name}" in names, name
        scripts = sorted((ROOT / "hvaelab" / "app" / "js").glob("*.js"))
        assert scripts and all(f"hvaelab/app/js/{p.name}" in names for p in scripts)
        site_js = ROOT / "hvaelab" / "site" / "js" / "preprocess.js"  # the static lesson site's
        assert wheel.read("hvaelab/site/js/preprocess.js") == site_js.read_bytes()
        info = f"hvaelab-{hvaelab.__version__}.dist-info"
        licences = {n.removeprefix(f"{info}/licenses/") for n in names if "/licenses/" in n}
        plotly = "share/jupyter/voila/templates/hvaelab/static/plotly-LICENSE.txt"
        ort = "hvaelab/site/vendor/onnxruntime-web/LICENSE"
        assert licences == {"LICENSE", plotly, ort}
        # ONNX Runtime Web: fetched, not committed (scripts/fetch_onnxruntime_web.py), shipped
        vendor = ROOT / "hvaelab" / "site" / "vendor" / "onnxruntime-web"
        for name in ("ort.wasm.bundle.min.mjs", "ort-wasm-simd-threaded.wasm"):
            assert (
                wheel.read(f"hvaelab/site/vendor/onnxruntime-web/{name}")
                == (vendor / name).read_bytes()
            )
        meta = _metadata(wheel, "hvaelab")
    assert not [n for n in names if "checkpoints" in n or n.startswith(("tests/", "docs/"))]
    assert meta["Version"] == hvaelab.__version__ == "0.2.0"
    assert meta["Requires-Python"] == ">=3.11"
    assert meta["License-Expression"] == "MIT"
    assert f"hvaelab-models=={hvaelab.__version__}; extra == 'models'" in meta.get_all(
        "Requires-Dist"
    )
    assert "](http" in meta.get_payload() and "](docs/" not in meta.get_payload()


@pytest.mark.slow
def test_the_main_sdist_builds_the_wheel_and_leaves_the_checkpoints_out(dist):
    with tarfile.open(_one(dist, "hvaelab-*.tar.gz")) as sdist:
        top = f"hvaelab-{hvaelab.__version__}/"
        names = {m.name.removeprefix(top) for m in sdist.getmembers() if m.isfile()}
    for need in ("pyproject.toml", "LICENSE", "README.md", "CHANGELOG.md", "DATA_LICENSES.md"):
        assert need in names, need
    assert "docs/package-description.md" in names and "hvaelab/__init__.py" in names
    assert {n for n in names if n.startswith("notebooks/")} == {
        f"notebooks/{p.name}" for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")
    }
    assert "share/jupyter/voila/templates/hvaelab/static/plotly-hvaelab.min.js" in names
    unwanted = ("checkpoints/", ".venv/", "artifacts/", "docs/screenshots/", "packaging/")
    assert not [n for n in names if n.startswith(unwanted)]


@pytest.mark.slow
def test_the_models_wheel_holds_every_shipped_checkpoint_file_and_nothing_else(dist):
    expected = _shipped_in_repository()
    with zipfile.ZipFile(_one(dist, "hvaelab_models-*.whl")) as wheel:
        names = wheel.namelist()
        held = {
            n.removeprefix("hvaelab_models/checkpoints/"): hashlib.sha256(wheel.read(n)).digest()
            for n in names
            if n.startswith("hvaelab_models/checkpoints/")
        }
        meta = _metadata(wheel, "hvaelab_models")
    assert set(held) == set(expected)
    for name, path in expected.items():
        assert held[name] == hashlib.sha256(path.read_bytes()).digest(), name
    assert not [n for n in names if "training" in n or ".state." in n or ".partial." in n]
    info = f"hvaelab_models-{hvaelab.__version__}.dist-info"
    assert {n for n in names if "/licenses/" in n} == {
        f"{info}/licenses/LICENSE",
        f"{info}/licenses/DATA_LICENSES.md",
    }
    assert meta["Version"] == hvaelab.__version__
    assert meta["License-Expression"] == "MIT AND CC-BY-SA-3.0"
    with tarfile.open(_one(dist, "hvaelab_models-*.tar.gz")) as sdist:  # the wheel came from it
        carried = {Path(m.name).name for m in sdist.getmembers() if "/checkpoints/" in m.name}
    assert carried == set(expected)


@pytest.mark.slow
def test_each_distribution_is_under_100_mb_and_twine_check_is_clean(dist):
    files = sorted(dist.iterdir())
    assert len(files) == 4
    for path in files:
        assert path.stat().st_size < LIMIT, (path.name, path.stat().st_size)
    done = subprocess.run(
        [sys.executable, "-m", "twine", "check", "--strict", *map(str, files)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0 and "WARNING" not in done.stdout, done.stdout + done.stderr


_PROBE = """
import json
import hvaelab
from hvaelab import package_files as pf
from hvaelab.checkpoint import checkpoint_search_dirs, is_installed, resolve_checkpoint
stem = resolve_checkpoint("fashionmnist")
print(json.dumps({
    "hvaelab": hvaelab.__file__,
    "checkout_root": pf.checkout_root() and str(pf.checkout_root()),
    "checkout_checkpoints": pf.checkout_checkpoints_dir() and str(pf.checkout_checkpoints_dir()),
    "notebooks_dir": str(pf.notebooks_dir()),
    "notebooks": len(pf.notebooks()),
    "template_dir": str(pf.template_dir()),
    "models": str(pf.installed_models_dir()),
    "search": [str(d) for d in checkpoint_search_dirs()],
    "fashionmnist": str(stem),
    "installed": is_installed(stem),
}))
"""


@pytest.mark.slow
def test_the_unpacked_wheels_read_nothing_outside_themselves(dist, tmp_path):
    site = tmp_path / "site"
    for wheel in dist.glob("*.whl"):
        with zipfile.ZipFile(wheel) as z:
            z.extractall(site)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "HVAELAB_CHECKPOINTS"}
    env.update(PYTHONPATH=str(site), XDG_CACHE_HOME=str(tmp_path / "cache"))
    done = subprocess.run(
        [sys.executable, "-c", _PROBE],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert Path(found["hvaelab"]).is_relative_to(site)
    assert found["checkout_root"] is None and found["checkout_checkpoints"] is None
    assert found["notebooks"] == 7
    for key in ("notebooks_dir", "template_dir", "models", "fashionmnist"):
        assert Path(found[key]).is_relative_to(site), (key, found[key])
    assert found["installed"] is True
    assert not [d for d in found["search"] if Path(d).is_relative_to(ROOT)]

    reaching_up = [
        str(p.relative_to(site))
        for p in (site / "hvaelab").rglob("*.py")
        if "parents[" in p.read_text(encoding="utf-8")
    ]
    assert reaching_up == []

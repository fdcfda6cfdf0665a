"""Shared test fixtures."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

# The test fixture: leading excerpts of the real files, a data package (hvaelab.data.package)
# rebuilt by scripts/build-test-data. Registered only here, as NAME-fixture.
FIXTURE = Path(__file__).resolve().parent / "data"


@pytest.fixture(scope="session", autouse=True)
def _hvaelab_env():
    """Forbid downloads in tests and register the fixture's datasets."""
    from hvaelab.data import register_package

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HVAELAB_NO_DOWNLOAD", "1")
        register_package(FIXTURE)
        yield


@dataclass(frozen=True)
class TestData:
    """The dataset names the tests read: each real dataset where all the splits the tests need
    are found (``make test`` points HVAELAB_DATA at ../shared/data when it exists), else its
    fixture excerpt. Tests use leading slices (``images[:n]``), the same pixels either way."""

    fashionmnist: str
    mnist: str

    @property
    def full(self) -> bool:
        return "fixture" not in self.fashionmnist + self.mnist

    def images(self, dataset: str, split: str = "test") -> np.ndarray:
        from hvaelab.data import load_dataset

        return load_dataset(getattr(self, dataset), split).images


def _real_or_fixture(name: str, splits: tuple[str, ...]) -> str:
    from hvaelab.data import find_split, get_spec

    spec = get_spec(name)
    return name if all(find_split(spec, s) for s in splits) else f"{name}-fixture"


@pytest.fixture(scope="session")
def datasets(_hvaelab_env) -> TestData:
    """Which data this run uses (see :class:`TestData`)."""
    return TestData(
        fashionmnist=_real_or_fixture("fashionmnist", ("train", "test")),
        mnist=_real_or_fixture("mnist", ("test",)),
    )


@pytest.fixture(scope="session", autouse=True)
def _one_torch_thread() -> Iterator[None]:
    """Tests use small models: on a shared 2-core machine one intra-op thread is much faster
    (torch's default 2 threads spin against each other) and results stay deterministic."""
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


# ---------------------------------------------------------------- dashboards (tests/test_app.py)
_REPO_CHECKPOINTS = Path(__file__).resolve().parents[1] / "checkpoints"
APP_CHECKPOINTS = ("fashionmnist", "fashionmnist-seed1", "mnist-testsplit")


def _app_set_complete(folder: Path) -> bool:
    """The checkpoints, score tables, samples and training curve the dashboards read."""
    need = [folder / f"{n}{s}" for n in APP_CHECKPOINTS for s in (".json", ".safetensors")]
    need += [
        folder / "fashionmnist.scores.safetensors",
        folder / "fashionmnist.history.csv",
        folder / "fashionmnist.samples.safetensors",
        folder / "fashionmnist.second-stage.safetensors",
    ]
    return all(p.is_file() for p in need)


def _build_app_checkpoints(folder: Path) -> None:
    """Tiny but real: three hvae-tiny models trained for one short epoch, a second stage fitted
    on 400 training images, tables on 200 test images per set at S = 1 and 2, 32 shipped samples
    per set (about 20 s on a busy CPU)."""

    from hvaelab.cli import main as cli_main
    from hvaelab.train import TrainConfig, Trainer

    for name, dataset, seed in (
        ("fashionmnist", "fashionmnist", 0),
        ("fashionmnist-seed1", "fashionmnist", 1),
        ("mnist-testsplit", "mnist-testsplit", 0),
    ):
        cfg = TrainConfig(
            dataset=dataset,
            preset="hvae-tiny",
            train_examples=512,
            val_examples=128,
            epochs=1,
            seed=seed,
        )
        Trainer(cfg, log=lambda _s: None).run(folder / name)
    stage = ["second-stage", "--checkpoint", str(folder / "fashionmnist")]
    if cli_main([*stage, "--n-fit", "300", "--n-select", "100", "--components", "1", "2"]) != 0:
        raise RuntimeError("`hvaelab second-stage` failed while building the test checkpoints")
    args = ["tables", "--checkpoint", str(folder / "fashionmnist"), "--ood", "mnist"]
    args += ["--samples", "1", "2", "--limit", "200", "--samples-per-set", "32"]
    if cli_main(args) != 0:
        raise RuntimeError("`hvaelab tables` failed while building the test checkpoints")


@pytest.fixture(scope="session")
def app_checkpoints(_hvaelab_env, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A folder with what the dashboards read, exported as ``HVAELAB_CHECKPOINTS``.

    The shipped ``checkpoints/`` when it is complete; otherwise a tiny set trained here.
    """
    folder = _REPO_CHECKPOINTS
    if not _app_set_complete(folder):
        folder = tmp_path_factory.mktemp("app-checkpoints")
        _build_app_checkpoints(folder)
    from hvaelab.app import resources

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HVAELAB_CHECKPOINTS", str(folder))
        resources.clear_caches()
        yield folder
    resources.clear_caches()


@pytest.fixture(scope="session")
def site_reference(app_checkpoints, datasets) -> str:
    """The dataset ``hvaelab export-site`` takes the model's reference from in the tests
    (``--reference-data``), with the dashboards' checkpoints: FashionMNIST's test split, or the
    fixture's excerpt of it where the full set is not on the machine (``make test-fixture``, a
    clone without ../shared/data)."""
    return datasets.fashionmnist


@pytest.fixture(scope="session")
def site_reference_limit() -> int:
    """How many reference images :func:`exported_site` scores (the draw page's p-values are
    compared with PyTorch's at 1e-3 against them)."""
    return 500


@pytest.fixture(scope="session")
def exported_site(site_reference, site_reference_limit, tmp_path_factory) -> tuple[Path, str]:
    """``hvaelab export-site`` of ``fashionmnist``, run once on the command line for every test
    that reads the site (unit and browser tests): ``(folder, what it printed)``. Read-only: a
    test that changes a site exports or copies its own."""
    import contextlib
    import io

    from hvaelab.cli import main

    folder = tmp_path_factory.mktemp("site")
    args = ["export-site", str(folder), "--checkpoint", "fashionmnist"]
    args += ["--reference-data", site_reference, "--reference-limit", str(site_reference_limit)]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(args) == 0, out.getvalue()
    return folder, out.getvalue()


# ------------------------------------------------- installed models (hvaelab-models, read-only)
FAKE_MODELS_PACKAGE = "hvaelab_models_fake"


@pytest.fixture
def installed_models(tmp_path_factory, monkeypatch) -> Iterator[Path]:
    """A stand-in for an installed ``hvaelab-models``: an importable package on ``sys.path``
    whose ``checkpoints/`` (returned, empty) :func:`hvaelab.package_files.installed_models_dir`
    finds as it finds the real one."""
    import importlib
    import sys

    from hvaelab import package_files

    site = tmp_path_factory.mktemp("site-packages")
    package = site / FAKE_MODELS_PACKAGE
    (package / "checkpoints").mkdir(parents=True)
    (package / "__init__.py").write_text('"""A stand-in for hvaelab_models."""\n')
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setattr(package_files, "MODELS_PACKAGE", FAKE_MODELS_PACKAGE)
    assert package_files.installed_models_dir() == package / "checkpoints"
    yield package / "checkpoints"
    sys.modules.pop(FAKE_MODELS_PACKAGE, None)
    importlib.invalidate_caches()

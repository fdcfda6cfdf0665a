"""Where the files that come with hvaelab are: the notebooks, the Voilà template, the models.

One owner for every path the package reads at run time that is not a checkpoint the user named.

=================  =================================  =======================================
what               installed (a wheel)                 a source checkout (``pip install -e``)
=================  =================================  =======================================
notebooks          ``hvaelab/notebooks/``              ``notebooks/``
Jupyter data       ``hvaelab/jupyter/`` (holds         ``share/jupyter/``
(Voilà template)   ``voila/templates/hvaelab``)
shipped models     ``hvaelab_models/checkpoints/``     ``checkpoints/``
                   (the ``hvaelab-models``
                   distribution)
=================  =================================  =======================================

An installed package finds everything inside itself (:func:`importlib.resources.files`); the
build maps the checkout's top-level folders there (``pyproject.toml``, hatchling's
``force-include``; the models' distribution: ``packaging/hvaelab-models``). Only when the package
data is absent, i.e. when hvaelab is imported from a source checkout, are the checkout's own
folders used: :func:`checkout_root` recognises one by its ``pyproject.toml``.
"""

from __future__ import annotations

import importlib.resources
import importlib.util
import tomllib
from functools import cache
from pathlib import Path

PACKAGE = "hvaelab"
MODELS_PACKAGE = "hvaelab_models"  # the import name of the `hvaelab-models` distribution

NOTEBOOKS = "notebooks"  # package data folder (wheel) / checkout folder
JUPYTER = "jupyter"  # package data folder holding voila/templates/hvaelab
TEMPLATE = "hvaelab"  # the Voilà template's name


class PackageDataError(FileNotFoundError):
    """A file that should come with hvaelab is missing: a broken install or checkout."""


def _package_dir(package: str) -> Path | None:
    """The folder of an importable package, or None (``files()`` of a regular package is a
    real folder on disk for every install hvaelab supports: wheels are unpacked)."""
    if importlib.util.find_spec(package) is None:
        return None
    return Path(str(importlib.resources.files(package)))


@cache
def checkout_root() -> Path | None:
    """The source checkout hvaelab is imported from, or None for an installed package.

    A checkout is the folder holding the ``hvaelab`` package *and* a ``pyproject.toml`` whose
    project is named ``hvaelab``; an installed package sits in ``site-packages`` beside no such
    file."""
    here = _package_dir(PACKAGE)
    if here is None:  # pragma: no cover - this module is part of the package
        return None
    candidate = here.parent / "pyproject.toml"
    try:
        name = tomllib.loads(candidate.read_text(encoding="utf-8"))["project"]["name"]
    except (OSError, KeyError, TypeError, tomllib.TOMLDecodeError):
        return None
    return here.parent if name == PACKAGE else None


def _data_dir(packaged: str, checkout: tuple[str, ...], what: str) -> Path:
    package_dir = _package_dir(PACKAGE)
    assert package_dir is not None  # hvaelab itself is importable: this code runs from it
    inside = package_dir / packaged
    if inside.is_dir():
        return inside
    root = checkout_root()
    if root is not None and root.joinpath(*checkout).is_dir():
        return root.joinpath(*checkout)
    raise PackageDataError(
        f"hvaelab's {what} are missing: looked in {inside}"
        + (f" and {root.joinpath(*checkout)}" if root is not None else "")
        + ". Reinstall hvaelab (`pip install --force-reinstall hvaelab`)."
    )


def notebooks_dir() -> Path:
    """The folder holding the seven dashboard notebooks (``NN_name.ipynb``)."""
    return _data_dir(NOTEBOOKS, (NOTEBOOKS,), "notebooks")


def jupyter_data_dir() -> Path:
    """The Jupyter data folder to put on ``JUPYTER_PATH``: it holds the offline Voilà template
    ``voila/templates/hvaelab`` (and its ``static/`` plotly.js bundle)."""
    return _data_dir(JUPYTER, ("share", "jupyter"), "Voilà template files")


def template_dir() -> Path:
    """The Voilà template ``hvaelab`` itself (``conf.json``, ``index.html.j2``, ``static/``)."""
    return jupyter_data_dir() / "voila" / "templates" / TEMPLATE


def site_dir() -> Path:
    """The static lesson site's own files (``hvaelab/site``: ``js/``, ``vendor/``), part of the
    package in a checkout and in a wheel alike."""
    return Path(__file__).resolve().parent / "site"


def notebooks() -> list[Path]:
    """The dashboard notebooks, sorted by name."""
    return sorted(notebooks_dir().glob("[0-9][0-9]_*.ipynb"))


def installed_models_dir() -> Path | None:
    """``checkpoints/`` of the installed ``hvaelab-models`` distribution, or None when it is not
    installed (``pip install "hvaelab[models]"`` installs it)."""
    root = _package_dir(MODELS_PACKAGE)
    if root is None:
        return None
    folder = root / "checkpoints"
    return folder if folder.is_dir() else None


def checkout_checkpoints_dir() -> Path | None:
    """The checkout's ``checkpoints/`` (development only), or None for an installed package."""
    root = checkout_root()
    return None if root is None else root / "checkpoints"

"""Build hooks of hvaelab-models: the repository's ``checkpoints/`` and licences, without copies
in git.

The checkpoints live once, in the repository's top-level ``checkpoints/``. Built from the
repository (``python -m build packaging/hvaelab-models``), :class:`ModelsBuildHook` force-includes
each shipped file from there: into the sdist as ``checkpoints/NAME...`` and into the wheel as
``hvaelab_models/checkpoints/NAME...``. A wheel built from that sdist (what ``python -m build``
does) takes them from the sdist's own ``checkpoints/``. Only regular files directly in
``checkpoints/`` are shipped, never ``checkpoints/training/``, a run's working files
(``NAME.state.*``, ``NAME.scores.partial.safetensors``) or temporary files.

:class:`ModelsMetadataHook` brings the repository's ``LICENSE`` and ``DATA_LICENSES.md`` beside
this ``pyproject.toml`` (git-ignored copies, refreshed on every build from the repository), since
licence files must lie inside the project, and names them as the licence files.

Plain files and pathlib only (no symlinks), so that a Windows checkout builds the same. This file
cannot import hvaelab (it is not installed in the isolated build environment).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface
from hatchling.metadata.plugin.interface import MetadataHookInterface

# The suffixes of a checkpoint's files, as hvaelab/artifacts.py names them: SHIPPED_SUFFIXES (the
# card, weights, history, score tables, samples, second stage) and WORKING_SUFFIXES (training
# state, unfinished tables). tests/test_distribution.py holds these equal to artifacts.py's.
SHIPPED_SUFFIXES = (
    ".scores.safetensors",
    ".samples.safetensors",
    ".second-stage.safetensors",
    ".history.csv",
    ".safetensors",
    ".json",
)
WORKING_SUFFIXES = (".state.safetensors", ".state.json", ".scores.partial.safetensors")
CARD, WEIGHTS = ".json", ".safetensors"

LICENSE_FILES = ("LICENSE", "DATA_LICENSES.md")
CHECKPOINTS = "checkpoints"
PACKAGE = "hvaelab_models"


def repository_root(root: Path) -> Path | None:
    """The hvaelab repository this project sits in (``packaging/hvaelab-models``), or None when
    it is built elsewhere (from its unpacked sdist)."""
    repo = root.resolve().parent.parent
    if (repo / "hvaelab" / "artifacts.py").is_file() and (repo / CHECKPOINTS).is_dir():
        return repo
    return None


def checkpoints_source(root: Path) -> Path:
    """Where the checkpoints come from: the repository's ``checkpoints/``, else the sdist's."""
    repo = repository_root(root)
    if repo is not None:
        return repo / CHECKPOINTS
    if (root / CHECKPOINTS).is_dir():
        return root / CHECKPOINTS
    raise FileNotFoundError(
        f"hvaelab-models: no checkpoints to package: {root} is neither packaging/hvaelab-models "
        f"of the hvaelab repository (with its checkpoints/) nor an sdist holding {CHECKPOINTS}/"
    )


def split_name(name: str) -> tuple[str, str] | None:
    """``NAME.scores.safetensors`` -> (``NAME``, ``.scores.safetensors``): the longest known
    suffix, as hvaelab's ``Artifacts.of``; None for a file that is no checkpoint's."""
    for suffix in sorted(SHIPPED_SUFFIXES + WORKING_SUFFIXES, key=len, reverse=True):
        if name.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)], suffix
    return None


def shipped_files(folder: Path) -> list[Path]:
    """The files of ``folder``'s finished checkpoints (card and weights both present), sorted."""
    files = []
    for path in sorted(folder.iterdir()):
        parts = split_name(path.name)
        if not path.is_file() or path.name.startswith(".") or parts is None:
            continue
        stem, suffix = parts
        if suffix in WORKING_SUFFIXES:
            continue
        if (folder / (stem + CARD)).is_file() and (folder / (stem + WEIGHTS)).is_file():
            files.append(path)
    return files


class ModelsBuildHook(BuildHookInterface):
    """Force-includes the shipped checkpoint files (see the module's docstring)."""

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if self.target_name == "wheel" and version == "editable":
            return  # an editable install reads nothing from here: hvaelab uses the checkout's
        source = checkpoints_source(Path(self.root))
        files = shipped_files(source)
        if not files:
            raise FileNotFoundError(f"hvaelab-models: no checkpoints in {source}")
        into = CHECKPOINTS if self.target_name == "sdist" else f"{PACKAGE}/{CHECKPOINTS}"
        for path in files:
            build_data["force_include"][str(path)] = f"{into}/{path.name}"


class ModelsMetadataHook(MetadataHookInterface):
    """Sets ``license-files``, copying the repository's licence files beside pyproject.toml."""

    def update(self, metadata: dict[str, Any]) -> None:
        root = Path(self.root)
        repo = repository_root(root)
        for name in LICENSE_FILES:
            here = root / name
            if repo is not None:
                data = (repo / name).read_bytes()
                if not here.is_file() or here.read_bytes() != data:
                    here.write_bytes(data)
            if not here.is_file():
                raise FileNotFoundError(f"hvaelab-models: licence file {here} is missing")
        metadata["license-files"] = list(LICENSE_FILES)

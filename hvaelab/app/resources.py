"""What the dashboards show, loaded once per checkpoint NAME and cached.

A page asks for a checkpoint by NAME (default ``"fashionmnist"``), looked up like everywhere
else in hvaelab (:func:`hvaelab.checkpoint.resolve_checkpoint`: ``$HVAELAB_CHECKPOINTS``, the
repository's ``checkpoints/``, the user cache). Beside the checkpoint live its score tables
(``NAME.scores.safetensors``, :func:`hvaelab.scores.tables_path`), the shipped image samples
(``NAME.samples.safetensors``) and the training curve (``NAME.history.csv``). Nothing here touches a
dataset on disk: the pages work offline.

Loads are cached with :func:`functools.lru_cache`, keyed by the resolved file and its
modification time, so a re-trained checkpoint is picked up and a repeated page costs nothing.
Anything missing raises :class:`MissingResourceError` whose message says what to do.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from ..artifacts import Artifacts, read_history
from ..checkpoint import CheckpointError, LoadedModel, list_checkpoints, load_model, read_card
from ..checkpoint import resolve_checkpoint as _resolve
from ..data import load_samples
from ..scores import ScoreTable, load_tables, tables_path

DEFAULT_CHECKPOINT = "fashionmnist"
ENV_CHECKPOINT = "HVAELAB_CHECKPOINT"  # the checkpoint every page shows


def page_checkpoint() -> str:
    """The checkpoint the pages show: ``$HVAELAB_CHECKPOINT`` if set, else ``fashionmnist``.

    Serving another model, e.g. a colour one, is ``hvaelab dashboard --checkpoint cifar10``
    (with the checkpoint in ``checkpoints/`` or ``$HVAELAB_CHECKPOINTS``), which checks the name
    and passes it to the kernels in this variable (:mod:`hvaelab.app.dashboard`)."""
    import os

    return os.environ.get(ENV_CHECKPOINT, "").strip() or DEFAULT_CHECKPOINT


# Display names of the datasets the pages know; others are shown as they are named.
DATASET_LABELS = {
    "fashionmnist": "FashionMNIST",
    "mnist": "MNIST",
    "mnist-testsplit": "MNIST",
    "kmnist": "KMNIST",
    "notmnist": "notMNIST",
    "omniglot": "Omniglot",
    "fashionmnist-inverted": "FashionMNIST, inverted",
    "mnist-inverted": "MNIST, inverted",
    "noise-uniform": "uniform noise",
    "noise-bernoulli": "Bernoulli noise",
    "constant": "constant images",
    "cifar10": "CIFAR10",
    "cifar100": "CIFAR100",
    "svhn": "SVHN",
}


class MissingResourceError(FileNotFoundError):
    """A checkpoint, its score tables, its samples or its training curve cannot be found/read."""


def dataset_label(name: str) -> str:
    """``"fashionmnist"`` -> ``"FashionMNIST"`` (unknown names unchanged)."""
    return DATASET_LABELS.get(name, name)


def is_comparison_set(name: str) -> bool:
    """A real dataset, not a derived one: neither synthetic (noise, constant) nor ``-inverted``.

    Pages compare the in-distribution set with these first (MNIST for FashionMNIST); the derived
    sets are there to be chosen."""
    from ..data.errors import UnknownDatasetError
    from ..data.registry import INVERTED_SUFFIX, get_spec

    try:
        spec = get_spec(name)
    except UnknownDatasetError:  # a set registered in another process: take it as real
        return not name.endswith(INVERTED_SUFFIX)
    return spec.synthetic is None and not name.lower().endswith(INVERTED_SUFFIX)


def default_ood(names: list[str], in_name: str) -> str:
    """The OOD set a page shows first: ``mnist`` if there, else the first real dataset."""
    others = [n for n in names if n != in_name]
    if not others:
        raise ValueError(f"no OOD set besides {in_name!r}")
    if "mnist" in others:
        return "mnist"
    return next((n for n in others if is_comparison_set(n)), others[0])


def _stem(name: str) -> Path:
    try:
        return _resolve(name)
    except CheckpointError as e:
        raise MissingResourceError(
            f"The checkpoint {name!r} is not available. {e}\n"
            "Point the environment variable HVAELAB_CHECKPOINTS at a folder holding "
            f"{name}.json + {name}.safetensors, or train it with `hvaelab train`."
        ) from e


def _mtime(path: Path) -> int:
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return -1


def checkpoint_names() -> list[str]:
    """Names of the checkpoints the pages can use (:func:`hvaelab.checkpoint.list_checkpoints`)."""
    return [p.name for p in list_checkpoints()]


def checkpoint_card(name: str) -> dict[str, Any]:
    """The card of checkpoint NAME (its ``.json``), read without loading the weights."""
    try:
        return read_card(_stem(name))
    except CheckpointError as e:
        raise MissingResourceError(str(e)) from e


# ------------------------------------------------------------------------------- cached loads
@lru_cache(maxsize=8)
def _model_cached(stem: str, mtime: int) -> LoadedModel:
    return load_model(stem)


def load_checkpoint(name: str = DEFAULT_CHECKPOINT) -> LoadedModel:
    """The model of checkpoint NAME (eval mode, CPU), loaded once."""
    stem = _stem(name)
    try:
        return _model_cached(str(stem), _mtime(stem.with_name(stem.name + ".safetensors")))
    except CheckpointError as e:
        raise MissingResourceError(f"The checkpoint {name!r} cannot be loaded: {e}") from e


@lru_cache(maxsize=16)
def _file_cached(loader: Callable[[str], Any], path: str, mtime: int) -> Any:
    return loader(path)


def _load_beside(name: str, path: Path, loader: Callable[[str], Any], what: str, todo: str):
    """A file beside checkpoint NAME, read once per version of it (shared: do not modify)."""
    if not path.is_file():
        raise MissingResourceError(
            f"The checkpoint {name!r} has no {what}: {path.name} is missing beside it. {todo}."
        )
    try:
        return _file_cached(loader, str(path), _mtime(path))
    except ValueError as e:
        raise MissingResourceError(f"The {what} of {name!r} cannot be read: {e}") from e


def load_score_tables(name: str = DEFAULT_CHECKPOINT) -> dict[str, ScoreTable]:
    """Score tables of checkpoint NAME keyed ``"DATASET@S<n>"`` (shared: do not modify)."""
    path = tables_path(_stem(name))
    todo = f"Compute them with `hvaelab tables --checkpoint {name}` (needs the datasets once)"
    return _load_beside(name, path, load_tables, "score tables", todo)


def load_shipped_samples(name: str = DEFAULT_CHECKPOINT) -> dict[str, np.ndarray]:
    """The image samples shipped beside checkpoint NAME: dataset -> uint8 (N, 28, 28)."""
    path = Artifacts(_stem(name)).samples
    todo = f"Write them with `hvaelab tables --checkpoint {name}`"
    return _load_beside(name, path, load_samples, "image samples", todo)


def sample_images(dataset: str, name: str = DEFAULT_CHECKPOINT) -> np.ndarray:
    """The shipped samples of one dataset (uint8 (N, 28, 28))."""
    samples = load_shipped_samples(name)
    if dataset not in samples:
        raise MissingResourceError(
            f"The shipped samples of {name!r} hold no {dataset!r} images "
            f"(they hold: {', '.join(samples) or 'none'})."
        )
    return samples[dataset]


def load_history(name: str = DEFAULT_CHECKPOINT) -> dict[str, np.ndarray]:
    """The training curve ``NAME.history.csv`` as columns (one float per epoch)."""
    path = Artifacts(_stem(name)).history
    if not path.is_file():
        raise MissingResourceError(
            f"The checkpoint {name!r} has no training curve ({path.name} is missing); "
            "`hvaelab train` writes it after every epoch."
        )
    try:
        rows = read_history(path)
    except (ValueError, KeyError) as e:
        raise MissingResourceError(f"{path.name} cannot be read as a training curve: {e}") from e
    if not rows:
        raise MissingResourceError(f"{path.name} holds no epochs yet.")
    keys = dict.fromkeys(k for r in rows for k in r)
    return {k: np.array([r.get(k, np.nan) for r in rows], dtype=float) for k in keys}


def second_stage_problem(name: str = DEFAULT_CHECKPOINT) -> str | None:
    """Why checkpoint NAME's second stage is not in use although its score tables have its
    column (a broken or foreign ``NAME.second-stage.safetensors``), as one line with the command
    that restores it; None when it is in use or was never fitted."""
    from ..score_names import SECOND_STAGE_COLUMN
    from ..second_stage import SecondStage

    lm = load_checkpoint(name)
    if getattr(lm.model, "second_stage", None) is not None:
        return None
    try:
        tables = load_score_tables(name)
    except MissingResourceError:
        return None
    if not any(SECOND_STAGE_COLUMN in t.columns for t in tables.values()):
        return None
    path = Artifacts.of(lm.path).second_stage
    fix = f"hvaelab second-stage --checkpoint {lm.path}"
    try:
        SecondStage.load(path)
        why = "it was fitted for other weights"
    except (OSError, ValueError) as e:
        why = str(e)
    return (
        f"The second stage ({path.name}) is not in use: {why}. The verdict falls back to the "
        f"paper's likelihood ratios; restore it with `{fix}` (an installed model: pip install "
        "--force-reinstall hvaelab-models)."
    )


def clear_caches() -> None:
    """Forget every cached model, table and sample set."""
    for f in (_model_cached, _file_cached):
        f.cache_clear()


# --------------------------------------------------------------------------- friendly errors
def error_html(exc: BaseException, what: str = "This page") -> str:
    """An HTML box explaining a failure to the reader (used instead of a traceback)."""
    msg = html.escape(str(exc)).replace("\n", "<br>")
    return (
        '<div class="hvae-error" style="border:1px solid #d62728;background:#fff5f5;'
        'padding:8px 12px;border-radius:4px;color:#600">'
        f"<b>{html.escape(what)} cannot be shown.</b><br>{msg}</div>"
    )


__all__ = [
    "DATASET_LABELS",
    "DEFAULT_CHECKPOINT",
    "MissingResourceError",
    "checkpoint_card",
    "checkpoint_names",
    "clear_caches",
    "dataset_label",
    "error_html",
    "load_checkpoint",
    "load_history",
    "load_score_tables",
    "load_shipped_samples",
    "sample_images",
]

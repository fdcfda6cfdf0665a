"""Score tables scored in steps, so that a long run survives a stop (``hvaelab tables --resume``).

Importance sampling at large S is long on a CPU: S = 64 on the FashionMNIST and MNIST test
sets takes hours here. An example's scores do not depend on the batch it is scored in (its
binarization and its noise are keyed by its own content, :mod:`hvaelab.noise`), so a table can
be scored a step at a time and the steps joined. After each step, the rows done so far are
written, atomically, to the checkpoint's ``NAME.scores.partial.safetensors``, together with the
settings they were computed under (:data:`SETTINGS`). A run with ``resume=True`` and the same
settings continues after the last saved row. A finished table leaves the partial file; the
caller stores it with the others (:func:`hvaelab.scores.save_tables`).

Under ``torchrun`` a step is one batch per rank; rank 0 writes the file and every rank reads it
on a resume (one machine, or a shared file system).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from . import distributed as ddp
from .model import HierarchicalVAE
from .score_names import TableKey
from .scores import (
    ScoreTable,
    dataset_images,
    load_tables,
    save_tables,
    score_tensor,
    table_meta,
)
from .second_stage import SCORE_COLUMN

# What must be equal for saved rows to be continued: the weights, the images, and how they
# were scored. Batch size and world size may change (an example's scores do not depend on them).
SETTINGS = (
    "weights_sha256",
    "dataset",
    "split",
    "data_md5",
    "indices",
    "n",
    "n_samples",
    "prior",
    "seed",
    "lt",
)


def read_partial(path: str | Path, log: Callable[[str], None] = print) -> dict[str, ScoreTable]:
    """The unfinished tables saved at ``path``, by key; none if the file is missing.

    The file only saves work: an unreadable one is reported through ``log`` and ignored (its
    rows are scored again), never an error that stops the run."""
    path = Path(path)
    if not path.exists():
        return {}
    try:
        return load_tables(path)
    except ValueError as e:
        log(f"ignoring the saved progress in {path}: {e}")
        return {}


def _write(path: Path, key: str, table: ScoreTable | None) -> None:
    """Put ``table`` under ``key`` in the partial file (None: remove the key; no keys left:
    remove the file), keeping the other keys' rows."""
    tables = read_partial(path, log=lambda _m: None)
    tables.pop(key, None)
    if table is not None:
        tables[key] = table
    if tables:
        save_tables(path, tables.values(), info={"partial": True}, second_stage_inputs_too=True)
    elif path.exists():
        path.unlink()


def _concat(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    return {c: np.concatenate([p[c] for p in parts]) for c in parts[0]}


def _settings(table: ScoreTable) -> dict[str, Any]:
    """The :data:`SETTINGS` a stored table was computed under (``lt``: it has L<l columns)."""
    got = {s: table.meta.get(s) for s in SETTINGS}
    got["lt"] = any(c.startswith("L<") for c in table.columns)
    return got


def score_dataset_in_steps(
    model: HierarchicalVAE,
    name: str,
    partial: str | Path,
    weights_sha256: str | None,
    resume: bool = False,
    finished: ScoreTable | None = None,
    split: str = "test",
    data_dir: str | None = None,
    limit: int | None = None,
    n_samples: int = 1,
    prior: str = "mean",
    lt: bool = True,
    seed: int = 0,
    batch_size: int = 128,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> ScoreTable:
    """:func:`hvaelab.scores.score_dataset`, one step (a batch per process) at a time, each step's
    rows saved to ``partial``. With ``resume``: ``finished``, the table stored for this dataset
    and S, is returned as it is if it was computed under the same :data:`SETTINGS`; otherwise
    rows saved in ``partial`` under the same settings are kept and scoring continues after
    them. Returns the whole table, its ``meta`` including the settings."""
    images, meta = dataset_images(name, split, data_dir, limit)
    n = images.shape[0]
    settings: dict[str, Any] = {
        **meta,
        "weights_sha256": weights_sha256,
        "n": n,
        "n_samples": n_samples,
        "prior": prior,
        "seed": seed,
        "lt": lt,
    }
    key = str(TableKey(name, n_samples))
    partial = Path(partial)
    main = ddp.current().is_main
    say = log if main else (lambda _m: None)
    if resume and finished is not None:
        if _settings(finished) == settings:
            say(f"keeping {key}: already scored with these settings")
            return finished
        differ = [s for s in SETTINGS if _settings(finished)[s] != settings[s]]
        say(f"scoring {key} again: the stored table differs in {', '.join(differ)}")
    parts: list[dict[str, np.ndarray]] = []
    if resume:
        saved = read_partial(partial, say).get(key)
        if saved is not None:
            differ = [s for s in SETTINGS if _settings(saved)[s] != settings[s]]
            if differ:
                say(f"not resuming {key}: its saved rows differ in {', '.join(differ)}")
            elif len(saved):
                parts.append(saved.columns)
                say(f"resuming {key} after {len(saved)} of {n} examples ({partial})")
    start = len(parts[0]["elbo"]) if parts else 0
    step = batch_size * ddp.current().world_size
    bar = None
    if progress and main:
        from tqdm.auto import tqdm

        bar = tqdm(total=n, initial=start, desc=f"scoring {key}", unit="img")
    for a in range(start, max(n, 1), step):  # an empty set is scored once, to get its columns
        t = score_tensor(
            model,
            images[a : a + step],
            n_samples=n_samples,
            prior=prior,
            lt=lt,
            seed=seed,
            batch_size=batch_size,
        )
        t.columns.pop(SCORE_COLUMN, None)  # the second stage scores the whole table at the end
        parts.append(t.columns)
        if main and a + step < n:
            _write(partial, key, ScoreTable(_concat(parts), dict(settings)))
        if bar is not None:
            bar.update(len(t))
    if bar is not None:
        bar.close()
    columns = _concat(parts)
    stage = getattr(model, "second_stage", None)
    if stage is not None and n:
        columns[SCORE_COLUMN] = stage.score(columns)
    if main:
        _write(partial, key, None)
    return ScoreTable(columns, {**table_meta(model, n, n_samples, prior, seed), **settings})

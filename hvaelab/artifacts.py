"""Every file of a checkpoint, and the one way hvaelab writes a file (atomically).

A checkpoint ``NAME`` is a family of files side by side; :class:`Artifacts` names them all:

===================================  ===========================================  ================
file                                 what                                         ``hvaelab ...``
===================================  ===========================================  ================
``NAME.safetensors``                 the weights                                  ``train``
``NAME.json``                        the card: config, training record, numbers   ``train``
``NAME.state.safetensors``           exact-resume state (optimizer, RNG streams,  ``train``
``NAME.state.json``                  epoch; git-ignored)
``NAME.history.csv``                 the training curves, one row per epoch       ``train``
``NAME.scores.safetensors``          score tables of its test sets (dashboards)   ``tables``
``NAME.scores.partial.safetensors``  rows of unfinished tables (``--resume``;     ``tables``
                                     git-ignored)
``NAME.samples.safetensors``         a few test images per set (dashboards)       ``tables``
``NAME.second-stage.safetensors``    the fitted second stage (its score)          ``second-stage``
===================================  ===========================================  ================

:func:`atomic_write` writes through a temporary file in the target folder, flushed and
fsynced, renamed into place, and the folder fsynced: a reader sees the old file or the new one,
never half of one, and an interrupted write leaves no temporary file behind.

A command that changes several files of a checkpoint (``hvaelab tables``: score tables, card
and samples; a training checkpoint: weights, card, history and state; ``hvaelab copy``) changes
all of them or none: :func:`commit` is the one owner of such writes. Every new file is written
to a temporary file first; only then is each renamed into place, the replaced file kept under a
temporary name until all are, and a failure at any write or rename puts every file back as it
was. Inside ``with staged():`` every :func:`atomic_write` and :func:`remove` (however deep in
the code) joins one commit made when the block ends without an error, and nothing is written if
it raises. The rows of unfinished tables (``NAME.scores.partial.safetensors``) are progress,
kept however the command ends: they are always written at once.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import shutil
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

WEIGHTS = ".safetensors"
CARD = ".json"
STATE = ".state"
HISTORY = ".history.csv"
SCORES = ".scores.safetensors"
PARTIAL_SCORES = ".scores.partial.safetensors"
SAMPLES = ".samples.safetensors"
SECOND_STAGE = ".second-stage.safetensors"
# Longest first, so that NAME.scores.safetensors is not read as a checkpoint "NAME.scores".
_SUFFIXES = (
    STATE + WEIGHTS,
    STATE + CARD,
    PARTIAL_SCORES,
    SCORES,
    SAMPLES,
    SECOND_STAGE,
    HISTORY,
    WEIGHTS,
    CARD,
)
# A run's working files (training state, rows of unfinished tables): git-ignored, never shipped.
WORKING_SUFFIXES = (STATE + WEIGHTS, STATE + CARD, PARTIAL_SCORES)
# The files a finished checkpoint ships with (the hvaelab-models distribution holds these;
# packaging/hvaelab-models/hatch_build.py keeps a copy of this list, tests hold the two equal).
SHIPPED_SUFFIXES = tuple(s for s in _SUFFIXES if s not in WORKING_SUFFIXES)


@dataclass(frozen=True)
class Artifacts:
    """The files of checkpoint ``stem`` (``folder/NAME``, without suffix)."""

    stem: Path

    @classmethod
    def of(cls, path: str | os.PathLike[str]) -> Artifacts:
        """``folder/NAME`` or any of its files (``NAME.json``, ``NAME.scores.safetensors``...)."""
        path = Path(path).expanduser()
        name = path.name
        for suffix in _SUFFIXES:
            if name.endswith(suffix) and len(name) > len(suffix):
                return cls(path.with_name(name[: -len(suffix)]))
        return cls(path)

    def _file(self, suffix: str) -> Path:
        return self.stem.with_name(self.stem.name + suffix)

    @property
    def name(self) -> str:
        return self.stem.name

    @property
    def weights(self) -> Path:
        return self._file(WEIGHTS)

    @property
    def card(self) -> Path:
        return self._file(CARD)

    @property
    def state_weights(self) -> Path:
        return self._file(STATE + WEIGHTS)

    @property
    def state_card(self) -> Path:
        return self._file(STATE + CARD)

    @property
    def history(self) -> Path:
        return self._file(HISTORY)

    @property
    def scores(self) -> Path:
        return self._file(SCORES)

    @property
    def partial_scores(self) -> Path:
        return self._file(PARTIAL_SCORES)

    @property
    def samples(self) -> Path:
        return self._file(SAMPLES)

    @property
    def second_stage(self) -> Path:
        return self._file(SECOND_STAGE)

    def files(self) -> dict[str, Path]:
        """Every file by role (present or not)."""
        roles = (
            "weights",
            "card",
            "state_weights",
            "state_card",
            "history",
            "scores",
            "partial_scores",
            "samples",
            "second_stage",
        )
        return {role: getattr(self, role) for role in roles}


# ------------------------------------------------------------------------- broken files
# The shipped checkpoints come with hvaelab-models; a broken file of theirs is restored so.
REINSTALL_MODELS = "`pip install --force-reinstall hvaelab-models`"


def role_of(path: str | os.PathLike[str]) -> str | None:
    """Which file of its checkpoint ``path`` is (an :class:`Artifacts` property name), or None."""
    name = Path(path).name
    for suffix, role in (
        (STATE + WEIGHTS, "state_weights"),
        (STATE + CARD, "state_card"),
        (PARTIAL_SCORES, "partial_scores"),
        (SCORES, "scores"),
        (SAMPLES, "samples"),
        (SECOND_STAGE, "second_stage"),
        (HISTORY, "history"),
        (WEIGHTS, "weights"),
        (CARD, "card"),
    ):
        if name.endswith(suffix) and len(name) > len(suffix):
            return role
    return None


def restore_hint(path: str | os.PathLike[str]) -> str:
    """How a broken or missing file of a checkpoint is made again: the command that writes it,
    or where it comes from (one phrase, for the end of a one-line message)."""
    path = Path(path)
    role = role_of(path)
    stem = Artifacts.of(path).stem if role else path
    if role == "scores":
        return f"`hvaelab tables --checkpoint {stem}` writes it again"
    if role == "samples":
        return f"`hvaelab tables --checkpoint {stem} --samples-per-set 32` writes it again"
    if role == "second_stage":
        return f"`hvaelab second-stage --checkpoint {stem}` fits it again"
    if role == "partial_scores":
        return "delete it: `hvaelab tables` scores its rows again"
    if role in ("state_weights", "state_card"):
        return "delete both state files and train without --resume"
    return (
        f"restore it from where {stem.name} came from (the shipped models: {REINSTALL_MODELS})"
        + (", or re-create it with `hvaelab train`" if role in ("weights", "card") else "")
    )


# --------------------------------------------------------------------------- atomic writes
def temp_path(final: Path) -> Path:
    """A fresh hidden temporary name beside ``final`` (``.NAME.<random>.tmp``)."""
    return final.with_name(f".{final.name}.{uuid.uuid4().hex[:12]}.tmp")


def write_synced(path: Path, data: bytes) -> None:
    """Create ``path`` (it must not exist), write ``data``, flush and fsync."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # mode minus the umask
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def fsync_dir(directory: Path) -> None:
    """fsync a folder, so that renames in it survive a power loss (where supported)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # e.g. Windows cannot open directories
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# The changes of the enclosing ``with staged():`` block: path -> new bytes (None: remove it).
_STAGED: contextvars.ContextVar[dict[Path, bytes | None] | None] = contextvars.ContextVar(
    "hvaelab_staged", default=None
)


def _keep_aside(path: Path) -> Path:
    """Keep the file at ``path`` under a temporary name too (a hard link, else a copy): it is
    what a rollback puts back."""
    backup = temp_path(path)
    try:
        os.link(path, backup)
    except OSError:  # no hard links on this file system
        shutil.copyfile(path, backup)
    return backup


def commit(
    changes: Mapping[str | os.PathLike[str], bytes | str | None]
    | Mapping[Path, bytes | str | None],
) -> list[Path]:
    """Change several files at once, all or none: write each new content (str as UTF-8) to a
    temporary file beside its target, then rename them into place in the given order, removing
    the files mapped to None. If any write or rename fails, every file already changed is put
    back as it was and the error is raised; no temporary file is left behind either way.

    Inside ``with staged():`` the changes join the block's commit instead. Returns the paths."""
    pending = _STAGED.get()
    items = [(Path(p), d.encode("utf-8") if isinstance(d, str) else d) for p, d in changes.items()]
    if pending is not None:
        for path, data in items:
            pending.pop(path, None)  # the latest change of a path, in the latest order
            pending[path] = data
        return [p for p, _ in items]
    temps: dict[Path, Path] = {}
    backups: list[Path] = []
    changed: list[tuple[Path, Path | None]] = []  # changed so far, what it was (None: no file)
    try:
        for path, data in items:
            if data is not None:
                temps[path] = temp_path(path)
                write_synced(temps[path], data)
        for path, data in items:
            backup = _keep_aside(path) if path.exists() else None
            if backup is not None:
                backups.append(backup)
            if data is None:
                if backup is not None:
                    path.unlink()
            else:
                os.replace(temps[path], path)
                del temps[path]
            changed.append((path, backup))
    except BaseException:
        for path, backup in reversed(changed):
            try:
                if backup is not None:
                    os.replace(backup, path)
                else:
                    path.unlink(missing_ok=True)
            except OSError:  # cannot put it back: its old content stays in the backup file
                if backup is not None:
                    backups.remove(backup)
        raise
    finally:
        for tmp in [*temps.values(), *backups]:
            tmp.unlink(missing_ok=True)
    for folder in {p.parent for p, _ in items}:
        fsync_dir(folder)
    return [p for p, _ in items]


@contextlib.contextmanager
def staged() -> Iterator[dict[Path, bytes | None]]:
    """Gather every :func:`atomic_write` / :func:`remove` / :func:`commit` of the block into one
    :func:`commit`, made when the block ends without an error (nothing is written if it raises).
    Nested blocks join the outermost one. Files read inside the block are still the old ones."""
    outer = _STAGED.get()
    if outer is not None:
        yield outer
        return
    pending: dict[Path, bytes | None] = {}
    token = _STAGED.set(pending)
    try:
        yield pending
    finally:
        _STAGED.reset(token)
    commit(pending)


def _now(path: Path) -> bool:
    """Whether a write to ``path`` bypasses :func:`staged` (progress kept however a run ends)."""
    return path.name.endswith(PARTIAL_SCORES)


def atomic_write(path: str | os.PathLike[str], data: bytes | str) -> Path:
    """Write ``data`` (str as UTF-8) to ``path`` atomically: temporary file, fsync, rename (or
    join the enclosing :func:`staged` block's commit)."""
    path = Path(path)
    if _now(path):
        token = _STAGED.set(None)
        try:
            commit({path: data})
        finally:
            _STAGED.reset(token)
    else:
        commit({path: data})
    return path


def remove(path: str | os.PathLike[str]) -> None:
    """Remove the file at ``path`` if there is one (or join the enclosing :func:`staged` block's
    commit)."""
    path = Path(path)
    if _STAGED.get() is None or _now(path):
        path.unlink(missing_ok=True)
    else:
        commit({path: None})


def write_csv(path: str | os.PathLike[str], rows: list[dict]) -> Path:
    """Write dict rows as CSV atomically; columns are every key in first-seen order (an empty
    cell where a row lacks one, or holds None)."""
    import csv
    import io

    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(dict.fromkeys(k for r in rows for k in r)))
    w.writeheader()
    w.writerows(rows)
    return atomic_write(path, buf.getvalue())


def read_history(path: str | os.PathLike[str]) -> list[dict]:
    """A run's ``NAME.history.csv`` (written by :func:`write_csv`) as records: numbers as floats,
    ``epoch`` as int, empty cells left out; [] when there is no file."""
    import csv

    path = Path(path)
    if not path.is_file():
        return []
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
        out = []
        for i, r in enumerate(rows, start=2):
            if None in r or None in r.values():  # too many or too few cells: cut or foreign
                raise ValueError(f"line {i} does not have one cell per column")
            rec: dict = {k: float(v) for k, v in r.items() if v not in ("", None)}
            rec["epoch"] = int(rec["epoch"])
            out.append(rec)
    except (UnicodeDecodeError, ValueError, KeyError, csv.Error) as e:
        raise ValueError(
            f"{path} is not a readable training history ({e}); {restore_hint(path)}"
        ) from e
    return out


def read_safetensors(path: str | os.PathLike[str], what: str, hint: str, kind: str):
    """(metadata, {name: numpy array}) of a safetensors file holding ``what`` ("score tables").

    A missing file raises FileNotFoundError saying ``hint`` (how to make it); an unreadable one
    ValueError naming the file and its ``kind``. Only safetensors is read: no pickle."""
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no {what} at {path}; {hint}")
    try:
        with safe_open(str(path), framework="numpy") as f:
            return dict(f.metadata() or {}), {k: f.get_tensor(k) for k in f.keys()}
    except (OSError, ValueError, SafetensorError) as e:  # corrupt or foreign
        raise ValueError(f"{path} is not a readable {kind} file ({e}); {restore_hint(path)}") from e

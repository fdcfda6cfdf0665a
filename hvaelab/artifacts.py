"""Every file of a checkpoint, and the one way hvaelab writes a file (atomically).

A checkpoint ``NAME`` is a family of files side by side; :class:`Artifacts` names them all:

=========================  =============================================  ===================
file                       what                                           written by
=========================  =============================================  ===================
``NAME.safetensors``       the weights                                    ``hvaelab train``
``NAME.json``              the card: config, training record, numbers     ``hvaelab train``
``NAME.state.safetensors`` training state for an exact resume (optimizer,  ``hvaelab train``
``NAME.state.json``        RNG streams, epoch; git-ignored)
``NAME.history.csv``       the training curves, one row per epoch         ``hvaelab train``
``NAME.scores.safetensors``  score tables of its test sets (dashboards)   ``hvaelab tables``
``NAME.scores.partial.safetensors``  rows of unfinished tables (``--resume``;  ``hvaelab tables``
                           git-ignored)
``NAME.samples.safetensors`` a few test images per set (dashboards)       ``hvaelab tables``
``NAME.second-stage.safetensors``  the fitted second stage (its score)   ``hvaelab second-stage``
=========================  =============================================  ===================

:func:`atomic_write` writes through a temporary file in the target folder, flushed and
fsynced, renamed into place, and the folder fsynced: a reader sees the old file or the new one,
never half of one, and an interrupted write leaves no temporary file behind.
"""

from __future__ import annotations

import os
import uuid
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


def atomic_write(path: str | os.PathLike[str], data: bytes | str) -> Path:
    """Write ``data`` (str as UTF-8) to ``path`` atomically: temporary file, fsync, rename."""
    path = Path(path)
    if isinstance(data, str):
        data = data.encode("utf-8")
    tmp = temp_path(path)
    try:
        write_synced(tmp, data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    fsync_dir(path.parent)
    return path


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
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    out = []
    for r in rows:
        rec: dict = {k: float(v) for k, v in r.items() if v not in ("", None)}
        rec["epoch"] = int(rec["epoch"])
        out.append(rec)
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
        raise ValueError(f"{path} is not a readable {kind} file ({e})") from e

"""Checkpoints: safetensors weights + a JSON card, written atomically, validated on load.

A checkpoint named ``NAME`` is two files side by side:

* ``NAME.safetensors`` holds the tensors (read with ``safetensors.torch.load_file`` only),
* ``NAME.json`` is the *card*: config, training record, metrics, data checksums, plus the
  fields this module adds (``format``, ``format_version``, ``hvaelab_version``,
  ``weights_file``, ``weights_sha256``, ``weights_dtype``, ``created``).

Weights are stored as float32 (what training writes) or float16 (a shipped copy at half the
size: ``hvaelab copy SRC DST --dtype float16``); :func:`load_model` casts them to the model's
float32 parameters either way. A card without ``weights_dtype`` (written before it was
recorded) has float32 weights.

Training state for an exact resume (optimizer, RNG streams, epoch) is stored the same way in
``NAME.state.safetensors`` + ``NAME.state.json`` via :func:`save_state` / :func:`load_state`.
Nothing here uses pickle: arbitrary nested Python state is split by :func:`flatten_state` into
tensors and a JSON-able description.

Writes go to temporary files in the target directory (flushed and fsynced) and are moved into
place with ``os.replace``, the JSON card last (:func:`hvaelab.artifacts.commit`). If any write
or rename fails, the files already moved are put back, so an interrupted save leaves the
previous checkpoint (or nothing) under the final names; :func:`copy_checkpoint` changes its
files in one such commit. A power loss between the two renames can leave new weights
beside an old card; :func:`load_checkpoint` then reports the sha256 mismatch instead of loading
mismatched weights.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import safetensors
import safetensors.torch
import torch

import hvaelab

from . import package_files
from .artifacts import (
    CARD,
    REINSTALL_MODELS,
    STATE,
    WEIGHTS,
    Artifacts,
    atomic_write,
    commit,
    remove,
    staged,
)

__all__ = [
    "CHECKPOINT_FORMAT",
    "FORMAT_VERSION",
    "STATE_FORMAT",
    "WEIGHTS_DTYPES",
    "CheckpointError",
    "CheckpointNotFoundError",
    "checkpoint_search_dirs",
    "copy_checkpoint",
    "ensure_writable",
    "flatten_state",
    "is_installed",
    "list_checkpoints",
    "load_checkpoint",
    "load_state",
    "read_card",
    "resolve_checkpoint",
    "save_checkpoint",
    "save_state",
    "unflatten_state",
]

CHECKPOINT_FORMAT = "hvaelab-checkpoint"
STATE_FORMAT = "hvaelab-state"
FORMAT_VERSION = 1
ENV_VAR = "HVAELAB_CHECKPOINTS"

_WEIGHTS_SUFFIX, _CARD_SUFFIX, _STATE_INFIX = WEIGHTS, CARD, STATE  # named by .artifacts
_RESERVED = (
    "format",
    "format_version",
    "hvaelab_version",
    "weights_file",
    "weights_sha256",
    "weights_dtype",
)
# How the floating-point weights of a checkpoint may be stored (card field ``weights_dtype``).
WEIGHTS_DTYPES = {"float32": torch.float32, "float16": torch.float16}
# Largest integer that every JSON reader (IEEE double) represents exactly.
_JSON_SAFE_INT = 2**53 - 1


class CheckpointError(ValueError):
    """A checkpoint or state file is missing, damaged, foreign or of an unsupported version."""


class CheckpointNotFoundError(CheckpointError, FileNotFoundError):
    """No checkpoint of the given name or path exists in any of the places looked at."""

    def __init__(self, message: str, searched: list[Path] | None = None) -> None:
        super().__init__(message)
        self.searched = list(searched or [])


# --------------------------------------------------------------------------- paths


def _stem(path: str | os.PathLike[str]) -> Path:
    """``dir/NAME``, ``dir/NAME.json`` or ``dir/NAME.safetensors`` -> ``dir/NAME`` (a state
    file ``NAME.state.json`` stays ``NAME.state``: its card then says what it is)."""
    path = Path(path).expanduser()
    for suffix in (WEIGHTS, CARD):
        if path.name.endswith(suffix) and len(path.name) > len(suffix):
            return path.with_name(path.name[: -len(suffix)])
    return path


def _state_stem(path: str | os.PathLike[str]) -> Path:
    """``dir/NAME`` or ``dir/NAME.state[.json|.safetensors]`` -> ``dir/NAME.state``."""
    stem = _stem(path)
    return stem if stem.name.endswith(_STATE_INFIX) else stem.with_name(stem.name + _STATE_INFIX)


def _pair(stem: Path) -> tuple[Path, Path]:
    """(weights file, card file) of a stem (``NAME`` or ``NAME.state``)."""
    a = Artifacts(stem)
    return a.weights, a.card


def _repo_checkpoints_dir() -> Path | None:
    """The checkout's ``checkpoints/`` in development, None for an installed hvaelab."""
    return package_files.checkout_checkpoints_dir()


def _user_cache_dir() -> Path:
    """platformdirs' per-user cache + ``hvaelab/checkpoints`` (``~/.cache/...`` on Linux)."""
    import platformdirs

    return platformdirs.user_cache_path("hvaelab", appauthor=False) / "checkpoints"


def checkpoint_search_dirs(
    search_dirs: Iterable[str | os.PathLike[str]] | None = None,
) -> list[Path]:
    """Directories a checkpoint NAME is looked for in, in order, without duplicates.

    1. ``search_dirs`` as given, 2. ``$HVAELAB_CHECKPOINTS`` (``os.pathsep``-separated),
    3. the checkout's ``checkpoints/`` (development only), 4. the installed models (the
    ``hvaelab-models`` distribution, ``pip install "hvaelab[models]"``), 5. the per-user
    cache's ``hvaelab/checkpoints`` (``$XDG_CACHE_HOME/hvaelab/checkpoints``, default
    ``~/.cache/hvaelab/checkpoints`` on Linux).
    """
    dirs: list[Path] = [Path(d).expanduser() for d in (search_dirs or [])]
    dirs += [Path(p).expanduser() for p in os.environ.get(ENV_VAR, "").split(os.pathsep) if p]
    dirs += [d for d in (_repo_checkpoints_dir(), package_files.installed_models_dir()) if d]
    dirs.append(_user_cache_dir())
    unique: list[Path] = []
    for d in dirs:
        if d not in unique:
            unique.append(d)
    return unique


def resolve_checkpoint(
    name_or_path: str | os.PathLike[str],
    search_dirs: Iterable[str | os.PathLike[str]] | None = None,
) -> Path:
    """Return the stem path (``dir/NAME``) of a checkpoint given by path or by name.

    An existing path, with or without ``.json``/``.safetensors``, is taken as is. Otherwise the
    name is looked for in :func:`checkpoint_search_dirs`. Raises
    :class:`CheckpointNotFoundError` listing every place looked at.
    """
    given = Path(name_or_path).expanduser()
    if given.is_file() and not given.name.endswith((_WEIGHTS_SUFFIX, _CARD_SUFFIX)):
        raise CheckpointError(
            f"{given} is not a checkpoint file: a checkpoint is NAME{_CARD_SUFFIX} + "
            f"NAME{_WEIGHTS_SUFFIX}; pass either of those or NAME"
        )
    candidates = [_stem(given)]
    if not given.is_absolute():
        candidates += [_stem(d / given) for d in checkpoint_search_dirs(search_dirs)]
    for stem in candidates:
        if any(f.is_file() for f in _pair(stem)):
            return stem
    looked = "\n".join(
        f"  - {_pair(stem)[1].absolute()} (+ {_WEIGHTS_SUFFIX})" for stem in candidates
    )
    available = ", ".join(p.name for p in list_checkpoints(search_dirs)) or "none"
    models = (
        ""
        if package_files.installed_models_dir() is not None
        else ', install the shipped ones with `pip install "hvaelab[models]"`'
    )
    raise CheckpointNotFoundError(
        f"checkpoint {str(name_or_path)!r} not found. Looked at:\n{looked}\n"
        f"Available checkpoints: {available}. Pass a path to NAME.json, add its directory to "
        f"search_dirs or ${ENV_VAR}{models}, or train one with `hvaelab train`.",
        searched=candidates,
    )


def list_checkpoints(
    search_dirs: Iterable[str | os.PathLike[str]] | None = None,
) -> list[Path]:
    """Stems of all usable checkpoints in the search directories, sorted by name.

    A checkpoint is listed if both files exist and the card says it is an hvaelab checkpoint
    (weights are not hashed here). Where a name exists in several directories, the first in
    search order wins, as in :func:`resolve_checkpoint`.
    """
    found: dict[str, Path] = {}
    for directory in checkpoint_search_dirs(search_dirs):
        if not directory.is_dir():
            continue
        for weights in sorted(directory.glob(f"*{_WEIGHTS_SUFFIX}")):
            stem = _stem(weights)
            card = _pair(stem)[1]
            if stem.name in found or not card.is_file():
                continue
            try:
                data = json.loads(card.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, json.JSONDecodeError):
                continue
            if isinstance(data, dict) and data.get("format") == CHECKPOINT_FORMAT:
                found[stem.name] = stem
    return [found[name] for name in sorted(found)]


# --------------------------------------------------------------------------- installed models


def is_installed(path: str | os.PathLike[str]) -> bool:
    """Whether checkpoint ``path`` (a stem or either file) lies in the installed models'
    folder (:func:`hvaelab.package_files.installed_models_dir`): read-only to hvaelab."""
    installed = package_files.installed_models_dir()
    if installed is None:
        return False
    folder = _stem(path).absolute().parent
    return folder.resolve().is_relative_to(installed.resolve())


def ensure_writable(
    path: str | os.PathLike[str], command: str, copy_from: str | None = None
) -> None:
    """Refuse, before anything is written, to write to an installed checkpoint.

    ``command`` is the ``hvaelab`` command that would write (``"tables"``, ``"second-stage"``);
    ``copy_from`` the source of a copy onto ``path`` (``hvaelab copy SRC DST``). Raises
    :class:`CheckpointError` whose message gives the command that makes a writable copy,
    ``hvaelab copy NAME ./checkpoints/NAME``, and how to use it."""
    if not is_installed(path):
        return
    stem = _stem(path)
    writable = f"./checkpoints/{stem.name}"
    if copy_from is None:  # the name finds this very checkpoint: say the name, else the path
        try:
            by_name = resolve_checkpoint(stem.name).absolute() == stem.absolute()
        except CheckpointError:
            by_name = False
        todo = (
            f"Make a writable copy with `hvaelab copy {stem.name if by_name else stem} "
            f"{writable}`, then run `hvaelab {command} --checkpoint {writable}`"
        )
    else:
        todo = (
            f"Copy into a writable folder instead: `hvaelab copy {copy_from} {writable}`, "
            f"then use it with `--checkpoint {writable}`"
        )
    raise CheckpointError(
        f"{stem} is an installed checkpoint (the hvaelab-models package), which is read-only: "
        f"`hvaelab {command}` would write to it. {todo} (or put ./checkpoints on "
        f"${ENV_VAR}: it is searched before the installed models)."
    )


# --------------------------------------------------------------------------- atomic writes


def _commit_pair(weights: Path, weights_data: bytes, card: Path, card_data: bytes) -> None:
    """Write both files via temp files + os.replace, card last; both or neither (a failure
    puts back what was there)."""
    commit({weights: weights_data, card: card_data})


def _json_default(obj: Any) -> Any:
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, np.generic | np.ndarray):
        return obj.tolist()
    if isinstance(obj, torch.Tensor) and obj.numel() <= 1024:
        return obj.tolist()
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.asdict(obj)
    raise TypeError(f"object of type {type(obj).__name__} is not JSON serializable")


def _encode_card(card: Mapping[str, Any], where: Path) -> bytes:
    try:
        text = json.dumps(card, indent=2, allow_nan=False, default=_json_default)
    except (TypeError, ValueError) as err:
        raise CheckpointError(
            f"cannot write card {where}: {err}. A card holds JSON values only (dict, list, "
            "str, int, finite float, bool, None); write NaN/inf as None or a string."
        ) from err
    return (text + "\n").encode("utf-8")


def _prepare_tensors(tensors: Mapping[str, torch.Tensor], where: Path) -> dict[str, torch.Tensor]:
    """Detached, contiguous CPU copies (safetensors refuses shared or strided storage)."""
    if not isinstance(tensors, Mapping):
        raise TypeError(f"tensors for {where} must be a dict of name -> torch.Tensor")
    out: dict[str, torch.Tensor] = {}
    for name, tensor in tensors.items():
        if not isinstance(name, str) or not isinstance(tensor, torch.Tensor):
            raise TypeError(
                f"tensors for {where} must map str to torch.Tensor, got "
                f"{type(name).__name__} -> {type(tensor).__name__} for key {name!r}"
            )
        out[name] = tensor.detach().cpu().clone(memory_format=torch.contiguous_format)
    return out


def _weights_dtype(tensors: Mapping[str, torch.Tensor]) -> str:
    """What the card records as ``weights_dtype``: the dtype of the floating-point tensors
    ("float32", "float16", ...), or "mixed"."""
    found = {str(t.dtype).removeprefix("torch.") for t in tensors.values() if t.is_floating_point()}
    return found.pop() if len(found) == 1 else ("mixed" if found else "float32")


def _save_pair(stem: Path, tensors: Mapping[str, torch.Tensor], card: Mapping, fmt: str) -> Path:
    if not isinstance(card, Mapping):
        raise TypeError(f"the card for {stem} must be a dict, got {type(card).__name__}")
    weights, card_path = _pair(stem)
    weights.parent.mkdir(parents=True, exist_ok=True)
    prepared = _prepare_tensors(tensors, weights)
    data = safetensors.torch.save(prepared, metadata={"format": "pt", "hvaelab_format": fmt})
    full = {k: v for k, v in card.items() if k not in _RESERVED and k != "created"}
    full = {
        "format": fmt,
        "format_version": FORMAT_VERSION,
        "hvaelab_version": hvaelab.__version__,
        "weights_file": weights.name,
        "weights_sha256": hashlib.sha256(data).hexdigest(),
        **({"weights_dtype": _weights_dtype(prepared)} if fmt == CHECKPOINT_FORMAT else {}),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        **full,
    }
    _commit_pair(weights, data, card_path, _encode_card(full, card_path))
    return stem


def save_checkpoint(
    path: str | os.PathLike[str],
    tensors: Mapping[str, torch.Tensor],
    card: Mapping[str, Any],
) -> Path:
    """Atomically write ``NAME.safetensors`` + ``NAME.json``; return the stem ``dir/NAME``.

    ``path`` is the stem or either file name. ``card`` must be JSON-able (Paths, numpy values,
    small tensors and dataclasses are converted); the format fields are added (and replace any
    stale ones, so a loaded card can be saved again).
    """
    return _save_pair(_stem(path), tensors, card, CHECKPOINT_FORMAT)


# --------------------------------------------------------------------------- validated reads


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _redo(fmt: str) -> tuple[str, str]:
    """What a file of format ``fmt`` is called, and what to do when it is broken."""
    if fmt == CHECKPOINT_FORMAT:
        return "checkpoint", (
            "restore both files from where you got them (the shipped models: "
            f"{REINSTALL_MODELS}), or re-create them with `hvaelab train`"
        )
    return "training-state file", "delete both state files and restart training without --resume"


def read_card(path: str | os.PathLike[str], fmt: str = CHECKPOINT_FORMAT) -> dict[str, Any]:
    """The card (``NAME.json``) of the checkpoint or state file at ``path``, checked (present,
    JSON, an hvaelab card of format ``fmt`` and this version) but without reading the weights."""
    weights, card_path = _pair(_stem(path))
    what, redo = _redo(fmt)
    if not card_path.is_file():
        raise CheckpointError(f"{what} card {card_path} is missing (weights: {weights}); {redo}.")
    try:
        card = json.loads(card_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CheckpointError(f"{card_path} is not valid JSON ({err}); {redo}.") from err
    if not isinstance(card, dict) or "format" not in card:
        raise CheckpointError(
            f"{card_path} is not an hvaelab {what} card (no 'format' field): it looks like a "
            f"foreign JSON file. Point to the NAME.json written by hvaelab next to "
            f"NAME{_WEIGHTS_SUFFIX}, or {redo}."
        )
    if card["format"] != fmt:
        hint = {
            STATE_FORMAT: "it is a training-state file: load it with load_state()",
            CHECKPOINT_FORMAT: "it is a model checkpoint: load it with load_checkpoint()",
        }.get(card["format"], "it is not an hvaelab file")
        raise CheckpointError(
            f"{card_path} has format {card['format']!r}, expected {fmt!r}: {hint}."
        )
    version = card.get("format_version")
    if version != FORMAT_VERSION:
        newer = isinstance(version, int) and version > FORMAT_VERSION
        raise CheckpointError(
            f"{card_path} has format_version {version!r}, this hvaelab "
            f"{hvaelab.__version__} reads version {FORMAT_VERSION} only; "
            + ("upgrade hvaelab." if newer else f"{redo}.")
        )
    return card


def _load_pair(stem: Path, fmt: str) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    weights, card_path = _pair(stem)
    what, redo = _redo(fmt)
    card = read_card(stem, fmt)
    if not weights.is_file():
        raise CheckpointError(f"{what} weights {weights} are missing (card: {card_path}); {redo}.")
    expected = card.get("weights_sha256")
    actual = _sha256_file(weights)
    if actual != expected:
        raise CheckpointError(
            f"{weights} does not match its card {card_path}: sha256 is {actual}, the card "
            f"records {expected}. The weights are truncated, corrupt, or belong to another "
            f"card; {redo}."
        )
    try:
        tensors = safetensors.torch.load_file(weights)
        with safetensors.safe_open(weights, framework="pt") as f:
            metadata = f.metadata() or {}
    except Exception as err:  # safetensors raises its own SafetensorError (not ValueError)
        raise CheckpointError(
            f"{weights} is not a readable safetensors file ({err}); {redo}."
        ) from err
    if metadata.get("hvaelab_format") != fmt:
        raise CheckpointError(
            f"{weights} is a safetensors file not written by hvaelab as a {what} "
            f"(header metadata {metadata}); {redo}."
        )
    return tensors, card


def load_checkpoint(
    path_or_name: str | os.PathLike[str],
    search_dirs: Iterable[str | os.PathLike[str]] | None = None,
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Resolve, validate and load a checkpoint; return ``(tensors, card)``.

    Raises :class:`CheckpointNotFoundError` if nothing is found and :class:`CheckpointError`
    for a missing half, invalid or foreign JSON, an unsupported ``format_version``, a sha256
    mismatch, or an unreadable or foreign safetensors file.
    """
    return _load_pair(resolve_checkpoint(path_or_name, search_dirs), CHECKPOINT_FORMAT)


# --------------------------------------------------------------------------- training state
#
# flatten_state encodes a nested object as JSON ("meta") plus a flat dict of tensors. Every JSON
# object in meta is a tagged node with exactly one of these keys, so there is no ambiguity:
#   {"__tensor__": name}                          a torch.Tensor stored under `name`
#   {"__ndarray__": name, "dtype": s, "shape": l} a numpy array stored as raw uint8 bytes
#   {"__dict__": [[key, value], ...]}             a dict (keys may be int, str, tuple, ...)
#   {"__tuple__": [...]}                          a tuple (JSON lists are Python lists)
#   {"__int__": "digits"}                         an int outside +-(2**53 - 1)
#   {"__float__": "nan" | "inf" | "-inf"}         a non-finite float
#   {"__npscalar__": dtype_str, "value": v}       a numpy bool/int/float scalar


def flatten_state(obj: Any) -> tuple[dict[str, torch.Tensor], Any]:
    """Split nested dicts/lists/tuples of tensors, numpy arrays and scalars into (tensors, meta).

    ``meta`` is JSON-able (no NaN literals, no unsafe ints); :func:`unflatten_state` inverts
    it exactly. Raises TypeError naming the path of an unsupported value.
    """
    tensors: dict[str, torch.Tensor] = {}

    def enc(x: Any, where: str) -> Any:
        if isinstance(x, np.bool_ | np.integer | np.floating):  # before float: np.float64 is one
            return {"__npscalar__": x.dtype.str, "value": enc(x.item(), where)}
        if x is None or isinstance(x, bool | str):
            return x
        if isinstance(x, int):
            return x if abs(x) <= _JSON_SAFE_INT else {"__int__": str(x)}
        if isinstance(x, float):
            return x if math.isfinite(x) else {"__float__": repr(x)}
        if isinstance(x, torch.Tensor):
            name = f"t{len(tensors)}"
            tensors[name] = x
            return {"__tensor__": name}
        if isinstance(x, np.ndarray):
            if x.dtype.hasobject:
                raise TypeError(f"cannot store numpy object array at {where}")
            name = f"t{len(tensors)}"
            raw = np.ascontiguousarray(x).reshape(-1).view(np.uint8)
            tensors[name] = torch.from_numpy(raw.copy())
            return {"__ndarray__": name, "dtype": x.dtype.str, "shape": list(x.shape)}
        if isinstance(x, Mapping):
            return {
                "__dict__": [
                    [enc(k, f"{where}[key]"), enc(v, f"{where}[{k!r}]")] for k, v in x.items()
                ]
            }
        if isinstance(x, list):
            return [enc(v, f"{where}[{i}]") for i, v in enumerate(x)]
        if isinstance(x, tuple):
            return {"__tuple__": [enc(v, f"{where}[{i}]") for i, v in enumerate(x)]}
        raise TypeError(
            f"cannot store a {type(x).__name__} at {where}: training state may hold dicts, "
            "lists, tuples, tensors, numpy arrays, int, float, bool, None and str only"
        )

    meta = enc(obj, "state")
    return tensors, meta


def unflatten_state(tensors: Mapping[str, torch.Tensor], meta: Any) -> Any:
    """Inverse of :func:`flatten_state`. Raises CheckpointError on a malformed ``meta``."""

    def tensor(name: Any) -> torch.Tensor:
        if name not in tensors:
            raise CheckpointError(f"training state refers to tensor {name!r}, which is missing")
        return tensors[name]

    def dec(m: Any) -> Any:
        if m is None or isinstance(m, bool | int | float | str):
            return m
        if isinstance(m, list):
            return [dec(v) for v in m]
        if isinstance(m, dict) and len(m) >= 1:
            if "__tensor__" in m:
                return tensor(m["__tensor__"])
            if "__ndarray__" in m:
                raw = tensor(m["__ndarray__"]).numpy().tobytes()
                return np.frombuffer(raw, dtype=np.dtype(m["dtype"])).reshape(m["shape"]).copy()
            if "__dict__" in m:
                return {_hashable(dec(k)): dec(v) for k, v in m["__dict__"]}
            if "__tuple__" in m:
                return tuple(dec(v) for v in m["__tuple__"])
            if "__int__" in m:
                return int(m["__int__"])
            if "__float__" in m:
                return float(m["__float__"])
            if "__npscalar__" in m:
                return np.dtype(m["__npscalar__"]).type(dec(m["value"]))
        raise CheckpointError(f"malformed training-state description: {m!r}")

    return dec(meta)


def _hashable(key: Any) -> Any:
    return tuple(_hashable(k) for k in key) if isinstance(key, list) else key


def save_state(
    path: str | os.PathLike[str], obj: Any, extra: Mapping[str, Any] | None = None
) -> Path:
    """Atomically write ``NAME.state.safetensors`` + ``NAME.state.json``; return the stem.

    ``obj`` is any state :func:`flatten_state` accepts (e.g. ``{"optimizer":
    opt.state_dict(), "torch_rng": torch.get_rng_state(), "epoch": 3}``); ``extra`` is a
    JSON-able dict returned as is by :func:`load_state`.
    """
    tensors, meta = flatten_state(obj)
    return _save_pair(
        _state_stem(path),
        tensors,
        {"extra": dict(extra or {}), "meta": meta},
        STATE_FORMAT,
    )


def load_state(path: str | os.PathLike[str]) -> tuple[Any, dict[str, Any]]:
    """Validate and read what :func:`save_state` wrote; return ``(obj, extra)``."""
    stem = _state_stem(path)
    if not any(f.is_file() for f in _pair(stem)):
        raise CheckpointNotFoundError(
            f"training state {_pair(stem)[1]} (+ {_WEIGHTS_SUFFIX}) not found; "
            "start training without --resume, or pass the NAME used when it was saved",
            searched=[stem],
        )
    tensors, card = _load_pair(stem, STATE_FORMAT)
    if "meta" not in card or not isinstance(card.get("extra"), dict):
        raise CheckpointError(f"{_pair(stem)[1]} lacks 'meta'/'extra'; it is damaged.")
    return unflatten_state(tensors, card["meta"]), card["extra"]


# --------------------------------------------------------------------------- model loading


def update_card(path_or_name: str | os.PathLike[str], updates: Mapping[str, Any]) -> Path:
    """Merge ``updates`` (e.g. measured numbers) into a checkpoint's card, atomically.

    The checkpoint is validated first; the weights file is left untouched (same sha256), and
    the reserved fields (format, weights_sha256, ...) cannot be overwritten.
    """
    stem = resolve_checkpoint(path_or_name)
    _, card = _load_pair(stem, CHECKPOINT_FORMAT)
    clash = set(updates) & (set(_RESERVED) | {"created"})
    if clash:
        raise CheckpointError(f"cannot update reserved card fields {sorted(clash)}")
    card.update(updates)
    card_path = _pair(stem)[1]
    atomic_write(card_path, _encode_card(card, card_path))
    return stem


# Files of a checkpoint that belong to its weights (keyed by their sha256 where it matters):
# copied with them. The training state is not: a run resumes under its own name.
_WITH_WEIGHTS = ("history", "scores", "samples", "second_stage")


def copy_checkpoint(
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    replace: bool = False,
    dtype: str | None = None,
) -> Path:
    """Copy checkpoint ``src`` (a name or path) to the stem ``dst`` (``dir/NAME``); return it.

    The weights are copied byte for byte, so their sha256 is unchanged and the files that
    belong to them (training history, score tables, image samples, second stage) are copied
    too and stay valid; the card is the same but for the file names it holds. This is how a
    run trained under a working name replaces a shipped checkpoint. An existing ``dst`` is
    refused unless ``replace``; then its files for its old weights that ``src`` does not have
    are removed, so nothing at ``dst`` disagrees with the new weights. A ``dst`` among the
    installed models is refused (:func:`ensure_writable`); an installed ``src`` is fine: that
    is how one gets a writable copy of it.

    ``dtype`` (one of :data:`WEIGHTS_DTYPES`) stores the weights in that precision instead:
    ``"float16"`` halves the file. New weights are new bytes, so what was computed from the old
    ones is not copied (score tables, second stage, the card's ``evaluation``): recompute it
    with ``hvaelab second-stage`` and ``hvaelab tables``. The card's ``converted_from`` records
    the source's sha256 and dtype; the history and the image samples are copied.
    """
    with staged():  # every file of dst changes, or none
        return _copy_checkpoint(src, dst, replace, dtype)


def _copy_checkpoint(src, dst, replace: bool, dtype: str | None) -> Path:
    s = resolve_checkpoint(src)
    ensure_writable(dst, "copy", copy_from=str(src))  # never onto the installed models
    tensors, card = _load_pair(s, CHECKPOINT_FORMAT)  # checks the card and the weights' sha256
    if dtype is not None and dtype not in WEIGHTS_DTYPES:
        raise CheckpointError(
            f"cannot store weights as {dtype!r}: choose one of {', '.join(WEIGHTS_DTYPES)}"
        )
    d = _stem(dst)
    if d.resolve() == s.resolve():
        raise CheckpointError(f"{s} is already at {d}: nothing to copy")
    weights, card_path = _pair(d)
    if not replace and (weights.exists() or card_path.exists()):
        raise CheckpointError(
            f"{d} already exists; pass replace=True (`hvaelab copy --replace`) to replace it"
        )
    convert = dtype is not None and dtype != card.get("weights_dtype", "float32")
    # refused before any write
    cast = _cast_weights(s, tensors, dtype) if dtype is not None and convert else None
    kept = _KEPT_ON_CONVERSION if convert else _WITH_WEIGHTS
    weights.parent.mkdir(parents=True, exist_ok=True)
    src_files, dst_files = Artifacts(s), Artifacts(d)
    for role in (*_WITH_WEIGHTS, "partial_scores"):  # first: new weights never meet old files
        a, b = getattr(src_files, role), getattr(dst_files, role)
        if b.exists() and not (role in kept and a.is_file()):
            remove(b)
    if convert:
        card = {k: v for k, v in card.items() if k != "evaluation"}
        card["converted_from"] = {
            "weights_sha256": card["weights_sha256"],
            "weights_dtype": card.get("weights_dtype", "float32"),
        }
        assert cast is not None
        _save_pair(d, cast, card, CHECKPOINT_FORMAT)
    else:
        card["weights_file"] = weights.name
        if isinstance(card.get("evaluation"), dict) and "score_tables" in card["evaluation"]:
            card["evaluation"]["score_tables"] = dst_files.scores.name
        _commit_pair(
            weights, src_files.weights.read_bytes(), card_path, _encode_card(card, card_path)
        )
    for role in kept:
        a = getattr(src_files, role)
        if a.is_file():
            atomic_write(getattr(dst_files, role), a.read_bytes())
    return d


# Of the files that go with the weights, those that do not depend on their exact values.
_KEPT_ON_CONVERSION = ("history", "samples")


def _cast_weights(s: Path, tensors: dict[str, torch.Tensor], dtype: str) -> dict[str, torch.Tensor]:
    """Checkpoint ``s``'s floating-point ``tensors`` as ``dtype``; refused if any overflows."""
    target = WEIGHTS_DTYPES[dtype]
    cast = {k: t.to(target) if t.is_floating_point() else t for k, t in tensors.items()}
    for k, t in cast.items():
        if t.is_floating_point() and not torch.isfinite(t).all():
            raise CheckpointError(
                f"cannot store {s}'s weights as {dtype}: {k} has values beyond its range "
                f"(largest magnitude {tensors[k].abs().max().item():.3g})"
            )
    return cast


@dataclass
class LoadedModel:
    """A model rebuilt from a checkpoint, with its card and where it was found."""

    model: Any  # hvaelab.model.HVAE, in eval mode
    card: dict[str, Any]
    path: Path  # the checkpoint's stem (NAME without suffix)

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def dataset(self) -> str | None:
        """The dataset it was trained on (its in-distribution set), as its card records."""
        return self.card.get("data", {}).get("train", {}).get("name")


def load_model(
    path_or_name: str | os.PathLike[str],
    search_dirs: Iterable[str | os.PathLike[str]] | None = None,
    device: str | torch.device = "cpu",
) -> LoadedModel:
    """Load an HVAE or BIVA checkpoint by path or name (see :func:`resolve_checkpoint`), in eval
    mode; the card's "kind" picks the class (:func:`hvaelab.model.build_model`).

    Raises :class:`CheckpointError` if the card has no model configuration or the weights do
    not fit the architecture it describes. A second stage fitted for these very weights
    (``NAME.second-stage.safetensors``, :mod:`hvaelab.second_stage`) is attached as
    ``model.second_stage``; one fitted for other weights is ignored with a warning.
    """
    from .config import HVAEConfig
    from .model import MODEL_KINDS, build_model

    stem = resolve_checkpoint(path_or_name, search_dirs)
    tensors, card = _load_pair(stem, CHECKPOINT_FORMAT)
    json_path = _pair(stem)[1]
    if card.get("kind") not in MODEL_KINDS or not isinstance(card.get("model_config"), dict):
        raise CheckpointError(
            f"{json_path} is an hvaelab checkpoint but not of an HVAE model (no 'model_config')."
        )
    try:
        config = HVAEConfig.from_dict(card["model_config"])
        model = build_model(card["kind"], config)
        model.load_state_dict(tensors, strict=True)
    except (TypeError, ValueError, RuntimeError) as e:
        raise CheckpointError(
            f"{json_path}: the weights do not match the model described by its card ({e})."
        ) from e
    model.second_stage = _second_stage_for(stem, card)
    return LoadedModel(model.to(device).eval(), card, stem)


def _second_stage_for(stem: Path, card: dict[str, Any]):
    """The second stage stored beside checkpoint ``stem`` if it was fitted for its weights."""
    import warnings

    from .artifacts import Artifacts
    from .second_stage import SecondStage

    path = Artifacts.of(stem).second_stage
    if not path.exists():
        return None
    try:
        stage = SecondStage.load(path)
    except ValueError as e:
        warnings.warn(f"ignoring the second stage: {e}", stacklevel=3)
        return None
    if stage.record.get("weights_sha256") != card.get("weights_sha256"):
        warnings.warn(
            f"ignoring {path}: it was fitted for other weights; refit it with "
            f"`hvaelab second-stage --checkpoint {stem}`",
            stacklevel=3,
        )
        return None
    return stage

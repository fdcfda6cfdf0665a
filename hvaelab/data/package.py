"""Data packages: small, verified excerpts of registered datasets under names of their own.

A package is a folder with ``manifest.json`` and gzip IDX files. Each dataset in it is an
excerpt (index ranges of one split) of a registered dataset, with the source file's checksum
and the excerpt's own. :func:`register_package` registers its datasets under the manifest's
names, which must differ from the real ones (``fashionmnist-fixture``, not ``fashionmnist``),
so nothing trains or evaluates on an excerpt by accident. The test suite's fixture
(``tests/data``, built by ``scripts/build-test-data``) is such a package.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from ..artifacts import atomic_write
from .errors import DataFormatError
from .idx import images_md5, md5_file, write_idx
from .registry import DatasetSpec, get_spec, register_dataset

MANIFEST = "manifest.json"
FORMAT = "hvaelab-data-package"
VERSION = 1

Ranges = list[tuple[int, ...]]  # [(start, stop), ...]


def indices_of(ranges: Ranges) -> np.ndarray:
    """The original indices an excerpt holds, in order: ``[[a, b], ...]`` -> a..b-1, ..."""
    return np.concatenate([np.arange(a, b) for a, b in ranges]) if ranges else np.zeros(0, int)


def build_package(
    folder: str | Path,
    selection: Mapping[str, Mapping[str, Ranges]],
    *,
    suffix: str = "-fixture",
    data_dir: str | Path | None = None,
    description: str = "",
) -> Path:
    """Write excerpts of registered datasets and their manifest into ``folder``.

    ``selection`` maps a dataset name to ``{split: [(start, stop), ...]}``; each excerpt is
    registered later as ``NAME + suffix``. The source files are loaded (and their checksums
    checked) through :func:`hvaelab.data.load_dataset`; nothing is downloaded.
    """
    from .load import load_dataset
    from .locate import find_split

    folder = Path(folder)
    entries = []
    for name, splits in selection.items():
        spec = get_spec(name)
        if spec.loader != "idx":
            raise ValueError(f"{name}: only IDX datasets can be packaged")
        out_name = spec.name + suffix
        (folder / out_name).mkdir(parents=True, exist_ok=True)
        entry: dict = {"name": out_name, "source": spec.name, "licence": spec.licence, "splits": {}}
        for split, ranges in splits.items():
            ds = load_dataset(name, split, data_dir=data_dir, download=False)
            found = find_split(spec, split, data_dir)
            assert found is not None
            idx = indices_of([tuple(r) for r in ranges])
            if idx.size == 0 or idx.max() >= len(ds):
                raise ValueError(f"{name}/{split}: ranges {ranges} outside 0..{len(ds)}")
            files = {}
            role_files: tuple[tuple[str, str | tuple[str, ...] | None, np.ndarray | None], ...] = (
                ("images", spec.splits[split][0], ds.images),
                ("labels", spec.splits[split][1], ds.labels),
            )
            for role, fname, arr in role_files:
                if fname is None or arr is None:
                    continue
                assert isinstance(fname, str)  # excerpts are of one-file-a-split datasets
                rel = f"{out_name}/{fname}.gz"
                write_idx(folder / rel, np.ascontiguousarray(arr[idx]))
                files[role] = {
                    "file": rel,
                    "md5": md5_file(folder / rel),
                    "source_file": fname,
                    "source_md5": md5_file(found.paths[fname]),
                }
            entry["splits"][split] = {
                "indices": [list(map(int, r)) for r in ranges],
                "n": int(idx.size),
                "source_split": split,
                **files,
            }
        entries.append(entry)
    manifest = {
        "format": FORMAT,
        "version": VERSION,
        "description": description,
        "rebuild": "scripts/build-test-data",
        "datasets": entries,
    }
    atomic_write(folder / MANIFEST, (json.dumps(manifest, indent=2) + "\n").encode())
    return folder / MANIFEST


def read_manifest(folder: str | Path) -> dict:
    """The manifest of the package in ``folder``, with its format checked."""
    path = Path(folder) / MANIFEST
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no data package manifest here") from None
    except (ValueError, UnicodeDecodeError) as e:
        raise DataFormatError(f"{path}: not a readable JSON manifest ({e})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise DataFormatError(f"{path}: not an hvaelab data package manifest")
    if manifest.get("version") != VERSION:
        raise DataFormatError(
            f"{path}: data package version {manifest.get('version')!r}; this hvaelab reads "
            f"version {VERSION}"
        )
    return manifest


def package_specs(folder: str | Path) -> list[DatasetSpec]:
    """The package's datasets as specs with absolute file names and the excerpts' md5."""
    folder = Path(folder).resolve()
    specs = []
    for entry in read_manifest(folder)["datasets"]:
        source = get_spec(entry["source"])
        splits: dict[str, tuple[str | tuple[str, ...], str | None]] = {}
        md5: dict[str, str] = {}
        for split, s in entry["splits"].items():
            names = []
            for role in ("images", "labels"):
                if role in s:
                    p = str(folder / s[role]["file"])
                    md5[p] = s[role]["md5"]
                    names.append(p)
            splits[split] = (names[0], names[1] if len(names) > 1 else None)
        desc = ", ".join(f"{s['n']} {k} images" for k, s in entry["splits"].items())
        specs.append(
            DatasetSpec(
                name=entry["name"],
                description=f"an excerpt of {source.name} ({desc}; indices in {folder / MANIFEST})"
                " for tests: not the dataset",
                splits=splits,
                md5=md5,
                licence=source.licence,
                homepage=source.homepage,
            )
        )
    return specs


def register_package(folder: str | Path) -> list[DatasetSpec]:
    """Register the package's datasets under their own names (never a registered real name)."""
    return [register_dataset(spec) for spec in package_specs(folder)]


def verify_package(folder: str | Path) -> list[str]:
    """Problems with the package (empty if none): every file's md5 and size as the manifest says,
    and every source checksum equal to the registry's checksum of that source file."""
    folder = Path(folder)
    problems = []
    for entry in read_manifest(folder)["datasets"]:
        source = get_spec(entry["source"])
        for split, s in entry["splits"].items():
            for role in ("images", "labels"):
                if role not in s:
                    continue
                f = s[role]
                path = folder / f["file"]
                if not path.is_file():
                    problems.append(f"{path}: missing")
                    continue
                got = md5_file(path)
                if got != f["md5"]:
                    problems.append(f"{path}: md5 {got}, manifest says {f['md5']}")
                known = source.md5.get(f["source_file"])
                if known != f["source_md5"]:
                    problems.append(
                        f"{entry['name']}/{split} {role}: built from a {f['source_file']} with md5 "
                        f"{f['source_md5']}, but {source.name}'s is {known}"
                    )
    return problems


def check_against_source(folder: str | Path, data_dir: str | Path | None = None) -> list[str]:
    """Where the real source files are found: problems if an excerpt differs from
    ``source[indices]`` (empty list: every available excerpt matches)."""
    from .load import load_dataset
    from .locate import find_split

    problems = []
    for entry in read_manifest(folder)["datasets"]:
        for split, s in entry["splits"].items():
            if find_split(get_spec(entry["source"]), s["source_split"], data_dir) is None:
                continue
            real = load_dataset(entry["source"], s["source_split"], data_dir, download=False)
            mine = load_dataset(entry["name"], split, download=False)
            idx = indices_of([tuple(r) for r in s["indices"]])
            if images_md5(real.images[idx]) != mine.md5:
                problems.append(f"{entry['name']}/{split}: images differ from the source's")
            if (
                real.labels is not None
                and mine.labels is not None
                and not np.array_equal(real.labels[idx], mine.labels)
            ):
                problems.append(f"{entry['name']}/{split}: labels differ from the source's")
    return problems

"""What data is on this machine: ``hvaelab data list / fetch / verify``.

For every registered dataset and split: where its files were found (or every place looked and
the command that gets them), whether they match their checksums, and fetching them into the
per-user cache.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .errors import ChecksumError
from .idx import md5_file
from .locate import (
    Found,
    base_of,
    download,
    download_note,
    find_split,
    not_found,
    places,
    remedies,
    search_roots,
)
from .registry import NATURAL_LOADERS, DatasetSpec, get_spec, list_datasets


@dataclass
class SplitStatus:
    """Where one split of one dataset is, or every place it was looked for."""

    dataset: str
    split: str
    found: Found | None
    looked: list[tuple[Path, str]]
    get: str  # the command (or thing to do) that gets it when missing
    via: str = ""  # "mnist/test" for a split that reads another dataset's files
    generated: str = ""  # what a synthetic set is made of (it has no files)


def split_status(spec: DatasetSpec, split: str, data_dir: str | Path | None = None) -> SplitStatus:
    if spec.synthetic is not None:
        return SplitStatus(spec.name, split, None, [], "", generated=spec.synthetic.describe())
    base, base_split = base_of(spec, split)
    ways = remedies(base)
    commands = [r.command for r in ways if r.command]
    return SplitStatus(
        dataset=spec.name,
        split=split,
        found=find_split(spec, split, data_dir),
        looked=places(spec, split, data_dir),
        get=" or ".join(commands) if commands else ways[0].text,
        via=f"{base.name}/{base_split}" if base is not spec else "",
    )


def inventory(data_dir: str | Path | None = None) -> list[SplitStatus]:
    """The status of every split of every registered dataset."""
    return [
        split_status(get_spec(name), split, data_dir)
        for name in list_datasets()
        for split in get_spec(name).splits
    ]


def format_inventory(statuses: list[SplitStatus], data_dir: str | Path | None = None) -> str:
    """``hvaelab data list``: one line per split; the folders looked in, once per dataset."""
    lines = ["Data folders searched, in order:"]
    lines += [f"  {i}. {root}  [{why}]" for i, (root, why) in enumerate(search_roots(data_dir), 1)]
    width = max(len(f"{s.dataset} {s.split}") for s in statuses) + 2
    missing: dict[str, SplitStatus] = {}
    for s in statuses:
        label = f"{s.dataset} {s.split}".ljust(width)
        via = f" (from {s.via})" if s.via else ""
        if s.generated:
            lines.append(f"{label}{s.generated}")
        elif s.found is not None:
            lines.append(f"{label}found    {s.found.images}{via}  [{s.found.why}]")
        else:
            lines.append(f"{label}missing{via}: get it with: {s.get}")
            missing.setdefault(s.via.split("/")[0] or s.dataset, s)
    for name, s in missing.items():
        lines.append(f"{name}: looked in " + ", ".join(str(d) for d, _ in s.looked))
    return "\n".join(lines)


@dataclass
class Check:
    """One file's verification: ``ok``, ``mismatch``, ``unchecked`` (no checksum known)."""

    dataset: str
    split: str
    path: Path | None
    result: str
    detail: str = ""


def verify_split(spec: DatasetSpec, split: str, data_dir: str | Path | None = None) -> list[Check]:
    """Checksums of a split's files that are present (decompressed payload md5)."""
    if spec.synthetic is not None:
        return [Check(spec.name, split, None, "generated", spec.synthetic.describe())]
    base, base_split = base_of(spec, split)
    found = find_split(base, base_split, data_dir)
    if found is None:
        return []
    out = []
    for name, path in found.paths.items():
        expected = base.md5.get(name)
        if base.loader not in ("idx", *NATURAL_LOADERS) or expected is None:
            why = "verified with its archive when downloaded" if base.archive else "no checksum"
            out.append(Check(spec.name, split, path, "unchecked", why))
            continue
        try:
            got = md5_file(path, decompress=base.loader == "idx")
        except (OSError, EOFError) as e:
            out.append(Check(spec.name, split, path, "mismatch", f"unreadable ({e})"))
            continue
        if got == expected:
            out.append(Check(spec.name, split, path, "ok", f"md5 {got}"))
        else:
            out.append(Check(spec.name, split, path, "mismatch", f"md5 {got}, expected {expected}"))
    return out


def fetch(name: str, split: str | None = None, progress: bool = True) -> list[str]:
    """Make ``name``'s splits present: verify what is found, download the rest into the
    per-user cache (verified). Returns one line per split saying what was done."""
    spec = get_spec(name)
    lines = []
    if spec.synthetic is not None:
        return [f"{spec.name}: {spec.synthetic.describe()} when loaded; nothing to fetch"]
    for sp in [split] if split else list(spec.splits):
        base, base_split = base_of(spec, sp)
        found = find_split(base, base_split)
        if found is not None:
            bad = [c for c in verify_split(base, base_split) if c.result == "mismatch"]
            if bad:
                raise ChecksumError(
                    "; ".join(f"{c.path}: {c.detail}" for c in bad)
                    + ": delete or replace these files, then fetch again"
                )
            lines.append(f"{spec.name} {sp}: present at {found.images} [{found.why}]")
            continue
        note = download_note(base)
        if note:
            raise not_found(spec, sp, None, note)
        paths = download(base, base_split, progress=progress)
        lines.append(f"{spec.name} {sp}: downloaded to {next(iter(paths.values()))} (verified)")
    return lines

"""Where a dataset's files are: the search order, the one search loop, verified downloads.

Files are looked for, in order, in: the ``data_dir`` argument (``--data-dir``), ``$HVAELAB_DATA``,
the per-user cache (platformdirs' user cache folder, ``~/.cache/hvaelab/data`` on Linux) and
system locations (``/usr/share/datasets``, where Debian's ``dataset-fashion-mnist`` installs).
``HVAELAB_DATA_ONLY=1`` limits the search to the first two. Missing files of datasets with a
download source are downloaded into the per-user cache with pooch and verified against their
checksums (``HVAELAB_NO_DOWNLOAD=1`` or ``download=False`` turns this off).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import platformdirs

from .errors import ChecksumError, DataFormatError, DataNotFoundError, Remedy
from .idx import GZIP_MAGIC, md5_file
from .registry import DatasetSpec, check_split, get_spec

ENV_DATA = "HVAELAB_DATA"
ENV_DATA_ONLY = "HVAELAB_DATA_ONLY"
ENV_NO_DOWNLOAD = "HVAELAB_NO_DOWNLOAD"
SYSTEM_DATA_DIRS: tuple[Path, ...] = (Path("/usr/share/datasets"),)
DOWNLOAD_TIMEOUT_S = 30.0
_TRUE = ("1", "true", "yes", "on")


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in _TRUE


def user_cache_dir() -> Path:
    """Per-user data cache: ``<platformdirs user cache>/hvaelab/data``.

    On Linux ``$XDG_CACHE_HOME/hvaelab/data`` (default ``~/.cache/hvaelab/data``); on macOS
    ``~/Library/Caches/hvaelab/data``; on Windows under ``%LOCALAPPDATA%``.
    """
    return platformdirs.user_cache_path("hvaelab", appauthor=False) / "data"


def search_roots(data_dir: str | Path | None = None) -> list[tuple[Path, str]]:
    """Base folders in the order they are searched, each with where it came from."""
    roots: list[tuple[Path, str]] = []
    if data_dir is not None:
        roots.append((Path(data_dir).expanduser(), "data_dir argument / --data-dir"))
    env = os.environ.get(ENV_DATA)
    if env:
        roots.append((Path(env).expanduser(), f"${ENV_DATA}"))
    if not _env_flag(ENV_DATA_ONLY):
        roots.append((user_cache_dir(), "per-user cache"))
        roots.extend((d, "system datasets") for d in SYSTEM_DATA_DIRS)
    return roots


def candidate_dirs(
    spec: DatasetSpec, name: str, data_dir: str | Path | None = None
) -> list[tuple[Path, str]]:
    """Folders to look in for the relative file or folder ``name``, in order."""
    if Path(name).is_absolute():
        return [(Path(name).parent, "as registered")]
    out: list[tuple[Path, str]] = []
    seen: set[Path] = set()
    for root, why in search_roots(data_dir):
        for sub in (*spec.subfolders, ""):
            d = root / sub if sub else root
            if d not in seen:
                seen.add(d)
                out.append((d, why))
    return out


def _hit(directory: Path, name: str, spec: DatasetSpec) -> Path | None:
    if spec.loader == "image_folder":
        return directory / name if (directory / name).is_dir() else None
    names = (name, f"{name}.gz") if spec.loader == "idx" else (name,)
    return next((directory / n for n in names if (directory / n).is_file()), None)


@dataclass
class Found:
    """Where a split's files are: one path per file name, the folder and why it was searched."""

    paths: dict[str, Path]
    folder: Path
    why: str

    @property
    def images(self) -> Path:
        return next(iter(self.paths.values()))


def base_of(spec: DatasetSpec, split: str) -> tuple[DatasetSpec, str]:
    """The spec and split whose files a split reads (a subset reads its base dataset's)."""
    check_split(spec, split)
    if spec.subset is not None:
        return get_spec(spec.subset.dataset), spec.subset.split
    return spec, split


def places(spec: DatasetSpec, split: str, data_dir: str | Path | None = None):
    """Every folder looked in for ``split``'s files, in order (with where it came from)."""
    spec, split = base_of(spec, split)
    return candidate_dirs(spec, spec.files(split)[0], data_dir)


def find_split(spec: DatasetSpec, split: str, data_dir: str | Path | None = None) -> Found | None:
    """The first searched folder holding all of a split's files, or None (never downloads)."""
    spec, split = base_of(spec, split)
    names = spec.files(split)
    for d, why in candidate_dirs(spec, names[0], data_dir):
        hits = {n: _hit(d, n, spec) for n in names}
        if all(hits.values()):
            return Found(paths=hits, folder=d, why=why)  # type: ignore[arg-type]
    return None


def downloads_disabled() -> bool:
    return _env_flag(ENV_NO_DOWNLOAD)


def download_note(spec: DatasetSpec, download: bool = True) -> str:
    """Why ``spec`` cannot be downloaded now, or "" if it can."""
    if not spec.urls:
        return "not available for this dataset; provide the files yourself"
    if not download:
        return "disabled (download=False)"
    if downloads_disabled():
        return f"disabled by {ENV_NO_DOWNLOAD}={os.environ.get(ENV_NO_DOWNLOAD)}"
    return ""


def remedies(spec: DatasetSpec) -> list[Remedy]:
    """The ways to get ``spec``'s files, the most direct first."""
    out = []
    if spec.urls:
        cmd = f"hvaelab data fetch {spec.name}"
        out.append(
            Remedy(
                f"download them, verified, into {user_cache_dir()}: {cmd}  (or get them "
                f"yourself from {spec.urls[0]})",
                cmd,
            )
        )
    if spec.system_package:
        cmd = f"sudo apt install {spec.system_package}"
        out.append(Remedy(f"on Debian/Ubuntu: {cmd} (installs to {SYSTEM_DATA_DIRS[0]})", cmd))
    out += [
        Remedy(f"put them in one of the folders above, e.g. /path/to/data/{spec.folder}/"),
        Remedy(f"set {ENV_DATA}=/path/to/data (the folder that holds {spec.folder}/)"),
        Remedy("pass data_dir='/path/to/data' (command line: --data-dir /path/to/data)"),
    ]
    if spec.homepage:
        out.append(Remedy(f"dataset homepage: {spec.homepage}"))
    return out


def not_found(
    spec: DatasetSpec, split: str, data_dir: str | Path | None, note: str, asked: str = ""
) -> DataNotFoundError:
    """The error for a split found nowhere: every place looked, and every way to get it."""
    base, base_split = base_of(spec, split)
    names = base.files(base_split)
    if base.loader == "image_folder":
        names = [f"{n}/" for n in names]
    elif base.loader == "idx":
        names[-1] += " (each optionally .gz)"
    return DataNotFoundError(
        asked or spec.name, split, names, places(spec, split, data_dir), note, remedies(base)
    )


def verify_md5(spec: DatasetSpec, name: str, path: Path, got: str) -> None:
    """Raise :class:`ChecksumError` if ``got`` (decompressed md5) is not ``name``'s known md5."""
    expected = spec.md5.get(name)
    if expected is not None and got != expected:
        raise ChecksumError(
            f"{path}: md5 of the decompressed contents is {got}, but {spec.name}'s {name} has md5 "
            f"{expected}. The file is corrupt, truncated or from another dataset: delete or "
            "replace it with the original file."
        )


def _check_download(spec: DatasetSpec, name: str, url: str, path: Path) -> None:
    """Check a downloaded file: the decompressed payload's md5 where known (mirrors repackage
    their ``.gz`` files), else the published ``.gz`` md5. Deletes it when it does not match."""
    md5, gz_md5 = spec.md5.get(name), spec.gz_md5.get(name)
    try:
        got = md5_file(path, decompress=md5 is not None)
    except (OSError, EOFError) as e:
        got = f"(not decompressible: {e})"
    expected = md5 if md5 is not None else gz_md5
    if got != expected:
        path.unlink(missing_ok=True)
        what = "decompressed" if md5 is not None else "published .gz"
        raise ChecksumError(
            f"downloaded {url} does not match its checksum: md5 {got}; expected {expected} "
            f"({what}). The download was deleted."
        )


def download(
    spec: DatasetSpec, split: str, progress: bool = False, data_dir: str | Path | None = None
) -> dict[str, Path]:
    """Download ``split``'s missing files into the per-user cache with pooch, verified.

    Tries each mirror in turn; raises :class:`ChecksumError` if the servers sent other files
    and :class:`DataNotFoundError` if none could be reached.
    """
    import pooch
    import requests

    spec, split = base_of(spec, split)
    target = user_cache_dir() / spec.folder
    found: dict[str, Path] = {}
    logger = pooch.get_logger()
    level = logger.level
    logger.setLevel(logging.WARNING)  # pooch logs every download's sha256 at INFO
    if spec.archive:
        try:
            return _download_archive(spec, split, target, progress, data_dir)
        finally:
            logger.setLevel(level)
    gz = ".gz" if spec.loader == "idx" else ""  # natural-image files are served as they are
    try:
        for name in spec.files(split):
            have = _hit(target, name, spec)
            if have is not None:
                found[name] = have
                continue
            errors: list[str] = []
            bad: list[str] = []
            for base in spec.urls:
                url = f"{base}{name}{gz}"
                try:
                    path = Path(
                        pooch.retrieve(
                            url,
                            known_hash=None,
                            fname=f"{name}{gz}",
                            path=target,
                            progressbar=progress,
                            downloader=pooch.HTTPDownloader(
                                progressbar=progress, timeout=DOWNLOAD_TIMEOUT_S
                            ),
                        )
                    )
                    _check_download(spec, name, url, path)
                except ChecksumError as e:
                    bad.append(str(e))
                    continue
                except (OSError, ValueError, requests.RequestException) as e:
                    errors.append(f"{url}: {e}")
                    continue
                with path.open("rb") as f:
                    if f.read(2) != GZIP_MAGIC:  # a mirror that serves the plain file
                        path = path.replace(target / name)
                found[name] = path
                break
            else:
                if bad:
                    raise ChecksumError(
                        "\n".join(bad + errors)
                        + f"\nThe server(s) for '{spec.name}' served different files than "
                        "published; try again later, or download the files yourself and put "
                        f"them in {target} (or set {ENV_DATA})."
                    )
                raise not_found(spec, split, data_dir, "failed: " + "; ".join(errors))
    finally:
        logger.setLevel(level)
    return found


def _fetch(url: str, fname: str, target: Path, progress: bool) -> Path:
    import pooch

    downloader = pooch.HTTPDownloader(progressbar=progress, timeout=DOWNLOAD_TIMEOUT_S)
    return Path(
        pooch.retrieve(
            url,
            known_hash=None,
            fname=fname,
            path=target,
            progressbar=progress,
            downloader=downloader,
        )
    )


def extract_members(archive: Path, names: Iterable[str], target: Path) -> dict[str, Path]:
    """Extract the regular files called ``names`` (by base name) from a tar archive into
    ``target``, each written atomically; nothing else is extracted (no paths, no links)."""
    import tarfile

    from ..artifacts import atomic_write

    want, out = set(names), {}
    try:
        with tarfile.open(archive, "r:*") as tf:
            for member in tf:
                base = PurePosixPath(member.name).name
                if base in want and base not in out and member.isfile():
                    f = tf.extractfile(member)
                    assert f is not None
                    out[base] = atomic_write(target / base, f.read())
    except (tarfile.TarError, OSError, EOFError) as e:
        raise DataFormatError(f"{archive}: not a readable tar archive ({e})") from None
    missing = sorted(want - set(out))
    if missing:
        raise DataFormatError(f"{archive}: the archive lacks {', '.join(missing)}")
    return out


def _download_archive(
    spec: DatasetSpec, split: str, target: Path, progress: bool, data_dir
) -> dict[str, Path]:
    """Download ``spec.archive`` from the first mirror that serves it, check its published md5,
    extract every split's files (one archive holds them all) and delete the archive."""
    import requests

    errors: list[str] = []
    bad: list[str] = []
    for base in spec.urls:
        url = f"{base}{spec.archive}"
        try:
            path = _fetch(url, spec.archive, target, progress)
        except (OSError, ValueError, requests.RequestException) as e:
            errors.append(f"{url}: {e}")
            continue
        got = md5_file(path, decompress=False)
        if got != spec.archive_md5:
            path.unlink(missing_ok=True)
            bad.append(
                f"downloaded {url} does not match its published md5: {got}; expected "
                f"{spec.archive_md5}. The download was deleted."
            )
            continue
        extract_members(path, spec.files(), target)
        path.unlink(missing_ok=True)
        return {n: target / n for n in spec.files(split)}
    if bad:
        raise ChecksumError(
            "\n".join(bad + errors)
            + f"\nThe server(s) for '{spec.name}' served a different archive than published."
        )
    raise not_found(spec, split, data_dir, "failed: " + "; ".join(errors))


def locate(
    spec: DatasetSpec,
    split: str,
    data_dir: str | Path | None = None,
    download_missing: bool = True,
    progress: bool = False,
) -> dict[str, Path]:
    """Paths of ``split``'s files: found in the search order, else downloaded, else an error."""
    hit = find_split(spec, split, data_dir)
    if hit is not None:
        return hit.paths
    base, base_split = base_of(spec, split)
    note = download_note(base, download_missing)
    if note:
        raise not_found(spec, split, data_dir, note)
    return download(base, base_split, progress=progress, data_dir=data_dir)

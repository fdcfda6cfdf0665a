"""Loading a registered dataset split into uint8 images, with an in-process cache.

:func:`load_dataset` is the one way the library reads a dataset: it finds the files
(:mod:`hvaelab.data.locate`), reads them by the spec's loader, checks their checksums and
shapes, and applies ``-inverted`` (paper appendix A).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import DataFormatError, InvalidInputError
from .idx import images_md5, md5_file, read_idx_md5
from .images import IMAGE_SUFFIXES, image_file_to_array, list_files, validate_images
from .locate import locate, verify_md5
from .natural import read_cifar_bin, read_svhn_mat
from .registry import (
    GREY_SHAPE,
    INVERTED_SUFFIX,
    NATURAL_LOADERS,
    DatasetSpec,
    check_split,
    get_spec,
    split_indices,
)
from .synthetic import Synthetic, generate


@dataclass(eq=False)
class Dataset:
    """Images (uint8, (N, 28, 28) grey or (N, 32, 32, 3) colour; possibly read-only, shared with
    the in-process cache) + labels."""

    name: str
    split: str
    images: np.ndarray
    labels: np.ndarray | None
    source: str
    md5: str

    def __len__(self) -> int:
        return len(self.images)


def _stat_key(path: Path) -> tuple[str, int, int]:
    st = path.stat()
    return str(path.resolve()), st.st_mtime_ns, st.st_size


@functools.lru_cache(maxsize=16)
def _idx_cached(path: str, mtime_ns: int, size: int) -> tuple[np.ndarray, str]:
    arr, md5 = read_idx_md5(Path(path))
    arr.setflags(write=False)
    return arr, md5


@functools.lru_cache(maxsize=8)
def _npy_cached(path: str, mtime_ns: int, size: int) -> tuple[np.ndarray, None]:
    try:
        arr = np.load(path, allow_pickle=False)
    except ValueError as e:
        raise DataFormatError(f"{path}: not a plain numeric .npy array ({e}).") from None
    arr.setflags(write=False)
    return arr, None


@functools.lru_cache(maxsize=8)
def _folder_cached(folder: str, listing: tuple[tuple[str, int, int], ...]) -> np.ndarray:
    root = Path(folder)
    arr = np.stack([image_file_to_array(root / rel) for rel, _, _ in listing])
    arr.setflags(write=False)
    return arr


@functools.lru_cache(maxsize=8)
def _generated(spec: Synthetic) -> np.ndarray:
    return generate(spec)


def _check_images(arr: np.ndarray, path: Path, shape: tuple[int, ...] = GREY_SHAPE) -> None:
    if arr.dtype != np.uint8 or arr.shape[1:] != shape:
        want = ", ".join(map(str, shape))
        raise DataFormatError(
            f"{path}: expected uint8 images of shape (N, {want}), found {arr.dtype} {arr.shape}."
        )


def _check_labels(labels: np.ndarray, n: int, path: Path) -> None:
    if labels.ndim != 1 or labels.dtype.kind not in "iu" or len(labels) != n:
        raise DataFormatError(
            f"{path}: expected {n} integer labels (shape ({n},)), found {labels.dtype} "
            f"{labels.shape}."
        )


def _read_files(spec: DatasetSpec, split: str, paths: dict[str, Path]):
    """Read the located files of an ``idx`` or ``npy`` split (checksums and shapes checked)."""
    images_name, labels_name = spec.splits[split]
    assert isinstance(images_name, str)  # one file a split (tuples: the natural-image loaders)
    read = _idx_cached if spec.loader == "idx" else _npy_cached
    images, md5 = read(*_stat_key(paths[images_name]))
    if md5 is not None:
        verify_md5(spec, images_name, paths[images_name], md5)
    if spec.loader == "npy":
        try:
            images = validate_images(images, name=str(paths[images_name]))
        except InvalidInputError as e:
            raise DataFormatError(str(e)) from None
    _check_images(images, paths[images_name])
    labels = None
    if labels_name:
        labels, lmd5 = read(*_stat_key(paths[labels_name]))
        if lmd5 is not None:
            verify_md5(spec, labels_name, paths[labels_name], lmd5)
        _check_labels(labels, len(images), paths[labels_name])
    return images, labels, str(paths[images_name])


@functools.lru_cache(maxsize=4)
def _natural_cached(loader: str, files: tuple[tuple[str, int, int], ...]):
    paths = [f[0] for f in files]
    if loader == "svhn_mat":
        images, labels = read_svhn_mat(paths[0])
    else:
        label_bytes, classes = (1, 10) if loader == "cifar10_bin" else (2, 100)
        images, labels = read_cifar_bin(paths, label_bytes, classes)
    images.setflags(write=False)
    return images, labels


def _read_natural(spec: DatasetSpec, split: str, paths: dict[str, Path]):
    """Read a CIFAR or SVHN split (:mod:`hvaelab.data.natural`); known md5s are checked."""
    names = spec.image_files(split)
    for name in names:
        if name in spec.md5:
            verify_md5(spec, name, paths[name], md5_file(paths[name], decompress=False))
    files = tuple(_stat_key(paths[n]) for n in names)
    images, labels = _natural_cached(spec.loader, files)
    _check_images(images, paths[names[0]], spec.image_shape)
    return images, labels, str(paths[names[0]])


def _read_folder(spec: DatasetSpec, split: str, paths: dict[str, Path]):
    folder_name = spec.splits[split][0]
    assert isinstance(folder_name, str)  # one folder a split
    folder = paths[folder_name]
    files = list_files(folder, IMAGE_SUFFIXES)
    if not files:
        raise DataFormatError(
            f"{folder}: folder holds no images ({', '.join(IMAGE_SUFFIXES)}); put the dataset's "
            "images there (sub-folders are read too)."
        )
    listing = tuple(
        (p.relative_to(folder).as_posix(), p.stat().st_size, p.stat().st_mtime_ns) for p in files
    )
    return _folder_cached(str(folder.resolve()), listing), None, str(folder)


def _read_subset(spec: DatasetSpec, split: str, data_dir, download: bool):
    s = spec.subset
    assert s is not None
    base = load_dataset(s.dataset, s.split, data_dir=data_dir, download=download)
    if len(base) != s.size:
        raise DataFormatError(
            f"{base.source}: {s.dataset}/{s.split} has {len(base)} images, but '{spec.name}' is "
            f"defined on {s.size}; use the original files."
        )
    idx = split_indices(spec.name, split)
    labels = base.labels[idx] if base.labels is not None else None
    a, b = s.ranges[split]
    return base.images[idx], labels, f"{base.source} (seed-{s.seed} permutation [{a}:{b}])"


def load_dataset(
    name: str,
    split: str = "test",
    data_dir: str | Path | None = None,
    download: bool = True,
    progress: bool = False,
) -> Dataset:
    """Load a registered dataset split as uint8 images (+ labels where known): (N, 28, 28) grey,
    or (N, 32, 32, 3) colour for the natural-image sets (CIFAR, SVHN).

    Synthetic sets (:mod:`hvaelab.data.synthetic`) are generated, never looked for.
    ``NAME-inverted`` loads ``NAME`` and inverts it (``255 - x``, paper appendix A). Files are
    looked for in ``data_dir``, ``$HVAELAB_DATA``, the per-user cache, system locations, then
    downloaded (unless ``download=False`` or ``HVAELAB_NO_DOWNLOAD=1``). Raises
    :class:`DataNotFoundError` listing every place looked, :class:`ChecksumError` for files
    that do not match their known md5, :class:`DataFormatError` for corrupt files.
    """
    spec = get_spec(name)
    inverted = name.strip().lower() != spec.name
    check_split(spec, split)
    if spec.loader == "subset":
        images, labels, source = _read_subset(spec, split, data_dir, download)
    elif spec.loader == "synthetic":
        assert spec.synthetic is not None
        images, labels, source = _generated(spec.synthetic), None, spec.synthetic.describe()
    else:
        paths = locate(spec, split, data_dir, download, progress)
        if spec.loader == "image_folder":
            images, labels, source = _read_folder(spec, split, paths)
        elif spec.loader in NATURAL_LOADERS:
            images, labels, source = _read_natural(spec, split, paths)
        else:
            images, labels, source = _read_files(spec, split, paths)
    if inverted:
        images = 255 - images
    return Dataset(
        name=spec.name + (INVERTED_SUFFIX if inverted else ""),
        split=split,
        images=images,
        labels=labels,
        source=source,
        md5=images_md5(images),
    )


def clear_cache() -> None:
    """Forget arrays cached in this process (e.g. after replacing files in place)."""
    for f in (_idx_cached, _folder_cached, _npy_cached, _generated, _natural_cached):
        f.cache_clear()

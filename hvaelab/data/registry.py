"""The dataset registry: what a dataset is (:class:`DatasetSpec`) and the names known.

Built-in datasets are registered by :mod:`hvaelab.data.catalogue`; users add their own with
:func:`register_image_folder`, :func:`register_npy` or :func:`register_dataset`. Every name
``NAME`` is also available inverted (``x -> 255 - x``, paper appendix A) as ``NAME-inverted``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from .errors import UnknownDatasetError
from .synthetic import Synthetic

INVERTED_SUFFIX = "-inverted"
Loader = Literal[
    "idx", "image_folder", "npy", "subset", "synthetic", "cifar10_bin", "cifar100_bin", "svhn_mat"
]
LOADER_KINDS = (
    "idx",
    "image_folder",
    "npy",
    "subset",
    "synthetic",
    "cifar10_bin",
    "cifar100_bin",
    "svhn_mat",
)
# Loaders of files whose labels are inside the images' file (hvaelab.data.natural).
NATURAL_LOADERS = ("cifar10_bin", "cifar100_bin", "svhn_mat")
GREY_SHAPE = (28, 28)
_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_.+-]*$")


@dataclass(frozen=True)
class SubsetOf:
    """A seeded split of another dataset's split: indices = rng(seed).permutation(size)[a:b]."""

    dataset: str
    split: str
    size: int
    seed: int
    ranges: dict[str, tuple[int, int]]


@dataclass
class DatasetSpec:
    """What a dataset is and where its files can be found.

    ``splits`` maps a split name to ``(images, labels)``: for ``loader="idx"`` IDX file names
    without ``.gz`` (``.gz`` is accepted too), for ``"npy"`` ``.npy`` file names, for
    ``"image_folder"`` a folder of images (read recursively); ``labels`` may be ``None``. The
    natural-image loaders (``"cifar10_bin"``, ``"cifar100_bin"``, ``"svhn_mat"``,
    :mod:`hvaelab.data.natural`) read labels from the images' files; their images entry may be a
    tuple of files read in order (CIFAR-10's five training batches). ``image_shape`` is the shape
    of one image: (28, 28) grey, (32, 32, 3) colour. Relative
    names are looked for in ``<base>/<subfolder>/`` for each of ``subfolders`` and in ``<base>/``
    of each search location; absolute names are used as they are. ``md5`` maps a file name to the
    md5 of its decompressed contents; ``urls`` are download base URLs (``<url><file>.gz``) and
    ``gz_md5`` the published md5 of each ``.gz``; for a dataset published as one archive,
    ``archive`` is its file name (under each of ``urls``) and ``archive_md5`` its published md5,
    and its files are extracted from it. ``loader="subset"`` takes its data from
    ``subset`` instead of files, ``loader="synthetic"`` generates it from ``synthetic`` (one
    split, ``test``).
    """

    name: str
    description: str
    splits: dict[str, tuple[str | tuple[str, ...], str | None]] = field(default_factory=dict)
    loader: Loader = "idx"
    subfolders: tuple[str, ...] = ()
    md5: dict[str, str] = field(default_factory=dict)
    urls: tuple[str, ...] = ()
    gz_md5: dict[str, str] = field(default_factory=dict)
    licence: str = ""
    homepage: str = ""
    system_package: str = ""
    subset: SubsetOf | None = None
    synthetic: Synthetic | None = None
    image_shape: tuple[int, ...] = GREY_SHAPE
    archive: str = ""
    archive_md5: str = ""

    def __post_init__(self) -> None:
        if not _NAME_RE.match(self.name):
            raise ValueError(
                f"dataset name {self.name!r} is not allowed: use lower-case letters, digits and "
                "'-', '_', '.', starting with a letter or digit"
            )
        if self.name.endswith(INVERTED_SUFFIX):
            raise ValueError(
                f"dataset name {self.name!r} ends with {INVERTED_SUFFIX!r}, which is reserved: "
                f"every dataset NAME is also available inverted as NAME{INVERTED_SUFFIX}"
            )
        if self.loader not in LOADER_KINDS:
            raise ValueError(
                f"{self.name}: loader must be one of {LOADER_KINDS}, not {self.loader!r}"
            )
        self.subfolders = tuple(self.subfolders)
        self.urls = tuple(u if u.endswith("/") else u + "/" for u in self.urls)
        if self.loader == "subset":
            if self.subset is None:
                raise ValueError(f"{self.name}: loader 'subset' needs subset=SubsetOf(...)")
            s = self.subset
            self.splits = {
                k: (f"{s.dataset}/{s.split} permuted with seed {s.seed}, [{a}:{b}]", None)
                for k, (a, b) in s.ranges.items()
            }
        if self.loader == "synthetic":
            if self.synthetic is None:
                raise ValueError(f"{self.name}: loader 'synthetic' needs synthetic=Synthetic(...)")
            self.splits = {"test": (self.synthetic.describe(), None)}
        if not self.splits:
            raise ValueError(f"{self.name}: a dataset needs at least one split")
        self.splits = {
            k: (tuple(v[0]) if isinstance(v[0], list | tuple) else v[0], v[1])
            for k, v in self.splits.items()
        }
        for url in self.urls:
            if not url.startswith(("http://", "https://")):
                raise ValueError(f"{self.name}: download URL {url!r} must be http:// or https://")
        self.image_shape = tuple(self.image_shape)
        if self.image_shape not in (GREY_SHAPE, (32, 32, 3)):
            raise ValueError(
                f"{self.name}: image_shape must be (28, 28) or (32, 32, 3), not {self.image_shape}"
            )
        if bool(self.archive) != bool(self.archive_md5):
            raise ValueError(f"{self.name}: an archive needs its published md5 (archive_md5)")
        if self.urls:
            if self.loader not in ("idx", *NATURAL_LOADERS):
                raise ValueError(
                    f"{self.name}: downloads are supported for IDX and natural-image datasets"
                )
            for f in self.files():
                if self.archive:  # verified as part of the archive
                    continue
                if f not in self.md5 and f not in self.gz_md5:
                    raise ValueError(
                        f"{self.name}: file {f!r} is downloadable but has no md5 to verify it; "
                        "give md5 (decompressed) or gz_md5 (published .gz)"
                    )

    def files(self, split: str | None = None) -> list[str]:
        """File names of one split (images first), or of all splits."""
        pairs = [self.splits[split]] if split is not None else list(self.splits.values())
        out: list[str] = []
        for images, labels in pairs:
            out += list(images) if isinstance(images, tuple) else [images]
            out += [labels] if labels is not None else []
        return out

    def image_files(self, split: str) -> tuple[str, ...]:
        """The files holding one split's images, in the order they are read."""
        images = self.splits[split][0]
        return images if isinstance(images, tuple) else (images,)

    @property
    def colour(self) -> bool:
        return len(self.image_shape) == 3

    @property
    def folder(self) -> str:
        """The sub-folder its files go in (downloads, and the one named in messages)."""
        return self.subfolders[0] if self.subfolders else self.name


REGISTRY: dict[str, DatasetSpec] = {}


def register_dataset(spec: DatasetSpec, *, replace: bool = False) -> DatasetSpec:
    """Add ``spec`` to :data:`REGISTRY` (re-registering an identical spec is a no-op)."""
    old = REGISTRY.get(spec.name)
    if old is not None and old != spec and not replace:
        raise ValueError(
            f"a different dataset named {spec.name!r} is already registered; choose another name "
            "or pass replace=True"
        )
    REGISTRY[spec.name] = spec
    return spec


def _register_file_dataset(
    loader: Loader,
    name: str,
    path: str | Path,
    labels: str | Path | None,
    split: str,
    description: str,
    licence: str,
    replace: bool,
) -> DatasetSpec:
    path = Path(path).expanduser().resolve()
    lab = str(Path(labels).expanduser().resolve()) if labels is not None else None
    spec = DatasetSpec(
        name=name,
        description=description or f"images in {path}",
        splits={split: (str(path), lab)},
        loader=loader,
        licence=licence,
    )
    return register_dataset(spec, replace=replace)


def register_image_folder(
    name: str,
    folder: str | Path,
    *,
    split: str = "test",
    description: str = "",
    licence: str = "",
    replace: bool = False,
) -> DatasetSpec:
    """Register a folder of images (read recursively, sorted; grey, resized to 28x28 bilinear)."""
    return _register_file_dataset(
        "image_folder", name, folder, None, split, description, licence, replace
    )


def register_npy(
    name: str,
    path: str | Path,
    *,
    labels: str | Path | None = None,
    split: str = "test",
    description: str = "",
    licence: str = "",
    replace: bool = False,
) -> DatasetSpec:
    """Register a ``.npy`` array of images ((N,28,28) uint8, or floats in [0,1]) and labels."""
    return _register_file_dataset("npy", name, path, labels, split, description, licence, replace)


def list_datasets() -> list[str]:
    """Names of the registered datasets (each is also available with ``-inverted``)."""
    return sorted(REGISTRY)


def get_spec(name: str) -> DatasetSpec:
    """The spec registered as ``name`` (case-insensitive; ``-inverted`` names give the base)."""
    key = name.strip().lower()
    if key not in REGISTRY and key.endswith(INVERTED_SUFFIX):
        key = key[: -len(INVERTED_SUFFIX)]
    if key not in REGISTRY:
        raise UnknownDatasetError(
            f"unknown dataset {name!r}; known datasets: {', '.join(list_datasets())} (each also "
            f"as NAME{INVERTED_SUFFIX}). Add your own with register_image_folder() or "
            "register_npy()."
        )
    return REGISTRY[key]


def check_split(spec: DatasetSpec, split: str) -> None:
    """Raise :class:`UnknownDatasetError` unless ``spec`` has ``split``."""
    if split not in spec.splits:
        raise UnknownDatasetError(
            f"dataset {spec.name!r} has no split {split!r}; splits: {', '.join(spec.splits)}"
        )


def split_indices(name: str, split: str) -> np.ndarray:
    """Indices into the base dataset of a ``subset`` dataset's split (e.g. mnist-testsplit)."""
    spec = get_spec(name)
    if spec.subset is None:
        raise UnknownDatasetError(f"dataset {spec.name!r} is not a subset of another dataset")
    s = spec.subset
    if split not in s.ranges:
        raise UnknownDatasetError(
            f"dataset {spec.name!r} has no split {split!r}; splits: {', '.join(s.ranges)}"
        )
    a, b = s.ranges[split]
    return np.random.default_rng(s.seed).permutation(s.size)[a:b]

"""Data: IDX files, the dataset registry, where files are looked for, user images, binarization.

Everything the models see enters here (paper appendix A): 28x28 grey-scale images as uint8
arrays, turned into float tensors in [0, 1] and binarized (dynamically for training, with a
fixed seed for evaluation). Inverted variants (``x -> 255 - x``, appendix A) are available for
every registered dataset by appending ``-inverted`` to its name.

Files are looked for, in order, in: the ``data_dir`` argument (``--data-dir``), ``$HVAELAB_DATA``,
the per-user cache (``$XDG_CACHE_HOME/hvaelab/data`` or ``~/.cache/hvaelab/data``), system
locations (``/usr/share/datasets``) and finally downloaded (when the dataset has a download
source) into the per-user cache, verified against published checksums.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import http.client
import io
import math
import os
import re
import struct
import tempfile
import urllib.error
import urllib.request
import warnings
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Literal

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

IMAGE_SIZE = 28
MAX_FILE_BYTES = 20 * 1024 * 1024  # user inputs larger than this are refused
MAX_IMAGE_PIXELS = 50_000_000  # user images larger than this are refused (decompression bombs)
DOWNLOAD_TIMEOUT_S = 30.0
MAX_DOWNLOAD_BYTES = 256 * 1024 * 1024
SYSTEM_DATA_DIRS: tuple[Path, ...] = (Path("/usr/share/datasets"),)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm", ".ppm")
ENV_DATA = "HVAELAB_DATA"
ENV_NO_DOWNLOAD = "HVAELAB_NO_DOWNLOAD"
INVERTED_SUFFIX = "-inverted"

_GZIP_MAGIC = b"\x1f\x8b"
_NPY_MAGIC = b"\x93NUMPY"
_IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_IDX_MAX_BYTES = 8 * 1024**3  # a header promising more than this is treated as corrupt
_CHUNK = 1 << 20


class DataFormatError(ValueError):
    """A data file is truncated, corrupt or not in the expected format."""


class DataNotFoundError(FileNotFoundError):
    """A dataset's files were found nowhere and could not be downloaded."""


class ChecksumError(ValueError):
    """A local or downloaded file does not match its known md5 checksum."""


class InvalidInputError(ValueError):
    """User-supplied images (files, uploads, arrays) cannot be used as model inputs."""


class UnknownDatasetError(ValueError):
    """A dataset name or split that is not registered."""


# --------------------------------------------------------------------------------------------
# IDX files
# --------------------------------------------------------------------------------------------


def _read_exact(f: BinaryIO, n: int, path: Path, what: str) -> bytes:
    data = f.read(n)
    if len(data) != n:
        raise DataFormatError(
            f"{path}: file ends inside the IDX {what} (got {len(data)} of {n} bytes); it is "
            "truncated or not an IDX file. Replace it with a complete copy."
        )
    return data


def _read_idx(path: Path, max_bytes: int | None = None) -> tuple[np.ndarray, str]:
    """Read an IDX file (gzip or plain); returns the array and md5 of the decompressed file."""
    path = Path(path)
    with path.open("rb") as raw:  # a missing file raises FileNotFoundError, as it should
        compressed = raw.read(2) == _GZIP_MAGIC
        raw.seek(0)
        kind = "gzip-compressed IDX" if compressed else "IDX"
        try:
            f: BinaryIO = gzip.GzipFile(fileobj=raw, mode="rb") if compressed else raw  # type: ignore[assignment]
            md5 = hashlib.md5()
            head = _read_exact(f, 4, path, "magic number")
            if head[0] != 0 or head[1] != 0:
                raise DataFormatError(
                    f"{path}: not an IDX file (magic number 0x{head.hex()}; IDX files start with "
                    "two zero bytes, a type code and the number of dimensions)."
                )
            if head[2] not in _IDX_DTYPES:
                raise DataFormatError(
                    f"{path}: unknown IDX data type code 0x{head[2]:02x} (known: "
                    f"{', '.join(f'0x{c:02x}' for c in _IDX_DTYPES)}); the file is corrupt."
                )
            ndim = head[3]
            if ndim == 0:
                raise DataFormatError(f"{path}: IDX header declares 0 dimensions; file is corrupt.")
            dim_bytes = _read_exact(f, 4 * ndim, path, "dimensions")
            dims = struct.unpack(f">{ndim}I", dim_bytes)
            dtype = _IDX_DTYPES[head[2]]
            nbytes = math.prod(dims) * dtype.itemsize
            limit = _IDX_MAX_BYTES if max_bytes is None else max_bytes
            if nbytes > limit:
                raise DataFormatError(
                    f"{path}: IDX header declares dimensions {dims} ({nbytes} bytes), more "
                    f"than the {limit} bytes allowed; the file is corrupt or too large."
                )
            if not compressed:
                have = path.stat().st_size - 4 - 4 * ndim
                if have != nbytes:
                    raise DataFormatError(
                        f"{path}: IDX payload has {have} bytes but dimensions {dims} need "
                        f"{nbytes}; the file is truncated or corrupt. Replace it with a complete "
                        "copy."
                    )
            md5.update(head)
            md5.update(dim_bytes)
            out = np.empty(dims, dtype=dtype)
            view = memoryview(out.reshape(-1).view(np.uint8))
            pos = 0
            while pos < nbytes:
                n = f.readinto(view[pos : pos + _CHUNK])
                if not n:
                    break
                md5.update(view[pos : pos + n])
                pos += n
            if pos != nbytes:
                raise DataFormatError(
                    f"{path}: IDX payload has {pos} bytes but dimensions {dims} need {nbytes}; "
                    "the file is truncated or corrupt. Replace it with a complete copy."
                )
            if f.read(1):
                raise DataFormatError(
                    f"{path}: IDX file has data after the {nbytes}-byte payload its header "
                    f"declares (dimensions {dims}); the file is corrupt."
                )
        except (OSError, EOFError, zlib.error) as e:
            raise DataFormatError(
                f"{path}: cannot be read as {kind} ({e}); it is probably truncated or corrupt. "
                "Delete it and provide a complete copy."
            ) from None
    if not out.dtype.isnative:
        out = out.astype(out.dtype.newbyteorder("="))
    return out, md5.hexdigest()


def read_idx(path: str | Path, *, max_bytes: int | None = None) -> np.ndarray:
    """Read an IDX file, gzip-compressed or plain (detected by magic bytes, not the name).

    Validates the magic number, the data type code, the dimensions and that the payload length
    matches them exactly; raises :class:`DataFormatError` naming ``path`` otherwise.
    """
    return _read_idx(Path(path), max_bytes)[0]


def idx_bytes(array: np.ndarray) -> bytes:
    """Encode an array as an (uncompressed) IDX file."""
    array = np.asarray(array)
    codes = {dt.newbyteorder("="): code for code, dt in _IDX_DTYPES.items()}
    code = codes.get(array.dtype.newbyteorder("="))
    if code is None or array.ndim == 0 or array.ndim > 255:
        raise ValueError(f"cannot write dtype {array.dtype} with {array.ndim} dims as IDX")
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    big = array.astype(_IDX_DTYPES[code], copy=False)
    return header + np.ascontiguousarray(big).tobytes()


def write_idx(path: str | Path, array: np.ndarray) -> Path:
    """Write ``array`` as an IDX file, gzip-compressed if ``path`` ends with ``.gz``."""
    path = Path(path)
    data = idx_bytes(array)
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)
    return path


def images_md5(images: np.ndarray) -> str:
    """Fingerprint of uint8 images: md5 of their IDX encoding.

    For an unmodified IDX images file this equals the md5 of its decompressed payload, so it
    can be compared with published checksums.
    """
    arr = np.ascontiguousarray(images, dtype=np.uint8)
    md5 = hashlib.md5(bytes([0, 0, 0x08, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape))
    md5.update(memoryview(arr).cast("B"))
    return md5.hexdigest()


# --------------------------------------------------------------------------------------------
# Registry
# --------------------------------------------------------------------------------------------

Loader = Literal["idx", "image_folder", "npy", "subset"]
_LOADER_KINDS = ("idx", "image_folder", "npy", "subset")
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
    ``"image_folder"`` a folder of images (read recursively); ``labels`` may be ``None``. Relative
    names are looked for in ``<base>/<subfolder>/`` for each of ``subfolders`` and in ``<base>/``
    of each search location; absolute names are used as they are. ``md5`` maps a file name to the
    md5 of its decompressed contents; ``urls`` are download base URLs (``<url><file>.gz``) and
    ``gz_md5`` the published md5 of each ``.gz``. ``loader="subset"`` takes its data from
    ``subset`` instead of files.
    """

    name: str
    description: str
    splits: dict[str, tuple[str, str | None]] = field(default_factory=dict)
    loader: Loader = "idx"
    subfolders: tuple[str, ...] = ()
    md5: dict[str, str] = field(default_factory=dict)
    urls: tuple[str, ...] = ()
    gz_md5: dict[str, str] = field(default_factory=dict)
    licence: str = ""
    homepage: str = ""
    system_package: str = ""
    subset: SubsetOf | None = None

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
        if self.loader not in _LOADER_KINDS:
            raise ValueError(
                f"{self.name}: loader must be one of {_LOADER_KINDS}, not {self.loader!r}"
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
        if not self.splits:
            raise ValueError(f"{self.name}: a dataset needs at least one split")
        self.splits = {k: (v[0], v[1]) for k, v in self.splits.items()}
        for url in self.urls:
            if not url.startswith(("http://", "https://")):
                raise ValueError(f"{self.name}: download URL {url!r} must be http:// or https://")
        if self.urls:
            if self.loader != "idx":
                raise ValueError(f"{self.name}: downloads are only supported for IDX datasets")
            for f in self.files():
                if f not in self.md5 and f not in self.gz_md5:
                    raise ValueError(
                        f"{self.name}: file {f!r} is downloadable but has no md5 to verify it; "
                        "give md5 (decompressed) or gz_md5 (published .gz)"
                    )

    def files(self) -> list[str]:
        """All file names of all splits."""
        return [f for pair in self.splits.values() for f in pair if f is not None]


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
    folder = Path(folder).expanduser().resolve()
    spec = DatasetSpec(
        name=name,
        description=description or f"images in {folder}",
        splits={split: (str(folder), None)},
        loader="image_folder",
        licence=licence,
    )
    return register_dataset(spec, replace=replace)


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
    path = Path(path).expanduser().resolve()
    lab = str(Path(labels).expanduser().resolve()) if labels is not None else None
    spec = DatasetSpec(
        name=name,
        description=description or f"images in {path}",
        splits={split: (str(path), lab)},
        loader="npy",
        licence=licence,
    )
    return register_dataset(spec, replace=replace)


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


_IDX_NAMES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}

register_dataset(
    DatasetSpec(
        name="fashionmnist",
        description="FashionMNIST: 28x28 grey images of clothing, 10 classes; 60,000 train, "
        "10,000 test (Xiao et al., 2017).",
        splits=dict(_IDX_NAMES),
        subfolders=("fashion-mnist", "fashionmnist", "FashionMNIST", "FashionMNIST/raw"),
        md5={
            "t10k-images-idx3-ubyte": "8181f5470baa50b63fa0f6fddb340f0a",
            "t10k-labels-idx1-ubyte": "15d484375f8d13e6eb1aabb0c3f46965",
            "train-images-idx3-ubyte": "f4a8712d7a061bf5bd6d2ca38dc4d50a",
            "train-labels-idx1-ubyte": "9018921c3c673c538a1fc5bad174d6f9",
        },
        urls=(
            "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
            "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
        ),
        gz_md5={
            "train-images-idx3-ubyte": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
            "train-labels-idx1-ubyte": "25c81989df183df01b3e8a0aad5dffbe",
            "t10k-images-idx3-ubyte": "bef4ecab320f06d8554ea6380940ec79",
            "t10k-labels-idx1-ubyte": "bb300cfdad3c16e7a12a480ee83cd310",
        },
        licence="MIT licence, (c) 2017 Zalando SE; Xiao, Rasul & Vollgraf (2017), "
        "arXiv:1708.07747.",
        homepage="https://github.com/zalandoresearch/fashion-mnist",
        system_package="dataset-fashion-mnist",
    )
)

register_dataset(
    DatasetSpec(
        name="mnist",
        description="MNIST: 28x28 grey images of handwritten digits; 60,000 train, 10,000 test "
        "(LeCun et al., 1998).",
        splits=dict(_IDX_NAMES),
        subfolders=("mnist", "MNIST", "MNIST/raw"),
        md5={
            "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
            "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
        },
        urls=(
            "https://ossci-datasets.s3.amazonaws.com/mnist/",
            "http://yann.lecun.com/exdb/mnist/",
        ),
        gz_md5={
            "train-images-idx3-ubyte": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
            "train-labels-idx1-ubyte": "d53e105ee54ea40749a09fcbcd1e9432",
            "t10k-images-idx3-ubyte": "9fb629c4189551a2d022fa330f9573f3",
            "t10k-labels-idx1-ubyte": "ec29112dd5afa0611ce80d1b7f02629c",
        },
        licence="CC BY-SA 3.0, Yann LeCun and Corinna Cortes; LeCun et al. (1998).",
        homepage="http://yann.lecun.com/exdb/mnist/",
    )
)

register_dataset(
    DatasetSpec(
        name="kmnist",
        description="Kuzushiji-MNIST: 28x28 grey images of cursive Japanese characters, 10 "
        "classes; 60,000 train, 10,000 test (Clanuwat et al., 2018).",
        splits=dict(_IDX_NAMES),
        subfolders=("kmnist", "KMNIST", "KMNIST/raw"),
        urls=(
            "https://codh.rois.ac.jp/kmnist/dataset/kmnist/",
            "http://codh.rois.ac.jp/kmnist/dataset/kmnist/",
        ),
        gz_md5={
            "train-images-idx3-ubyte": "bdb82020997e1d708af4cf47b453dcf7",
            "train-labels-idx1-ubyte": "e144d726b3acfaa3e44228e80efcd344",
            "t10k-images-idx3-ubyte": "5c965bf0a639b31b8f53240b1b52f4d7",
            "t10k-labels-idx1-ubyte": "7320c461ea6c1c855c0b718fb2a4b134",
        },
        licence="CC BY-SA 4.0: 'KMNIST Dataset' (created by CODH), adapted from 'Kuzushiji "
        "Dataset' (created by NIJL and others), doi:10.20676/00000341; Clanuwat et al. (2018).",
        homepage="https://github.com/rois-codh/kmnist",
    )
)

register_dataset(
    DatasetSpec(
        name="notmnist",
        description="notMNIST: 28x28 grey images of the letters A-J in many fonts (Bulatov, 2011), "
        "as MNIST-style IDX files you provide (no download).",
        splits=dict(_IDX_NAMES),
        subfolders=("notmnist", "notMNIST", "notMNIST/raw"),
        licence="Yaroslav Bulatov (2011); no explicit licence published, see the homepage.",
        homepage="http://yaroslavvb.blogspot.com/2011/09/notmnist-dataset.html (IDX conversions: "
        "https://github.com/davidflanagan/notMNIST-to-MNIST)",
    )
)

register_dataset(
    DatasetSpec(
        name="omniglot",
        description="Omniglot: hand-drawn characters from 50 alphabets (Lake et al., 2015), "
        "read from your folder of PNGs, grey, resized to 28x28 with bilinear interpolation "
        "(paper appendix A). Split 'train' is images_background, 'test' images_evaluation.",
        splits={"train": ("images_background", None), "test": ("images_evaluation", None)},
        loader="image_folder",
        subfolders=("omniglot", "Omniglot", "omniglot-py"),
        licence="MIT licence, Brenden Lake; Lake, Salakhutdinov & Tenenbaum (2015).",
        homepage="https://github.com/brendenlake/omniglot (unzip python/images_background.zip "
        "and python/images_evaluation.zip)",
    )
)

MNIST_TESTSPLIT = SubsetOf(
    dataset="mnist",
    split="test",
    size=10_000,
    seed=0,
    ranges={"train": (0, 8000), "test": (8000, 10_000)},
)
register_dataset(
    DatasetSpec(
        name="mnist-testsplit",
        description="A seeded split of the MNIST TEST set, used because the MNIST training split "
        "is not available here: indices = numpy.random.default_rng(0).permutation(10000); split "
        "'train' = the first 8,000 of them, split 'test' = the remaining 2,000. Models trained on "
        "it must say so in their model card.",
        loader="subset",
        subset=MNIST_TESTSPLIT,
        licence="CC BY-SA 3.0, Yann LeCun and Corinna Cortes; LeCun et al. (1998).",
        homepage="http://yann.lecun.com/exdb/mnist/",
    )
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


# --------------------------------------------------------------------------------------------
# Where files are looked for
# --------------------------------------------------------------------------------------------


def user_cache_dir() -> Path:
    """Per-user data cache: ``$XDG_CACHE_HOME/hvaelab/data`` or ``~/.cache/hvaelab/data``."""
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "hvaelab" / "data"


def search_roots(data_dir: str | Path | None = None) -> list[tuple[Path, str]]:
    """Base directories in the order they are searched, each with where it came from."""
    roots: list[tuple[Path, str]] = []
    if data_dir is not None:
        roots.append((Path(data_dir).expanduser(), "data_dir argument / --data-dir"))
    env = os.environ.get(ENV_DATA)
    if env:
        roots.append((Path(env).expanduser(), f"${ENV_DATA}"))
    roots.append((user_cache_dir(), "per-user cache"))
    roots.extend((d, "system datasets") for d in SYSTEM_DATA_DIRS)
    return roots


def _places(spec: DatasetSpec, name: str, data_dir: str | Path | None) -> list[tuple[Path, str]]:
    """Directories to look in for the relative file or folder ``name``, in order."""
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


def _find_in(directory: Path, name: str, gz: bool) -> Path | None:
    for cand in (directory / name, directory / f"{name}.gz") if gz else (directory / name,):
        if cand.is_file():
            return cand
    return None


def _downloads_disabled() -> bool:
    return os.environ.get(ENV_NO_DOWNLOAD, "").strip().lower() in ("1", "true", "yes", "on")


def _not_found(
    spec: DatasetSpec, split: str, names: Sequence[str], places: list[tuple[Path, str]], note: str
) -> DataNotFoundError:
    gz = " (each optionally .gz)" if spec.loader == "idx" else ""
    sub = spec.subfolders[0] if spec.subfolders else spec.name
    lines = [
        f"Could not find dataset '{spec.name}' split '{split}': {', '.join(names)}{gz}.",
        "Looked in, in this order:",
        *(f"  {i}. {d}  [{why}]" for i, (d, why) in enumerate(places, 1)),
        f"Download: {note}.",
        "To provide the files, do one of:",
        f"  - put them in one of the folders above, e.g. /path/to/data/{sub}/",
        f"  - set {ENV_DATA}=/path/to/data (the folder that holds {sub}/)",
        "  - pass data_dir='/path/to/data' (command line: --data-dir /path/to/data)",
    ]
    if spec.system_package:
        lines.append(f"  - on Debian/Ubuntu: sudo apt install {spec.system_package}")
    if spec.urls:
        lines.append(
            f"  - let hvaelab download them (download=True, {ENV_NO_DOWNLOAD} unset), or get "
            f"them yourself from {spec.urls[0]}"
        )
    if spec.homepage:
        lines.append(f"  - dataset homepage: {spec.homepage}")
    return DataNotFoundError("\n".join(lines))


def _md5_file(path: Path, decompress: bool) -> str:
    md5 = hashlib.md5()
    with path.open("rb") as raw:
        is_gz = raw.read(2) == _GZIP_MAGIC
        raw.seek(0)
        f: BinaryIO = gzip.GzipFile(fileobj=raw) if (decompress and is_gz) else raw  # type: ignore[assignment]
        while chunk := f.read(_CHUNK):
            md5.update(chunk)
    return md5.hexdigest()


def _download_one(url: str, target: Path, name: str, gz_md5: str | None, md5: str | None) -> Path:
    """Fetch ``url`` into ``target`` via a temp file; verify; rename. Raises on failure."""
    target.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{name}.", suffix=".part", dir=target)
    tmp = Path(tmp_name)
    try:
        digest = hashlib.md5()
        size = 0
        with (
            os.fdopen(fd, "wb") as out,
            urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as r,
        ):
            while chunk := r.read(_CHUNK):
                size += len(chunk)
                if size > MAX_DOWNLOAD_BYTES:
                    raise OSError(f"more than {MAX_DOWNLOAD_BYTES} bytes; refusing")
                digest.update(chunk)
                out.write(chunk)
        got = digest.hexdigest()
        ok = gz_md5 is not None and got == gz_md5
        got_raw = None
        if not ok and md5 is not None:
            try:
                got_raw = _md5_file(tmp, decompress=True)
            except (OSError, EOFError, zlib.error):
                got_raw = "(not decompressible)"
            ok = got_raw == md5
        if not ok:
            expected = " or ".join(
                x
                for x in (gz_md5 and f"{gz_md5} (published .gz)", md5 and f"{md5} (decompressed)")
                if x
            )
            raise ChecksumError(
                f"downloaded {url} does not match its checksum: md5 {got}"
                + (f", decompressed {got_raw}" if got_raw else "")
                + f"; expected {expected}. The download was deleted."
            )
        with tmp.open("rb") as f:
            is_gz = f.read(2) == _GZIP_MAGIC
        dest = target / (f"{name}.gz" if is_gz else name)
        os.replace(tmp, dest)
        return dest
    finally:
        tmp.unlink(missing_ok=True)


def _download(
    spec: DatasetSpec,
    split: str,
    names: Sequence[str],
    places: list[tuple[Path, str]],
    download: bool,
) -> dict[str, Path]:
    if not spec.urls:
        note = "not available for this dataset; provide the files yourself"
    elif not download:
        note = "disabled (download=False)"
    elif _downloads_disabled():
        note = f"disabled by {ENV_NO_DOWNLOAD}={os.environ.get(ENV_NO_DOWNLOAD)}"
    else:
        note = ""
    if note:
        raise _not_found(spec, split, names, places, note)
    target = user_cache_dir() / (spec.subfolders[0] if spec.subfolders else spec.name)
    found: dict[str, Path] = {}
    for name in names:
        have = _find_in(target, name, gz=True)
        if have is not None:
            found[name] = have
            continue
        errors: list[str] = []
        bad_checksum: list[str] = []
        for base in spec.urls:
            url = f"{base}{name}.gz"
            try:
                found[name] = _download_one(
                    url, target, name, spec.gz_md5.get(name), spec.md5.get(name)
                )
                break
            except ChecksumError as e:
                bad_checksum.append(str(e))
            except (OSError, urllib.error.URLError, http.client.HTTPException, ValueError) as e:
                errors.append(f"{url}: {e}")
        else:
            if bad_checksum:
                raise ChecksumError(
                    "\n".join(bad_checksum + errors)
                    + f"\nThe server(s) for '{spec.name}' served different files than published; "
                    "try again later, or download the files yourself and put them in "
                    f"{target} (or set {ENV_DATA})."
                )
            raise _not_found(spec, split, names, places, "failed: " + "; ".join(errors))
    return found


def _verify(spec: DatasetSpec, name: str, path: Path, got: str) -> None:
    expected = spec.md5.get(name)
    if expected is not None and got != expected:
        raise ChecksumError(
            f"{path}: md5 of the decompressed contents is {got}, but {spec.name}'s {name} has md5 "
            f"{expected}. The file is corrupt, truncated or from another dataset: delete or "
            "replace it with the original file."
        )


# --------------------------------------------------------------------------------------------
# Loading datasets
# --------------------------------------------------------------------------------------------


@dataclass(eq=False)
class Dataset:
    """Images (uint8, (N,28,28); possibly read-only, shared with the in-process cache) + labels."""

    name: str
    split: str
    images: np.ndarray
    labels: np.ndarray | None
    source: str
    md5: str

    def __len__(self) -> int:
        return len(self.images)


@functools.lru_cache(maxsize=16)
def _idx_cached(path: str, mtime_ns: int, size: int) -> tuple[np.ndarray, str]:
    arr, md5 = _read_idx(Path(path))
    arr.setflags(write=False)
    return arr, md5


def _load_idx_file(path: Path) -> tuple[np.ndarray, str]:
    st = path.stat()
    return _idx_cached(str(path.resolve()), st.st_mtime_ns, st.st_size)


def _check_images(arr: np.ndarray, path: Path) -> None:
    if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE):
        raise DataFormatError(
            f"{path}: expected uint8 images of shape (N, 28, 28), found {arr.dtype} {arr.shape}."
        )


def _check_labels(labels: np.ndarray, n: int, path: Path) -> None:
    if labels.ndim != 1 or labels.dtype.kind not in "iu" or len(labels) != n:
        raise DataFormatError(
            f"{path}: expected {n} integer labels (shape ({n},)), found {labels.dtype} "
            f"{labels.shape}."
        )


def _load_idx_split(spec: DatasetSpec, split: str, data_dir, download: bool):
    images_name, labels_name = spec.splits[split]
    names = [images_name] + ([labels_name] if labels_name else [])
    places = _places(spec, images_name, data_dir)
    paths: dict[str, Path] | None = None
    for d, _ in places:
        hits = {n: _find_in(d, n, gz=True) for n in names}
        if all(hits.values()):
            paths = hits  # type: ignore[assignment]
            break
    if paths is None:
        paths = _download(spec, split, names, places, download)
    images, md5 = _load_idx_file(paths[images_name])
    _verify(spec, images_name, paths[images_name], md5)
    _check_images(images, paths[images_name])
    labels = None
    if labels_name:
        labels, lmd5 = _load_idx_file(paths[labels_name])
        _verify(spec, labels_name, paths[labels_name], lmd5)
        _check_labels(labels, len(images), paths[labels_name])
    return images, labels, str(paths[images_name])


def _list_files(folder: Path, suffixes: Iterable[str] | None = None) -> list[Path]:
    files = [
        p
        for p in folder.rglob("*")
        if p.is_file()
        and not any(part.startswith(".") for part in p.relative_to(folder).parts)
        and (suffixes is None or p.suffix.lower() in suffixes)
    ]
    return sorted(files, key=lambda p: p.relative_to(folder).as_posix())


@functools.lru_cache(maxsize=8)
def _folder_cached(folder: str, listing: tuple[tuple[str, int, int], ...]) -> np.ndarray:
    root = Path(folder)
    arr = np.stack([_image_file_to_array(root / rel) for rel, _, _ in listing])
    arr.setflags(write=False)
    return arr


def _load_image_folder(spec: DatasetSpec, split: str, data_dir, download: bool):
    folder_name = spec.splits[split][0]
    places = _places(spec, folder_name, data_dir)
    folder = next((d / folder_name for d, _ in places if (d / folder_name).is_dir()), None)
    if folder is None:
        raise _not_found(spec, split, [folder_name + "/"], places, "not available for this dataset")
    files = _list_files(folder, IMAGE_SUFFIXES)
    if not files:
        raise DataFormatError(
            f"{folder}: folder holds no images ({', '.join(IMAGE_SUFFIXES)}); put the dataset's "
            "images there (sub-folders are read too)."
        )
    listing = tuple(
        (p.relative_to(folder).as_posix(), p.stat().st_size, p.stat().st_mtime_ns) for p in files
    )
    return _folder_cached(str(folder.resolve()), listing), None, str(folder)


@functools.lru_cache(maxsize=8)
def _npy_cached(path: str, mtime_ns: int, size: int) -> np.ndarray:
    try:
        arr = np.load(path, allow_pickle=False)
    except ValueError as e:
        raise DataFormatError(f"{path}: not a plain numeric .npy array ({e}).") from None
    arr.setflags(write=False)
    return arr


def _load_npy_file(path: Path) -> np.ndarray:
    st = path.stat()
    return _npy_cached(str(path.resolve()), st.st_mtime_ns, st.st_size)


def _load_npy_split(spec: DatasetSpec, split: str, data_dir, download: bool):
    images_name, labels_name = spec.splits[split]
    names = [images_name] + ([labels_name] if labels_name else [])
    places = _places(spec, images_name, data_dir)
    paths = None
    for d, _ in places:
        hits = {n: _find_in(d, n, gz=False) for n in names}
        if all(hits.values()):
            paths = hits
            break
    if paths is None:
        raise _not_found(spec, split, names, places, "not available for this dataset")
    try:
        images = validate_images(_load_npy_file(paths[images_name]), name=str(paths[images_name]))
    except InvalidInputError as e:
        raise DataFormatError(str(e)) from None
    labels = None
    if labels_name:
        labels = _load_npy_file(paths[labels_name])
        _check_labels(labels, len(images), paths[labels_name])
    return images, labels, str(paths[images_name])


def _load_subset(spec: DatasetSpec, split: str, data_dir, download: bool):
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


_LOADERS = {
    "idx": _load_idx_split,
    "image_folder": _load_image_folder,
    "npy": _load_npy_split,
    "subset": _load_subset,
}


def load_dataset(
    name: str, split: str = "test", data_dir: str | Path | None = None, download: bool = True
) -> Dataset:
    """Load a registered dataset split as uint8 (N,28,28) images (+ labels where known).

    ``NAME-inverted`` loads ``NAME`` and inverts it (``255 - x``, paper appendix A). Files are
    looked for in ``data_dir``, ``$HVAELAB_DATA``, the per-user cache, system locations, then
    downloaded (unless ``download=False`` or ``HVAELAB_NO_DOWNLOAD=1``). Raises
    :class:`DataNotFoundError` listing every place looked, :class:`ChecksumError` for files
    that do not match their known md5, :class:`DataFormatError` for corrupt files.
    """
    spec = get_spec(name)
    inverted = name.strip().lower() != spec.name
    if split not in spec.splits:
        raise UnknownDatasetError(
            f"dataset {spec.name!r} has no split {split!r}; splits: {', '.join(spec.splits)}"
        )
    images, labels, source = _LOADERS[spec.loader](spec, split, data_dir, download)
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
    for f in (_idx_cached, _folder_cached, _npy_cached):
        f.cache_clear()


# --------------------------------------------------------------------------------------------
# Model inputs and binarization
# --------------------------------------------------------------------------------------------


def to_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 images (N,28,28) -> float32 tensor (N,1,28,28) in [0, 1]."""
    arr = validate_images(images).astype(np.float32)
    arr /= 255.0
    return torch.from_numpy(arr).unsqueeze(1)


def _check_probs(x: torch.Tensor) -> None:
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise TypeError("binarization needs a float tensor in [0, 1] (use to_tensor(images))")
    if x.numel() and not bool(((x >= 0) & (x <= 1)).all()):
        raise ValueError("binarization needs values in [0, 1] (NaN is not allowed); use to_tensor")


def binarize(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Dynamic binarization for training: pixel ~ Bernoulli(x), resampled on every call."""
    _check_probs(x)
    return torch.bernoulli(x, generator=generator)


_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def _splitmix64(z: np.ndarray) -> np.ndarray:
    """SplitMix64 finalizer, elementwise on uint64 (wrapping arithmetic)."""
    z = z + _GOLDEN
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def binarize_fixed(x: torch.Tensor, seed: int = 0, chunk: int = 4096) -> torch.Tensor:
    """Deterministic binarization for evaluation.

    Each pixel's uniform draw is a hash of (the example's own pixel values, the pixel's
    position, ``seed``), so an example gets the same bits whatever batch, order or subset it
    comes in, on any machine: binarizing a subset equals subsetting the binarized whole.
    Identical examples get identical bits. ``x`` is (N, ...) with values in [0, 1].
    """
    _check_probs(x)
    if x.ndim == 0:
        raise ValueError("binarize_fixed needs a batch (N, ...), not a scalar")
    n = x.shape[0]
    if x.numel() == 0:
        return x.clone()
    p = x.detach().to("cpu", torch.float32).numpy().reshape(n, -1)
    out = np.empty(p.shape, dtype=np.float32)
    with np.errstate(over="ignore"):
        pix_key = _splitmix64(np.arange(p.shape[1], dtype=np.uint64) * _GOLDEN)
        seed_key = _splitmix64(np.array([seed % 2**64], dtype=np.uint64))
        for a in range(0, n, chunk):
            block = p[a : a + chunk] + np.float32(0.0)  # -0.0 -> 0.0
            bits = block.view(np.uint32).astype(np.uint64)
            content = _splitmix64(bits ^ pix_key).sum(axis=1, dtype=np.uint64)
            key = _splitmix64(content ^ seed_key)
            r = _splitmix64(key[:, None] ^ pix_key[None, :])
            u = (r >> np.uint64(40)).astype(np.float32) * np.float32(2.0**-24)
            out[a : a + chunk] = u < block
    return torch.from_numpy(out).reshape(x.shape).to(dtype=x.dtype, device=x.device)


# --------------------------------------------------------------------------------------------
# User inputs
# --------------------------------------------------------------------------------------------


def validate_images(arr, name: str = "input") -> np.ndarray:
    """Check user images and return them as C-contiguous uint8 (N,28,28).

    Accepts (28,28), (N,28,28) or (N,1,28,28) arrays of uint8/ints in [0,255], floats in [0,1]
    or bools (0/255). Raises :class:`InvalidInputError` saying what is wrong otherwise.
    """
    if isinstance(arr, torch.Tensor):
        arr = arr.detach().cpu().numpy()
    if not isinstance(arr, np.ndarray):
        try:
            arr = np.asarray(arr)
        except (ValueError, TypeError) as e:
            raise InvalidInputError(
                f"{name}: cannot be read as an array of images ({e})."
            ) from None
    kind = arr.dtype.kind
    if kind not in "biuf":
        raise InvalidInputError(
            f"{name}: images must be numbers (uint8 0..255 or floats in [0, 1]), not dtype "
            f"{arr.dtype}; convert them, e.g. np.asarray(x, dtype=np.uint8)."
        )
    if arr.size == 0:
        raise InvalidInputError(f"{name}: no images (empty array of shape {arr.shape}).")
    shape = arr.shape
    if arr.ndim == 2:
        arr = arr[None]
    elif arr.ndim == 4 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 3 or arr.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE):
        raise InvalidInputError(
            f"{name}: expected one 28x28 image (28, 28) or a stack (N, 28, 28) / (N, 1, 28, 28), "
            f"got shape {shape}. Resize images to 28x28 grey first (load_inputs does this for "
            "image files)."
        )
    if kind == "b":
        return np.ascontiguousarray(arr, dtype=np.uint8) * np.uint8(255)
    if kind == "f":
        finite = np.isfinite(arr)
        if not finite.all():
            raise InvalidInputError(
                f"{name}: {int((~finite).sum())} values are NaN or infinite; images must be "
                "finite floats in [0, 1] or uint8."
            )
        lo, hi = float(arr.min()), float(arr.max())
        if lo < 0.0 or hi > 1.0:
            raise InvalidInputError(
                f"{name}: float images must be in [0, 1], got values in [{lo:g}, {hi:g}]. If they "
                "are 0..255, convert with x.astype(np.uint8) or divide by 255."
            )
        return np.ascontiguousarray(np.rint(arr.astype(np.float64) * 255.0), dtype=np.uint8)
    lo, hi = int(arr.min()), int(arr.max())
    if lo < 0 or hi > 255:
        raise InvalidInputError(
            f"{name}: integer images must be in [0, 255], got values in [{lo}, {hi}]; rescale them."
        )
    return np.ascontiguousarray(arr, dtype=np.uint8)


def _image_to_array(source: str | Path | BinaryIO, name: str) -> np.ndarray:
    """Decode one image with Pillow -> grey "L", bilinear 28x28, uint8 (28,28)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(source) as im:
                w, h = im.size
                if w * h > MAX_IMAGE_PIXELS:
                    raise InvalidInputError(
                        f"{name}: image is {w}x{h} pixels, more than the {MAX_IMAGE_PIXELS:,} "
                        "allowed; shrink it first (it is resized to 28x28 anyway)."
                    )
                im = ImageOps.exif_transpose(im) or im
                grey = im.convert("L").resize((IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.BILINEAR)
                return np.array(grey, dtype=np.uint8)
    except InvalidInputError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise InvalidInputError(
            f"{name}: image is too large to decode safely; shrink it first."
        ) from None
    except UnidentifiedImageError:
        raise InvalidInputError(
            f"{name}: not an image file Pillow can read. Give PNG/JPEG/other images, .npy arrays "
            "of shape (N,28,28) or (28,28), or IDX files."
        ) from None
    except (OSError, ValueError, SyntaxError, EOFError, struct.error) as e:
        raise InvalidInputError(
            f"{name}: image cannot be decoded ({e}); it is probably truncated or corrupt. "
            "Re-export it as PNG or JPEG."
        ) from None


def _image_file_to_array(path: Path) -> np.ndarray:
    return _image_to_array(path, str(path))


def _is_input_file(path: Path) -> bool:
    name = path.name.lower()
    return path.suffix.lower() in (*IMAGE_SUFFIXES, ".npy") or name.endswith(
        ("-ubyte", "-ubyte.gz", ".idx", ".idx.gz")
    )


def _load_input_file(path: Path, label: str, max_bytes: int) -> tuple[np.ndarray, list[str]]:
    size = path.stat().st_size
    if size > max_bytes:
        raise InvalidInputError(
            f"{label}: file is {size / 2**20:.1f} MiB, more than the {max_bytes / 2**20:.0f} MiB "
            "allowed for inputs; split it into smaller files (or register it as a dataset with "
            "register_npy)."
        )
    if size == 0:
        raise InvalidInputError(f"{label}: file is empty.")
    with path.open("rb") as f:
        head = f.read(6)
    if head.startswith(_NPY_MAGIC):
        try:
            arr = np.load(path, allow_pickle=False)
        except (ValueError, OSError, EOFError) as e:
            raise InvalidInputError(
                f"{label}: not a readable plain numeric .npy array ({e}); save it with "
                "np.save(path, uint8_array)."
            ) from None
        arr = validate_images(arr, name=label)
    elif head[:2] == _GZIP_MAGIC or (
        head[:2] == b"\0\0" and len(head) > 2 and head[2] in _IDX_DTYPES
    ):
        try:
            arr = read_idx(path, max_bytes=16 * max_bytes)
        except DataFormatError as e:
            raise InvalidInputError(str(e)) from None
        arr = validate_images(arr, name=label)
    else:
        return _image_to_array(path, label)[None], [label]
    names = [label] if len(arr) == 1 else [f"{label}[{i}]" for i in range(len(arr))]
    return arr, names


def load_inputs(
    paths: Sequence[str | Path] | str | Path, *, max_file_bytes: int = MAX_FILE_BYTES
) -> tuple[np.ndarray, list[str]]:
    """Read user inputs into uint8 (N,28,28) images and one name per image.

    Accepts ``.npy`` arrays ((N,28,28) or (28,28); uint8 or floats in [0,1]), IDX files (plain
    or gz), images Pillow can read (converted to grey, resized to 28x28 bilinear) and folders of
    those (read recursively in sorted order; other files in folders are skipped).
    """
    if isinstance(paths, (str, Path)):
        paths = [paths]
    if not paths:
        raise InvalidInputError(
            "no inputs given: pass .npy, IDX or image files (PNG, JPEG, ...), or folders of them."
        )
    arrays: list[np.ndarray] = []
    names: list[str] = []
    for p in map(Path, paths):
        p = p.expanduser()
        if p.is_dir():
            files = [f for f in _list_files(p) if _is_input_file(f)]
            if not files:
                raise InvalidInputError(
                    f"{p}: folder holds no .npy, IDX or image files ({', '.join(IMAGE_SUFFIXES)})."
                )
            entries = [(f, f"{p.name}/{f.relative_to(p).as_posix()}") for f in files]
        elif p.is_file():
            entries = [(p, p.name)]
        else:
            raise InvalidInputError(f"{p}: no such file or folder; check the path.")
        for f, label in entries:
            arr, n = _load_input_file(f, label, max_file_bytes)
            arrays.append(arr)
            names.extend(n)
    return np.concatenate(arrays), names


def image_from_bytes(data: bytes, name: str = "upload") -> np.ndarray:
    """Decode one uploaded image (PNG/JPEG/... or a .npy holding one 28x28 image) -> (28,28)."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise InvalidInputError(f"{name}: expected the uploaded file's bytes, got {type(data)}.")
    data = bytes(data)
    if not data:
        raise InvalidInputError(f"{name}: upload is empty.")
    if len(data) > MAX_FILE_BYTES:
        raise InvalidInputError(
            f"{name}: upload is {len(data) / 2**20:.1f} MiB, more than the "
            f"{MAX_FILE_BYTES / 2**20:.0f} MiB allowed; upload a smaller image."
        )
    if data.startswith(_NPY_MAGIC):
        try:
            arr = np.load(io.BytesIO(data), allow_pickle=False)
        except (ValueError, OSError, EOFError) as e:
            raise InvalidInputError(
                f"{name}: not a readable plain numeric .npy array ({e})."
            ) from None
        arr = validate_images(arr, name=name)
        if len(arr) != 1:
            raise InvalidInputError(
                f"{name}: holds {len(arr)} images; upload one image at a time (or use load_inputs)."
            )
        return arr[0]
    return _image_to_array(io.BytesIO(data), name)


# --------------------------------------------------------------------------------------------
# Shipped image samples (a few test images per dataset, for offline dashboards)
# --------------------------------------------------------------------------------------------


def save_samples(path: str | Path, sets: dict[str, np.ndarray]) -> Path:
    """Write a few uint8 (N,28,28) images per dataset to one safetensors file, atomically."""
    from safetensors.numpy import save

    path = Path(path)
    arrays = {name: np.ascontiguousarray(validate_images(a, name)) for name, a in sets.items()}
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(save(arrays, metadata={"format": "hvaelab-samples"}))
    tmp.replace(path)
    return path


def load_samples(path: str | Path) -> dict[str, np.ndarray]:
    """Read image samples written by :func:`save_samples` (dataset name -> uint8 (N,28,28))."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise DataNotFoundError(
            f"no image samples at {path}; write them with `hvaelab tables --checkpoint NAME`"
        )
    try:
        with safe_open(str(path), framework="numpy") as f:
            if (f.metadata() or {}).get("format") != "hvaelab-samples":
                raise DataFormatError(f"{path} is not an hvaelab samples file")
            return {k: f.get_tensor(k) for k in f.keys()}
    except (OSError, ValueError) as e:
        if isinstance(e, DataFormatError):
            raise
        raise DataFormatError(f"{path} is not a readable samples file ({e})") from e

"""User images: checking arrays, decoding image files and uploads, reading folders of inputs.

Everything a user hands the library (``.npy`` arrays, IDX files, PNG/JPEG/... images, folders
of them, uploaded bytes) becomes uint8 (N,28,28) here, or a clear :class:`InvalidInputError`.
"""

from __future__ import annotations

import io
import struct
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import DataFormatError, InvalidInputError
from .idx import looks_like_idx, read_idx

IMAGE_SIZE = 28
COLOUR_SIZE = 32  # the natural-image sets (CIFAR, SVHN)
COLOUR_SHAPE = (COLOUR_SIZE, COLOUR_SIZE, 3)
MAX_FILE_BYTES = 20 * 1024 * 1024  # user inputs larger than this are refused
MAX_IMAGE_PIXELS = 50_000_000  # user images larger than this are refused (decompression bombs)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm", ".ppm")
NPY_MAGIC = b"\x93NUMPY"


def validate_images(arr, name: str = "input") -> np.ndarray:
    """Check user images and return them as C-contiguous uint8: (N,28,28) grey or (N,32,32,3)
    colour (channels last, R, G, B).

    Accepts grey (28,28), (N,28,28) or (N,1,28,28) and colour (32,32,3), (N,32,32,3) or
    (N,3,32,32) arrays of uint8/ints in [0,255], floats in [0,1] or bools (0/255). Raises
    :class:`InvalidInputError` saying what is wrong otherwise.
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
    if arr.shape[-3:] == COLOUR_SHAPE and arr.ndim in (3, 4):  # colour, channels last
        arr = arr[None] if arr.ndim == 3 else arr
    elif arr.ndim == 4 and arr.shape[1:] == (3, COLOUR_SIZE, COLOUR_SIZE):  # channels first
        arr = arr.transpose(0, 2, 3, 1)
    elif arr.ndim == 2:
        arr = arr[None]
    elif arr.ndim == 4 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.shape[1:] not in ((IMAGE_SIZE, IMAGE_SIZE), COLOUR_SHAPE):
        raise InvalidInputError(
            f"{name}: expected grey 28x28 images ((28, 28), (N, 28, 28) or (N, 1, 28, 28)) or "
            f"colour 32x32 ones ((32, 32, 3), (N, 32, 32, 3) or (N, 3, 32, 32)), got shape "
            f"{shape}. Resize images first (load_inputs does this for image files)."
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


def list_files(folder: Path, suffixes: Iterable[str] | None = None) -> list[Path]:
    files = [
        p
        for p in folder.rglob("*")
        if p.is_file()
        and not any(part.startswith(".") for part in p.relative_to(folder).parts)
        and (suffixes is None or p.suffix.lower() in suffixes)
    ]
    return sorted(files, key=lambda p: p.relative_to(folder).as_posix())


def _image_to_array(source: str | Path | BinaryIO, name: str, colour: bool = False) -> np.ndarray:
    """Decode one image with Pillow -> grey "L", bilinear 28x28, uint8 (28,28); with ``colour``
    "RGB", bilinear 32x32, uint8 (32,32,3)."""
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
                upright: Image.Image = ImageOps.exif_transpose(im) or im
                mode, side = ("RGB", COLOUR_SIZE) if colour else ("L", IMAGE_SIZE)
                out = upright.convert(mode).resize((side, side), Image.Resampling.BILINEAR)
                return np.array(out, dtype=np.uint8)
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


def image_file_to_array(path: Path) -> np.ndarray:
    return _image_to_array(path, str(path))


def _is_input_file(path: Path) -> bool:
    name = path.name.lower()
    return path.suffix.lower() in (*IMAGE_SUFFIXES, ".npy") or name.endswith(
        ("-ubyte", "-ubyte.gz", ".idx", ".idx.gz")
    )


def _load_input_file(
    path: Path, label: str, max_bytes: int, colour: bool = False
) -> tuple[np.ndarray, list[str]]:
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
    if head.startswith(NPY_MAGIC):
        try:
            arr = np.load(path, allow_pickle=False)
        except (ValueError, OSError, EOFError) as e:
            raise InvalidInputError(
                f"{label}: not a readable plain numeric .npy array ({e}); save it with "
                "np.save(path, uint8_array)."
            ) from None
        arr = validate_images(arr, name=label)
    elif looks_like_idx(head):
        try:
            arr = read_idx(path, max_bytes=16 * max_bytes)
        except DataFormatError as e:
            raise InvalidInputError(str(e)) from None
        arr = validate_images(arr, name=label)
    else:
        return _image_to_array(path, label, colour)[None], [label]
    names = [label] if len(arr) == 1 else [f"{label}[{i}]" for i in range(len(arr))]
    return arr, names


def load_inputs(
    paths: Sequence[str | Path] | str | Path,
    *,
    max_file_bytes: int = MAX_FILE_BYTES,
    colour: bool = False,
) -> tuple[np.ndarray, list[str]]:
    """Read user inputs into uint8 (N,28,28) images (``colour``: (N,32,32,3)) and one name per
    image.

    Accepts ``.npy`` arrays (any shape :func:`validate_images` takes; uint8 or floats in
    [0,1]), IDX files (plain or gz), images Pillow can read (converted to grey and resized to
    28x28 bilinear, or with ``colour`` to RGB 32x32 bilinear, for a colour model) and folders of
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
            files = [f for f in list_files(p) if _is_input_file(f)]
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
            arr, n = _load_input_file(f, label, max_file_bytes, colour)
            arrays.append(arr)
            names.extend(n)
    return np.concatenate(arrays), names


def image_from_bytes(data: bytes, name: str = "upload", colour: bool = False) -> np.ndarray:
    """Decode one uploaded image (PNG/JPEG/... or a .npy holding one image) -> (28,28), or with
    ``colour`` (32,32,3) RGB for a colour model."""
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
    if data.startswith(NPY_MAGIC):
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
    return _image_to_array(io.BytesIO(data), name, colour)

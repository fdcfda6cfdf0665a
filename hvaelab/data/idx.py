"""The IDX file format (MNIST's): reading with validation, writing, and md5 fingerprints.

An IDX file is two zero bytes, a type code, the number of dimensions, the dimensions as
big-endian uint32 and the payload; MNIST-style datasets ship them gzip-compressed.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import math
import struct
import zlib
from pathlib import Path

import numpy as np

from ..artifacts import atomic_write
from .errors import DataFormatError

GZIP_MAGIC = b"\x1f\x8b"
IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
IDX_MAX_BYTES = 8 * 1024**3  # a header promising more than this is treated as corrupt
CHUNK = 1 << 20


def _read_exact(f: io.BufferedIOBase, n: int, path: Path, what: str) -> bytes:
    data = f.read(n)
    if len(data) != n:
        raise DataFormatError(
            f"{path}: file ends inside the IDX {what} (got {len(data)} of {n} bytes); it is "
            "truncated or not an IDX file. Replace it with a complete copy."
        )
    return data


def read_idx_md5(path: str | Path, max_bytes: int | None = None) -> tuple[np.ndarray, str]:
    """Read an IDX file (gzip or plain); returns the array and md5 of the decompressed file."""
    path = Path(path)
    with path.open("rb") as raw:  # a missing file raises FileNotFoundError, as it should
        compressed = raw.read(2) == GZIP_MAGIC
        raw.seek(0)
        kind = "gzip-compressed IDX" if compressed else "IDX"
        try:
            f: io.BufferedIOBase = gzip.GzipFile(fileobj=raw, mode="rb") if compressed else raw
            md5 = hashlib.md5()
            head = _read_exact(f, 4, path, "magic number")
            if head[0] != 0 or head[1] != 0:
                raise DataFormatError(
                    f"{path}: not an IDX file (magic number 0x{head.hex()}; IDX files start with "
                    "two zero bytes, a type code and the number of dimensions)."
                )
            if head[2] not in IDX_DTYPES:
                raise DataFormatError(
                    f"{path}: unknown IDX data type code 0x{head[2]:02x} (known: "
                    f"{', '.join(f'0x{c:02x}' for c in IDX_DTYPES)}); the file is corrupt."
                )
            ndim = head[3]
            if ndim == 0:
                raise DataFormatError(f"{path}: IDX header declares 0 dimensions; file is corrupt.")
            dim_bytes = _read_exact(f, 4 * ndim, path, "dimensions")
            dims = struct.unpack(f">{ndim}I", dim_bytes)
            dtype = IDX_DTYPES[head[2]]
            nbytes = math.prod(dims) * dtype.itemsize
            limit = IDX_MAX_BYTES if max_bytes is None else max_bytes
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
            view = out.reshape(-1).view(np.uint8).data  # a memoryview of the array's bytes
            pos = 0
            while pos < nbytes:
                n = f.readinto(view[pos : pos + CHUNK])
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
    return read_idx_md5(Path(path), max_bytes)[0]


def looks_like_idx(head: bytes) -> bool:
    """Whether a file's first bytes are an IDX header (plain) or gzip (maybe IDX)."""
    return head[:2] == GZIP_MAGIC or (
        head[:2] == b"\0\0" and len(head) > 2 and head[2] in IDX_DTYPES
    )


def idx_bytes(array: np.ndarray) -> bytes:
    """Encode an array as an (uncompressed) IDX file."""
    array = np.asarray(array)
    codes = {dt.newbyteorder("="): code for code, dt in IDX_DTYPES.items()}
    code = codes.get(array.dtype.newbyteorder("="))
    if code is None or array.ndim == 0 or array.ndim > 255:
        raise ValueError(f"cannot write dtype {array.dtype} with {array.ndim} dims as IDX")
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    big = array.astype(IDX_DTYPES[code], copy=False)
    return header + np.ascontiguousarray(big).tobytes()


def write_idx(path: str | Path, array: np.ndarray) -> Path:
    """Write ``array`` as an IDX file atomically, gzip-compressed if ``path`` ends in ``.gz``."""
    path = Path(path)
    data = idx_bytes(array)
    return atomic_write(path, gzip.compress(data, mtime=0) if path.suffix == ".gz" else data)


def images_md5(images: np.ndarray) -> str:
    """Fingerprint of uint8 images: md5 of their IDX encoding.

    For an unmodified IDX images file this equals the md5 of its decompressed payload, so it
    can be compared with published checksums.
    """
    arr = np.ascontiguousarray(images, dtype=np.uint8)
    md5 = hashlib.md5(bytes([0, 0, 0x08, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape))
    md5.update(arr.data.cast("B"))
    return md5.hexdigest()


def md5_file(path: str | Path, decompress: bool = True) -> str:
    """md5 of a file's bytes, of its decompressed bytes if it is gzip and ``decompress``."""
    md5 = hashlib.md5()
    with Path(path).open("rb") as raw:
        is_gz = raw.read(2) == GZIP_MAGIC
        raw.seek(0)
        f: io.BufferedIOBase = gzip.GzipFile(fileobj=raw) if (decompress and is_gz) else raw
        while chunk := f.read(CHUNK):
            md5.update(chunk)
    return md5.hexdigest()

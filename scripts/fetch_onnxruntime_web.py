"""Fetch ONNX Runtime Web for the lesson site (issue 41: the model runs in the visitor's browser).

Writes into ``hvaelab/site/vendor/onnxruntime-web/`` the two files a static page needs to run a
CPU (WebAssembly) session on one thread, unchanged from the pinned npm package:

* ``ort.wasm.bundle.min.mjs``: the ES module (the wasm backend, its Emscripten glue inlined);
* ``ort-wasm-simd-threaded.wasm``: the runtime it instantiates (14.2 MB; 3.7 MB compressed).

They are not committed: the wasm alone would take the tracked files from 30 to 44 MiB, past
tests/test_repository.py's 31 MiB (a lent GPU machine receives the working tree and the
training data within 64 MiB). ``make test`` (so CI) runs this; the wheel ships the files
(pyproject.toml: ``artifacts``); ``LICENSE`` and ``README.md`` beside them are committed.

The tarball comes from the npm registry (``--url`` for a mirror) and must match the sha512 the
registry publishes for this version (pinned below); nothing is written otherwise. Only Python's
standard library is used (no node or npm). A folder that already holds both files with their
pinned sha256 is left alone.

    python scripts/fetch_onnxruntime_web.py [--url URL] [--dest DIR]
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import io
import os
import sys
import tarfile
import tempfile
import urllib.request
from pathlib import Path

VERSION = "1.30.0"
URL = f"https://registry.npmjs.org/onnxruntime-web/-/onnxruntime-web-{VERSION}.tgz"
# `npm view onnxruntime-web@1.30.0 dist.integrity`
INTEGRITY = (
    "sha512-q0y+JrrtukXSzsBWEMccVfqX25LRmosXHF+"
    "CaRJmg8pZClzcV7svNc4rKY3jL02Vb7QmRMDs1SigqR4CXAfKYQ=="
)
# the files taken from the package's dist/, with their sha256
FILES = {
    "ort.wasm.bundle.min.mjs": "11e64bd8ffe11bd1a2a2f0d6275fdfbbba7262f0b76b99b53d228a8a22ef3d90",
    "ort-wasm-simd-threaded.wasm": (
        "3398c10d07d229bd91b364548e130e0e51a8e5704b88c7c083ebbeb78842dee2"
    ),
}
DEST = Path(__file__).resolve().parents[1] / "hvaelab" / "site" / "vendor" / "onnxruntime-web"


class FetchError(RuntimeError):
    pass


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def present(dest: Path = DEST, files: dict[str, str] = FILES) -> bool:
    """Whether ``dest`` holds every file with its pinned sha256."""
    return all(
        (dest / name).is_file() and _sha256((dest / name).read_bytes()) == digest
        for name, digest in files.items()
    )


def _check_integrity(data: bytes, integrity: str) -> None:
    algo, _, expected = integrity.partition("-")
    if algo != "sha512":
        raise FetchError(f"unsupported integrity {integrity!r}")
    got = base64.b64encode(hashlib.sha512(data).digest()).decode()
    if got != expected:
        raise FetchError(f"the tarball's sha512 is {got}, not the pinned {expected}")


def fetch(
    dest: Path = DEST,
    url: str = URL,
    integrity: str = INTEGRITY,
    files: dict[str, str] = FILES,
    timeout: float = 120.0,
) -> bool:
    """Put ``files`` from the tarball at ``url`` into ``dest``; False if they were there."""
    if present(dest, files):
        return False
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - pinned
            data = response.read()
    except OSError as e:
        raise FetchError(f"could not download {url}: {e}") from e
    _check_integrity(data, integrity)
    taken: dict[str, bytes] = {}
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        for name, digest in files.items():
            member = tar.extractfile(f"package/dist/{name}")
            if member is None:
                raise FetchError(f"{url} has no package/dist/{name}")
            body = member.read()
            if _sha256(body) != digest:
                raise FetchError(f"{name}: sha256 {_sha256(body)}, not the pinned {digest}")
            taken[name] = body
    dest.mkdir(parents=True, exist_ok=True)
    for name, body in taken.items():  # each file atomically: a temporary file, then a rename
        fd, tmp = tempfile.mkstemp(dir=dest, prefix=f".{name}.")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(body)
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, 0o644)  # served and shipped: readable by all
            os.replace(tmp, dest / name)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    return True


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--url", default=URL, help="the tarball (default: the npm registry's)")
    p.add_argument("--dest", type=Path, default=DEST, help="where to put the files")
    a = p.parse_args(argv)
    try:
        wrote = fetch(a.dest, a.url)
    except FetchError as e:
        print(f"fetch_onnxruntime_web: {e}", file=sys.stderr)
        return 1
    what = "fetched" if wrote else "already there"
    print(f"onnxruntime-web {VERSION}: {', '.join(FILES)} {what} in {a.dest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

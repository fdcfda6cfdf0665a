"""scripts/fetch_onnxruntime_web.py against a local HTTP server (the npm registry is not asked):
the pinned tarball's files are written, a tarball or a file whose hash differs writes nothing,
and a folder that already holds the files is left alone without a download."""

from __future__ import annotations

import base64
import functools
import hashlib
import http.server
import importlib.util
import io
import tarfile
import threading
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location(
    "fetch_onnxruntime_web", ROOT / "scripts" / "fetch_onnxruntime_web.py"
)
fow = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fow)

FILES = {
    "ort.wasm.bundle.min.mjs": b"export const x = 1;\n",
    "ort-wasm-simd-threaded.wasm": b"\0asm",
}
PINNED = {name: hashlib.sha256(body).hexdigest() for name, body in FILES.items()}


def _tarball(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, body in files.items():
            info = tarfile.TarInfo(f"package/dist/{name}")
            info.size = len(body)
            tar.addfile(info, io.BytesIO(body))
        extra = tarfile.TarInfo("package/dist/ort.webgpu.min.mjs")  # not taken
        tar.addfile(extra, io.BytesIO(b""))
    return buf.getvalue()


def _integrity(data: bytes) -> str:
    return "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()


@pytest.fixture
def server(tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    log: list[str] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def log_request(self, code="-", size="-"):  # noqa: ARG002 - the base's signature
            log.append(self.path)

    httpd = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Handler, directory=str(root))
    )
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{httpd.server_address[1]}/", log
    httpd.shutdown()
    httpd.server_close()


def test_the_pinned_files_are_written_once(server, tmp_path):
    root, url, log = server
    data = _tarball(FILES)
    (root / "ort.tgz").write_bytes(data)
    dest = tmp_path / "vendor"
    assert fow.fetch(dest, url + "ort.tgz", _integrity(data), PINNED) is True
    assert {p.name: p.read_bytes() for p in dest.iterdir()} == FILES
    assert all((dest / n).stat().st_mode & 0o444 == 0o444 for n in FILES)  # readable by all
    assert fow.fetch(dest, url + "ort.tgz", _integrity(data), PINNED) is False
    assert log == ["/ort.tgz"]  # the second call downloads nothing


def test_a_tarball_or_a_file_that_differs_writes_nothing(server, tmp_path):
    root, url, _ = server
    data = _tarball(FILES)
    (root / "ort.tgz").write_bytes(data)
    dest = tmp_path / "vendor"
    with pytest.raises(fow.FetchError, match="sha512"):
        fow.fetch(dest, url + "ort.tgz", _integrity(data + b"x"), PINNED)
    tampered = _tarball({**FILES, "ort-wasm-simd-threaded.wasm": b"\0asm!"})
    (root / "tampered.tgz").write_bytes(tampered)
    with pytest.raises(fow.FetchError, match="sha256"):
        fow.fetch(dest, url + "tampered.tgz", _integrity(tampered), PINNED)
    with pytest.raises(fow.FetchError, match="could not download"):
        fow.fetch(dest, url + "missing.tgz", _integrity(data), PINNED)
    assert not dest.exists() or list(dest.iterdir()) == []


def test_the_pins_are_those_of_the_readme():
    readme = (fow.DEST / "README.md").read_text()
    assert f"onnxruntime-web@{fow.VERSION}" in readme
    assert fow.URL.endswith(f"onnxruntime-web-{fow.VERSION}.tgz")

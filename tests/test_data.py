"""Tests for hvaelab.data: IDX files, registry, file resolution, downloads, inputs, binarization."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import gzip
import hashlib
import io
import json
import shutil
import struct
import subprocess
import sys
import threading
import zlib
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from hvaelab import data
from hvaelab.data import (
    ChecksumError,
    DataFormatError,
    DataNotFoundError,
    DatasetSpec,
    InvalidInputError,
    SubsetOf,
    UnknownDatasetError,
    binarize,
    binarize_fixed,
    idx_bytes,
    image_from_bytes,
    images_md5,
    load_dataset,
    load_inputs,
    read_idx,
    register_dataset,
    register_image_folder,
    register_npy,
    register_package,
    split_indices,
    to_tensor,
    validate_images,
    write_idx,
)
from hvaelab.data.inventory import format_inventory, inventory, verify_split
from hvaelab.data.package import (
    check_against_source,
    package_specs,
    read_manifest,
    verify_package,
)

FIXTURE = Path(__file__).resolve().parent / "data"

README_MD5 = {
    "fashion-mnist/t10k-images-idx3-ubyte": "8181f5470baa50b63fa0f6fddb340f0a",
    "fashion-mnist/t10k-labels-idx1-ubyte": "15d484375f8d13e6eb1aabb0c3f46965",
    "fashion-mnist/train-images-idx3-ubyte": "f4a8712d7a061bf5bd6d2ca38dc4d50a",
    "fashion-mnist/train-labels-idx1-ubyte": "9018921c3c673c538a1fc5bad174d6f9",
    "mnist/t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
    "mnist/t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
}
TOY_FILES = ("toy-images-idx3-ubyte", "toy-labels-idx1-ubyte")


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """Keep the real user cache, system folders and the global registry out of each test."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setattr(data.locate, "SYSTEM_DATA_DIRS", (tmp_path / "system",))
    monkeypatch.delenv("HVAELAB_DATA_ONLY", raising=False)  # these tests set it where they need it
    saved = dict(data.REGISTRY)
    yield
    data.REGISTRY.clear()
    data.REGISTRY.update(saved)


def toy_arrays(n: int = 6, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    return images, rng.integers(0, 10, size=n).astype(np.uint8)


def write_toy(folder: Path, seed: int = 0, gz: bool = False, n: int = 6) -> np.ndarray:
    folder.mkdir(parents=True, exist_ok=True)
    images, labels = toy_arrays(n, seed)
    ext = ".gz" if gz else ""
    write_idx(folder / (TOY_FILES[0] + ext), images)
    write_idx(folder / (TOY_FILES[1] + ext), labels)
    return images


def toy_spec(**kw) -> DatasetSpec:
    args = dict(
        name="toy",
        description="synthetic",
        splits={"test": TOY_FILES},
        subfolders=("toy",),
    )
    args.update(kw)
    return register_dataset(DatasetSpec(**args), replace=True)


# ------------------------------------------------------------------------------------------
# Real data
# ------------------------------------------------------------------------------------------


def _manifest_split(name: str, split: str) -> dict:
    entry = next(e for e in read_manifest(FIXTURE)["datasets"] if e["name"] == name)
    return entry["splits"][split]


def test_fashionmnist_real_or_its_fixture(datasets):
    """The full files where found (checksums as published), else the fixture: the leading
    excerpts its manifest names, built from files with those very checksums."""
    fm = datasets.fashionmnist
    train, test = load_dataset(fm, "train"), load_dataset(fm, "test")
    n_train, n_test = (60000, 10000) if datasets.full else (2000, 1000)
    assert train.images.shape == (n_train, 28, 28) and train.images.dtype == np.uint8
    assert test.images.shape == (n_test, 28, 28)
    for ds in (train, test):
        assert ds.labels is not None and len(ds.labels) == len(ds.images)
        assert set(np.unique(ds.labels)) == set(range(10))
        assert Path(ds.source).is_file()
    if datasets.full:
        assert train.md5 == README_MD5["fashion-mnist/train-images-idx3-ubyte"]
        assert test.md5 == README_MD5["fashion-mnist/t10k-images-idx3-ubyte"]
        assert np.bincount(train.labels).tolist() == [6000] * 10
    else:
        for ds, split in ((train, "train"), (test, "test")):
            m = _manifest_split(fm, split)
            assert m["images"]["md5"] == ds.md5 and m["indices"] == [[0, len(ds)]]
            assert (
                m["images"]["source_md5"]
                == README_MD5[f"fashion-mnist/{m['images']['source_file']}"]
            )


def test_mnist_real_or_its_fixture_and_in_process_cache(datasets):
    a = load_dataset(datasets.mnist, "test")
    b = load_dataset(datasets.mnist.upper(), "test")
    assert a.images.shape == ((10000, 28, 28) if datasets.full else (1000, 28, 28))
    if datasets.full:
        assert a.md5 == README_MD5["mnist/t10k-images-idx3-ubyte"]
    else:
        assert a.md5 == _manifest_split(datasets.mnist, "test")["images"]["md5"]
    assert a.labels.min() == 0 and a.labels.max() == 9
    assert a.images is b.images  # cached by resolved path
    assert not a.images.flags.writeable


def test_registry_md5_match_readme():
    for key, md5 in README_MD5.items():
        folder, name = key.split("/")
        spec = data.REGISTRY["fashionmnist" if folder == "fashion-mnist" else "mnist"]
        assert spec.md5[name] == md5


def test_mnist_train_not_available_locally():
    with pytest.raises(DataNotFoundError, match="HVAELAB_NO_DOWNLOAD"):
        load_dataset("mnist", "train")


def test_local_checksum_mismatch(tmp_path):
    (tmp_path / "fashion-mnist").mkdir()
    write_idx(tmp_path / "fashion-mnist" / "t10k-images-idx3-ubyte", toy_arrays()[0])
    write_idx(tmp_path / "fashion-mnist" / "t10k-labels-idx1-ubyte", toy_arrays()[1])
    with pytest.raises(ChecksumError, match="t10k-images-idx3-ubyte.*8181f5470baa"):
        load_dataset("fashionmnist", "test", data_dir=tmp_path)


def _testsplit(datasets) -> tuple[str, int]:
    """``mnist-testsplit`` on the full MNIST test set; on the fixture, the same seeded split
    registered over the fixture's 1,000 images (``mnist-testsplit`` itself needs all 10,000)."""
    if datasets.full:
        return "mnist-testsplit", 10_000
    ranges = {"train": (0, 800), "test": (800, 1000)}
    sub = SubsetOf(dataset=datasets.mnist, split="test", size=1000, seed=0, ranges=ranges)
    spec = DatasetSpec(name="mnist-fixture-split", description="", loader="subset", subset=sub)
    register_dataset(spec, replace=True)
    return "mnist-fixture-split", 1000


def test_mnist_testsplit(datasets):
    name, n = _testsplit(datasets)
    cut = n * 8 // 10
    full = load_dataset(datasets.mnist, "test")
    tr = load_dataset(name, "train")
    te = load_dataset(name, "test")
    assert tr.images.shape == (cut, 28, 28) and te.images.shape == (n - cut, 28, 28)
    i_tr, i_te = split_indices(name, "train"), split_indices(name, "test")
    assert len(set(i_tr.tolist()) & set(i_te.tolist())) == 0
    assert sorted(np.concatenate([i_tr, i_te]).tolist()) == list(range(n))
    perm = np.random.default_rng(0).permutation(n)
    assert np.array_equal(i_tr, perm[:cut]) and np.array_equal(i_te, perm[cut:])
    assert np.array_equal(tr.images, full.images[i_tr])
    assert np.array_equal(te.labels, full.labels[i_te])
    again = load_dataset(name, "train")
    assert again.md5 == tr.md5 and np.array_equal(again.images, tr.images)
    assert "default_rng(0)" in data.REGISTRY["mnist-testsplit"].description
    assert data.REGISTRY["mnist-testsplit"].subset.size == 10_000


def test_a_subset_refuses_a_base_of_another_size(tmp_path):
    """mnist-testsplit is defined on exactly 10,000 images: a shorter base is an error, never
    a silently different split."""
    sub = SubsetOf(dataset="toy", split="test", size=10_000, seed=0, ranges={"test": (0, 5)})
    register_dataset(DatasetSpec(name="toy-split", description="", loader="subset", subset=sub))
    toy_spec()
    write_toy(tmp_path / "toy")
    with pytest.raises(DataFormatError, match="defined on 10000"):
        load_dataset("toy-split", "test", data_dir=tmp_path)


def test_inverted_variant(datasets):
    base = load_dataset(datasets.mnist, "test")
    inv = load_dataset(f"{datasets.mnist}-inverted", "test")
    assert inv.name == f"{datasets.mnist}-inverted"
    assert np.array_equal(inv.images, 255 - base.images.astype(np.int16))
    assert inv.images.dtype == np.uint8 and inv.md5 != base.md5
    name, _ = _testsplit(datasets)
    split_inv = load_dataset(f"{name}-inverted", "test")
    assert np.array_equal(split_inv.images, 255 - load_dataset(name, "test").images)


def test_unknown_dataset_and_split():
    with pytest.raises(UnknownDatasetError, match="fashionmnist"):
        load_dataset("cifar-eleven")
    with pytest.raises(UnknownDatasetError, match="splits: train, test"):
        load_dataset("mnist", "validation")


# ------------------------------------------------------------------------------------------
# IDX reader
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("gz", [False, True])
def test_idx_roundtrip(tmp_path, gz):
    images = toy_arrays()[0]
    path = write_idx(tmp_path / ("x.idx" + (".gz" if gz else "")), images)
    assert path.read_bytes()[:2] == (b"\x1f\x8b" if gz else b"\x00\x00")
    assert np.array_equal(read_idx(path), images)
    assert images_md5(images) == hashlib.md5(data.idx_bytes(images)).hexdigest()


def test_idx_detects_gzip_by_magic_not_name(tmp_path):
    arr = np.arange(12, dtype=np.uint8).reshape(3, 4)
    plain_named_gz = tmp_path / "a.gz"
    plain_named_gz.write_bytes(data.idx_bytes(arr))
    gz_named_plain = tmp_path / "b-ubyte"
    gz_named_plain.write_bytes(gzip.compress(data.idx_bytes(arr)))
    assert np.array_equal(read_idx(plain_named_gz), arr)
    assert np.array_equal(read_idx(gz_named_plain), arr)


@pytest.mark.parametrize("dtype", [np.int8, np.int16, np.int32, np.float32, np.float64])
def test_idx_other_dtypes_big_endian(tmp_path, dtype):
    arr = (np.arange(-10, 14).reshape(2, 3, 4) * 3).astype(dtype)
    got = read_idx(write_idx(tmp_path / "x.idx", arr))
    assert got.dtype == np.dtype(dtype) and got.dtype.isnative
    assert np.array_equal(got, arr)
    raw = (tmp_path / "x.idx").read_bytes()
    assert raw[16:] == arr.astype(np.dtype(dtype).newbyteorder(">")).tobytes()


def _bad_idx_cases():
    good = data.idx_bytes(np.zeros((2, 3, 3), dtype=np.uint8))
    return {
        "bad magic": b"\x01\x00" + good[2:],
        "bad dtype code": good[:2] + b"\x07" + good[3:],
        "zero dims": b"\x00\x00\x08\x00",
        "header cut": good[:3],
        "dims cut": good[:9],
        "payload cut": good[:-1],
        "trailing data": good + b"\x00",
        "absurd dims": b"\x00\x00\x08\x02" + struct.pack(">II", 2**31, 2**31),
    }


@pytest.mark.parametrize("case", sorted(_bad_idx_cases()))
@pytest.mark.parametrize("gz", [False, True])
def test_idx_corrupt(tmp_path, case, gz):
    raw = _bad_idx_cases()[case]
    path = tmp_path / f"bad-{case.replace(' ', '_')}"
    path.write_bytes(gzip.compress(raw) if gz else raw)
    with pytest.raises(DataFormatError, match=str(path)):
        read_idx(path)


def test_idx_truncated_gzip_stream(tmp_path):
    blob = gzip.compress(data.idx_bytes(toy_arrays(50)[0]))
    path = tmp_path / "cut.gz"
    path.write_bytes(blob[: len(blob) // 2])
    with pytest.raises(DataFormatError, match="truncated or corrupt"):
        read_idx(path)


def test_idx_missing_file_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_idx(tmp_path / "nope")


# ------------------------------------------------------------------------------------------
# Resolution order
# ------------------------------------------------------------------------------------------


def test_explicit_dir_beats_env_beats_cache_beats_system(tmp_path, monkeypatch):
    toy_spec()
    a, b = tmp_path / "a", tmp_path / "b"
    cache = tmp_path / "xdg" / "hvaelab" / "data"
    system = tmp_path / "system"
    imgs = {
        k: write_toy(d / "toy", seed=i)
        for i, (k, d) in enumerate([("a", a), ("b", b), ("cache", cache), ("system", system)])
    }
    monkeypatch.setenv("HVAELAB_DATA", str(b))
    got = load_dataset("toy", data_dir=a)
    assert Path(got.source).parent == a / "toy" and np.array_equal(got.images, imgs["a"])
    got = load_dataset("toy")
    assert Path(got.source).parent == b / "toy" and np.array_equal(got.images, imgs["b"])
    monkeypatch.setenv("HVAELAB_DATA", str(tmp_path / "empty"))
    got = load_dataset("toy")
    assert Path(got.source).parent == cache / "toy" and np.array_equal(got.images, imgs["cache"])
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "other-xdg"))
    got = load_dataset("toy")
    assert Path(got.source).parent == system / "toy"
    assert np.array_equal(got.images, imgs["system"])


def test_cache_dir_follows_home_without_xdg(tmp_path, monkeypatch):
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert data.user_cache_dir() == tmp_path / "home" / ".cache" / "hvaelab" / "data"
    toy_spec()
    monkeypatch.setenv("HVAELAB_DATA", str(tmp_path / "empty"))
    images = write_toy(tmp_path / "home" / ".cache" / "hvaelab" / "data" / "toy", gz=True)
    assert np.array_equal(load_dataset("toy").images, images)


def test_subfolder_beats_base_and_plain_base_works(tmp_path):
    toy_spec()
    base_images = write_toy(tmp_path, seed=1)
    assert np.array_equal(load_dataset("toy", data_dir=tmp_path).images, base_images)
    sub_images = write_toy(tmp_path / "toy", seed=2, gz=True)
    got = load_dataset("toy", data_dir=tmp_path)
    assert np.array_equal(got.images, sub_images) and got.source.endswith(".gz")


def test_not_found_lists_every_place_in_order(tmp_path, monkeypatch):
    toy_spec(subfolders=("toy", "TOY"), homepage="https://example.org/toy")
    monkeypatch.setenv("HVAELAB_DATA", str(tmp_path / "env"))
    with pytest.raises(DataNotFoundError) as err:
        load_dataset("toy", data_dir=tmp_path / "explicit")
    msg = str(err.value)
    cache = tmp_path / "xdg" / "hvaelab" / "data"
    expected = []
    for root in (tmp_path / "explicit", tmp_path / "env", cache, tmp_path / "system"):
        expected += [root / "toy", root / "TOY", root]
    positions = [msg.find(f". {p}  [") for p in expected]
    assert all(pos >= 0 for pos in positions), msg
    assert positions == sorted(positions)
    for hint in ("HVAELAB_DATA=", "--data-dir", "https://example.org/toy", TOY_FILES[0]):
        assert hint in msg


def test_not_found_fashionmnist_mentions_apt_and_urls(tmp_path, monkeypatch):
    monkeypatch.setenv("HVAELAB_DATA", str(tmp_path / "env"))
    with pytest.raises(DataNotFoundError) as err:
        load_dataset("fashionmnist", "test", data_dir=tmp_path, download=False)
    msg = str(err.value)
    assert "apt install dataset-fashion-mnist" in msg
    assert "fashion-mnist.s3-website" in msg and "download=False" in msg
    assert str(tmp_path / "fashion-mnist") in msg


# ------------------------------------------------------------------------------------------
# Downloads (local http.server on 127.0.0.1 only)
# ------------------------------------------------------------------------------------------


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def http_root(tmp_path, monkeypatch):
    root = tmp_path / "www"
    root.mkdir()
    server = ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(root))
    )
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.delenv("HVAELAB_NO_DOWNLOAD")
    monkeypatch.setenv("HVAELAB_DATA", str(tmp_path / "empty"))
    yield root, f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


def serve_toy(root: Path) -> tuple[np.ndarray, dict[str, str], dict[str, str]]:
    images, labels = toy_arrays()
    gz_md5, md5 = {}, {}
    for name, arr in zip(TOY_FILES, (images, labels), strict=True):
        raw = data.idx_bytes(arr)
        blob = gzip.compress(raw, mtime=0)
        (root / f"{name}.gz").write_bytes(blob)
        gz_md5[name] = hashlib.md5(blob).hexdigest()
        md5[name] = hashlib.md5(raw).hexdigest()
    return images, gz_md5, md5


def cache_toy() -> Path:
    return data.user_cache_dir() / "toy"


def test_download_verified_by_gz_md5(http_root):
    root, url = http_root
    images, gz_md5, _ = serve_toy(root)
    toy_spec(urls=(url,), gz_md5=gz_md5)
    got = load_dataset("toy")
    assert np.array_equal(got.images, images)
    assert Path(got.source) == cache_toy() / f"{TOY_FILES[0]}.gz"
    assert sorted(p.name for p in cache_toy().iterdir()) == sorted(f"{n}.gz" for n in TOY_FILES)
    (root / f"{TOY_FILES[0]}.gz").unlink()  # now served from the cache, no download needed
    assert np.array_equal(load_dataset("toy", download=False).images, images)


def test_download_accepts_decompressed_md5_when_recompressed(http_root):
    root, url = http_root
    images, _, md5 = serve_toy(root)
    toy_spec(urls=(url,), gz_md5={n: "0" * 32 for n in TOY_FILES}, md5=md5)
    assert np.array_equal(load_dataset("toy").images, images)


def test_download_bad_checksum_rejected_and_deleted(http_root):
    root, url = http_root
    _, gz_md5, _ = serve_toy(root)
    bad = dict(gz_md5, **{TOY_FILES[0]: "f" * 32})
    toy_spec(urls=(url,), gz_md5=bad)
    with pytest.raises(ChecksumError, match="does not match its checksum"):
        load_dataset("toy")
    leftovers = list(cache_toy().iterdir()) if cache_toy().exists() else []
    assert [p.name for p in leftovers if TOY_FILES[0] in p.name] == []


def test_download_falls_back_to_next_mirror(http_root):
    root, url = http_root
    images, gz_md5, _ = serve_toy(root)
    toy_spec(urls=(url + "missing/", url), gz_md5=gz_md5)
    assert np.array_equal(load_dataset("toy").images, images)


def test_download_failure_is_data_not_found(http_root):
    _, url = http_root
    toy_spec(urls=(url + "missing/",), gz_md5={n: "0" * 32 for n in TOY_FILES})
    with pytest.raises(DataNotFoundError, match="failed: .*404"):
        load_dataset("toy")


def test_download_disabled_by_argument_and_env(http_root, monkeypatch):
    root, url = http_root
    _, gz_md5, _ = serve_toy(root)
    toy_spec(urls=(url,), gz_md5=gz_md5)
    with pytest.raises(DataNotFoundError, match="download=False"):
        load_dataset("toy", download=False)
    monkeypatch.setenv("HVAELAB_NO_DOWNLOAD", "1")
    with pytest.raises(DataNotFoundError, match="HVAELAB_NO_DOWNLOAD"):
        load_dataset("toy")
    assert not cache_toy().exists()


# ------------------------------------------------------------------------------------------
# Registry, image folders, npy datasets
# ------------------------------------------------------------------------------------------


def test_spec_validation():
    with pytest.raises(ValueError, match="reserved"):
        DatasetSpec(name="foo-inverted", description="", splits={"test": ("a", None)})
    with pytest.raises(ValueError, match="not allowed"):
        DatasetSpec(name="Foo Bar", description="", splits={"test": ("a", None)})
    with pytest.raises(ValueError, match="no md5"):
        DatasetSpec(name="foo", description="", splits={"test": ("a", None)}, urls=("http://x/",))
    with pytest.raises(ValueError, match="http"):
        DatasetSpec(
            name="foo",
            description="",
            splits={"test": ("a", None)},
            urls=("file:///etc/",),
            md5={"a": "0" * 32},
        )
    with pytest.raises(ValueError, match="at least one split"):
        DatasetSpec(name="foo", description="")
    with pytest.raises(ValueError, match="already registered"):
        register_dataset(DatasetSpec(name="mnist", description="mine", splits={"t": ("a", None)}))
    assert register_dataset(data.REGISTRY["mnist"]) is data.REGISTRY["mnist"]


def _png(path: Path, arr: np.ndarray, mode: str = "L") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).convert(mode).save(path)
    return path


def _expected(path: Path) -> np.ndarray:
    im = Image.open(path).convert("L").resize((28, 28), Image.Resampling.BILINEAR)
    return np.asarray(im)


def test_omniglot_folder_recursive_resized(tmp_path):
    rng = np.random.default_rng(1)
    root = tmp_path / "omniglot" / "images_evaluation"
    paths = [
        _png(root / "Alpha" / "character02" / "b.png", rng.integers(0, 256, (105, 105), np.uint8)),
        _png(root / "Alpha" / "character01" / "a.png", np.full((105, 105), 255, np.uint8), "1"),
        _png(root / "Beta" / "character01" / "c.png", rng.integers(0, 256, (105, 105), np.uint8)),
    ]
    (root / "Alpha" / "notes.txt").write_text("not an image")
    ds = load_dataset("omniglot", "test", data_dir=tmp_path)
    assert ds.images.shape == (3, 28, 28) and ds.labels is None
    order = [paths[1], paths[0], paths[2]]  # sorted by relative path
    for img, p in zip(ds.images, order, strict=True):
        assert np.array_equal(img, _expected(p))
    assert (ds.images[0] == 255).all()
    assert (load_dataset("omniglot-inverted", "test", data_dir=tmp_path).images[0] == 0).all()


def test_omniglot_missing_says_where_to_get_it(tmp_path):
    with pytest.raises(DataNotFoundError, match="brendenlake/omniglot"):
        load_dataset("omniglot", "train", data_dir=tmp_path)


def test_register_image_folder(tmp_path):
    _png(tmp_path / "imgs" / "x.png", np.zeros((40, 30), np.uint8))
    _png(tmp_path / "imgs" / "y.jpg", np.full((10, 10), 200, np.uint8), "RGB")
    register_image_folder("mine", tmp_path / "imgs")
    ds = load_dataset("mine")
    assert ds.images.shape == (2, 28, 28) and ds.images[0].max() == 0
    assert abs(int(ds.images[1].mean()) - 200) <= 2


def test_npy_datasets(tmp_path):
    images, labels = toy_arrays(5)
    np.save(tmp_path / "x.npy", images)
    np.save(tmp_path / "y.npy", labels.astype(np.int64))
    np.save(tmp_path / "f.npy", images.astype(np.float32) / 255)
    register_npy("mynpy", tmp_path / "x.npy", labels=tmp_path / "y.npy")
    register_npy("myfloat", tmp_path / "f.npy", split="train")
    ds = load_dataset("mynpy")
    assert np.array_equal(ds.images, images) and np.array_equal(ds.labels, labels)
    assert ds.md5 == images_md5(images)
    assert np.array_equal(load_dataset("myfloat", "train").images, images)
    np.save(tmp_path / "bad.npy", np.zeros((3, 27, 28), np.uint8))
    register_npy("badnpy", tmp_path / "bad.npy")
    with pytest.raises(DataFormatError, match="bad.npy"):
        load_dataset("badnpy")
    register_npy("gone", tmp_path / "gone.npy")
    with pytest.raises(DataNotFoundError, match="gone.npy"):
        load_dataset("gone")


# ------------------------------------------------------------------------------------------
# Tensors and binarization
# ------------------------------------------------------------------------------------------


def test_to_tensor():
    images = np.zeros((2, 28, 28), np.uint8)
    images[1] = 255
    images[0, 0, 0] = 51
    x = to_tensor(images)
    assert x.shape == (2, 1, 28, 28) and x.dtype == torch.float32
    assert x[1].min() == 1.0 and x[0, 0, 0, 0] == pytest.approx(0.2)


def test_binarize_dynamic_varies_and_generator_reproduces():
    x = torch.full((64, 1, 28, 28), 0.5)
    a, b = binarize(x), binarize(x)
    assert set(a.unique().tolist()) <= {0.0, 1.0} and not torch.equal(a, b)
    assert abs(a.mean().item() - 0.5) < 0.01
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    assert torch.equal(binarize(x, g1), binarize(x, g2))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        binarize(x + 0.6)
    with pytest.raises(TypeError):
        binarize(torch.zeros(2, dtype=torch.uint8))


def test_binarize_fixed_deterministic_and_subset_consistent(datasets):
    x = to_tensor(load_dataset(datasets.fashionmnist, "train").images[:2000])
    full = binarize_fixed(x)
    assert full.shape == x.shape and full.dtype == x.dtype
    assert set(full.unique().tolist()) == {0.0, 1.0}
    assert torch.equal(full, binarize_fixed(x.clone()))
    idx = torch.randperm(2000, generator=torch.Generator().manual_seed(0))[:257]
    assert torch.equal(binarize_fixed(x[idx], chunk=100), full[idx])
    assert not torch.equal(binarize_fixed(x, seed=1), full)
    assert abs(full.mean().item() - x.mean().item()) < 0.005
    assert torch.equal(binarize_fixed(torch.zeros(2, 5)), torch.zeros(2, 5))
    assert torch.equal(binarize_fixed(torch.ones(2, 5)), torch.ones(2, 5))
    half = binarize_fixed(torch.rand(4000, 1, 28, 28, generator=torch.Generator().manual_seed(1)))
    assert abs(half.mean().item() - 0.5) < 0.005
    with pytest.raises(ValueError):
        binarize_fixed(torch.full((2, 3), float("nan")))
    assert binarize_fixed(torch.zeros(0, 1, 28, 28)).shape == (0, 1, 28, 28)


# ------------------------------------------------------------------------------------------
# User inputs
# ------------------------------------------------------------------------------------------


def test_load_inputs_npy_png_jpeg_idx_and_folder(tmp_path):
    images, _ = toy_arrays(3)
    np.save(tmp_path / "three.npy", images)
    np.save(tmp_path / "one.npy", images[0].astype(np.float64) / 255)
    rng = np.random.default_rng(2)
    png = _png(tmp_path / "pic.png", rng.integers(0, 256, (50, 70, 3), np.uint8), "RGB")
    jpg = _png(tmp_path / "pic.jpeg", rng.integers(0, 256, (28, 28), np.uint8))
    idx = write_idx(tmp_path / "two-ubyte.gz", images[:2])
    arr, names = load_inputs([tmp_path / "three.npy", tmp_path / "one.npy", png, jpg, idx])
    assert arr.shape == (3 + 1 + 1 + 1 + 2, 28, 28) and arr.dtype == np.uint8
    assert names == [
        "three.npy[0]",
        "three.npy[1]",
        "three.npy[2]",
        "one.npy",
        "pic.png",
        "pic.jpeg",
        "two-ubyte.gz[0]",
        "two-ubyte.gz[1]",
    ]
    assert np.array_equal(arr[:3], images) and np.array_equal(arr[3], images[0])
    assert np.array_equal(arr[4], _expected(png)) and np.array_equal(arr[5], _expected(jpg))

    folder = tmp_path / "folder"
    _png(folder / "b.png", np.zeros((28, 28), np.uint8))
    _png(folder / "a" / "z.png", np.full((28, 28), 9, np.uint8))
    (folder / "README.txt").write_text("skipped")
    (folder / ".hidden.png").write_text("skipped")
    arr, names = load_inputs(folder)
    assert names == ["folder/a/z.png", "folder/b.png"]
    assert arr[0].max() == 9 and arr[1].max() == 0


def _png_header(w: int, h: int) -> bytes:
    """A tiny PNG whose header claims w x h pixels (a decompression-bomb stand-in)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + body))
        return struct.pack(">I", len(body)) + kind + body + crc

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def test_load_inputs_invalid_files(tmp_path):
    (tmp_path / "fake.png").write_text("hello, I am text")
    with pytest.raises(InvalidInputError, match="fake.png: not an image"):
        load_inputs([tmp_path / "fake.png"])
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(InvalidInputError, match="notes.txt"):
        load_inputs([tmp_path / "notes.txt"])
    good = io.BytesIO()
    Image.fromarray(np.zeros((64, 64), np.uint8)).save(good, format="PNG")
    (tmp_path / "cut.png").write_bytes(good.getvalue()[:60])
    with pytest.raises(InvalidInputError, match="cut.png"):
        load_inputs([tmp_path / "cut.png"])
    with open(tmp_path / "big.npy", "wb") as f:
        f.truncate(21 * 2**20)
    with pytest.raises(InvalidInputError, match="big.npy: file is 21.0 MiB"):
        load_inputs([tmp_path / "big.npy"])
    (tmp_path / "huge.png").write_bytes(_png_header(8000, 7000))
    with pytest.raises(InvalidInputError, match="huge.png: image is 8000x7000 pixels"):
        load_inputs([tmp_path / "huge.png"])
    (tmp_path / "bomb.png").write_bytes(_png_header(20000, 20000))
    with pytest.raises(InvalidInputError, match="bomb.png.*shrink"):
        load_inputs([tmp_path / "bomb.png"])
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(InvalidInputError, match="obj.npy: not a readable plain numeric"):
        load_inputs([tmp_path / "obj.npy"])
    np.save(tmp_path / "shape.npy", np.zeros((2, 32, 32), np.uint8))
    with pytest.raises(InvalidInputError, match=r"shape.npy: expected .*got shape \(2, 32, 32\)"):
        load_inputs([tmp_path / "shape.npy"])
    (tmp_path / "bad-ubyte").write_bytes(b"\x00\x00\x08\x03" + struct.pack(">III", 5, 28, 28))
    with pytest.raises(InvalidInputError, match="bad-ubyte"):
        load_inputs([tmp_path / "bad-ubyte"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(InvalidInputError, match="folder holds no"):
        load_inputs([tmp_path / "empty"])
    with pytest.raises(InvalidInputError, match="no such file"):
        load_inputs([tmp_path / "missing.png"])
    with pytest.raises(InvalidInputError, match="no inputs"):
        load_inputs([])


def test_image_from_bytes():
    buf = io.BytesIO()
    Image.fromarray(np.full((100, 80), 128, np.uint8)).save(buf, format="JPEG")
    img = image_from_bytes(buf.getvalue(), "photo.jpg")
    assert img.shape == (28, 28) and img.dtype == np.uint8 and abs(int(img.mean()) - 128) <= 2
    npy = io.BytesIO()
    np.save(npy, np.full((28, 28), 7, np.uint8))
    assert (image_from_bytes(npy.getvalue(), "x.npy") == 7).all()
    with pytest.raises(InvalidInputError, match="upload.bin: not an image"):
        image_from_bytes(b"\x00" * 100, "upload.bin")
    with pytest.raises(InvalidInputError, match="empty"):
        image_from_bytes(b"", "nothing.png")
    with pytest.raises(InvalidInputError, match="MiB"):
        image_from_bytes(b"\x00" * (data.MAX_FILE_BYTES + 1), "large.png")
    with pytest.raises(InvalidInputError, match="pixels"):
        image_from_bytes(_png_header(10000, 6000), "wide.png")


@pytest.mark.parametrize(
    ("arr", "match"),
    [
        (np.zeros((2, 28, 28), np.complex64), "dtype complex64"),
        (np.empty((1, 28, 28), dtype=object), "dtype object"),
        (np.full((28, 28), "a"), "dtype <U1"),
        (np.zeros((0, 28, 28), np.uint8), "empty"),
        (np.zeros((28,), np.uint8), r"got shape \(28,\)"),
        (np.zeros((2, 28, 27), np.uint8), r"got shape \(2, 28, 27\)"),
        (np.zeros((1, 2, 28, 28), np.uint8), r"got shape \(1, 2, 28, 28\)"),
        (np.full((28, 28), np.nan, np.float32), "NaN or infinite"),
        (np.full((28, 28), np.inf), "NaN or infinite"),
        (np.full((28, 28), 1.5), r"in \[0, 1\].*divide by 255"),
        (np.full((28, 28), -0.1), r"in \[0, 1\]"),
        (np.full((28, 28), 256, np.int32), r"\[0, 255\], got values in \[256, 256\]"),
        (np.full((28, 28), -1, np.int64), r"\[0, 255\]"),
    ],
)
def test_validate_images_rejects(arr, match):
    with pytest.raises(InvalidInputError, match=match):
        validate_images(arr, name="mine")


def test_validate_images_accepts():
    f = np.linspace(0, 1, 784).reshape(28, 28)
    out = validate_images(f)
    assert out.shape == (1, 28, 28) and out.dtype == np.uint8
    assert out[0, 0, 0] == 0 and out[0, -1, -1] == 255
    u = toy_arrays(2)[0]
    assert np.array_equal(validate_images(u.astype(np.float32) / 255), u)
    assert np.array_equal(validate_images(u[:, None].astype(np.int64)), u)
    b = validate_images(np.eye(28, dtype=bool))
    assert b.max() == 255 and b.sum() == 28 * 255
    assert np.array_equal(validate_images(torch.from_numpy(u)), u)


# ------------------------------------------------------------------------------------------
# The test fixture (a data package) and `hvaelab data list / fetch / verify`
# ------------------------------------------------------------------------------------------


def test_fixture_manifest_checksums_and_sources(datasets):
    """Every excerpt matches its manifest md5, was cut from files with the registry's
    checksums, and (where the real files are here) equals source[indices] exactly."""
    assert verify_package(FIXTURE) == []
    assert check_against_source(FIXTURE) == []
    size = sum(f.stat().st_size for f in FIXTURE.rglob("*") if f.is_file())
    assert size < 3_000_000  # a few MB at most


def _copy_fixture(tmp_path: Path) -> Path:
    copy = tmp_path / "pkg"
    shutil.copytree(FIXTURE, copy)
    return copy


def test_a_tampered_fixture_fails_verification_and_loading(tmp_path):
    copy = _copy_fixture(tmp_path)
    path = copy / "mnist-fixture" / "t10k-images-idx3-ubyte.gz"
    images = read_idx(path).copy()
    images[0, 0, 0] ^= 1  # one pixel, one bit
    write_idx(path, images)
    problems = verify_package(copy)
    assert len(problems) == 1 and "t10k-images-idx3-ubyte.gz: md5" in problems[0]
    spec = next(s for s in package_specs(copy) if s.name == "mnist-fixture")
    register_dataset(DatasetSpec(**{**spec.__dict__, "name": "tampered"}))
    with pytest.raises(ChecksumError, match="t10k-images-idx3-ubyte.gz"):
        load_dataset("tampered", "test")
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["datasets"][0]["splits"]["test"]["images"]["source_md5"] = "0" * 32
    (copy / "manifest.json").write_text(json.dumps(manifest))
    assert any("but fashionmnist's is 8181f5470baa" in p for p in verify_package(copy))


def test_a_package_never_takes_a_real_name(tmp_path):
    copy = _copy_fixture(tmp_path)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["datasets"][0]["name"] = "fashionmnist"
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match="a different dataset named 'fashionmnist'"):
        register_package(copy)
    assert (
        data.REGISTRY["fashionmnist"].md5["t10k-images-idx3-ubyte"]
        == README_MD5["fashion-mnist/t10k-images-idx3-ubyte"]
    )


def test_the_library_alone_registers_no_fixture():
    code = "import hvaelab.data as d; print(' '.join(d.list_datasets()))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    names = out.stdout.split()
    assert "fashionmnist" in names and not [n for n in names if "fixture" in n]


def _cli(*argv) -> tuple[int, str, str]:
    from hvaelab.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main([str(a) for a in argv])
    return rc, out.getvalue(), err.getvalue()


def _line(text: str, start: str) -> str:
    return next(line for line in text.splitlines() if line.startswith(start))


def test_data_list_says_where_each_split_is_or_how_to_get_it(tmp_path, monkeypatch):
    root = tmp_path / "d"
    shutil.copytree(FIXTURE / "mnist-fixture", root / "mnist")
    monkeypatch.setenv("HVAELAB_DATA", str(root))
    rc, out, _ = _cli("data", "list")
    assert rc == 0
    assert f"1. {root}  [$HVAELAB_DATA]" in out
    assert f"found    {root / 'mnist' / 't10k-images-idx3-ubyte.gz'}" in _line(out, "mnist test")
    assert _line(out, "mnist train").endswith("missing: get it with: hvaelab data fetch mnist")
    assert "(from mnist/test)" in _line(out, "mnist-testsplit test")
    fm = _line(out, "fashionmnist train")
    assert "hvaelab data fetch fashionmnist or sudo apt install dataset-fashion-mnist" in fm
    looked = _line(out, "fashionmnist: looked in")
    for d in (root / "fashion-mnist", data.user_cache_dir(), tmp_path / "system"):
        assert str(d) in looked


def test_data_only_limits_the_search_to_the_given_folders(tmp_path, monkeypatch):
    toy_spec()
    write_toy(data.user_cache_dir() / "toy")
    monkeypatch.setenv("HVAELAB_DATA", str(tmp_path / "empty"))
    assert load_dataset("toy").source.startswith(str(data.user_cache_dir()))
    monkeypatch.setenv("HVAELAB_DATA_ONLY", "1")
    assert [why for _, why in data.search_roots()] == ["$HVAELAB_DATA"]
    with pytest.raises(DataNotFoundError) as err:
        load_dataset("toy")
    assert str(data.user_cache_dir()) not in str(err.value)
    rc, out, _ = _cli("data", "list")
    assert "per-user cache" not in out and "system datasets" not in out


def test_data_verify_reports_ok_and_a_tampered_file(tmp_path, monkeypatch):
    images, labels = toy_arrays()
    md5 = {
        TOY_FILES[0]: images_md5(images),
        TOY_FILES[1]: hashlib.md5(idx_bytes(labels)).hexdigest(),
    }
    toy_spec(md5=md5)
    write_toy(tmp_path / "toy", gz=True)
    monkeypatch.setenv("HVAELAB_DATA", str(tmp_path))
    rc, out, _ = _cli("data", "verify", "toy")
    assert rc == 0 and out.count("toy test: OK") == 2
    tampered = images.copy()
    tampered[3, 5, 5] ^= 0x80
    write_idx(tmp_path / "toy" / f"{TOY_FILES[0]}.gz", tampered)
    rc, out, err = _cli("data", "verify", "toy")
    assert rc == 1 and "do not match their checksums" in err
    assert f"toy test: MISMATCH  {tmp_path / 'toy' / TOY_FILES[0]}.gz  md5 " in out
    assert "toy test: OK" in out  # the labels are still fine


def test_data_fetch_downloads_verified_into_the_user_cache(http_root, monkeypatch):
    root, url = http_root
    images, _, md5 = serve_toy(root)
    toy_spec(urls=(url,), md5=md5)
    rc, out, err = _cli("data", "fetch", "toy")
    assert rc == 0, err
    cached = data.user_cache_dir() / "toy" / f"{TOY_FILES[0]}.gz"
    assert f"toy test: downloaded to {cached} (verified)" in out
    assert np.array_equal(read_idx(cached), images)
    rc, out, _ = _cli("data", "fetch", "toy")
    assert rc == 0 and f"toy test: present at {cached} [per-user cache]" in out
    monkeypatch.setenv("HVAELAB_NO_DOWNLOAD", "1")
    toy_spec(name="toy2", urls=(url,), md5=md5, subfolders=("toy2",))
    rc, _, err = _cli("data", "fetch", "toy2")
    assert rc == 2 and "HVAELAB_NO_DOWNLOAD=1" in err and len(err.strip().splitlines()) == 1


def test_data_fetch_rejects_a_file_that_is_not_the_published_one(http_root):
    root, url = http_root
    _, _, md5 = serve_toy(root)
    toy_spec(urls=(url,), md5={**md5, TOY_FILES[0]: "f" * 32})
    rc, _, err = _cli("data", "fetch", "toy")
    assert rc == 2 and "does not match its checksum" in err and "deleted" in err
    assert not list((data.user_cache_dir() / "toy").glob(f"{TOY_FILES[0]}*"))


def test_missing_data_errors_name_the_fetch_command(tmp_path, monkeypatch):
    monkeypatch.setenv("HVAELAB_DATA", str(tmp_path / "empty"))
    monkeypatch.setenv("HVAELAB_DATA_ONLY", "1")
    rc, _, err = _cli("train", "--dataset", "kmnist", "--ood", "--preset", "hvae-tiny")
    assert rc == 2 and len(err.strip().splitlines()) == 1
    assert (
        "dataset 'kmnist' split 'train' not found" in err and "`hvaelab data fetch kmnist`" in err
    )
    ckpt = Path(__file__).resolve().parents[1] / "checkpoints" / "fashionmnist"
    for cmd in ("evaluate", "tables"):
        rc, _, err = _cli(cmd, "--checkpoint", ckpt, "--in", "mnist", "--ood", "kmnist")
        last = err.strip().splitlines()[-1]  # after the progress line "scoring mnist ..."
        assert rc == 2 and "Traceback" not in err, err
        assert last.startswith(f"hvaelab {cmd}: error: dataset 'mnist' split 'test' not found")
        assert "`hvaelab data fetch mnist`" in last


def test_synthetic_ood_sets_are_generated_seeded_and_what_they_say():
    from hvaelab.data.inventory import fetch
    from hvaelab.data.registry import get_spec

    uni, ber, con = (load_dataset(n) for n in ("noise-uniform", "noise-bernoulli", "constant"))
    for ds in (uni, ber, con):
        assert ds.images.shape == (10_000, 28, 28) and ds.images.dtype == np.uint8
        assert ds.labels is None and ds.source.startswith("generated")
    assert set(np.unique(ber.images)) == {0, 255}
    assert abs(ber.images.mean() / 255 - 0.5) < 0.01
    assert abs(uni.images.mean() - 127.5) < 1 and len(np.unique(uni.images)) == 256
    assert np.all(con.images == con.images[:, :1, :1])  # one level per image
    assert len(np.unique(con.images[:, 0, 0])) == 256
    load_dataset.__globals__["clear_cache"]()
    assert load_dataset("constant").md5 == con.md5  # the same images on every machine
    inv = load_dataset("constant-inverted")
    assert np.array_equal(inv.images, 255 - con.images)
    listing = format_inventory(inventory())
    assert "noise-uniform test" in listing and "generated: 10000 uniform images" in listing
    assert "nothing to fetch" in fetch("constant")[0]
    assert verify_split(get_spec("constant"), "test")[0].result == "generated"


# ------------------------------------------------------------------------------------------
# Natural-image sets: CIFAR binary records, SVHN MATLAB files, archives (written here in the
# real formats; no CIFAR or SVHN file exists on these machines)
# ------------------------------------------------------------------------------------------


def _colour_images(n: int, seed: int) -> np.ndarray:
    """(n, 32, 32, 3) with a distinct value per channel and position, so that a swapped channel
    order, a transposed plane or a shifted record shows."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(n, 32, 32, 3), dtype=np.uint8)


def _cifar_record_by_hand(image: np.ndarray, label_bytes: list[int]) -> bytes:
    """One record as the CIFAR page describes it, written without hvaelab's encoder."""
    r, g, b = (image[:, :, c] for c in range(3))
    return bytes(label_bytes) + r.tobytes() + g.tobytes() + b.tobytes()  # row-major planes


def test_cifar10_binary_batches_decode_to_what_was_written(tmp_path):
    folder = tmp_path / "cifar-10-batches-bin"
    folder.mkdir()
    train = [(_colour_images(3, i), np.arange(3) + i) for i in range(5)]
    for i, (imgs, labs) in enumerate(train, 1):
        raw = b"".join(_cifar_record_by_hand(x, [int(y)]) for x, y in zip(imgs, labs, strict=True))
        (folder / f"data_batch_{i}.bin").write_bytes(raw)
    test_imgs = _colour_images(4, 9)
    (folder / "test_batch.bin").write_bytes(data.natural.cifar_bin_bytes(test_imgs, [9, 0, 1, 2]))
    ds = load_dataset("cifar10", "train", data_dir=tmp_path, download=False)
    assert ds.images.shape == (15, 32, 32, 3) and ds.images.dtype == np.uint8
    assert np.array_equal(ds.images, np.concatenate([t[0] for t in train]))  # batches in order
    assert ds.labels.tolist() == [0, 1, 2, 1, 2, 3, 2, 3, 4, 3, 4, 5, 4, 5, 6]
    te = load_dataset("cifar10", "test", data_dir=tmp_path, download=False)
    assert np.array_equal(te.images, test_imgs) and te.labels.tolist() == [9, 0, 1, 2]
    # the red plane is the first 1,024 pixel bytes of a record, row-major
    first = (folder / "test_batch.bin").read_bytes()[1 : 1 + 1024]
    assert first == test_imgs[0, :, :, 0].tobytes()


def test_cifar100_takes_the_fine_label_after_the_coarse_one(tmp_path):
    folder = tmp_path / "cifar-100-binary"
    folder.mkdir()
    imgs = _colour_images(3, 1)
    raw = b"".join(
        _cifar_record_by_hand(x, [c, f])
        for x, c, f in zip(imgs, [19, 0, 7], [99, 3, 42], strict=True)
    )
    (folder / "test.bin").write_bytes(raw)
    ds = load_dataset("cifar100", "test", data_dir=tmp_path, download=False)
    assert ds.labels.tolist() == [99, 3, 42] and np.array_equal(ds.images, imgs)
    assert raw == data.natural.cifar_bin_bytes(imgs, [99, 3, 42], coarse=[19, 0, 7])


def test_svhn_mat_decodes_pixels_and_maps_label_10_to_0(tmp_path):
    from scipy.io import savemat

    folder = tmp_path / "svhn"
    folder.mkdir()
    imgs = _colour_images(5, 2)
    x = imgs.transpose(1, 2, 3, 0)  # SVHN's (32, 32, 3, N)
    savemat(folder / "test_32x32.mat", {"X": x, "y": np.array([[10], [1], [9], [10], [3]])})
    # our own file: no pinned md5, no download
    data.REGISTRY["svhn"] = dataclasses.replace(data.REGISTRY["svhn"], md5={}, urls=())
    ds = load_dataset("svhn", "test", data_dir=tmp_path, download=False)
    assert np.array_equal(ds.images, imgs) and ds.labels.tolist() == [0, 1, 9, 0, 3]
    assert np.array_equal(ds.images[3], x[:, :, :, 3])
    back = data.natural.read_svhn_mat(io.BytesIO(data.natural.svhn_mat_bytes(imgs, ds.labels)))
    assert np.array_equal(back[0], imgs) and back[1].tolist() == [0, 1, 9, 0, 3]


def test_svhn_files_are_checked_against_the_pinned_md5(tmp_path):
    from scipy.io import savemat

    folder = tmp_path / "svhn"
    folder.mkdir()
    savemat(
        folder / "test_32x32.mat",
        {"X": _colour_images(2, 0).transpose(1, 2, 3, 0), "y": [[1], [2]]},
    )
    with pytest.raises(ChecksumError, match="eb5a983be6a315427106f1b164d9cef3"):
        load_dataset("svhn", "test", data_dir=tmp_path, download=False)
    checks = verify_split(data.REGISTRY["svhn"], "test", tmp_path)
    assert [c.result for c in checks] == ["mismatch"]


def test_corrupt_natural_files_get_clear_errors(tmp_path):
    from scipy.io import savemat

    for sub in ("cifar-10-batches-bin", "svhn"):
        (tmp_path / sub).mkdir()
    (tmp_path / "cifar-10-batches-bin" / "test_batch.bin").write_bytes(b"\x00" * 3000)
    with pytest.raises(DataFormatError, match="not a whole number of 3073-byte CIFAR records"):
        load_dataset("cifar10", "test", data_dir=tmp_path, download=False)
    data.REGISTRY["svhn"] = dataclasses.replace(data.REGISTRY["svhn"], md5={}, urls=())
    savemat(tmp_path / "svhn" / "test_32x32.mat", {"X": np.zeros((28, 28, 1, 2), np.uint8)})
    with pytest.raises(DataFormatError, match="holds variables X and y"):
        load_dataset("svhn", "test", data_dir=tmp_path, download=False)
    data.clear_cache()
    (tmp_path / "svhn" / "test_32x32.mat").write_bytes(b"not a MATLAB file at all")
    with pytest.raises(DataFormatError, match="not a readable MATLAB"):
        load_dataset("svhn", "test", data_dir=tmp_path, download=False)
    with pytest.raises(DataFormatError, match="label 10 is not a class"):
        data.natural.read_cifar_bin(
            [_write(tmp_path / "x.bin", _cifar_record_by_hand(_colour_images(1, 0)[0], [10]))],
            1,
            10,
        )


def _write(path: Path, blob: bytes) -> Path:
    path.write_bytes(blob)
    return path


def _cifar_archive(root: Path, name: str, evil: bool = False) -> tuple[str, np.ndarray]:
    """A tar.gz laid out like cifar-10-binary.tar.gz; returns its md5 and the test images."""
    import tarfile

    imgs = _colour_images(4, 5)
    files = {
        f"data_batch_{i}.bin": data.natural.cifar_bin_bytes(imgs[:1], [i]) for i in range(1, 6)
    }
    files["test_batch.bin"] = data.natural.cifar_bin_bytes(imgs, [3, 1, 4, 1])
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for fname, blob in files.items():
            info = tarfile.TarInfo(f"cifar-10-batches-bin/{fname}")
            info.size = len(blob)
            tf.addfile(info, io.BytesIO(blob))
        if evil:  # a path outside the target must never be written
            info = tarfile.TarInfo("../../outside.bin")
            info.size = 3
            tf.addfile(info, io.BytesIO(b"bad"))
    (root / name).write_bytes(buf.getvalue())
    return hashlib.md5(buf.getvalue()).hexdigest(), imgs


def test_cifar_archive_is_downloaded_verified_and_extracted(http_root, tmp_path):
    root, url = http_root
    md5, imgs = _cifar_archive(root, "cifar-10-binary.tar.gz", evil=True)
    data.REGISTRY["cifar10"] = dataclasses.replace(
        data.REGISTRY["cifar10"], urls=(url,), archive_md5=md5
    )
    ds = load_dataset("cifar10", "test")
    assert np.array_equal(ds.images, imgs) and ds.labels.tolist() == [3, 1, 4, 1]
    cache = data.user_cache_dir() / "cifar-10-batches-bin"
    assert sorted(p.name for p in cache.iterdir()) == sorted(
        [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]
    )  # every split from the one archive, the archive itself removed, nothing else written
    assert not list(tmp_path.rglob("outside.bin"))
    assert len(load_dataset("cifar10", "train")) == 5  # no second download needed
    (root / "cifar-10-binary.tar.gz").unlink()
    assert len(load_dataset("cifar10", "train")) == 5


def test_cifar_archive_with_another_md5_is_refused_and_deleted(http_root):
    root, url = http_root
    _cifar_archive(root, "cifar-10-binary.tar.gz")
    data.REGISTRY["cifar10"] = dataclasses.replace(
        data.REGISTRY["cifar10"], urls=(url,), archive_md5="0" * 32
    )
    with pytest.raises(ChecksumError, match="does not match its published md5"):
        load_dataset("cifar10", "test")
    assert not list((data.user_cache_dir() / "cifar-10-batches-bin").glob("*"))


def test_natural_sets_are_listed_with_the_command_that_gets_them(tmp_path):
    listing = format_inventory(inventory(tmp_path))
    for name in ("cifar10", "cifar100", "svhn"):
        assert f"hvaelab data fetch {name}" in listing
    assert "cifar10 train" in listing and "svhn test" in listing
    spec = data.REGISTRY["cifar10"]
    assert spec.colour and spec.image_shape == (32, 32, 3)
    assert spec.files("train")[0] == "data_batch_1.bin" and len(spec.files("train")) == 5

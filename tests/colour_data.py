"""Natural-image files in the real formats for the colour tests (no CIFAR or SVHN file exists
on these machines): CIFAR-10 binary batches and an SVHN MATLAB file, written by the tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from hvaelab.data.natural import cifar_bin_bytes, svhn_mat_bytes


def blocky(n: int, seed: int) -> np.ndarray:
    """Colour images with structure at 8x8 blocks plus noise (not noise alone)."""
    rng = np.random.default_rng(seed)
    base = np.kron(rng.integers(0, 256, (n, 4, 4, 3)).astype(np.float32), np.ones((1, 8, 8, 1)))
    return np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)


def write_colour_data(folder: Path, n_batch: int, n_test: int) -> Path:
    """``folder`` holding cifar-10-batches-bin/ (5 batches of ``n_batch``, a test batch of
    ``n_test``) and svhn/test_32x32.mat (``n_test`` images)."""
    cifar = folder / "cifar-10-batches-bin"
    cifar.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(1, 6):
        batch = cifar_bin_bytes(blocky(n_batch, i), rng.integers(0, 10, n_batch))
        (cifar / f"data_batch_{i}.bin").write_bytes(batch)
    test = cifar_bin_bytes(blocky(n_test, 9), rng.integers(0, 10, n_test))
    (cifar / "test_batch.bin").write_bytes(test)
    (folder / "svhn").mkdir()
    svhn = rng.integers(0, 256, (n_test, 32, 32, 3), dtype=np.uint8)
    (folder / "svhn" / "test_32x32.mat").write_bytes(
        svhn_mat_bytes(svhn, rng.integers(0, 10, n_test))
    )
    return folder

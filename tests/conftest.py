"""Shared test fixtures."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# The real data lives in the repository's sibling folder shared/data (never hard-coded).
_DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(scope="session", autouse=True)
def _hvaelab_env():
    """Point HVAELAB_DATA at the real data (unless set) and forbid downloads in tests."""
    with pytest.MonkeyPatch.context() as mp:
        if not os.environ.get("HVAELAB_DATA"):
            mp.setenv("HVAELAB_DATA", str(_DEFAULT_DATA))
        mp.setenv("HVAELAB_NO_DOWNLOAD", "1")
        yield


@pytest.fixture(scope="session")
def data_dir(_hvaelab_env) -> Path:
    """The folder holding the real datasets (fashion-mnist/, mnist/)."""
    return Path(os.environ["HVAELAB_DATA"])

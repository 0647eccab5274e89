"""Shared test helpers: where the read-only test data lives.

Fixtures (usable from any test file here, no import needed):
    shared_data   Path to the shared data folder ($MINISNN_SHARED_DATA, else <repo>/../shared/data)
    mnist_dir     shared_data / "mnist-5k"       (5,000 train, 10,000 test MNIST images)
    fashion_dir   shared_data / "fashion-mnist"  (60,000 train, 10,000 test)
Each one skips the test, with the reason, when its folder is absent.
"""
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path:
    """The shared data folder, whether or not it exists."""
    return Path(os.environ.get("MINISNN_SHARED_DATA") or REPO.parent / "shared" / "data")


def _existing(folder: Path) -> Path:
    if not folder.is_dir():
        pytest.skip(f"test data folder {folder} not found (set MINISNN_SHARED_DATA)")
    return folder


@pytest.fixture
def shared_data() -> Path:
    return _existing(shared_data_dir())


@pytest.fixture
def mnist_dir(shared_data) -> Path:
    return _existing(shared_data / "mnist-5k")


@pytest.fixture
def fashion_dir(shared_data) -> Path:
    return _existing(shared_data / "fashion-mnist")

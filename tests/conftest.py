"""Shared test set-up: where the test data lives, and one grouped skip for the GPU tests.

Fixtures (usable from any test file here, no import needed):
    mnist_dir     the MNIST sample bundled with minisnn (minisnn/data/mnist-sample: 5,000 train,
                  10,000 test images): present on every machine, CI included
    shared_data   the developers' read-only data folder ($MINISNN_SHARED_DATA, else
                  <repo>/../shared/data); skips the test, with the reason, when it is absent
    fashion_dir   shared_data / "fashion-mnist"  (60,000 train, 10,000 test)

Tests marked `gpu` need CuPy and a usable CUDA GPU. Where there is none, every one of them is
skipped at set-up from here, with the same reason, so that `pytest -ra` prints ONE line for all;
the same for the tests that use `fashion_dir` where Fashion-MNIST is absent.
"""
import functools
import os
from pathlib import Path

import pytest

from minisnn.data import BUNDLED, SAMPLE

REPO = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path:
    """The shared data folder, whether or not it exists."""
    return Path(os.environ.get("MINISNN_SHARED_DATA") or REPO.parent / "shared" / "data")


def _existing(folder: Path) -> Path:
    if not folder.is_dir():
        pytest.skip(f"test data folder {folder} not found (set MINISNN_SHARED_DATA)")
    return folder


@pytest.fixture
def mnist_dir() -> Path:
    return BUNDLED[SAMPLE][0]


@pytest.fixture
def shared_data() -> Path:
    return _existing(shared_data_dir())


@pytest.fixture
def fashion_dir(shared_data) -> Path:
    return _existing(shared_data / "fashion-mnist")


def _fashion_reason():
    folder = shared_data_dir() / "fashion-mnist"
    if folder.is_dir():
        return None
    return (f"Fashion-MNIST tests need $MINISNN_SHARED_DATA/fashion-mnist with the four "
            f"Fashion-MNIST files: {folder} not found")


# ----------------------------------------------------------------------------- GPU tests

@functools.lru_cache(maxsize=None)
def _no_gpu_reason():
    """None where CuPy and a CUDA GPU are usable, else why not (asked once per session)."""
    from minisnn import backend
    try:
        backend.array_module("cupy")
    except RuntimeError as e:
        return str(e)
    return None


def pytest_runtest_setup(item):
    reason = None
    if item.get_closest_marker("gpu") is not None and _no_gpu_reason() is not None:
        reason = f"GPU tests (marked gpu) need CuPy and a CUDA GPU: {_no_gpu_reason()}"
    elif "fashion_dir" in getattr(item, "fixturenames", ()):
        reason = _fashion_reason()
    if reason is not None:
        # Raised here, so every such skip points at this line: pytest -ra folds them into one.
        pytest.skip(reason)

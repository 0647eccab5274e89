"""Datasets: read IDX files, load MNIST-style folders, download MNIST, cut mini-batches.

MNIST and Fashion-MNIST ship as four IDX files (gzip-compressed, as a rule):

    train-images-idx3-ubyte.gz   (60000, 28, 28) uint8 pixels 0..255
    train-labels-idx1-ubyte.gz   (60000,)        uint8 labels 0..9
    t10k-images-idx3-ubyte.gz    (10000, 28, 28)
    t10k-labels-idx1-ubyte.gz    (10000,)

An IDX file is a 4-byte magic number (two zero bytes, a dtype code, the number
of dimensions), then one big-endian uint32 per dimension, then the items.
"""
from __future__ import annotations

import gzip
import hashlib
import os
import struct
import tempfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

TRAIN_IMAGES = "train-images-idx3-ubyte.gz"
TRAIN_LABELS = "train-labels-idx1-ubyte.gz"
TEST_IMAGES = "t10k-images-idx3-ubyte.gz"
TEST_LABELS = "t10k-labels-idx1-ubyte.gz"

# The four standard files and the MD5 of the official MNIST release of each.
FILES = {
    TRAIN_IMAGES: "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    TRAIN_LABELS: "d53e105ee54ea40749a09fcbcd1e9432",
    TEST_IMAGES: "9fb629c4189551a2d022fa330f9573f3",
    TEST_LABELS: "ec29112dd5afa0611ce80d1b7f02629c",
}

MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)

# IDX dtype codes. Items are stored big-endian.
_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


class DataError(ValueError):
    """A dataset file is missing, unreadable or malformed. The message names the file."""


class DownloadError(RuntimeError):
    """No mirror delivered a file with the expected MD5."""


# ----------------------------------------------------------------------------- reading

def read_idx(path) -> np.ndarray:
    """Read one IDX file (gzip-compressed or raw) into a native-endian NumPy array.

    The items are streamed straight into the array that is returned, so reading a file costs
    little more memory than its result (no whole decompressed copy first)."""
    path, gz = Path(path), False
    try:
        with open(path, "rb") as f:
            gz = f.read(2) == b"\x1f\x8b"   # gzip magic bytes, whatever the file is called
        with (gzip.open if gz else open)(path, "rb") as f:
            return _read_idx_stream(f, path)
    except (OSError, EOFError, zlib.error) as exc:
        if gz:
            raise DataError(f"{path}: corrupt gzip stream: {exc}") from exc
        raise DataError(f"{path}: cannot read: {getattr(exc, 'strerror', None) or exc}") from exc


def _read_idx_stream(f, path):
    """The header checks, then the items read into a new array; `f` is an open binary file."""
    head = f.read(4)
    if len(head) < 4:
        raise DataError(f"{path}: too short for an IDX header ({len(head)} bytes)")
    zero0, zero1, code, ndim = head
    if zero0 != 0 or zero1 != 0:
        raise DataError(f"{path}: not an IDX file: magic number starts with "
                        f"0x{zero0:02x} 0x{zero1:02x}, expected 0x00 0x00")
    if code not in _IDX_DTYPES:
        known = ", ".join(f"0x{c:02x}" for c in _IDX_DTYPES)
        raise DataError(f"{path}: unsupported IDX dtype code 0x{code:02x} (known: {known})")
    if ndim == 0:
        raise DataError(f"{path}: IDX header says 0 dimensions")
    dim_bytes = f.read(4 * ndim)
    if len(dim_bytes) < 4 * ndim:
        raise DataError(f"{path}: truncated header: {ndim} dimensions need "
                        f"{4 + 4 * ndim} bytes, file has {4 + len(dim_bytes)}")
    dims = struct.unpack(f">{ndim}I", dim_bytes)

    dtype = np.dtype(_IDX_DTYPES[code])
    items = np.empty(int(np.prod(dims, dtype=np.int64)), dtype=dtype)
    buf = memoryview(items.view(np.uint8))
    want, got = len(buf), 0
    while got < want:   # in chunks: gzip's reader makes a temporary the size of each request
        n = f.readinto(buf[got:got + (1 << 20)])
        if not n:
            break
        got += n
    if got < want:
        raise DataError(f"{path}: truncated: expected {want} bytes of data for shape "
                        f"{dims}, got {got}")
    extra = len(f.read())
    if extra:
        raise DataError(f"{path}: too long: expected {want} bytes of data for shape "
                        f"{dims}, got {want + extra} ({extra} extra)")
    # big-endian items to native order (no copy for single bytes)
    return items.astype(dtype.newbyteorder("="), copy=False).reshape(dims)


# ----------------------------------------------------------------------------- loading

@dataclass(frozen=True, eq=False)
class Dataset:
    """Train and test splits: x is (N, H*W), y is (N,) int64 labels. x holds floats in [0, 1],
    or the raw uint8 pixels 0..255 when loaded with dtype="uint8" (see `pixels_to_float`)."""

    train_x: object = field(repr=False)  # (N_train, 784)
    train_y: object = field(repr=False)  # (N_train,)
    test_x: object = field(repr=False)   # (N_test, 784)
    test_y: object = field(repr=False)   # (N_test,)
    name: str = ""

    def __repr__(self):
        return (f"Dataset({self.name!r}, train_x={tuple(self.train_x.shape)}, "
                f"test_x={tuple(self.test_x.shape)}, dtype={self.train_x.dtype})")


def default_data_dir() -> Path:
    """Where MNIST lives by default: $MINISNN_DATA if set, else ./data/mnist."""
    return Path(os.environ.get("MINISNN_DATA") or Path("data") / "mnist")


def load_dataset(folder, dtype="float32", xp=None) -> Dataset:
    """Load the four standard IDX files from `folder` (MNIST, Fashion-MNIST, ...).

    Images are flattened to (N, H*W) and scaled to [0, 1] in `dtype`; labels are
    int64. dtype="uint8" keeps the raw pixels 0..255 instead, a quarter of float32's
    memory: scale each batch as it is used (`iterate_batches(..., dtype=...)`), as the
    training loop does. If `xp` (an array module such as cupy) is given, every array
    is moved with `xp.asarray` once, here.
    """
    folder = Path(folder)
    dtype = np.dtype(dtype)
    if dtype.kind != "f" and dtype != np.uint8:
        raise ValueError(f"dtype must be a floating-point type, or uint8 for the raw pixels, "
                         f"got {dtype}")
    missing = [name for name in FILES if not (folder / name).is_file()]
    if missing:
        raise DataError(
            f"missing {', '.join(missing)} in {folder}"
            f"{'' if folder.is_dir() else ' (the folder does not exist)'}. For MNIST run "
            f"`python -m minisnn download --data {folder}`; for another dataset put "
            f"its four files ({', '.join(FILES)}) there.")

    train_x, train_y = _load_split(folder / TRAIN_IMAGES, folder / TRAIN_LABELS)
    test_x, test_y = _load_split(folder / TEST_IMAGES, folder / TEST_LABELS)
    if train_x.shape[1:] != test_x.shape[1:]:
        raise DataError(f"{folder / TRAIN_IMAGES} holds {train_x.shape[1:]} images but "
                        f"{folder / TEST_IMAGES} holds {test_x.shape[1:]} images")

    arrays = []
    for images, labels in ((train_x, train_y), (test_x, test_y)):
        x = images.reshape(len(images), -1)                 # (N, H, W) uint8 -> (N, H*W)
        arrays += [pixels_to_float(x, dtype) if dtype.kind == "f" else x,
                   labels.astype(np.int64)]
    if xp is not None:
        arrays = [xp.asarray(a) for a in arrays]
    return Dataset(*arrays, name=folder.name)


def pixels_to_float(x, dtype):
    """Images as floats in `dtype`: uint8 pixels 0..255 are scaled to [0, 1]; float images
    are only cast (no copy when they already are `dtype`). Works on NumPy and CuPy arrays."""
    dtype = np.dtype(dtype)
    if dtype.kind != "f":
        raise ValueError(f"dtype must be a floating-point type, got {dtype}")
    if x.dtype == np.uint8:
        out = x.astype(dtype)
        out /= 255                                  # 0..255 -> [0, 1], in place
        return out
    return x.astype(dtype, copy=False)


def _load_split(images_path: Path, labels_path: Path):
    """Read one images file and its labels file and check that they belong together."""
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise DataError(f"{images_path}: expected (N, H, W) uint8 images, "
                        f"got shape {images.shape} of {images.dtype}")
    if labels.ndim != 1:
        raise DataError(f"{labels_path}: expected (N,) labels, got shape {labels.shape}")
    if len(images) != len(labels):
        raise DataError(f"count mismatch: {images_path} has {len(images)} images but "
                        f"{labels_path} has {len(labels)} labels")
    return images, labels


# ----------------------------------------------------------------------------- download

def download_mnist(folder=None, mirrors=None, progress=True, timeout=30,
                   md5s: dict | None = None) -> Path:
    """Download the four MNIST files into `folder` (default: default_data_dir()).

    A file already there with the right MD5 is kept without touching the network.
    Otherwise each mirror is tried in turn (`mirrors`, else $MINISNN_MNIST_MIRRORS,
    comma-separated, else MIRRORS). Each download streams into a temporary file in
    `folder`, is checked against its MD5 and only then renamed into place, so a
    half-written file never carries the final name. `md5s` maps file names to
    expected MD5s that replace the official ones (for tests and private copies).
    Returns the folder; raises DownloadError when every mirror fails for a file.
    """
    folder = Path(folder) if folder is not None else default_data_dir()
    if mirrors is None:
        env = os.environ.get("MINISNN_MNIST_MIRRORS", "")
        mirrors = [m.strip() for m in env.split(",") if m.strip()] or MIRRORS
    if isinstance(mirrors, str) or not mirrors:
        raise ValueError(f"mirrors must be a non-empty list of URLs, got {mirrors!r}")
    unknown = set(md5s or {}) - set(FILES)
    if unknown:
        raise ValueError(f"md5s has unknown file names {sorted(unknown)}; known: {list(FILES)}")
    expected = {**FILES, **(md5s or {})}

    folder.mkdir(parents=True, exist_ok=True)
    for name, md5 in expected.items():
        final = folder / name
        if final.is_file() and _md5_of_file(final) == md5:
            continue
        failures = []
        for mirror in mirrors:
            url = mirror.rstrip("/") + "/" + name
            reason = _download_one(url, final, md5, progress, timeout)
            if reason is None:
                break
            failures.append(f"  {url}: {reason}")
        else:
            raise DownloadError(
                f"could not download {name}; every mirror failed:\n" + "\n".join(failures)
                + f"\nTo work offline, put the four files {', '.join(FILES)} into {folder}")
    return folder


def _download_one(url: str, final: Path, md5: str, progress: bool, timeout: float):
    """Fetch `url` into `final` via a temp file. Returns None on success, else why not."""
    from http.client import HTTPException           # the network modules are imported only
    from urllib.error import HTTPError, URLError    # here: loading data does not need them
    fd, tmp = tempfile.mkstemp(dir=final.parent, prefix=f".{final.name}.", suffix=".part")
    os.close(fd)
    try:
        try:
            got = _stream(url, tmp, final.name, progress, timeout)
        except HTTPError as exc:
            return f"HTTP {exc.code} {exc.reason}"
        except URLError as exc:
            return _describe(exc.reason, timeout)
        except (OSError, HTTPException, ValueError) as exc:
            return _describe(exc, timeout)
        if got != md5:
            return f"checksum mismatch: got {got}, expected {md5}"
        os.replace(tmp, final)  # atomic on the same file system
        return None
    finally:
        Path(tmp).unlink(missing_ok=True)  # already gone after a successful replace


def _stream(url: str, tmp: str, label: str, progress: bool, timeout: float) -> str:
    """Copy the body of `url` into the file `tmp`; return the MD5 hex digest of it."""
    import urllib.request
    from tqdm import tqdm
    digest = hashlib.md5()
    with urllib.request.urlopen(url, timeout=timeout) as response, open(tmp, "wb") as out:
        length = response.headers.get("Content-Length")
        total = int(length) if length and length.isdigit() else None
        received = 0
        with tqdm(total=total, desc=label, unit="B", unit_scale=True,
                  unit_divisor=1024, disable=not progress) as bar:
            while chunk := response.read(1 << 16):
                out.write(chunk)
                digest.update(chunk)
                received += len(chunk)
                bar.update(len(chunk))
    if total is not None and received != total:
        raise OSError(f"connection closed early: got {received} of {total} bytes")
    return digest.hexdigest()


def _describe(exc, timeout: float) -> str:
    """A short, human reason for a network failure."""
    import socket
    if isinstance(exc, (TimeoutError, socket.timeout)):
        return f"timed out after {timeout} s"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return str(exc) or type(exc).__name__


def _md5_of_file(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


# ----------------------------------------------------------------------------- batches

def num_batches(n: int, batch_size: int, drop_last: bool = True) -> int:
    """How many batches iterate_batches yields for `n` examples."""
    _check_batch_size(batch_size)
    return n // batch_size if drop_last else -(-n // batch_size)


def iterate_batches(x, y, batch_size, shuffle=True, seed=0, epoch=0, drop_last=True,
                    dtype=None):
    """Yield (xb, yb) mini-batches: xb is (B, ...) rows of x, yb the matching labels.

    With shuffle, the order comes from np.random.default_rng([seed, epoch]): the
    same seed and epoch give the same order, another epoch gives another order.
    dtype: convert each xb with `pixels_to_float(xb, dtype)` (None: rows as stored).
    x and y may be NumPy or CuPy arrays. Arguments are checked right away.
    """
    _check_batch_size(batch_size)
    if len(x) != len(y):
        raise ValueError(f"x has {len(x)} rows but y has {len(y)}")
    if dtype is not None and np.dtype(dtype).kind != "f":
        raise ValueError(f"dtype must be a floating-point type or None, got {np.dtype(dtype)}")
    order = np.random.default_rng([seed, epoch]).permutation(len(x)) if shuffle else None
    return _batches(x, y, batch_size, order, num_batches(len(x), batch_size, drop_last), dtype)


def _batches(x, y, batch_size, order, count, dtype):
    if order is not None:  # move the permutation once to where each array lives
        order_x, order_y = _module_of(x).asarray(order), _module_of(y).asarray(order)
    for b in range(count):
        s = slice(b * batch_size, (b + 1) * batch_size)
        xb, yb = (x[s], y[s]) if order is None else (x[order_x[s]], y[order_y[s]])
        yield (xb if dtype is None else pixels_to_float(xb, dtype)), yb


def _module_of(a):
    """numpy, or cupy when `a` is a CuPy array (cupy is imported only then)."""
    if type(a).__module__.split(".")[0] == "cupy":
        import cupy
        return cupy
    return np


def _check_batch_size(batch_size):
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) \
            or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")

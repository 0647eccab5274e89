"""MNIST-style data sets: the four standard files, the sample bundled with minisnn, loading a
folder into arrays, and `resolve_data`, the one rule that chooses which data a tool uses.
"""
import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np

from .idx import DataError, read_idx

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

# The data sets that ship inside the package (mnist-sample/README.md: provenance, licence):
# name -> (folder, MD5 of each file). A string equal to one of these names means the bundled
# files wherever a data folder is expected; a folder of that name in the current directory is
# reached as "./mnist-sample" or Path("mnist-sample").
SAMPLE = "mnist-sample"
BUNDLED = {
    SAMPLE: (Path(__file__).resolve().parent / SAMPLE, {
        TRAIN_IMAGES: "661a00f6834ea504a083abb6156444cc",
        TRAIN_LABELS: "7dc3f26514f21131b416ebaacae5ffb3",
        TEST_IMAGES: FILES[TEST_IMAGES],     # the official test set, unchanged
        TEST_LABELS: FILES[TEST_LABELS],
    }),
}
FULL_MNIST_HINT = "for full MNIST: python -m minisnn download"


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
    """Where MNIST is downloaded to by default: $MINISNN_DATA if set, else ./data/mnist."""
    return Path(os.environ.get("MINISNN_DATA") or Path("data") / "mnist")


class DataChoice(NamedTuple):
    """What `resolve_data` chose: `source` for load_dataset (a folder, or a bundled name); for
    the user, `message` (which data), `why` (why these) and `hint` (how to get full MNIST)."""

    source: object
    message: str
    why: str = ""
    hint: str = ""

    def line(self, data=None) -> str:
        """One line for the user, e.g. 'Data: data/mnist (60000 training, 10000 test images)'.
        With `data` (the loaded Dataset) it gives the image counts."""
        counts = "" if data is None else (f" ({len(data.train_x)} training, "
                                          f"{len(data.test_x)} test images)")
        return (f"Data: {self.message}{counts}" + (f", {self.why}" if self.why else "")
                + (f"; {self.hint}" if self.hint else ""))


def resolve_data(data=None, root=".") -> DataChoice:
    """The one data rule of minisnn (the CLI, the tutorials and the benchmark all call it):

    1. `data` if given (a folder, or the name of a bundled data set such as "mnist-sample"),
       else $MINISNN_DATA if set: an explicit choice, used as is (never replaced by another);
    2. else `root`/data/mnist, if it holds the four files (where `minisnn download` puts MNIST);
    3. else the MNIST sample bundled with minisnn (5,000 training, 10,000 test images).

    Returns a DataChoice; nothing is read here, only the names in data/mnist are looked at."""
    if data is not None and str(data) != "":
        return _explicit(data, "")
    if os.environ.get("MINISNN_DATA"):
        return _explicit(os.environ["MINISNN_DATA"], "from $MINISNN_DATA")
    local = Path(root) / "data" / "mnist"
    missing = [f for f in FILES if not (local / f).is_file()]
    if not missing:
        return DataChoice(local, str(local))
    why = (f"since {local} lacks {', '.join(missing)}" if len(missing) < len(FILES)
           else f"since {local} has no MNIST")
    return DataChoice(SAMPLE, "the bundled MNIST sample", why, FULL_MNIST_HINT)


def _explicit(data, why):
    if _bundled(data):
        return DataChoice(data, "the bundled MNIST sample", why, FULL_MNIST_HINT)
    return DataChoice(Path(data), str(data), why)


def _bundled(data) -> bool:
    """True for the name of a bundled data set given as a string (not a Path)."""
    return isinstance(data, str) and data in BUNDLED


def load_dataset(folder, dtype="float32", xp=None) -> Dataset:
    """Load the four standard IDX files from `folder` (MNIST, Fashion-MNIST, ...), or the data
    set bundled with minisnn when `folder` is its name (`load_dataset("mnist-sample")`, whose
    files are first checked against their MD5s).

    Images are flattened to (N, H*W) and scaled to [0, 1] in `dtype`; labels are
    int64. dtype="uint8" keeps the raw pixels 0..255 instead, a quarter of float32's
    memory: scale each batch as it is used (`iterate_batches(..., dtype=...)`), as the
    training loop does. If `xp` (an array module such as cupy) is given, every array
    is moved with `xp.asarray` once, here.
    """
    dtype = np.dtype(dtype)
    if dtype.kind != "f" and dtype != np.uint8:
        raise ValueError(f"dtype must be a floating-point type, or uint8 for the raw pixels, "
                         f"got {dtype}")
    name = folder if _bundled(folder) else Path(folder).name
    folder = _bundled_folder(folder) if _bundled(folder) else Path(folder)
    missing = [f for f in FILES if not (folder / f).is_file()]
    if missing:
        raise DataError(
            f"missing {', '.join(missing)} in {folder}"
            f"{'' if folder.is_dir() else ' (the folder does not exist)'}. For MNIST run "
            f"`python -m minisnn download --data {folder}`; for another dataset put "
            f"its four files ({', '.join(FILES)}) there; without --data or $MINISNN_DATA, "
            f"minisnn uses its bundled MNIST sample.")

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
    return Dataset(*arrays, name=name)


def _bundled_folder(name) -> Path:
    """The folder of a bundled data set, after checking every file against its MD5."""
    folder, md5s = BUNDLED[name]
    for file, md5 in md5s.items():
        path = folder / file
        if not path.is_file():
            raise DataError(f"the bundled data set {name!r} lacks {path}: this installation of "
                            f"minisnn is incomplete; reinstall it")
        got = _md5_of_file(path)
        if got != md5:
            raise DataError(f"the bundled data set {name!r} is damaged: {path} has MD5 {got}, "
                            f"expected {md5}; reinstall minisnn")
    return folder


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


def _md5_of_file(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


"""Builders for the training-run tests: tiny MNIST-style IDX folders, `python -m minisnn` as a
real subprocess, and what a run folder holds (pure functions; every test makes its own data)."""
import gzip
import os
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np

from minisnn import data as data_mod

REPO = Path(__file__).resolve().parents[1]
TINY = ["--hidden", "16", "--steps", "3", "--batch-size", "32"]
ENV = {**os.environ, "PYTHONPATH": str(REPO), "MPLBACKEND": "Agg"}

_IDX_CODES = {np.dtype(np.uint8): 0x08, np.dtype(">f4"): 0x0D}


def write_idx(path, array, dtype=np.uint8):
    """Write an array as a gzip-compressed IDX file (uint8 items, or big-endian float32)."""
    dtype = np.dtype(dtype).newbyteorder(">") if np.dtype(dtype).kind == "f" else np.dtype(dtype)
    header = bytes([0, 0, _IDX_CODES[dtype], array.ndim]) + struct.pack(f">{array.ndim}I",
                                                                      *array.shape)
    path.write_bytes(gzip.compress(header + array.astype(dtype).tobytes()))


def write_mnist_like(folder, n_train=320, n_test=200, seed=0, label_dtype=np.uint8):
    """Four IDX files of 28x28 images; class c brightens rows 2c..2c+3, so it can be learned."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for images, labels, n in ((data_mod.TRAIN_IMAGES, data_mod.TRAIN_LABELS, n_train),
                              (data_mod.TEST_IMAGES, data_mod.TEST_LABELS, n_test)):
        y = rng.integers(0, 10, n)
        x = rng.integers(0, 60, (n, 28, 28))
        for i, c in enumerate(y):
            x[i, 2 * c + 2:2 * c + 6, 4:24] += 190
        write_idx(folder / images, x)
        write_idx(folder / labels, y, label_dtype)
    return folder


def minisnn(*args, popen=False, **kw):
    """`python -m minisnn ARGS` in a real process (text mode; stdout and stderr captured)."""
    cmd = [sys.executable, "-m", "minisnn", *map(str, args)]
    kw = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "text": True, "env": ENV, **kw}
    if popen:
        return subprocess.Popen(cmd, **kw)
    return subprocess.run(cmd, timeout=120, **kw)


def hidden_entries(folder):
    """Names starting with '.' in `folder`: locks and temporary files a run left behind."""
    return sorted(p.name for p in Path(folder).iterdir() if p.name.startswith("."))


def checkpoint_arrays(path):
    """Every array of a checkpoint but its info: parameters and optimizer state."""
    with np.load(path) as z:
        return {k: z[k] for k in z.files if k != "info"}


def same_arrays(a, b):
    return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def folder_bytes(folder):
    return {p.name: p.read_bytes() for p in Path(folder).iterdir()}

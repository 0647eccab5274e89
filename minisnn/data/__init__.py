"""Data: read IDX files, load MNIST-style folders, choose the data, download MNIST, batches.

MNIST and Fashion-MNIST ship as four IDX files (gzip-compressed, as a rule):

    train-images-idx3-ubyte.gz   (60000, 28, 28) uint8 pixels 0..255
    train-labels-idx1-ubyte.gz   (60000,)        uint8 labels 0..9
    t10k-images-idx3-ubyte.gz    (10000, 28, 28)
    t10k-labels-idx1-ubyte.gz    (10000,)

minisnn ships a small sample of real MNIST as package data, "mnist-sample" (5,000 training
images, the official 10,000 test images; provenance, licence and MD5s in mnist-sample/README.md),
so that it trains anywhere without a download. Which data a tool uses is decided by ONE rule,
`resolve_data`: the folder given (--data or $MINISNN_DATA), else data/mnist if it holds the four
files, else the bundled sample.

    from minisnn.data import load_dataset, resolve_data
    data = load_dataset("mnist-sample")            # train_x (5000, 784) floats in [0, 1], ...
    choice = resolve_data()                        # what `python -m minisnn train` would use
    print(choice.line()); data = load_dataset(choice.source)

One concept per module: idx.py (the file format), datasets.py (the four files, the bundled
sample, loading, the data rule), download.py (the downloader), batches.py (mini-batches).
"""
from .batches import iterate_batches, num_batches
from .datasets import (BUNDLED, FILES, FULL_MNIST_HINT, SAMPLE, TEST_IMAGES, TEST_LABELS,
                       TRAIN_IMAGES, TRAIN_LABELS, DataChoice, Dataset, default_data_dir,
                       load_dataset, pixels_to_float, resolve_data)
from .download import MIRRORS, DownloadError, download_mnist
from .idx import DataError, read_idx

__all__ = ["BUNDLED", "FILES", "FULL_MNIST_HINT", "MIRRORS", "SAMPLE", "TEST_IMAGES",
           "TEST_LABELS", "TRAIN_IMAGES", "TRAIN_LABELS", "DataChoice", "DataError", "Dataset",
           "DownloadError", "default_data_dir", "download_mnist", "iterate_batches",
           "load_dataset", "num_batches", "pixels_to_float", "read_idx", "resolve_data"]

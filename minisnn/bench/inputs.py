"""The images the benchmark trains on: an MNIST-style folder, or random pixels."""


def find_data(explicit=None):
    """The data to use, by minisnn's one data rule (`minisnn.data.resolve_data`: --data, else
    $MINISNN_DATA, else data/mnist, else the bundled MNIST sample), as a string a worker process
    can load; None (random images) for --data random."""
    from ..data import resolve_data
    if explicit == "random":
        return None
    return str(resolve_data(explicit).source)


def load_arrays(folder, seed=0, random_size=(5000, 1000), num_inputs=784, num_classes=10):
    """Train and test images (N, 784) as uint8 pixels 0..255 and int64 labels, as NumPy arrays:
    the IDX files in `folder`, or uniform random pixels with random labels when it is None
    (timing barely depends on the pixels). Both frameworks hold the pixels so, as `minisnn
    train` and torchvision's MNIST do, and scale each batch to float32 in [0, 1] as it is used."""
    import numpy as np
    if folder is not None:
        from ..data import load_dataset
        d = load_dataset(folder, dtype="uint8")
        return d.train_x, d.train_y, d.test_x, d.test_y, d.name
    rng = np.random.default_rng(seed)
    arrays = []
    for n in random_size:
        arrays += [rng.integers(0, 256, (n, num_inputs), dtype=np.uint8),
                   rng.integers(0, num_classes, n).astype(np.int64)]
    return (*arrays, "random")


def timing_batches(train_x, train_y, batch, count=4, shape=None):
    """A few (x, y) batches for timing, x float32 in [0, 1] (reshaped to (batch,) + shape when
    given): consecutive rows, repeated when the set is small."""
    import numpy as np
    from ..data import pixels_to_float
    reps = -(-batch * count // len(train_x))
    x = np.concatenate([train_x] * reps) if reps > 1 else train_x
    y = np.concatenate([train_y] * reps) if reps > 1 else train_y
    out = []
    for i in range(count):
        xb = pixels_to_float(x[i * batch:(i + 1) * batch], "float32")
        out.append((xb if shape is None else xb.reshape((len(xb),) + tuple(shape)),
                    y[i * batch:(i + 1) * batch]))
    return out

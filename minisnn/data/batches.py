"""Mini-batches: shuffled (reproducibly, per epoch) rows of NumPy or CuPy arrays."""
import numpy as np

from .datasets import pixels_to_float

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

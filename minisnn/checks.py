"""Input validation: every bad input gets one clear error naming the argument and what was expected.

Shapes, dtypes and backends are checked everywhere. *Values* (NaN or inf in x, labels out of
range) are checked on NumPy arrays only: on CuPy that check would copy a flag to the host and
stall the GPU at every step. Validate device data once, when it is loaded (`minisnn.train`
does).
"""
import numpy as np

from .backend import get_xp, is_cupy_array


def check_array(a, name):
    if not (isinstance(a, np.ndarray) or is_cupy_array(a)):
        raise TypeError(f"{name} must be a NumPy or CuPy array, got {type(a).__name__}")
    return a


def check_float_input(x, name, dtype):
    """x must be a finite floating array of the network's dtype."""
    check_array(x, name)
    if x.dtype != dtype:
        raise TypeError(f"{name} has dtype {x.dtype} but the network computes in {dtype}; "
                        f"convert it with {name}.astype('{dtype}') (the engine never changes "
                        f"dtypes silently)")
    if not is_cupy_array(x) and not bool(get_xp(x).isfinite(x).all()):
        raise ValueError(f"{name} contains NaN or inf")
    return x


def check_num_steps(num_steps):
    if isinstance(num_steps, bool) or not isinstance(num_steps, (int, np.integer)) or num_steps < 1:
        raise ValueError(f"num_steps must be an integer >= 1, got {num_steps!r}")
    return int(num_steps)


def check_labels(y, batch, num_classes, like):
    """y: integer class labels (B,) in [0, num_classes), B >= 1, on the same backend as `like`."""
    check_array(y, "y")
    if is_cupy_array(y) != is_cupy_array(like):
        raise TypeError("y and the network outputs must be on the same backend (both NumPy or "
                        "both CuPy); move y explicitly with minisnn.backend.to_xp")
    if y.dtype.kind not in "iu":
        raise TypeError(f"y must hold integer class labels, got dtype {y.dtype}; convert "
                        f"labels explicitly (the engine never rounds them silently)")
    if batch == 0:
        raise ValueError("the batch is empty (0 examples): a loss is a mean over the batch and "
                         "needs at least one example")
    if y.ndim != 1 or y.shape[0] != batch:
        raise ValueError(f"y must have shape ({batch},) to match the batch of the outputs, "
                         f"got {tuple(y.shape)}")
    if batch and not is_cupy_array(y) and (int(y.min()) < 0 or int(y.max()) >= num_classes):
        raise ValueError(f"y must hold labels in [0, {num_classes}), got values from "
                         f"{int(y.min())} to {int(y.max())}")
    return y


def check_record(a, name, ndim=3):
    check_array(a, name)
    if a.ndim != ndim:
        raise ValueError(f"{name} must have shape (T, B, C), got {tuple(a.shape)}")
    return a

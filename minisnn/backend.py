"""The backend seam: every array operation in the engine goes through an array module `xp`.

The engine never names NumPy in its equations. Each function takes `xp` from its input with
`get_xp(x)`, so the same code runs on NumPy arrays (CPU) or CuPy arrays (GPU). New arrays
(parameters, buffers) are created with the *default* backend, which `set_backend` chooses.
CuPy is imported only when it is asked for.
"""
import numpy

_CUPY_HINT = ('install it with  pip install "minisnn[cuda]"  (CUDA 12) or  '
              'pip install "minisnn[cuda13]"  (CUDA 13), on a machine with an NVIDIA GPU')

# The one piece of module state: which array module new parameters are created on.
_default = {"xp": numpy}


def _import_cupy():
    """Import CuPy and check that a GPU is usable; raise a clear error otherwise."""
    try:
        import cupy
    except Exception as e:
        if isinstance(e, ModuleNotFoundError) and e.name == "cupy":
            raise RuntimeError(f"backend 'cupy' needs CuPy, which is not installed: "
                               f"{_CUPY_HINT}") from e
        # installed, but built for another CUDA version, or one of its libraries is missing
        raise RuntimeError(f"backend 'cupy': CuPy is installed but could not be imported ({e}); "
                           f"{_CUPY_HINT}") from e
    try:
        n = cupy.cuda.runtime.getDeviceCount()
    except Exception as e:  # CUDA driver missing or broken
        raise RuntimeError(f"backend 'cupy': CuPy is installed but no CUDA GPU is usable ({e}); "
                           f"{_CUPY_HINT}") from e
    if n < 1:
        raise RuntimeError(f"backend 'cupy': CuPy is installed but found no CUDA GPU; {_CUPY_HINT}")
    return cupy


def array_module(name):
    """Return the array module for a backend name: 'numpy' or 'cupy' (a module passes through)."""
    if not isinstance(name, str):
        if hasattr(name, "asarray") and hasattr(name, "zeros"):
            return name
        raise TypeError(f"backend must be 'numpy' or 'cupy', got {name!r}")
    key = name.lower()
    if key == "numpy":
        return numpy
    if key == "cupy":
        return _import_cupy()
    raise ValueError(f"backend must be 'numpy' or 'cupy', got {name!r}")


def set_backend(name):
    """Make `name` ('numpy' or 'cupy') the module that new parameters are created with."""
    _default["xp"] = array_module(name)


def get_backend():
    """The array module new parameters are created with (NumPy unless `set_backend` changed it)."""
    return _default["xp"]


def is_cupy_array(a):
    return type(a).__module__.split(".")[0] == "cupy"


def get_xp(*arrays):
    """The array module of the given arrays: CuPy if any is a CuPy array, else NumPy."""
    for a in arrays:
        if is_cupy_array(a):
            import cupy
            return cupy
    return numpy


def backend_name(xp):
    return "cupy" if xp.__name__.split(".")[0] == "cupy" else "numpy"


def to_numpy(a):
    """Explicit device -> host copy (a no-op for NumPy arrays)."""
    return a.get() if is_cupy_array(a) else numpy.asarray(a)


def to_xp(a, xp):
    """Explicit copy of `a` onto the backend `xp` (a no-op when it is already there)."""
    if xp is numpy:
        return to_numpy(a)
    return xp.asarray(a)


def synchronize(xp):
    """Wait until the device has finished the work queued so far (a no-op on NumPy). GPU work is
    asynchronous: time a step only after synchronizing."""
    if backend_name(xp) == "cupy":
        xp.cuda.get_current_stream().synchronize()

"""The backend seam: every array operation in the engine goes through an array module `xp`.

The engine never names NumPy in its equations. Each function takes `xp` from its input with
`get_xp(x)`, so the same code runs on NumPy arrays (CPU) or CuPy arrays (GPU). New arrays
(parameters, buffers) are created with the *default* backend, which `set_backend` chooses.
CuPy is imported only when it is asked for.
"""
import numpy

_CUPY_HINT = ('install it with  pip install "minisnn[cuda]"  (CUDA 12) or  '
              'pip install "minisnn[cuda13]"  (CUDA 13), on a machine with an NVIDIA GPU and its '
              'driver (the extras bring CuPy >= 14 with the CUDA libraries it compiles with)')

# Module state: which array module new parameters are created on, and the CuPy module whose
# kernel compiler has been seen to work (checked once per process, see _check_kernels).
_default = {"xp": numpy, "cupy_checked": None}

# A tiny kernel that `array_module("cupy")` compiles and launches once. CuPy >= 14 wheels carry
# neither NVRTC nor the CUDA headers (the [ctk] extra brings them): without them `import cupy`
# and the device count succeed and the first kernel compile fails. Better here, with the install
# hint, than in the middle of training.
PROBE_NAME = "minisnn_probe"
PROBE_PARAMS = (("float*", "out"), ("int", "n"))
PROBE_SOURCE = r"""
extern "C" __global__ void minisnn_probe(float* __restrict__ out, int n)
{
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n)
        out[i] = 0.5f * (float)i + 1.0f;
}
"""


def _one_line(error, limit=400):
    text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) <= limit else text[:limit] + " ..."


def _check_kernels(cupy, n_gpus):
    """Compile PROBE_SOURCE with NVRTC (the options the fused kernels use), launch it and check
    what it wrote; raise a clear error otherwise. Done once per CuPy module."""
    if _default["cupy_checked"] is cupy:
        return
    n = 64
    try:
        out = cupy.zeros(n, dtype=cupy.float32)
        kernel = cupy.RawModule(code=PROBE_SOURCE, options=("--fmad=false",)).get_function(
            PROBE_NAME)
        kernel((1,), (n,), (out, numpy.int32(n)))
        got = out.get()
    except Exception as e:
        raise RuntimeError(
            f"backend 'cupy': CuPy {getattr(cupy, '__version__', '?')} sees {n_gpus} GPU(s) but "
            f"could not compile and run a CUDA kernel ({_one_line(e)}); NVRTC or the CUDA headers "
            f"are probably missing: {_CUPY_HINT}") from e
    want = numpy.arange(n, dtype=numpy.float32) * numpy.float32(0.5) + numpy.float32(1)
    if not numpy.array_equal(got, want):
        raise RuntimeError(f"backend 'cupy': a test kernel ran but wrote wrong values "
                           f"({got[:4]} ..., expected {want[:4]} ...); the GPU or its driver is "
                           f"not working")
    _default["cupy_checked"] = cupy


def _import_cupy():
    """Import CuPy, check that a GPU is usable and that CuPy can compile and run a kernel on it;
    raise a clear error otherwise."""
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
    _check_kernels(cupy, n)
    return cupy


def array_module(name):
    """Return the array module for a backend name: 'numpy' or 'cupy' (a module passes through).
    The first time CuPy is asked for, it must also compile and run a small kernel."""
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

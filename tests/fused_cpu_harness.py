"""Run minisnn's fused-kernel source on the CPU, so its arithmetic can be checked without a GPU.

`minisnn.fused` writes its kernels once, in the common subset of C and CUDA C++. This harness
builds that very source two ways and loads it with ctypes:

  target 'c'         kernel_source(..., target='c') compiled by gcc: each kernel is a plain C
                     function whose MS_FOR_EACH_NEURON is a loop over all elements.
  target 'cuda-emu'  kernel_source(..., target='cuda') -- the text NVRTC gets -- compiled by g++
                     with stand-ins for __global__, blockIdx, threadIdx, ...; a launch is emulated
                     by running every (block, thread) of a small grid one after another, so the
                     grid-stride indexing of the CUDA branch runs too.

Each target plugs into `fused.FusedLeaky` exactly as the CuPy target does, so the host-side code
(argument packing, flags, output shapes, the ∂L/∂β reduction) runs as well. Every argument is
checked against the kernel's declared C parameter type: a float64 passed where the kernel takes
float would go unnoticed by CuPy (which passes scalars by their NumPy size) but fails here.

`routed(kernels)` sends the engine's Leaky layers through these kernels while NumPy arrays flow:
it makes `Leaky._fused` believe it is on CuPy and hands it the CPU-built kernels.

Two more pieces, further down: `make_array_module`, a CuPy-like array library on the CPU (the
engine must run on it without calling NumPy: tests/test_backend.py), and a CuPy emulator built
from it plus the 'cuda-emu' build of the kernels, so that tests/test_gpu.py can be dry-run
without a GPU (`write_cupy_emulator`; test_fused_logic.py runs part of it).
"""
import contextlib
import ctypes
import hashlib
import os
import shutil
import subprocess
import sys
import time
import types
import warnings
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from minisnn import backend, fused, neuron

C_FLAGS = ["-std=c99", "-O2", "-ffp-contract=off", "-fPIC", "-shared", "-Wall", "-Wextra",
           "-Wno-unused-parameter"]
CXX_FLAGS = ["-std=c++11", "-O2", "-ffp-contract=off", "-fPIC", "-shared", "-Wall", "-Wextra",
             "-Wno-unused-parameter"]

# Enough of CUDA for g++ to compile the 'cuda' source; a launch sets these and calls the kernel.
CUDA_PRELUDE = r"""
#include <math.h>
struct ms_dim3 { unsigned x, y, z; };
static ms_dim3 blockIdx, threadIdx, blockDim, gridDim;
#define __global__
#define __device__
#define __forceinline__ inline
"""

EMU_BLOCK, EMU_MAX_BLOCKS = 4, 3   # a tiny grid: most threads take several elements


def compilers_available():
    return shutil.which("gcc") is not None and shutil.which("g++") is not None


def _plain_params(params):
    return ", ".join(f"{ctype} {name}" for ctype, name in params)


def _emulation_driver(name, params):
    """An exported function that runs kernel `name` for every (block, thread) of a grid."""
    names = ", ".join(n for _, n in params)
    return (f'extern "C" void emulate_{name}(unsigned grid, unsigned block, '
            f'{_plain_params(params)})\n{{\n'
            f"    gridDim.x = grid; gridDim.y = gridDim.z = 1;\n"
            f"    blockDim.x = block; blockDim.y = blockDim.z = 1;\n"
            f"    for (unsigned b = 0; b < grid; ++b)\n"
            f"        for (unsigned t = 0; t < block; ++t) {{\n"
            f"            blockIdx.x = b; threadIdx.x = t;\n"
            f"            {name}({names});\n"
            f"        }}\n}}\n")


class CpuTarget:
    """A `fused.FusedLeaky` target: key -> (forward, backward) launchers built with gcc or g++.
    Its kernels take NumPy arrays (`check`) and ctypes' None as the null pointer."""

    array_kind = "NumPy array"
    null = None

    @staticmethod
    def check(a):
        return None if isinstance(a, np.ndarray) else f"a {type(a).__module__}.{type(a).__name__}"

    def __init__(self, workdir, kind="c"):
        if kind not in ("c", "cuda-emu"):
            raise ValueError(kind)
        self.workdir, self.kind = Path(workdir), kind
        self.compiled = []          # keys, in the order they were compiled
        self.launches = Counter()   # kernel name -> number of launches

    def source(self, key):
        if self.kind == "c":
            return fused.kernel_source(*key, target="c")
        drivers = "".join(_emulation_driver(n, p) for n, p in
                          zip(fused.KERNEL_NAMES, (fused.FORWARD_PARAMS, fused.BACKWARD_PARAMS)))
        return CUDA_PRELUDE + fused.kernel_source(*key, target="cuda") + "\n" + drivers

    def __call__(self, key):
        src = self.source(key)
        tag = hashlib.sha1(src.encode()).hexdigest()[:16]
        ext, cc, flags = (".c", "gcc", C_FLAGS) if self.kind == "c" else (".cpp", "g++", CXX_FLAGS)
        lib = _compile(src, self.workdir / f"k{tag}{ext}", cc, flags)
        self.compiled.append(key)
        real = np.dtype(key[0])
        return tuple(self._launcher(lib, name, params, real) for name, params in
                     zip(fused.KERNEL_NAMES, (fused.FORWARD_PARAMS, fused.BACKWARD_PARAMS)))

    def _launcher(self, lib, name, params, real):
        fn = getattr(lib, name if self.kind == "c" else f"emulate_{name}")
        scalar = {"real": (real.type, ctypes.c_float if real == np.float32 else ctypes.c_double),
                  "int": (np.int32, ctypes.c_int), "long long": (np.int64, ctypes.c_longlong)}
        extra = [] if self.kind == "c" else [ctypes.c_uint, ctypes.c_uint]
        fn.argtypes = extra + [ctypes.c_void_p if c.endswith("*") else scalar[c][1]
                               for c, _ in params]
        fn.restype = None

        def launch(n, args):
            assert len(args) == len(params), (name, len(args))
            c_args = []
            for (ctype, pname), a in zip(params, args):
                if ctype.endswith("*"):
                    want = np.dtype("float64") if "double" in ctype else real
                    if a is None:
                        c_args.append(None)
                        continue
                    assert isinstance(a, np.ndarray), (pname, type(a))
                    assert a.dtype == want, f"{name}: {pname} is {a.dtype}, the kernel takes {want}"
                    assert a.flags.c_contiguous, f"{name}: {pname} is not contiguous"
                    if not ctype.startswith("const"):
                        assert a.flags.writeable, f"{name}: {pname} is read-only"
                    c_args.append(a.ctypes.data)
                else:
                    assert type(a) is scalar[ctype][0], \
                        f"{name}: {pname} is {type(a).__name__}, the kernel takes {ctype}"
                    c_args.append(a.item())
            if self.kind == "c":
                fn(*c_args)
            else:
                blocks = min(-(-n // EMU_BLOCK), EMU_MAX_BLOCKS)
                fn(blocks, EMU_BLOCK, *c_args)
            self.launches[name] += 1
        return launch


def cpu_kernels(workdir, kind="c"):
    """A FusedLeaky whose kernels are the CPU build of the fused source."""
    return fused.FusedLeaky(CpuTarget(workdir, kind))


def all_keys():
    """Every (dtype, reset, detach_reset, surrogate) the kernels are specialised on."""
    return [(dtype, reset, detach, cls.name) for dtype in fused.DTYPES
            for reset in fused.RESET_CODES for detach in (True, False)
            for cls in fused.SURROGATE_CODES]


def precompile(kernels_list, keys):
    """Build the given keys for several FusedLeaky objects at once, in parallel (compiling is
    most of this harness's time)."""
    jobs = [(k, key) for k in kernels_list for key in keys]
    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 1)) as pool:
        built = list(pool.map(lambda job: job[0].target(job[1]), jobs))
    for (k, key), launchers in zip(jobs, built):
        k._launchers[key] = launchers


@contextlib.contextmanager
def routed(kernels):
    """Inside the block, Leaky layers on NumPy arrays take the fused path with `kernels`, through
    the engine's own dispatch: Leaky._fused -> fused.kernels_for -> (here) `kernels`."""
    saved = neuron.backend_name, fused._cupy_kernels
    neuron.backend_name = lambda xp: "cupy"
    fused._cupy_kernels = lambda: kernels
    try:
        yield kernels
    finally:
        neuron.backend_name, fused._cupy_kernels = saved


# ============================================================================ CuPy-like arrays
# An array library other than NumPy, on the CPU: arrays hold a NumPy array inside but behave,
# where it matters, like CuPy's. They refuse to become NumPy arrays implicitly (np.asarray(a),
# np.exp(a), np.sum(a), a + np.ones(3) all raise TypeError, as with CuPy); the module offers
# only functions CuPy has (FUNCTIONS) and records each call; every device -> host copy
# (bool/float/int of an array, .get(), .item()) and every upload of a host array is recorded
# with the minisnn function it came from. tests/test_backend.py runs the engine on one
# ('fakexp'); the CuPy emulator below is another, named 'cupy'.

FUNCTIONS = (
    "zeros", "empty", "ones", "full", "zeros_like", "empty_like", "ones_like", "full_like",
    "arange", "linspace", "abs", "exp", "log", "log1p", "sqrt", "square", "tanh", "arctan",
    "maximum", "minimum", "where", "clip", "sign", "broadcast_to", "isfinite", "isnan",
    "multiply", "divide", "add", "subtract", "negative", "greater", "greater_equal", "less",
    "less_equal", "equal", "logical_and", "logical_or", "logical_not", "ascontiguousarray",
    "concatenate", "stack", "sum", "mean", "argmax", "matmul", "dot", "einsum", "reciprocal",
    "power", "expand_dims", "copyto", "allclose", "array_equal", "moveaxis")
CONSTANTS = ("float16", "float32", "float64", "int32", "int64", "uint8", "bool_", "dtype",
             "pi", "inf", "nan", "newaxis")
METHODS = ("reshape", "sum", "mean", "max", "min", "argmax", "argmin", "any", "all", "astype",
           "copy", "ravel", "transpose", "fill", "squeeze", "cumsum", "prod", "var", "std",
           "clip", "dot", "nonzero", "take", "swapaxes")


class SynchronizeRefused(RuntimeError):
    """A device -> host copy while they are refused (the emulator's refuse_synchronize)."""


def _site():
    """The innermost minisnn function on the call stack, as 'module.function' ('test' if none)."""
    f = sys._getframe(2)
    while f is not None:
        name = f.f_globals.get("__name__", "")
        if name.startswith("minisnn"):
            return f"{name.split('.')[-1]}.{f.f_code.co_name}"
        f = f.f_back
    return "test"


def _unwrap(x):
    if isinstance(x, DeviceArray):
        return x._a
    if isinstance(x, np.ndarray):
        raise TypeError("a NumPy array mixed with a device array (CuPy refuses this too); "
                        "move it explicitly with minisnn.backend.to_xp")
    if isinstance(x, (tuple, list)):
        return type(x)(_unwrap(v) for v in x)
    return x


def _unwrap_kw(kwargs):
    return {k: _unwrap(v) for k, v in kwargs.items()}


def _wrap(r, cls):
    if isinstance(r, np.ndarray):
        return cls(r)
    if isinstance(r, np.generic):                # CuPy reductions give 0-d arrays, not scalars
        return cls(np.asarray(r))
    if isinstance(r, tuple):
        return tuple(_wrap(v, cls) for v in r)
    return r


class DeviceArray:
    """Base of the CuPy-like array types; `make_array_module` makes one per fake module."""
    __slots__ = ("_a",)
    __array_ufunc__ = None    # NumPy ufuncs and ndarray operators defer to us, or refuse
    __hash__ = None
    events = None             # per type: list of (kind, site), kind 'sync' or 'upload'
    allow_sync = True

    def __init__(self, a):
        assert isinstance(a, np.ndarray)
        self._a = a

    def __array__(self, *args, **kwargs):
        raise TypeError("implicit conversion of a device array to a NumPy array "
                        "(CuPy refuses it too); use .get() or minisnn.backend.to_numpy")

    def __array_function__(self, func, types, args, kwargs):
        raise TypeError(f"numpy.{func.__name__} called on a device array: use the array module "
                        f"xp = get_xp(...) instead")

    shape = property(lambda self: self._a.shape)
    dtype = property(lambda self: self._a.dtype)
    ndim = property(lambda self: self._a.ndim)
    size = property(lambda self: self._a.size)
    nbytes = property(lambda self: self._a.nbytes)
    itemsize = property(lambda self: self._a.itemsize)
    T = property(lambda self: type(self)(self._a.T))
    flags = property(lambda self: self._a.flags)
    device = property(lambda self: types.SimpleNamespace(id=0))

    def __getattr__(self, name):
        if name not in METHODS:
            raise AttributeError(f"{type(self).__name__} has no attribute {name!r} (if CuPy "
                                 f"arrays have it, add it to METHODS)")
        method, cls = getattr(self._a, name), type(self)
        return lambda *a, **k: _wrap(method(*_unwrap(a), **_unwrap_kw(k)), cls)

    def __len__(self):
        return len(self._a)

    def __iter__(self):
        return (type(self)(row) for row in self._a)

    def __getitem__(self, key):
        return _wrap(self._a[_unwrap(key)], type(self))

    def __setitem__(self, key, value):
        self._a[_unwrap(key)] = _unwrap(value)

    def __repr__(self):
        return f"{type(self).__name__}({self._a!r})"

    # device -> host copies: allowed (CuPy allows them), but recorded
    def _sync(self, convert):
        if not type(self).allow_sync:
            raise type(self).sync_error(f"device synchronization in {_site()}")
        type(self).events.append(("sync", _site()))
        return convert(self._a)

    def __bool__(self):
        return self._sync(bool)

    def __float__(self):
        return self._sync(float)

    def __int__(self):
        return self._sync(int)

    def __index__(self):
        return self._sync(int)

    def item(self):
        return self._sync(lambda a: a.item())

    def get(self):
        return self._sync(lambda a: a.copy())

    def tolist(self):
        return self._sync(lambda a: a.tolist())


def _binary(name):
    op = getattr(np.ndarray, name)
    return lambda self, other: _wrap(op(self._a, _unwrap(other)), type(self))


def _inplace(name):
    op = getattr(np.ndarray, name)

    def method(self, other):
        op(self._a, _unwrap(other))
        return self
    return method


def _unary(name):
    op = getattr(np.ndarray, name)
    return lambda self: _wrap(op(self._a), type(self))


for _n in ("add", "sub", "mul", "truediv", "floordiv", "mod", "pow", "matmul", "and", "or", "xor"):
    setattr(DeviceArray, f"__{_n}__", _binary(f"__{_n}__"))
    setattr(DeviceArray, f"__r{_n}__", _binary(f"__r{_n}__"))
    setattr(DeviceArray, f"__i{_n}__", _inplace(f"__i{_n}__"))
for _n in ("lt", "le", "gt", "ge", "eq", "ne"):
    setattr(DeviceArray, f"__{_n}__", _binary(f"__{_n}__"))
for _n in ("neg", "pos", "abs", "invert"):
    setattr(DeviceArray, f"__{_n}__", _unary(f"__{_n}__"))


def make_array_module(name, type_name="DeviceArray"):
    """A CuPy-like array module called `name`, with its own array type (whose __module__ is
    `name`). module.calls lists the functions called; module.events the host <-> device copies."""
    module = types.ModuleType(name, f"A CuPy-like array module on the CPU ({__name__}).")
    cls = type(type_name, (DeviceArray,), {"__slots__": (), "__module__": name, "events": [],
                                           "sync_error": SynchronizeRefused})
    module.calls, module.events, module.ndarray = [], cls.events, cls

    def proxy(fname):
        f = getattr(np, fname)

        def call(*args, **kwargs):
            module.calls.append(fname)
            out = kwargs.get("out")
            r = f(*_unwrap(args), **_unwrap_kw(kwargs))
            if isinstance(out, DeviceArray) and r is out._a:
                return out
            return _wrap(r, cls)
        call.__name__ = fname
        return call

    def asarray(a, dtype=None):
        module.calls.append("asarray")
        if isinstance(a, DeviceArray):
            return a if dtype is None or a.dtype == dtype else a.astype(dtype)
        cls.events.append(("upload", _site()))
        return cls(np.array(a, dtype=dtype))

    for fname in FUNCTIONS:
        setattr(module, fname, proxy(fname))
    for cname in CONSTANTS:
        setattr(module, cname, getattr(np, cname))
    module.asarray = asarray
    module.array = asarray
    return module


# ============================================================================ a CuPy emulator
# Enough of CuPy's API, on the CPU, to run tests/test_gpu.py and the engine's CuPy code paths:
# arrays as above, cupy.cuda.runtime / streams, and cupy.RawModule, which builds the CUDA kernel
# text it is given with g++ (CUDA_PRELUDE) and runs each launch over its real grid, block by block
# and thread by thread. Kernel arguments are converted as CuPy converts them -- a NumPy scalar by
# its own size -- and checked against the kernel's declared parameter types, so an argument
# CuPy would pass with the wrong width fails here. It is a dry run of the GPU tests, not a GPU:
# it says nothing about NVRTC, the CUDA driver, or speed. `write_cupy_emulator(folder)` writes
# importable `cupy` and `cupyx` packages that load it.

_KERNEL_PARAMS = dict(zip(fused.KERNEL_NAMES, (fused.FORWARD_PARAMS, fused.BACKWARD_PARAMS)),
                      **{backend.PROBE_NAME: backend.PROBE_PARAMS})


def _pointer_dtype(ctype, real):
    return np.dtype("float64" if "double" in ctype else "float32" if "float" in ctype else real)


def make_cupy_emulator(workdir):
    cp = make_array_module("cupy", "ndarray")
    cp.IS_CPU_EMULATOR = True
    cp.__version__ = "0.0+cpu-emulator"
    cls = cp.ndarray
    cp.asnumpy = lambda a: a.get() if isinstance(a, DeviceArray) else np.asarray(a)
    workdir = Path(workdir)

    class Stream:
        def synchronize(self):
            pass

    class Device:
        def __init__(self, i=0):
            self.id = i

        def synchronize(self):
            pass

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    stream = Stream()
    runtime = types.SimpleNamespace(
        getDeviceCount=lambda: 1,
        getDeviceProperties=lambda i: {"name": b"CPU emulator (minisnn tests)",
                                       "totalGlobalMem": 1 << 30},
        getDevice=lambda: 0,
        runtimeGetVersion=lambda: 0, driverGetVersion=lambda: 0)
    class Event:                      # timed with the host clock: the emulator is synchronous
        def __init__(self, *args, **kwargs):
            self.t = None

        def record(self, stream=None):
            self.t = time.perf_counter()

        def synchronize(self):
            pass

        done = property(lambda self: True)

    cp.cuda = types.SimpleNamespace(runtime=runtime, Device=Device, Stream=Stream, Event=Event,
                                    get_current_stream=lambda: stream,
                                    get_elapsed_time=lambda a, b: (b.t - a.t) * 1e3)
    cp.get_default_memory_pool = lambda: types.SimpleNamespace(total_bytes=lambda: 0)
    cp.compiled = []    # (options, kernel names) of every RawModule built

    class RawKernel:
        def __init__(self, fn, name, real):
            self.fn, self.name, self.real = fn, name, real

        def __call__(self, grid, block, args, shared_mem=0, stream=None):
            params = _KERNEL_PARAMS[self.name]
            if len(args) != len(params):
                raise TypeError(f"{self.name} takes {len(params)} arguments, got {len(args)}")
            c_args = []
            for (ctype, pname), a in zip(params, args):
                if ctype.endswith("*"):
                    if type(a) is np.uint64 and a == 0:   # a 64-bit zero: a null pointer
                        c_args.append(None)
                        continue
                    if not isinstance(a, cls):
                        raise TypeError(f"{self.name}: {pname} must be a cupy array, got "
                                        f"{type(a).__name__}")
                    want = _pointer_dtype(ctype, self.real)
                    if a.dtype != want or not a._a.flags.c_contiguous:
                        raise TypeError(f"{self.name}: {pname} is {a.dtype} (contiguous: "
                                        f"{a._a.flags.c_contiguous}); the kernel reads {want}")
                    c_args.append(a._a.ctypes.data)
                else:   # CuPy sends a scalar with its own NumPy size: it must be the C type's
                    want = {"real": self.real.type, "int": np.int32, "long long": np.int64}[ctype]
                    if type(a) is not want:
                        raise TypeError(f"{self.name}: {pname} is {type(a).__name__}, the "
                                        f"kernel reads {ctype} ({want.__name__}); CuPy would "
                                        f"pass it with the wrong width")
                    c_args.append(a.item())
            (gx, *gyz), (bx, *byz) = tuple(grid), tuple(block)
            assert all(v == 1 for v in gyz + byz) and 0 < bx <= 1024 and gx > 0, (grid, block)
            self.fn(gx, bx, *c_args)

    class RawModule:
        def __init__(self, code=None, *, path=None, options=(), **kwargs):
            self.code, self.options, self._lib = code, tuple(options), None
            self.real = np.dtype("float64" if "#define MS_DOUBLE 1" in code else "float32")

        def get_function(self, name):
            if self._lib is None:
                names = tuple(n for n in _KERNEL_PARAMS if f" {n}(" in self.code)
                drivers = "".join(_emulation_driver(n, _KERNEL_PARAMS[n]) for n in names)
                src = CUDA_PRELUDE + self.code + "\n" + drivers
                tag = hashlib.sha1(src.encode()).hexdigest()[:16]
                self._lib = _compile(src, workdir / f"m{tag}.cpp", "g++", CXX_FLAGS)
                cp.compiled.append((self.options, names))
            fn = getattr(self._lib, f"emulate_{name}")
            fn.argtypes = [ctypes.c_uint, ctypes.c_uint] + [
                ctypes.c_void_p if c.endswith("*") else
                {"real": ctypes.c_double if self.real == np.float64 else ctypes.c_float,
                 "int": ctypes.c_int, "long long": ctypes.c_longlong}[c]
                for c, _ in _KERNEL_PARAMS[name]]
            fn.restype = None
            return RawKernel(fn, name, self.real)

    cp.RawModule = RawModule

    class DeviceSynchronized(RuntimeError):
        pass

    @contextlib.contextmanager
    def refuse_synchronize():
        """Inside the block every device -> host copy raises DeviceSynchronized (the emulator's
        stand-in for tests/test_gpu.py's spin-kernel check, which needs a real device)."""
        previous = cls.allow_sync
        cls.allow_sync = False
        try:
            yield
        finally:
            cls.allow_sync = previous

    cls.sync_error = DeviceSynchronized
    cp.refuse_synchronize, cp.DeviceSynchronized = refuse_synchronize, DeviceSynchronized
    cupyx = types.ModuleType("cupyx")
    return cp, cupyx


_LIBS = []


def _compile(src, src_path, cc, flags):
    src_path.write_text(src)
    lib_path = src_path.with_suffix(".so")
    done = subprocess.run([cc, *flags, "-o", str(lib_path), str(src_path), "-lm"],
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{cc} failed on {src_path}:\n{done.stderr}")
    if done.stderr.strip():   # -Wall -Wextra: shown in pytest's warnings summary
        warnings.warn(f"{cc} warned about the kernel source {src_path.name}:\n{done.stderr}")
    lib = ctypes.CDLL(str(lib_path))
    _LIBS.append(lib)
    return lib


_PACKAGE = '''"""CPU stand-in for {name}, to dry-run minisnn's GPU tests (fused_cpu_harness.py)."""
import sys
sys.path.insert(0, {tests!r})
import fused_cpu_harness as _h
sys.modules[__name__] = _h.emulated_cupy()[{index}]
'''


def emulated_cupy(_cache={}):
    """The (cupy, cupyx) emulator of this process, built once."""
    if "modules" not in _cache:
        import atexit
        import tempfile
        workdir = tempfile.mkdtemp(prefix="cupy-emulator-")
        atexit.register(shutil.rmtree, workdir, True)
        _cache["modules"] = make_cupy_emulator(workdir)
    return _cache["modules"]


def write_cupy_emulator(folder):
    """Write packages `cupy` and `cupyx` into `folder`; put it first on PYTHONPATH to use them."""
    tests = str(Path(__file__).resolve().parent)
    for index, name in enumerate(("cupy", "cupyx")):
        (Path(folder) / name).mkdir(parents=True, exist_ok=True)
        (Path(folder) / name / "__init__.py").write_text(
            _PACKAGE.format(name=name, tests=tests, index=index))
    return Path(folder)


def transcribed_forward(I, T, beta, thr, reset):
    """Eqs. (1)-(3) written out in NumPy (I a NumPy array, static (B, N) or (T, B, N)), in the
    dtype of I, each reset in the form the fused kernels compute it (zero: snnTorch's
    β·((1 − S[t−1])·U[t−1]) + I[t]). Returns U, S (T, B, N)."""
    dt = I.dtype.type
    beta, thr = dt(beta), dt(thr)
    u, s = np.zeros(I.shape[-2:], I.dtype), np.zeros(I.shape[-2:], I.dtype)
    U, S = [], []
    for t in range(T):
        x = I if I.ndim == 2 else I[t]
        if reset == "subtract":
            u = (beta * u + x) - thr * s
        elif reset == "zero":
            u = beta * ((dt(1) - s) * u) + x
        else:
            u = beta * u + x
        s = (u - thr > 0).astype(I.dtype)
        U.append(u)
        S.append(s)
    return np.stack(U), np.stack(S)

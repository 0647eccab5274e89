"""The fused LIF kernels on the CPU: lif_kernels.c, the same source NVRTC compiles for the GPU,
built once with the system's C compiler (OpenMP where it has it) and called through ctypes; and,
built the same way, Adam's one-pass update (adam_kernel.c, `adam(dtype)`) and the products
of a Linear layer with few outputs (narrow_kernels.c, `narrow(dtype)`).

Optional and automatic: the first Leaky layer that runs on NumPy compiles its specialisation
(about a second; the library is kept in a cache folder, so later runs load it at once). Where
there is no C compiler, or the build fails, the readable per-step reference of neuron.py runs
instead, with the same results; `status()` says which and why. `with minisnn.fused.disabled():`
runs the reference on request, and MINISNN_CPU_KERNELS=off turns the CPU kernels off for good.

Flags: -O3 with multiply-add contraction off (-ffp-contract=off) and no fast-math, so every
operation rounds as NumPy's does: the records equal the reference's bit for bit, the gradients
to rounding (sums are added in another order). -march=native where the compiler takes it (the
library is built on, and for, the machine that runs it); -fopenmp for the threads (OpenMP's
usual OMP_NUM_THREADS sets how many). Unless OMP_WAIT_POLICY is set, it is set to PASSIVE
before the first library loads: OpenMP's threads then sleep between kernels instead of spinning
on the cores that NumPy's BLAS threads need next (on a 2-core machine, spinning made the seed
iteration up to 2× slower whenever another process also ran).

The cache folder: $MINISNN_CACHE_DIR, else $XDG_CACHE_HOME/minisnn, else ~/.cache/minisnn; one
file per specialisation and compiler, named by a hash of the source and the command, written
atomically (a half-written library never carries the final name).
"""
import ctypes
import hashlib
import os
import shlex
import shutil
import subprocess
import sysconfig
import tempfile
from pathlib import Path

import numpy

from . import fused

BASE_FLAGS = ("-std=c99", "-O3", "-fPIC", "-shared", "-ffp-contract=off", "-fno-math-errno")
#: Tried in this order: the first that builds is used.
OPTIONAL_FLAGS = (("-fopenmp", "-march=native"), ("-fopenmp",), ())

_state = {"compiler": None, "flags": None, "error": None, "kernels": None, "launchers": {}}
NARROW_MAX_OUTPUTS = 16     # MAX_OUTPUTS in narrow_kernels.c


class BuildError(RuntimeError):
    """The CPU kernels could not be built (no compiler, or it failed)."""


def compiler():
    """The C compiler command: $CC, else the one Python was built with, else cc; None if absent."""
    for cmd in (os.environ.get("CC"), sysconfig.get_config_var("CC"), "cc", "gcc"):
        if cmd and shutil.which(shlex.split(cmd)[0]):
            return shlex.split(cmd)
    return None


def cache_dir():
    if os.environ.get("MINISNN_CACHE_DIR"):
        root = Path(os.environ["MINISNN_CACHE_DIR"])
    else:
        root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "minisnn"
    return root / "kernels"


def build(source, cc, flags, folder):
    """Compile `source` into a shared library in `folder` (reused when already there); returns
    its path. Raises BuildError with the compiler's message."""
    cmd = [*cc, *BASE_FLAGS, *flags]
    tag = hashlib.sha256((source + "\0" + " ".join(cmd)).encode()).hexdigest()[:20]
    lib = Path(folder) / f"kernels-{tag}.so"
    if lib.is_file():
        return lib
    lib.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=lib.parent, prefix=".build-") as tmp:
        src, out = Path(tmp) / "lif.c", Path(tmp) / "lif.so"
        src.write_text(source, encoding="utf-8")
        run = subprocess.run([*cmd, str(src), "-o", str(out), "-lm"], capture_output=True,
                             text=True)
        if run.returncode != 0:
            raise BuildError(f"{' '.join(cmd)} failed: {run.stderr.strip()[-500:]}")
        os.replace(out, lib)
    return lib


class CpuTarget:
    """A `fused.FusedLeaky` target that builds a key's kernels with the C compiler and launches
    them through ctypes. Pointer arguments are NumPy arrays; an unused one is NULL."""

    array_kind = "NumPy array"
    null = None

    def __init__(self, cc, flags, folder):
        self.cc, self.flags, self.folder = cc, tuple(flags), folder

    def __call__(self, key):
        source = fused.kernel_source(*key, target="c")
        lib = ctypes.CDLL(str(build(source, self.cc, self.flags, self.folder)))
        real = numpy.dtype(key[0])
        return tuple(_launcher(getattr(lib, name), params, real) for name, params in
                     zip(fused.KERNEL_NAMES, (fused.FORWARD_PARAMS, fused.BACKWARD_PARAMS)))

    @staticmethod
    def check(a):
        if not isinstance(a, numpy.ndarray):
            return f"a {type(a).__module__}.{type(a).__name__}"
        return None if a.flags.writeable else "a read-only array"


def _launcher(fn, params, real):
    c_real = ctypes.c_float if real == numpy.float32 else ctypes.c_double
    c_types = {"real": c_real, "int": ctypes.c_int, "long long": ctypes.c_longlong}
    fn.argtypes = [ctypes.c_void_p if c.endswith("*") else c_types[c] for c, _ in params]
    fn.restype = None
    pointer = [c.endswith("*") for c, _ in params]

    def launch(n, args):      # the arguments were checked by fused._pack
        fn(*[(None if a is None else a.ctypes.data) if p else a.item()
             for p, a in zip(pointer, args)])
    return launch


def kernels():
    """The CPU kernels (a fused.FusedLeaky), or None where they are off or cannot be built."""
    if _state["kernels"] is not None or _state["error"] is not None:
        return _state["kernels"]
    if os.environ.get("MINISNN_CPU_KERNELS", "").lower() in ("0", "off", "no", "false"):
        _state["error"] = "turned off by MINISNN_CPU_KERNELS"
        return None
    cc = compiler()
    if cc is None:
        _state["error"] = "no C compiler found (set CC)"
        return None
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")   # read when the OpenMP runtime loads
    probe = fused.kernel_source("float32", "subtract", True, "atan", target="c")
    errors = []
    for flags in OPTIONAL_FLAGS:          # the first set of flags this compiler builds with
        try:
            build(probe, cc, flags, cache_dir())
        except (BuildError, OSError) as e:
            errors.append(str(e))
            continue
        _state.update(compiler=cc, flags=flags,
                      kernels=fused.FusedLeaky(CpuTarget(cc, flags, cache_dir())))
        return _state["kernels"]
    _state["error"] = errors[-1]
    return None


def _dtype_library(source_file, dtype, defines):
    """`source_file` (beside this file) built for NumPy arrays of `dtype` (float32 or float64),
    with `real` and `defines` #defined before it, as the LIF kernels are built; the loaded
    ctypes library, or None where the CPU kernels are off or the build fails."""
    name = numpy.dtype(dtype).name
    if name not in ("float32", "float64") or kernels() is None:
        return None
    source = (f"/* minisnn {source_file}: dtype={name} */\n"
              f"#define real {'float' if name == 'float32' else 'double'}\n"
              + "".join(f"#define {k} {v[name]}\n" for k, v in defines.items())
              + Path(__file__).with_name(source_file).read_text(encoding="utf-8"))
    try:
        return ctypes.CDLL(str(build(source, _state["compiler"], _state["flags"], cache_dir())))
    except (BuildError, OSError):
        return None


def _c_real(dtype):
    return ctypes.c_float if numpy.dtype(dtype) == numpy.float32 else ctypes.c_double


def _memo(fn):
    """Build a launcher once per dtype (the first call per dtype builds its library)."""
    def memoised(dtype):
        key = (fn.__name__, numpy.dtype(dtype).name)
        if key not in _state["launchers"]:
            _state["launchers"][key] = fn(dtype)
        return _state["launchers"][key]
    memoised.__name__, memoised.__doc__ = fn.__name__, fn.__doc__
    return memoised


@_memo
def adam(dtype):
    """Adam's one-pass update for NumPy arrays of `dtype` (float32 or float64), from
    adam_kernel.c: a function step(p, g, m, v, b1, c1, b2, c2, root_c2, eps, step_size, wd)
    that updates p, m, v in place; or None where the CPU kernels are off or cannot be built
    (Adam then runs its NumPy code)."""
    lib = _dtype_library("adam_kernel.c", dtype, {"SQRT": {"float32": "sqrtf",
                                                           "float64": "sqrt"}})
    if lib is None:
        return None
    fn = lib.adam_step
    fn.argtypes = [ctypes.c_longlong] + [ctypes.c_void_p] * 4 + [_c_real(dtype)] * 8
    fn.restype = None

    def step(p, g, m, v, *constants):
        fn(p.size, p.ctypes.data, g.ctypes.data, m.ctypes.data, v.ctypes.data, *constants)
    return step


@_memo
def narrow(dtype):
    """The products of a Linear layer with at most NARROW_MAX_OUTPUTS outputs (narrow_kernels.c),
    for NumPy arrays of `dtype`: a pair (x_wt, add_dt_x) of functions, x_wt(X, W, out) writing
    out = X·Wᵀ and add_dt_x(G, D, X) adding Dᵀ·X to G, every array C-contiguous; or None where
    the CPU kernels are off or cannot be built (minisnn.narrow then uses NumPy's matmul)."""
    lib = _dtype_library("narrow_kernels.c", dtype, {})
    if lib is None:
        return None
    for fn in (lib.narrow_x_wt, lib.narrow_add_dt_x):
        fn.argtypes = [ctypes.c_longlong] * 3 + [ctypes.c_void_p] * 3
        fn.restype = None

    def x_wt(X, W, out):                         # X (R, K), W (N, K), out (R, N)
        _check_narrow(dtype, W.shape[0], X=(X, None, None), W=(W, None, X.shape[1]),
                      out=(out, X.shape[0], W.shape[0]))
        lib.narrow_x_wt(X.shape[0], X.shape[1], W.shape[0], X.ctypes.data, W.ctypes.data,
                        out.ctypes.data)

    def add_dt_x(G, D, X):                       # G (N, K), D (R, N), X (R, K)
        _check_narrow(dtype, D.shape[1], X=(X, None, None), D=(D, X.shape[0], None),
                      G=(G, D.shape[1], X.shape[1]))
        lib.narrow_add_dt_x(X.shape[0], D.shape[1], X.shape[1], D.ctypes.data, X.ctypes.data,
                            G.ctypes.data)
    return x_wt, add_dt_x


def _check_narrow(dtype, outputs, **arrays):
    """The narrow kernels' arguments: at most NARROW_MAX_OUTPUTS outputs, and 2-D C-contiguous
    NumPy arrays of `dtype` with the given numbers of rows and columns (None: any); else
    ValueError naming the one that is wrong."""
    if outputs > NARROW_MAX_OUTPUTS:
        raise ValueError(f"narrow kernel: at most {NARROW_MAX_OUTPUTS} outputs, got {outputs}")
    for name, (a, rows, cols) in arrays.items():
        if not (isinstance(a, numpy.ndarray) and a.ndim == 2 and a.dtype == dtype
                and a.flags.c_contiguous) or rows not in (None, a.shape[0]) \
                or cols not in (None, a.shape[1]):
            want = f"({rows if rows is not None else 'any'}, {cols if cols is not None else 'any'})"
            raise ValueError(f"narrow kernel: {name} must be a C-contiguous {numpy.dtype(dtype)} "
                             f"NumPy array of shape {want}, got {type(a).__name__} "
                             f"{getattr(a, 'shape', '')} {getattr(a, 'dtype', '')}")


def status():
    """A line saying whether Leaky layers on NumPy run the fused CPU kernels, and why not."""
    k = kernels()
    if k is None:
        return f"CPU kernels: off ({_state['error']}); Leaky runs the NumPy reference"
    return (f"CPU kernels: on ({' '.join(_state['compiler'])} {' '.join(_state['flags'])}, "
            f"cache {cache_dir()})")

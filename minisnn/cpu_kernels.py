"""The fused LIF kernels on the CPU: lif_kernels.c, the same source NVRTC compiles for the GPU,
built once with the system's C compiler (OpenMP where it has it) and called through ctypes; and,
built the same way, Adam's one-pass update (adam_kernel.c, `adam(dtype)`).

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

_state = {"compiler": None, "flags": None, "error": None, "kernels": None, "adam": {}}
ADAM_SOURCE = Path(__file__).with_name("adam_kernel.c")


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


def adam(dtype):
    """Adam's one-pass update for NumPy arrays of `dtype` (float32 or float64), from
    adam_kernel.c built as the LIF kernels are: a function
    step(p, g, m, v, b1, c1, b2, c2, root_c2, eps, step_size, wd) that updates p, m, v in place;
    or None where the CPU kernels are off or cannot be built (Adam then runs its NumPy code)."""
    name = numpy.dtype(dtype).name
    if name not in ("float32", "float64") or kernels() is None:
        return None
    if name not in _state["adam"]:
        real, c_real = (("float", ctypes.c_float) if name == "float32" else
                        ("double", ctypes.c_double))
        source = (f"/* minisnn Adam: dtype={name} */\n#define real {real}\n"
                  f"#define SQRT {'sqrtf' if name == 'float32' else 'sqrt'}\n"
                  + ADAM_SOURCE.read_text(encoding="utf-8"))
        try:
            fn = ctypes.CDLL(str(build(source, _state["compiler"], _state["flags"],
                                       cache_dir()))).adam_step
        except (BuildError, OSError):
            fn = None
        if fn is not None:
            fn.argtypes = [ctypes.c_longlong] + [ctypes.c_void_p] * 4 + [c_real] * 8
            fn.restype = None
        _state["adam"][name] = None if fn is None else _adam_launcher(fn)
    return _state["adam"][name]


def _adam_launcher(fn):
    def step(p, g, m, v, *constants):
        fn(p.size, p.ctypes.data, g.ctypes.data, m.ctypes.data, v.ctypes.data, *constants)
    return step


def status():
    """A line saying whether Leaky layers on NumPy run the fused CPU kernels, and why not."""
    k = kernels()
    if k is None:
        return f"CPU kernels: off ({_state['error']}); Leaky runs the NumPy reference"
    return (f"CPU kernels: on ({' '.join(_state['compiler'])} {' '.join(_state['flags'])}, "
            f"cache {cache_dir()})")

"""Fused kernels for the Leaky layer: the whole forward over T steps, and its BPTT, in one kernel
launch each, on the GPU (CuPy RawKernels, compiled with NVRTC on first use) and on the CPU (the
same source built with the system's C compiler and OpenMP: minisnn/cpu_kernels.py). The source
is minisnn/lif_kernels.c.

The readable version of the same mathematics is `neuron.py` + `bptt.py`, which run one array
operation per step: that is the reference, and what the tutorials teach from. On a GPU each of
those small operations is a kernel launch that reads and writes all of (B, N) from memory. Here
instead one GPU thread owns one neuron (one (b, n) element), loops over time itself and keeps
the state U[t−1], S[t−1] (forward) or ∂L/∂U[t+1] (backward) in registers:

    forward    U[t] = β·U[t−1] + I[t] − R[t−1],  S[t] = Θ(U[t] − θ)              eqs. (1)-(3)
    backward   dU[t] = dU_out[t] + dS_out[t]·g[t] + J[t]·dU[t+1]                eqs. (4)-(7)

with g = ∂S̃/∂U the surrogate and J = ∂U[t+1]/∂U[t] exactly as `neuron.leaky_local_grads` builds
them. The zero reset is computed in snnTorch's form, U[t] = β·((1 − S[t−1])·U[t−1]) + I[t]: the
same value as β·U[t−1] + I[t] − β·S[t−1]·U[t−1], but with snnTorch's rounding (after a spike
U[t] is I[t] exactly). Arrays are time-major (T, B, N): at step t, consecutive threads read and
write consecutive elements of the same (B, N) slab, so every load and store is coalesced. The
backward pass recomputes S and g from U instead of reading them, and for a static input ((B, N)
or (1, B, N)) it sums ∂L/∂I over time in registers. With learn_beta each thread also sums its
share of ∂L/∂β = Σ_{t≥1} dU[t]·∂U[t]/∂β, and one reduction adds the B·N shares. Before every
launch each argument is checked against the kernel's parameter list (`_pack`): a wrong pointer
would make a GPU kernel read or write outside its arrays, which kills the CUDA context.

Which layers get kernels: `kernels_for(layer, on)` returns them for a Leaky layer on CuPy (or,
with on='cpu', on NumPy where a C compiler builds them) with one of the built-in surrogates (atan, spike_operator, fast_sigmoid, sigmoid, straight_through,
triangular) and float32 or float64 arrays; anything else (the smooth stand-in used for gradient
checks, a user's own surrogate, a subclass of a built-in one, float16) runs the reference path.

To run the reference path anyway (to compare, or to time it), on CuPy or the CPU:

    from minisnn import fused
    with fused.disabled():
        spk, mem = net(x, num_steps)     # per-step array code, also on the GPU

One kernel source serves two compilers. It is written in the common subset of C and CUDA C++;
a few macros carry the difference. Compiled by NVRTC (`MS_CUDA` defined) each kernel is an
`extern "C" __global__` function and one thread takes one neuron (a grid-stride loop); compiled
as C, `MS_FOR_EACH_CHUNK` takes the neurons in chunks of 256, one chunk per OpenMP thread, time
outside and the chunk's neurons inside (vectorised; the chunk's state stays in cache). Either
way each neuron gets the *same* arithmetic, which is how the CPU build is checked against NumPy
on a machine without a GPU (tests/test_fused_logic.py, tests/test_cpu_kernels.py).
Multiply-add contraction is off (NVRTC `--fmad=false`; `-ffp-contract=off` for the C compiler)
and every expression keeps the reference's order of operations, so the forward records match
the reference bit for bit on the CPU build and the gradients agree to rounding (float64:
≤ 1e-12 relative; sums are added in another order). One
difference CuPy adds: it compiles with `-ftz=true` (a later option than ours, so it wins), which
flushes float32 subnormals (|x| < 1.2e-38) to zero on the GPU where NumPy keeps them.
tests/test_kernel_compile.py compiles every specialisation with NVRTC as CuPy does, on the CPU.
"""
import contextlib
import math
from pathlib import Path

import numpy

from .backend import get_xp
from .record import Record
from .surrogate import ATan, FastSigmoid, Sigmoid, SpikeOperator, StraightThrough, Triangular

# ----------------------------------------------------------------------------- what is covered

#: Built-in surrogates with a kernel, by exact type (a subclass may change grad: not covered).
SURROGATE_CODES = {ATan: 1, SpikeOperator: 2, FastSigmoid: 3, Sigmoid: 4, StraightThrough: 5,
                   Triangular: 6}
RESET_CODES = {"subtract": 0, "zero": 1, "none": 2}
DTYPES = ("float32", "float64")

# Bits of the `flags` argument.
STATIC = 1       # the input current is (B, N), the same at every step
LEARN_BETA = 2   # β is read from a 0-d float64 device array (and, backward, ∂L/∂β is summed)
HAS_DU = 4       # backward: ∂L/∂U from outside the layer is given
HAS_DS = 8       # backward: ∂L/∂S from outside the layer is given
HAS_START = 16   # a segment of recompute_every: the state before step 0 is given (U0, S0);
                 # backward then also returns the carry to the earlier segment (carry_out)
HAS_CARRY = 32   # backward: what reaches U[T−1] from a later segment is given (carry_in)

BLOCK = 128             # threads per block
MAX_BLOCKS = 65535 * 8  # beyond BLOCK·MAX_BLOCKS elements a thread takes several (grid-stride)

# The kernels' parameter lists, as (C type, name). The C signatures are generated from these, and
# the host code packs its arguments by them, so the two cannot drift apart. `real` is float or
# double. Which pointers a launch reads or writes, and how many elements each must have, is
# `pointer_sizes`; an unused one is passed as the target's null pointer.
FORWARD_PARAMS = (
    ("const real*", "I"),          # (T, B, N), or (B, N) with STATIC
    ("const double*", "beta_ptr"),  # 0-d β parameter with LEARN_BETA, else unused
    ("real*", "U"),                 # out (T, B, N)
    ("real*", "S"),                 # out (T, B, N)
    ("const real*", "U0"),          # (B, N) with HAS_START: U before step 0 (else zeros)
    ("const real*", "S0"),          # (B, N) with HAS_START: S before step 0
    ("real", "beta"),               # β when not LEARN_BETA
    ("real", "thr"),
    ("int", "T"),
    ("long long", "BN"),
    ("int", "flags"),
)
BACKWARD_PARAMS = (
    ("const real*", "U"),           # (T, B, N), the forward record
    ("const real*", "dU_out"),      # (T, B, N) with HAS_DU
    ("const real*", "dS_out"),      # (T, B, N) with HAS_DS
    ("const double*", "beta_ptr"),
    ("real*", "dI"),                # out (T, B, N), or (B, N) with STATIC
    ("real*", "dbeta_part"),        # out (B·N,) with LEARN_BETA: each neuron's share of ∂L/∂β
    ("const real*", "U0"),          # (B, N) with HAS_START: the state before step 0
    ("const real*", "S0"),
    ("const real*", "carry_in"),    # (B, N) with HAS_CARRY: added into ∂L/∂U[T−1]
    ("real*", "carry_out"),         # out (B, N) with HAS_START: J(U0, S0)·∂L/∂U[0]
    ("real", "beta"),
    ("real", "thr"),
    ("real", "p0"),                 # surrogate parameters, see surrogate_params
    ("real", "p1"),
    ("int", "T"),
    ("long long", "BN"),
    ("int", "flags"),
)
KERNEL_NAMES = ("minisnn_lif_forward", "minisnn_lif_backward")

#: The kernels' source (one file for NVRTC and the C compiler): lif_kernels.c beside this module.
SOURCE_PATH = Path(__file__).with_name("lif_kernels.c")


def _c_params(params):
    return ", ".join(f"{ctype} MS_RESTRICT {name}" if ctype.endswith("*") else f"{ctype} {name}"
                     for ctype, name in params)


def kernel_key(layer, dtype):
    """What a compiled kernel is specialised on: (dtype, reset, detach_reset, surrogate name)."""
    return (numpy.dtype(dtype).name, layer.reset, bool(layer.detach_reset), layer.surrogate.name)


def kernel_source(dtype, reset, detach_reset, surrogate, target="cuda"):
    """The kernel source for one specialisation. target: 'cuda' (for NVRTC: a thread per neuron)
    or 'c' (for a C compiler: chunks of neurons, OpenMP where the compiler has it). surrogate: a
    built-in's name."""
    codes = {cls.name: code for cls, code in SURROGATE_CODES.items()}
    if target not in ("cuda", "c"):
        raise ValueError(f"target must be 'cuda' or 'c', got {target!r}")
    if numpy.dtype(dtype).name not in DTYPES:
        raise ValueError(f"dtype must be one of {DTYPES}, got {dtype!r}")
    if surrogate not in codes:
        raise ValueError(f"surrogate must be one of {sorted(codes)}, got {surrogate!r}")
    if reset not in RESET_CODES:
        raise ValueError(f"reset must be one of {tuple(RESET_CODES)}, got {reset!r}")
    defines = [f"#define MS_DOUBLE {int(numpy.dtype(dtype).name == 'float64')}",
               f"#define MS_RESET {RESET_CODES[reset]}",
               f"#define MS_DETACH {int(bool(detach_reset))}",
               f"#define MS_SURROGATE {codes[surrogate]}"]
    if target == "cuda":
        defines.insert(0, "#define MS_CUDA 1")
    header = (f"/* minisnn fused LIF kernels: dtype={numpy.dtype(dtype).name} reset={reset} "
              f"detach_reset={bool(detach_reset)} surrogate={surrogate} target={target} */\n")
    body = (SOURCE_PATH.read_text(encoding="utf-8")
            .replace("@FORWARD_PARAMS@", _c_params(FORWARD_PARAMS))
            .replace("@BACKWARD_PARAMS@", _c_params(BACKWARD_PARAMS)))
    return header + "\n".join(defines) + "\n" + body


def surrogate_params(surrogate):
    """(p0, p1): the surrogate's constants as the kernel reads them, computed in float64 exactly as
    the reference computes them (and then rounded to the array dtype, as NumPy does)."""
    kind = type(surrogate)
    if kind is ATan:
        return surrogate.alpha / 2, math.pi * surrogate.alpha / 2
    if kind is FastSigmoid:
        return surrogate.slope, 0.0
    if kind is Sigmoid:
        return -surrogate.slope, surrogate.slope
    if kind is Triangular:
        return surrogate.width, 0.0
    return 0.0, 0.0


def supports(layer):
    """True when the fused kernels implement this layer's settings (dtype: checked per call)."""
    return type(layer.surrogate) in SURROGATE_CODES and layer.reset in RESET_CODES


# ----------------------------------------------------------------------------- switching off

_state = {"enabled": True}


@contextlib.contextmanager
def disabled():
    """Inside the with-block, Leaky layers run the reference (per-step) path, on CuPy and on the
    CPU alike."""
    previous = _state["enabled"]
    _state["enabled"] = False
    try:
        yield
    finally:
        _state["enabled"] = previous


def enabled():
    """Whether the fused kernels are in use (False inside `disabled()`)."""
    return _state["enabled"]


def kernels_for(layer, on="cupy"):
    """The fused kernels for `layer` on 'cupy' or 'cpu' (NumPy arrays), or None where the
    reference path must run: inside `disabled()`, for settings the kernels do not cover, or on
    a CPU where they cannot be built (minisnn.cpu_kernels.status() says why)."""
    if not _state["enabled"] or not supports(layer):
        return None
    if on == "cpu":
        from . import cpu_kernels
        return cpu_kernels.kernels()
    return _cupy_kernels()


# ----------------------------------------------------------------------------- the host side

def pointer_sizes(kernel, T, BN, flags):
    """How many elements each pointer argument of `kernel` ('forward' or 'backward') must have for
    a launch with these T, B·N and flags; None for a pointer the flags leave unused (null)."""
    static, learn = bool(flags & STATIC), bool(flags & LEARN_BETA)
    TBN, I_size = T * BN, (BN if static else T * BN)
    start = BN if flags & HAS_START else None
    if kernel == "forward":
        return {"I": I_size, "beta_ptr": 1 if learn else None, "U": TBN, "S": TBN,
                "U0": start, "S0": start}
    return {"U": TBN, "dU_out": TBN if flags & HAS_DU else None,
            "dS_out": TBN if flags & HAS_DS else None, "beta_ptr": 1 if learn else None,
            "dI": I_size, "dbeta_part": BN if learn else None, "U0": start, "S0": start,
            "carry_in": BN if flags & HAS_CARRY else None, "carry_out": start}


def _pack(kernel, values, dtype, target):
    """The arguments of one launch of `kernel` ('forward' or 'backward'), in order, each checked
    against its C parameter. A pointer must be an array of the target's kind (`target.check`),
    of the exact dtype and element count it is read with, C-contiguous; an unused one must be
    None and is passed as `target.null`. A value becomes a NumPy scalar of the C type's width
    (CuPy passes a scalar with its own NumPy size: a float64 where the kernel reads a float would
    be read as garbage, silently). Anything else raises here, before the launch: a wrong pointer
    would make the kernel read or write outside its arrays, which on a GPU kills the context."""
    params = FORWARD_PARAMS if kernel == "forward" else BACKWARD_PARAMS
    real = numpy.dtype(dtype)
    if not 0 < values["T"] < 2 ** 31:
        raise ValueError(f"num_steps must be between 1 and {2 ** 31 - 1} for the fused kernels, "
                         f"got {values['T']}")
    sizes = pointer_sizes(kernel, values["T"], values["BN"], values["flags"])
    scalar = {"real": real.type, "int": numpy.int32, "long long": numpy.int64}
    args = []
    for ctype, name in params:
        v = values.get(name)            # a pointer the caller leaves out is unused (None)
        if not ctype.endswith("*"):
            args.append(scalar[ctype](v))
            continue
        n = sizes[name]
        if n is None:
            if v is not None:
                raise ValueError(f"fused {kernel} kernel: argument {name} is unused with flags "
                                 f"{values['flags']} and must be None, got {type(v).__name__}")
            args.append(target.null)
            continue
        want = numpy.dtype("float64") if "double" in ctype else real
        problem = "None" if v is None else target.check(v)
        if problem is None and (v.dtype != want or v.size != n or not v.flags.c_contiguous):
            problem = (f"{v.dtype} array of {v.size} elements"
                       + ("" if v.flags.c_contiguous else ", not C-contiguous"))
        if problem is not None:
            hint = (" (a learned beta lives on another backend than the layer's input: move the "
                    "network with net.to(...))" if name == "beta_ptr" else "")
            raise TypeError(f"fused {kernel} kernel: argument {name} must be a C-contiguous "
                            f"{target.array_kind} of {n} {want} elements, got {problem}{hint}")
        args.append(v)
    return tuple(args)


class FusedLeaky:
    """The fused forward and backward of a Leaky layer, launched through a `target`: an object
    that turns a kernel key into two launchers `(forward, backward)`, each called as
    launch(n_elements, args), and that says which arrays its kernels can take (`check(a)`: None,
    or what is wrong with `a`; `array_kind`: their name in errors; `null`: what an unused pointer
    is passed as). The CuPy target (`CudaTarget`) compiles with NVRTC and takes CuPy arrays on
    the current GPU; the tests plug in targets built with gcc, which take NumPy arrays."""

    def __init__(self, target):
        self.target = target
        self._launchers = {}   # kernel key -> (forward, backward), compiled lazily

    def launchers(self, key):
        if key not in self._launchers:
            self._launchers[key] = self.target(key)
        return self._launchers[key]

    @staticmethod
    def _beta(layer):
        """(pointer, value): a learned β is read on the device (no copy to the host)."""
        if layer.learn_beta:
            beta = layer.beta
            return (beta if beta.dtype == numpy.float64 else beta.astype("float64")), 0.0
        return None, layer.beta

    @staticmethod
    def _is_static(I, name):
        """Whether the input current I is the same at every step: (B, N), or (1, B, N)."""
        if I.ndim == 2:
            return True
        if I.ndim != 3:
            raise ValueError(f"{name} must be (B, N), (1, B, N) or (T, B, N), got shape {I.shape}")
        return I.shape[0] == 1

    def forward(self, layer, I, num_steps, start=None):
        """U, S (T, B, N) of `layer` driven by I: (B, N) or (1, B, N) static, or (T, B, N).
        start: (U0, S0), the state before step 0, each (B, N) (a segment of recompute_every);
        None: from rest."""
        if I.dtype.name not in DTYPES:
            return self._reference_forward(layer, I, num_steps, start)
        T, static = int(num_steps), self._is_static(I, "the input current I")
        if not static and I.shape[0] != T:
            raise ValueError(f"the input current I has {I.shape[0]} steps, num_steps is {T}")
        xp = get_xp(I)
        I = xp.ascontiguousarray(I)
        shape = tuple(I.shape[-2:])
        BN = shape[0] * shape[1]
        U = xp.empty((T,) + shape, dtype=I.dtype)
        S = xp.empty((T,) + shape, dtype=I.dtype)
        U0, S0 = self._state(xp, start, I.dtype)
        if BN:
            beta_ptr, beta = self._beta(layer)
            flags = ((STATIC if static else 0) | (LEARN_BETA if layer.learn_beta else 0)
                     | (HAS_START if start is not None else 0))
            forward, _ = self.launchers(kernel_key(layer, I.dtype))
            forward(BN, _pack("forward", dict(I=I, beta_ptr=beta_ptr, U=U, S=S, U0=U0, S0=S0,
                                              beta=beta, thr=layer.threshold, T=T, BN=BN,
                                              flags=flags), I.dtype, self.target))
        return U, S

    @staticmethod
    def _state(xp, state, dtype):
        """(U0, S0) as the kernels read them, or (None, None)."""
        if state is None:
            return None, None
        return tuple(xp.ascontiguousarray(a, dtype=dtype) for a in state)

    def backward(self, layer, rec, dU_out, dS_out, start=None, carry=None):
        """∂L/∂I, with the shape of the layer's input; adds ∂L/∂β into layer.dbeta. For a
        segment of recompute_every: start = (U0, S0), the state before its step 0, and carry,
        what reaches U[T−1] from the later segment (B, N) or None; then returns (∂L/∂I,
        carry_out), carry_out = what reaches U0 (None without a start)."""
        U, I = rec.U, rec.X
        dtype = U.dtype
        if (dtype.name not in DTYPES or I.dtype != dtype
                or any(d is not None and (d.shape != U.shape or d.dtype != dtype)
                       for d in (dU_out, dS_out))):
            return self._reference_backward(layer, rec, dU_out, dS_out, start, carry)
        static = self._is_static(I, "the record's input current X")
        if tuple(I.shape[-2:]) != tuple(U.shape[1:]) or (not static and I.shape[0] != U.shape[0]):
            raise ValueError(f"the record's input current X {I.shape} does not match its "
                             f"membrane U {U.shape}")
        xp = get_xp(U)
        U = xp.ascontiguousarray(U)
        if dU_out is not None:
            dU_out = xp.ascontiguousarray(dU_out)
        if dS_out is not None:
            dS_out = xp.ascontiguousarray(dS_out)
        T, BN = U.shape[0], U.shape[1] * U.shape[2]
        segment = start is not None or carry is not None
        dI = xp.empty(I.shape, dtype=dtype)
        U0, S0 = self._state(xp, start, dtype)
        carry_in = None if carry is None else xp.ascontiguousarray(carry, dtype=dtype)
        carry_out = None if start is None else xp.empty(U.shape[1:], dtype=dtype)
        if not BN:
            return (dI, carry_out) if segment else dI
        dbeta_part = xp.empty((BN,), dtype=dtype) if layer.learn_beta else None
        beta_ptr, beta = self._beta(layer)
        p0, p1 = surrogate_params(layer.surrogate)
        flags = ((STATIC if static else 0) | (LEARN_BETA if layer.learn_beta else 0)
                 | (HAS_DU if dU_out is not None else 0) | (HAS_DS if dS_out is not None else 0)
                 | (HAS_START if start is not None else 0)
                 | (HAS_CARRY if carry is not None else 0))
        _, backward = self.launchers(kernel_key(layer, dtype))
        backward(BN, _pack("backward", dict(U=U, dU_out=dU_out, dS_out=dS_out, beta_ptr=beta_ptr,
                                            dI=dI, dbeta_part=dbeta_part, U0=U0, S0=S0,
                                            carry_in=carry_in, carry_out=carry_out, beta=beta,
                                            thr=layer.threshold, p0=p0, p1=p1, T=T, BN=BN,
                                            flags=flags), dtype, self.target))
        if layer.learn_beta:   # one reduction over the B·N shares, on the device
            layer.dbeta += dbeta_part.sum().astype(layer.dbeta.dtype)
        return (dI, carry_out) if segment else dI

    @staticmethod
    def _reference_forward(layer, I, num_steps, start=None):
        with disabled():
            _, rec = layer.forward(I, num_steps, state=start)
        return rec.U, rec.S

    @staticmethod
    def _reference_backward(layer, rec, dU_out, dS_out, start=None, carry=None):
        with disabled():
            if start is None and carry is None:
                return layer.backward(rec, d_out=dS_out, dU=dU_out)
            if start is not None:
                rec = Record(X=rec.X, U=rec.U, S=rec.S, start=tuple(start))
            return layer.backward_segment(rec, d_out=dS_out, dU=dU_out, carry=carry)


# ----------------------------------------------------------------------------- the CuPy target

#: NVRTC options: no multiply-add contraction, so that each operation rounds as NumPy's does.
#: (CuPy adds its own: see tests/test_kernel_compile.py, which compiles every key with them.)
NVRTC_OPTIONS = ("--fmad=false",)


class CudaTarget:
    """Compile a key's kernels with NVRTC through CuPy's RawModule (CuPy also caches the binary
    on disk) and launch them on the current stream, BLOCK threads per block.

    Pointer arguments must be CuPy arrays on the current GPU. An unused pointer is passed as a
    64-bit zero by value (`null`), which every CuPy version takes as a null pointer (None is one
    only from CuPy 14.0 on)."""

    array_kind = "CuPy array on the current GPU"
    null = numpy.uint64(0)

    def __call__(self, key):
        import cupy
        module = cupy.RawModule(code=kernel_source(*key, target="cuda"), options=NVRTC_OPTIONS)
        return tuple(self._launcher(module.get_function(name)) for name in KERNEL_NAMES)

    @staticmethod
    def _launcher(kernel):
        def launch(n, args):
            blocks = min(-(-n // BLOCK), MAX_BLOCKS)
            kernel((blocks,), (BLOCK,), args)
        return launch

    @staticmethod
    def check(a):
        import cupy
        if not isinstance(a, cupy.ndarray):
            return f"a {type(a).__module__}.{type(a).__name__}"
        device, current = a.device.id, cupy.cuda.runtime.getDevice()
        return None if device == current else f"an array on GPU {device} (current: GPU {current})"


_cupy = {}


def _cupy_kernels():
    if "kernels" not in _cupy:
        _cupy["kernels"] = FusedLeaky(CudaTarget())
    return _cupy["kernels"]

"""The fused-kernel source of minisnn.fused, checked on the CPU against the NumPy reference.

No GPU needed: tests/fused_cpu_harness.py builds the very kernel text that NVRTC compiles, once
as plain C (gcc) and once as the CUDA variant with an emulated grid (g++), and runs it through
fused.FusedLeaky and the engine's own dispatch (Leaky._fused -> fused.kernels_for). Every
surrogate x reset x detach x static/time-varying input x dtype is compared with the reference
path (neuron.py + bptt.py): records U, S and every gradient, learned beta included.

Bounds: float64, relative error (max|a - b| / max|b|) <= 1e-12, spikes identical; float32 <= 1e-5
(float32 dL/dbeta <= 1e-3, see BETA_BOUND_FLOAT32). Seen: U identical bit for bit (reset 'zero':
to rounding, until the engine's reference computes it in snnTorch's form as the kernels do; the
kernels' forward is checked bit for bit against a transcription of that form); worst float64
error 1.1e-14 (dL/dbeta; 7.5e-16 for W and b), worst float32 5.4e-6 (dL/dbeta; 2.4e-7 for W, b).
Skipped when gcc or g++ is missing.
"""
import copy
import types
from pathlib import Path

import numpy as np
import pytest

import minisnn as ms
from minisnn import fused
from minisnn.surrogate import (ATan, FastSigmoid, Sigmoid, SmoothSigmoid, SpikeOperator,
                               StraightThrough, Surrogate, Triangular)

import fused_cpu_harness as harness
from helpers import both_losses

pytestmark = pytest.mark.skipif(not harness.compilers_available(),
                                reason="gcc and g++ are needed to build the kernel source")

BOUND = {"float64": 1e-12, "float32": 1e-5}
# ∂L/∂β is a single sum over (T−1)·B·N terms of both signs, added in another order by the kernel
# (per neuron, then one reduction): in float32, cancellation can make that rounding large beside
# the result (5e-6 is seen here). float64 ∂L/∂β is held to BOUND.
BETA_BOUND_FLOAT32 = 1e-3


def within_bounds(errors, dtype):
    rest = {k: v for k, v in errors.items() if not k.endswith(".beta")}
    beta = {k: v for k, v in errors.items() if k.endswith(".beta")}
    beta_bound = BOUND[dtype] if dtype == "float64" else BETA_BOUND_FLOAT32
    return max(rest.values()) <= BOUND[dtype] and max(beta.values(), default=0) <= beta_bound
# Non-default constants, so that a parameter that does not reach the kernel shows.
SURROGATES = {"atan": ATan(alpha=3.0), "spike_operator": SpikeOperator(),
              "fast_sigmoid": FastSigmoid(slope=7.0), "sigmoid": Sigmoid(slope=3.0),
              "straight_through": StraightThrough(), "triangular": Triangular(width=0.8)}
RESETS = ["subtract", "zero", "none"]
KINDS = ["c", "cuda-emu"]
# The 'cuda' text differs from the 'c' text only in the macros that index elements and qualify
# functions, so the emulated-CUDA build runs on a subset of keys (g++ builds are slow): every
# surrogate in both dtypes with the richest backward (zero reset, attached), and every reset x
# detach in both dtypes.
EMU_KEYS = sorted({(d, "zero", False, s) for d in ("float64", "float32") for s in SURROGATES}
                  | {(d, r, det, s) for d, s in (("float64", "atan"), ("float32", "fast_sigmoid"))
                     for r in RESETS for det in (True, False)})


@pytest.fixture(scope="module")
def kernels(tmp_path_factory):
    """One FusedLeaky per build kind, shared by the module so each key compiles once."""
    built = {kind: harness.cpu_kernels(tmp_path_factory.mktemp(f"fused-{kind}"), kind)
             for kind in KINDS}
    harness.precompile([built["c"]], harness.all_keys())
    harness.precompile([built["cuda-emu"]], EMU_KEYS)
    return built


def rel_error(a, b):
    a, b = np.asarray(a, dtype="float64"), np.asarray(b, dtype="float64")
    scale = max(np.abs(a).max(initial=0), np.abs(b).max(initial=0))
    return float(np.abs(a - b).max(initial=0) / scale) if scale else 0.0


def build(surrogate, reset, detach, dtype, learn_beta=(True, False), sizes=(5, 7, 4), seed=0):
    rng = np.random.default_rng(seed)
    layers = []
    for (a, b), lb, beta in zip(zip(sizes, sizes[1:]), learn_beta, (0.9, 0.8, 0.7)):
        layers += [ms.Linear(a, b, dtype=dtype, rng=rng),
                   ms.Leaky(beta, threshold=0.5, surrogate=surrogate, reset=reset,
                            detach_reset=detach, learn_beta=lb)]
    return ms.Sequential(*layers)


def inputs(static, dtype, T=6, B=3, F=5, seed=1):
    rng = np.random.default_rng(seed)
    x = (rng.random((B, F)) if static else rng.random((T, B, F))) * 2
    return x.astype(dtype), rng.integers(0, 4, B), T


def run(net, x, y, T, loss="both"):
    """Forward, loss, backward. Returns the records (U, S of each Leaky) and the gradients."""
    net.zero_grad()
    spk, mem = net(x, T)
    if loss == "both":
        _, d_mem, d_spk = both_losses(y)(spk, mem)
    elif loss == "membrane":
        (_, d_mem), d_spk = ms.ce_membrane_loss(mem, y), None
    else:
        d_mem, (_, d_spk) = None, ms.ce_rate_loss(spk, y)
    net.backward(d_mem=d_mem, d_spk=d_spk)
    records = [(r.U.copy(), r.S.copy()) for l, r in zip(net.layers, net.record)
               if isinstance(l, ms.Leaky)]
    return records, {f"{i}.{p.name}": np.array(p.grad, copy=True)
                     for i, layer in enumerate(net.layers)
                     for p in net.parameters() if p.owner is layer}


def compare(kernels, net, x, y, T, loss="both"):
    """Run `net` on the reference path and (a copy) on the fused kernels; return the errors."""
    fused_net = copy.deepcopy(net)
    rec_ref, grads_ref = run(net, x, y, T, loss)
    launches = sum(kernels.target.launches.values())
    with harness.routed(kernels):
        rec_fused, grads_fused = run(fused_net, x, y, T, loss)
    n_leaky = len(rec_ref)
    assert sum(kernels.target.launches.values()) - launches == 2 * n_leaky, \
        "the fused path did not run for every Leaky layer"
    for (U0, S0), (U1, S1) in zip(rec_ref, rec_fused):
        assert U1.dtype == U0.dtype and S1.dtype == S0.dtype and U1.shape == U0.shape
        assert np.array_equal(S0, S1), "the fused forward spikes differently"
        assert 0 < S0.mean() < 1, "a layer that never (or always) spikes tests too little"
    errors = {f"U{i}": rel_error(U1, U0) for i, ((U0, _), (U1, _)) in
              enumerate(zip(rec_ref, rec_fused))}
    assert grads_ref.keys() == grads_fused.keys()
    for k in grads_ref:
        assert grads_fused[k].dtype == grads_ref[k].dtype, k
        errors[k] = rel_error(grads_fused[k], grads_ref[k])
    return errors, grads_ref


def check_key(kernels, dtype, reset, detach, surrogate, static):
    x, y, T = inputs(static, dtype)
    for learn_beta in [(True, False), (False, True)]:   # β by pointer and by value, in both layers
        net = build(SURROGATES[surrogate], reset, detach, dtype, learn_beta)
        errors, grads = compare(kernels, net, x, y, T)
        assert within_bounds(errors, dtype), errors
        assert np.abs(grads["0.W"]).max() > 0           # all-zero gradients would agree trivially
        assert ("1.beta" if learn_beta[0] else "3.beta") in errors


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("static", [True, False], ids=["static", "time-varying"])
@pytest.mark.parametrize("detach", [True, False], ids=["detached", "attached"])
@pytest.mark.parametrize("reset", RESETS)
@pytest.mark.parametrize("surrogate", sorted(SURROGATES))
def test_fused_matches_reference(kernels, dtype, static, detach, reset, surrogate):
    check_key(kernels["c"], dtype, reset, detach, surrogate, static)


@pytest.mark.parametrize("static", [True, False], ids=["static", "time-varying"])
@pytest.mark.parametrize("key", EMU_KEYS, ids=lambda k: "-".join(map(str, k)))
def test_cuda_text_with_emulated_grid_matches_reference(kernels, key, static):
    dtype, reset, detach, surrogate = key
    check_key(kernels["cuda-emu"], dtype, reset, detach, surrogate, static)
    assert key in kernels["cuda-emu"].target.compiled


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("static", [True, False], ids=["static", "time-varying"])
@pytest.mark.parametrize("reset", RESETS)
def test_forward_is_the_equation_bit_for_bit(kernels, kind, dtype, static, reset):
    """The kernels' U and S equal a NumPy transcription of eq. (1) bit for bit, for every reset
    (the engine's reference computes the zero reset as β·U − β·S·U + I until the lead's change to
    snnTorch's form lands: it then agrees bit for bit too; today it agrees to rounding)."""
    rng = np.random.default_rng(5)
    T = 12
    I = (rng.random((7, 9) if static else (T, 7, 9)) * 1.5).astype(dtype)
    layer = ms.Leaky(0.85, threshold=0.7, reset=reset, detach_reset=False)
    with harness.routed(kernels[kind]):
        _, rec = layer.forward(I[None] if static else I, T)     # a static current: (1, B, N)
    U, S = harness.transcribed_forward(I, T, 0.85, 0.7, reset)
    assert 0 < S.mean() < 1
    assert np.array_equal(rec.U, U) and np.array_equal(rec.S, S)


def test_static_input_with_a_time_axis_of_one(kernels):
    """FusedLeaky takes a static current as (B, N) or (1, B, N): the same records, and ∂L/∂I comes
    back in the input's shape, summed over the steps."""
    rng = np.random.default_rng(2)
    I = rng.random((4, 5)) * 2
    d = rng.random((6, 4, 5)) - 0.5
    out = []
    for x in (I, I[None]):
        layer = ms.Leaky(0.9, learn_beta=True)
        U, S = kernels["c"].forward(layer, x, 6)
        rec = types.SimpleNamespace(X=x, U=U, S=S)
        out.append((U, kernels["c"].backward(layer, rec, None, d), float(layer.dbeta)))
    (U0, dI0, b0), (U1, dI1, b1) = out
    assert np.array_equal(U0, U1) and dI1.shape == (1, 4, 5) and b0 == b1 != 0
    np.testing.assert_array_equal(dI1[0], dI0)
    with pytest.raises(ValueError, match="3 steps, num_steps is 6"):
        kernels["c"].forward(ms.Leaky(0.9), rng.random((3, 4, 5)), 6)


@pytest.mark.parametrize("loss", ["membrane", "rate", "both"])
@pytest.mark.parametrize("reset", RESETS)
def test_output_gradient_given_as_dU_or_dS_only(kernels, loss, reset):
    """The last layer gets dU_out only, dS_out only, or both (the HAS_DU / HAS_DS flags)."""
    x, y, T = inputs(False, "float64")
    net = build(SURROGATES["atan"], reset, False, "float64", (True, True))
    errors, _ = compare(kernels["c"], net, x, y, T, loss)
    assert max(errors.values()) <= BOUND["float64"], errors


@pytest.mark.parametrize("T", [1, 2, 17])
@pytest.mark.parametrize("static", [True, False], ids=["static", "time-varying"])
def test_number_of_steps_and_odd_sizes(kernels, T, static):
    """T = 1 (no temporal term, ∂L/∂β = 0), and B·N that no block size divides (the emulated grid
    of 3 blocks x 4 threads leaves every thread several elements)."""
    x, y, _ = inputs(static, "float64", T=T, B=7, F=5)
    y = y % 3
    net = build(SURROGATES["triangular"], "zero", False, "float64", (True, True), sizes=(5, 11, 3))
    for kind in KINDS:
        errors, grads = compare(kernels[kind], net, x, y, T)
        assert max(errors.values()) <= BOUND["float64"], (kind, errors)
        if T == 1:
            assert grads["1.beta"] == 0 and grads["3.beta"] == 0


def test_three_layers_float32(kernels):
    x, y, T = inputs(False, "float32", T=9, B=16)
    net = build(SURROGATES["atan"], "subtract", True, "float32", (True, True, True),
                sizes=(5, 32, 16, 4))
    errors, _ = compare(kernels["cuda-emu"], net, x, y, T)
    assert within_bounds(errors, "float32"), errors


def test_each_key_compiles_once(tmp_path):
    k = harness.cpu_kernels(tmp_path, "c")
    x, y, T = inputs(True, "float64")
    net = build("atan", "subtract", True, "float64")   # two Leaky layers with the same key
    with harness.routed(k):
        for _ in range(3):
            run(net, x, y, T)
    assert k.target.compiled == [("float64", "subtract", True, "atan")]
    assert k.target.launches == {"minisnn_lif_forward": 6, "minisnn_lif_backward": 6}
    net32 = build("atan", "subtract", True, "float32")
    with harness.routed(k):
        run(net32, x.astype("float32"), y, T)
    assert k.target.compiled[-1] == ("float32", "subtract", True, "atan")
    assert len(k.target.compiled) == 2


# ----------------------------------------------------------------------------- falling back

class MySurrogate(Surrogate):
    name = "mine"

    def grad(self, V, S):
        return 1 / (1 + V * V)


class SteeperATan(ATan):          # a subclass may change grad: the kernels do not cover it
    def grad(self, V, S):
        return 2 * super().grad(V, S)


@pytest.mark.parametrize("surrogate", [SmoothSigmoid(), MySurrogate(), SteeperATan()],
                         ids=["smooth_stand_in", "user_surrogate", "subclass"])
def test_kernels_for_returns_none_for_uncovered_surrogates(kernels, surrogate):
    layer = ms.Leaky(0.9, surrogate=surrogate)
    assert fused.kernels_for(layer) is None
    # and through the engine the reference runs: nothing launched, results as the reference
    x, y, T = inputs(True, "float64")
    net = build(surrogate, "subtract", True, "float64")
    ref = run(copy.deepcopy(net), x, y, T)
    before = sum(kernels["c"].target.launches.values())
    with harness.routed(kernels["c"]):
        out = run(net, x, y, T)
    assert sum(kernels["c"].target.launches.values()) == before
    assert all(np.array_equal(ref[1][k], out[1][k]) for k in ref[1])


def test_kernels_for_covers_builtins_without_importing_cupy():
    for name in SURROGATES:
        layer = ms.Leaky(0.9, surrogate=name, reset="zero", learn_beta=True)
        assert isinstance(fused.kernels_for(layer), fused.FusedLeaky)
    assert {cls.name for cls in fused.SURROGATE_CODES} == set(SURROGATES)


def test_disabled_is_scoped_and_restores_state():
    layer = ms.Leaky(0.9)
    assert fused.enabled() and fused.kernels_for(layer) is not None
    with fused.disabled():
        assert not fused.enabled() and fused.kernels_for(layer) is None
        with fused.disabled():
            assert fused.kernels_for(layer) is None
        assert not fused.enabled()
    assert fused.enabled()
    with pytest.raises(KeyError):
        with fused.disabled():
            raise KeyError("inside")
    assert fused.enabled() and fused.kernels_for(layer) is not None


def test_disabled_runs_reference_even_when_routed(kernels):
    x, y, T = inputs(False, "float64")
    net = build("atan", "zero", False, "float64")
    before = sum(kernels["c"].target.launches.values())
    with harness.routed(kernels["c"]), fused.disabled():
        run(net, x, y, T)
    assert sum(kernels["c"].target.launches.values()) == before


def test_float16_falls_back_to_reference(kernels):
    x, y, T = inputs(True, "float16")
    net = build("atan", "subtract", True, "float16")
    ref = run(copy.deepcopy(net), x, y, T)
    before = sum(kernels["c"].target.launches.values())
    with harness.routed(kernels["c"]):
        out = run(net, x, y, T)
    assert sum(kernels["c"].target.launches.values()) == before
    assert all(np.array_equal(a[0], b[0]) for a, b in zip(ref[0], out[0]))
    assert all(np.array_equal(ref[1][k], out[1][k]) for k in ref[1])


def test_backward_with_foreign_dtype_is_refused(kernels):
    """A dU_out of another dtype than the records is refused before any kernel runs (the engine
    never changes dtypes silently)."""
    layer = ms.Leaky(0.9, learn_beta=True)
    I = np.random.default_rng(0).random((5, 2, 3)).astype("float32") * 2
    d = np.ones((5, 2, 3), dtype="float64")
    before = sum(kernels["c"].target.launches.values())
    with harness.routed(kernels["c"]):
        _, rec = layer.forward(I, 5)
        with pytest.raises(ValueError, match="dtype of the records"):
            layer.backward(rec, d, None)
    assert sum(kernels["c"].target.launches.values()) == before + 1   # the forward only


# ----------------------------------------------------------------------------- the source itself

class NumpyTarget:
    """The pointer rules of a CPU target (NumPy arrays, None for null), without compiling."""
    check, array_kind, null = staticmethod(harness.CpuTarget.check), "NumPy array", None


def forward_values(dtype="float32", T=4, B=2, N=3, flags=fused.STATIC):
    static = flags & fused.STATIC
    return dict(I=np.zeros((B, N) if static else (T, B, N), dtype),
                beta_ptr=np.zeros((), "float64") if flags & fused.LEARN_BETA else None,
                U=np.zeros((T, B, N), dtype), S=np.zeros((T, B, N), dtype), beta=0.9, thr=1.0,
                T=T, BN=B * N, flags=flags)


def test_pack_gives_each_value_its_c_width():
    args = fused._pack("forward", forward_values(), "float32", NumpyTarget)
    assert [type(a) for a in args[6:]] == [np.float32, np.float32, np.int32, np.int64, np.int32]
    assert args[1] is None                                   # beta_ptr unused: the null pointer
    assert fused.CudaTarget.null == 0 and type(fused.CudaTarget.null) is np.uint64


@pytest.mark.parametrize("name, bad, message", [
    ("U", np.zeros((4, 2, 3), "float64"), "U must be .* 24 float32 elements, got float64"),
    ("S", np.zeros((3, 2, 3), "float32"), "S must be .* 24 float32 elements, got float32 array of 18"),
    ("I", np.zeros((4, 2, 3), "float32"), "I must be .* 6 float32 elements"),   # static: (B, N)
    ("U", np.zeros((4, 3, 2), "float32").transpose(0, 2, 1), "not C-contiguous"),
    ("U", None, "U must be .* got None"),
    ("S", [0.0] * 24, "got a builtins.list"),
])
def test_pack_refuses_a_wrong_pointer_before_launch(name, bad, message):
    values = forward_values()
    values[name] = bad
    with pytest.raises(TypeError, match=message):
        fused._pack("forward", values, "float32", NumpyTarget)


def test_pack_refuses_a_pointer_the_flags_leave_unused():
    values = forward_values()
    values["beta_ptr"] = np.zeros((), "float64")             # LEARN_BETA is not set
    with pytest.raises(ValueError, match="beta_ptr is unused"):
        fused._pack("forward", values, "float32", NumpyTarget)
    with pytest.raises(ValueError, match="num_steps"):
        fused._pack("forward", dict(forward_values(), T=0), "float32", NumpyTarget)


def test_pack_checks_the_backward_pointers_against_the_flags():
    T, B, N = 5, 2, 3
    z = lambda *shape, d="float64": np.zeros(shape, d)
    flags = fused.LEARN_BETA | fused.HAS_DS
    values = dict(U=z(T, B, N), dU_out=None, dS_out=z(T, B, N), beta_ptr=z(), dI=z(T, B, N),
                  dbeta_part=z(B * N), beta=0.0, thr=1.0, p0=1.0, p1=2.0, T=T, BN=B * N,
                  flags=flags)
    assert len(fused._pack("backward", values, "float64", NumpyTarget)) == len(fused.BACKWARD_PARAMS) == 17
    assert fused.pointer_sizes("backward", T, B * N, flags | fused.STATIC)["dI"] == B * N
    for name, bad in (("dU_out", z(T, B, N)), ("dbeta_part", z(B * N + 1)),
                      ("carry_in", z(B, N)), ("U0", z(B, N))):          # flags leave them unused
        with pytest.raises((TypeError, ValueError), match=name):
            fused._pack("backward", dict(values, **{name: bad}), "float64", NumpyTarget)
    segment = dict(values, flags=flags | fused.HAS_START | fused.HAS_CARRY, U0=z(B, N),
                   S0=z(B, N), carry_in=z(B, N), carry_out=z(B, N))
    assert len(fused._pack("backward", segment, "float64", NumpyTarget)) == 17
    for name in ("U0", "S0", "carry_in", "carry_out"):             # each needs B·N elements
        with pytest.raises(TypeError, match=f"argument {name} must be .* 6 float64 elements"):
            fused._pack("backward", dict(segment, **{name: z(B, N + 1)}), "float64", NumpyTarget)


def test_learned_beta_on_another_backend_is_refused_before_launch(kernels):
    """The known crash: a learnable-β Leaky made on one backend, fed input on another. On a GPU
    the host array would be passed by value as an address; here the CPU target refuses a β that
    is not a NumPy array, with a message naming it."""
    layer = ms.Leaky(0.9, learn_beta=True)
    layer.beta = types.SimpleNamespace(dtype=np.dtype("float64"))   # not the target's array type
    I = np.ones((4, 2, 3))
    with harness.routed(kernels["c"]):
        with pytest.raises(TypeError, match="beta_ptr must be .*NumPy array.* another backend"):
            layer.forward(I, 4)


def test_kernel_source_arguments():
    src = fused.kernel_source("float32", "zero", False, "sigmoid", target="cuda")
    assert "#define MS_CUDA 1" in src and "#define MS_DOUBLE 0" in src
    assert 'extern "C" __global__' in src and "blockIdx.x" in src
    assert "#define MS_CUDA" not in fused.kernel_source("float64", "none", True, "atan", target="c")
    for bad in [dict(dtype="float16"), dict(surrogate="smooth_sigmoid"), dict(target="ptx"),
                dict(reset="soft")]:
        args = dict(dtype="float32", reset="zero", detach_reset=True, surrogate="atan")
        args.update(bad)
        target = args.pop("target", "cuda")
        with pytest.raises(ValueError):
            fused.kernel_source(**args, target=target)


# ----------------------------------------------------------------------------- GPU tests, dry run

def test_gpu_tests_dry_run_on_cupy_emulator(tmp_path):
    """tests/test_gpu.py, run against the CPU emulator of CuPy (fused_cpu_harness): the GPU tests
    themselves and the engine's CuPy code paths (fused.CudaTarget, RawModule launches with the
    real grid, net.to/opt.to, the no-synchronisation check) run, on the 'cuda' kernel text. A subset,
    for time; `PYTHONPATH=<folder> pytest tests/test_gpu.py` with write_cupy_emulator(<folder>)
    runs all of it. Where a real CuPy is installed the real GPU tests run instead."""
    import importlib.util
    import os
    import subprocess
    import sys
    if importlib.util.find_spec("cupy") is not None:
        pytest.skip("CuPy is installed: tests/test_gpu.py runs for real")
    folder = harness.write_cupy_emulator(tmp_path / "emulator")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(folder)] + [p for p in [os.environ.get("PYTHONPATH")] if p]))
    subset = ("not mnist and (not test_fused_matches_reference or "
              "(atan and zero and float32) or (sigmoid and subtract and attached and float64))")
    tests = Path(__file__).resolve().parent
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           str(tests / "test_gpu.py"), "-k", subset, "-rs"],
                          cwd=tests.parent, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    summary = done.stdout.strip().splitlines()[-1]
    assert " passed" in summary and "failed" not in summary and "error" not in summary, summary
    passed = int(summary.split(" passed")[0].split()[-1])
    assert passed >= 20, summary     # 25 at the time of writing

"""The fused CPU path: lif_kernels.c built with the system's C compiler, against the readable
reference of neuron.py. Records: U and S identical (float32 and float64: the same operations in
the same order, contraction off); gradients: float64 ≤ 1e-12 relative (sums are added in another
order). Every surrogate, reset, detach setting, learnable β or not, static and time-varying input.
Where no C compiler is present the kernels are off and these comparisons skip (with one reason)."""
import os
import subprocess
import sys

import numpy as np
import pytest

import minisnn as ms
from minisnn import cpu_kernels, fused
from minisnn.surrogate import SURROGATES

BOUND = 1e-12
KERNEL_SURROGATES = sorted(cls.name for cls in fused.SURROGATE_CODES)
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

needs_kernels = pytest.mark.skipif(cpu_kernels.kernels() is None,
                                   reason="no C compiler: the fused CPU kernels are off")


def build(surrogate, reset, detach, learn_beta, dtype, seed=0):
    rng = np.random.default_rng(seed)
    kw = dict(threshold=0.5, reset=reset, detach_reset=detach, surrogate=surrogate,
              learn_beta=learn_beta)
    return ms.Sequential(ms.Linear(5, 300, dtype=dtype, rng=rng), ms.Leaky(0.9, **kw),
                         ms.Linear(300, 4, dtype=dtype, rng=rng), ms.Leaky(0.8, **kw))


def run(net, x, y, T):
    net.zero_grad()
    spk, mem = net(x, T)
    _, d_mem = ms.ce_membrane_loss(mem, y)
    _, d_spk = ms.ce_rate_loss(spk, y)
    net.backward(d_mem=d_mem, d_spk=d_spk)
    return ([(r.U.copy(), r.S.copy()) for r in net.record if "U" in r],
            {n: np.array(p.grad, dtype=np.float64) for n, p in net.named_parameters()})


def compare(surrogate, reset, detach, learn_beta, static, dtype):
    rng = np.random.default_rng(1)
    T = 9
    x = (rng.random((7, 5)) if static else rng.random((T, 7, 5))).astype(dtype) * 2
    y = rng.integers(0, 4, 7)
    net = build(surrogate, reset, detach, learn_beta, dtype)
    assert fused.kernels_for(net[1], on="cpu") is not None
    recs, grads = run(net, x, y, T)
    with fused.disabled():
        ref_recs, ref_grads = run(net, x, y, T)
    for (U, S), (U_ref, S_ref) in zip(recs, ref_recs):
        np.testing.assert_array_equal(U, U_ref)
        np.testing.assert_array_equal(S, S_ref)
    assert S_ref.any() and not S_ref.all()
    errors = {k: ms.gradcheck.rel_error(grads[k], ref_grads[k]) for k in grads}
    return errors


@needs_kernels
@pytest.mark.parametrize("surrogate", KERNEL_SURROGATES)
@pytest.mark.parametrize("reset", ["subtract", "zero", "none"])
@pytest.mark.parametrize("detach", [True, False], ids=["detached", "attached"])
def test_kernels_equal_the_reference_float64(surrogate, reset, detach):
    for learn_beta, static in ((False, True), (True, False)):
        errors = compare(surrogate, reset, detach, learn_beta, static, "float64")
        assert max(errors.values()) <= BOUND, errors
        assert ("1.beta" in errors) == learn_beta


@needs_kernels
@pytest.mark.parametrize("surrogate", KERNEL_SURROGATES)
@pytest.mark.parametrize("reset", ["subtract", "zero", "none"])
@pytest.mark.parametrize("detach", [True, False], ids=["detached", "attached"])
def test_kernels_spikes_identical_float32(surrogate, reset, detach):
    errors = compare(surrogate, reset, detach, True, True, "float32")
    assert max(errors.values()) <= 1e-5, errors          # float32 rounding of sums in another order


def run_segments(net, x, y, T, every):
    """Outputs and float64 gradients of one backward pass with BPTT in segments (or not)."""
    net.zero_grad()
    spk, mem = net(x, T, recompute_every=every)
    _, d_mem = ms.ce_membrane_loss(mem, y)
    _, d_spk = ms.ce_rate_loss(spk, y)
    net.backward(d_mem=d_mem, d_spk=d_spk)
    return (spk.copy(), mem.copy()), {n: np.array(p.grad, dtype=np.float64)
                                      for n, p in net.named_parameters()}


@needs_kernels
@pytest.mark.parametrize("surrogate", KERNEL_SURROGATES)
@pytest.mark.parametrize("reset", ["subtract", "zero", "none"])
@pytest.mark.parametrize("detach", [True, False], ids=["detached", "attached"])
def test_kernels_in_segments_equal_the_reference(surrogate, reset, detach):
    """recompute_every on the kernels (start state, carry in, carry out) against the reference's
    full records: outputs identical, float64 gradients ≤ 1e-12, float32 outputs identical."""
    rng = np.random.default_rng(2)
    T = 11
    for learn_beta, static, dtype in ((False, True, "float64"), (True, False, "float64"),
                                      (True, True, "float32")):
        x = (rng.random((7, 5)) if static else rng.random((T, 7, 5))).astype(dtype) * 2
        y = rng.integers(0, 4, 7)
        net = build(surrogate, reset, detach, learn_beta, dtype)
        outs, grads = run_segments(net, x, y, T, 4)          # segments of 4, 4, 3 steps
        with fused.disabled():
            ref_outs, ref_grads = run_segments(net, x, y, T, None)
        for a, b in zip(outs, ref_outs):
            np.testing.assert_array_equal(a, b)
        errors = {k: ms.gradcheck.rel_error(grads[k], ref_grads[k]) for k in grads}
        assert max(errors.values()) <= (BOUND if dtype == "float64" else 1e-5), errors


@needs_kernels
def test_uncovered_settings_run_the_reference():
    smooth = ms.Leaky(0.9, surrogate=SURROGATES["smooth_sigmoid"]())
    assert fused.kernels_for(smooth, on="cpu") is None
    with fused.disabled():
        assert fused.kernels_for(ms.Leaky(0.9), on="cpu") is None
    assert fused.kernels_for(ms.Leaky(0.9), on="cpu") is not None
    assert "CPU kernels: on" in cpu_kernels.status()


def test_pointer_arguments_must_be_numpy_arrays_of_the_right_size():
    vals = dict(I=np.zeros((2, 3), "float32"), beta_ptr=None, U=np.zeros((4, 2, 3), "float32"),
                S=np.zeros((4, 2, 2), "float32"), beta=0.9, thr=1.0, T=4, BN=6, flags=fused.STATIC)
    target = cpu_kernels.CpuTarget(["cc"], (), "/nonexistent")
    with pytest.raises(TypeError, match="argument S must be a C-contiguous NumPy array of 24"):
        fused._pack("forward", vals, "float32", target)
    vals["S"] = np.zeros((4, 2, 3), "float32")
    vals["U"] = [0.0] * 24
    with pytest.raises(TypeError, match="argument U must be .* got a builtins.list"):
        fused._pack("forward", vals, "float32", target)


@pytest.mark.parametrize("env, why", [({"CC": "false"}, "failed"),
                                      ({"MINISNN_CPU_KERNELS": "off"}, "MINISNN_CPU_KERNELS")])
def test_without_kernels_the_reference_trains(tmp_path, env, why):
    """A compiler that fails (or the switch) leaves the kernels off, with the reason, and the
    network trains on the reference path all the same."""
    code = ("import numpy as np, minisnn as ms\n"
            "from minisnn import cpu_kernels\n"
            "net = ms.Sequential(ms.Linear(3, 4, rng=0), ms.Leaky(0.9))\n"
            "x = np.ones((2, 3), np.float32)\n"
            "spk, mem = net(x, 5); net.backward(d_mem=ms.ce_membrane_loss(mem, np.array([0, 1]))[1])\n"
            "print(cpu_kernels.status()); print(float(abs(net[0].dW).sum()) > 0)\n")
    full_env = {**os.environ, "MINISNN_CACHE_DIR": str(tmp_path / "cache"), **env}
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=full_env, check=True,
                         capture_output=True, text=True).stdout.splitlines()
    assert out[0].startswith("CPU kernels: off") and why in out[0] and out[1] == "True", out
    assert not any((tmp_path / "cache").rglob("*.so"))


@needs_kernels
def test_a_built_library_is_reused(tmp_path):
    src = fused.kernel_source("float64", "none", True, "atan", target="c")
    cc = cpu_kernels.compiler()
    first = cpu_kernels.build(src, cc, (), tmp_path)
    mtime = first.stat().st_mtime_ns
    assert cpu_kernels.build(src, cc, (), tmp_path) == first and first.stat().st_mtime_ns == mtime
    assert [p.name for p in tmp_path.iterdir()] == [first.name]       # no leftovers


@needs_kernels
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("weight_decay", [0.0, 0.03])
def test_one_pass_adam_is_numpys_adam_bit_for_bit(dtype, weight_decay):
    """adam_kernel.c against Adam's NumPy code: p, m and v identical after 6 steps of sparse
    gradients (many exactly zero, as MNIST's border pixels give), learnable β included."""
    def trained(reference):
        rng = np.random.default_rng(3)
        net = build("atan", "subtract", True, True, dtype)
        opt = ms.Adam(net.parameters(), lr=2e-3, weight_decay=weight_decay)
        for _ in range(6):
            for p in net.parameters():
                p.grad[...] = rng.standard_normal(p.grad.shape) * (rng.random(p.grad.shape) < .6)
            if reference:
                with fused.disabled():
                    opt.step()
            else:
                opt.step()
        return [p.value for p in net.parameters()] + opt.state["m"] + opt.state["v"]
    assert cpu_kernels.adam(dtype) is not None
    for a, b in zip(trained(False), trained(True)):
        assert a.dtype == b.dtype and np.array_equal(a, b)


@needs_kernels
def test_adam_keeps_numpys_code_for_arrays_the_kernel_does_not_take():
    net = build("atan", "subtract", True, False, np.float32)
    p = next(iter(net.parameters()))
    p.value = np.asfortranarray(np.ones((7, 3), np.float32))        # not C-contiguous
    p.grad = np.asfortranarray(np.full((7, 3), 0.5, np.float32))
    opt = ms.Adam([p], lr=0.1)
    opt.step()                                      # the NumPy code: first step moves by lr
    assert np.allclose(p.value, 1 - 0.1, rtol=0, atol=1e-6)

"""The LIF recurrence (eqs. 1-3) against sequences worked out by hand."""
import numpy as np
import pytest

import minisnn as ms
from minisnn.neuron import leaky_step


def run_single(I, **kw):
    """One neuron driven by the current sequence I through a Linear(1, 1) with W = 1, b = 0."""
    net = ms.Sequential(ms.Linear(1, 1, dtype="float64"), ms.Leaky(**kw))
    net[0].W[...] = 1.0
    net[0].b[...] = 0.0
    x = np.asarray(I, dtype=np.float64).reshape(-1, 1, 1)  # (T, B=1, F=1)
    spk, mem = net(x)
    return mem[:, 0, 0], spk[:, 0, 0]


I = [0.6, 0.6, 0.6, 0.6, 0.0]
# By hand, beta = 0.5, theta = 1:
#   U0 = 0.6;  U1 = 0.3 + 0.6 = 0.9;  U2 = 0.45 + 0.6 = 1.05 > 1 -> spike
#   subtract: U3 = 0.525 + 0.6 - 1 = 0.125;  U4 = 0.0625
#   zero:     U3 = 0.5 * (1 - 1) * 1.05 + 0.6 = 0.6;  U4 = 0.3
#   none:     U3 = 0.525 + 0.6 = 1.125 (spike again);  U4 = 0.5625
@pytest.mark.parametrize("reset, U_hand, S_hand", [
    ("subtract", [0.6, 0.9, 1.05, 0.125, 0.0625], [0, 0, 1, 0, 0]),
    ("zero", [0.6, 0.9, 1.05, 0.6, 0.3], [0, 0, 1, 0, 0]),
    ("none", [0.6, 0.9, 1.05, 1.125, 0.5625], [0, 0, 1, 1, 0]),
])
def test_single_neuron_by_hand(reset, U_hand, S_hand):
    U, S = run_single(I, beta=0.5, threshold=1.0, reset=reset)
    np.testing.assert_allclose(U, U_hand, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(S, S_hand)


def test_threshold_is_strict():
    U, S = run_single([1.0, 0.0], beta=0.0, threshold=1.0)  # U exactly at threshold: no spike
    assert U[0] == 1.0 and S[0] == 0.0
    U, S = run_single([1.0 + 1e-12], beta=0.0, threshold=1.0)
    assert S[0] == 1.0


def test_state_starts_at_zero_and_reset_comes_from_previous_step():
    U, S = run_single([2.5, 0.0, 0.0], beta=1.0, threshold=1.0)
    # U0 = 2.5 (no earlier spike to subtract), spike; U1 = 2.5 - 1 = 1.5, spike; U2 = 0.5
    np.testing.assert_allclose(U, [2.5, 1.5, 0.5])
    np.testing.assert_array_equal(S, [1, 1, 0])


def test_leaky_step_matches_equation_1():
    rng = np.random.default_rng(0)
    U_prev, I_t = rng.normal(size=(3, 4)), rng.normal(size=(3, 4))
    S_prev = (rng.random((3, 4)) > 0.5).astype(float)
    U, S = leaky_step(U_prev, S_prev, I_t, 0.8, 0.7, "subtract", lambda V: (V > 0).astype(V.dtype))
    np.testing.assert_allclose(U, 0.8 * U_prev + I_t - 0.7 * S_prev)
    np.testing.assert_array_equal(S, (U > 0.7).astype(float))


def test_records_hold_every_layer_and_step():
    net = ms.Sequential(ms.Linear(5, 4, rng=0), ms.Leaky(0.9), ms.Linear(4, 3, rng=1), ms.Leaky(0.9))
    x = np.random.default_rng(0).random((2, 5)).astype(np.float32)
    spk, mem = net(x, num_steps=7)
    assert spk.shape == mem.shape == (7, 2, 3)
    r = net.record
    assert len(r) == 4 and r[1].U.shape == (7, 2, 4) and r[3].S is spk
    assert r[0].X.shape == (1, 2, 5) and np.shares_memory(r[0].X, x)   # static: a time axis of 1
    np.testing.assert_array_equal(r[2].X, r[1].S)                 # layer input X = previous spikes
    assert r[1].X.shape == (1, 2, 4)                              # W·x computed once, not 7 times
    np.testing.assert_allclose(r[1].X[0], x @ net[0].W.T + net[0].b, rtol=1e-6)
    with pytest.raises(AttributeError, match="only spiking layers"):
        r[0].U


def test_static_input_equals_repeated_input():
    net = ms.Sequential(ms.Linear(5, 4, dtype="float64", rng=0), ms.Leaky(0.9, learn_beta=True),
                        ms.Linear(4, 3, dtype="float64", rng=1), ms.Leaky(0.8))
    x = np.random.default_rng(1).random((2, 5)) * 3
    y = np.array([0, 2])
    grads = []
    for xin, T in ((x, 6), (np.broadcast_to(x, (6, 2, 5)).copy(), None)):
        net.zero_grad()
        spk, mem = net(xin, num_steps=T)
        net.backward(d_mem=ms.ce_membrane_loss(mem, y)[1])
        grads.append([p.grad.copy() for p in net.parameters()] + [mem])
    for a, b in zip(*grads):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_dtype_is_kept_end_to_end(dtype):
    net = ms.Sequential(ms.Linear(5, 4, dtype=dtype, rng=0), ms.Leaky(0.9, learn_beta=True),
                        ms.Linear(4, 3, dtype=dtype, rng=1), ms.Leaky(0.9))
    x = np.random.default_rng(0).random((2, 5)).astype(dtype)
    spk, mem = net(x, num_steps=4)
    loss, d_mem = ms.ce_membrane_loss(mem, np.array([0, 1]))
    net.backward(d_mem=d_mem)
    assert spk.dtype == mem.dtype == d_mem.dtype == loss.dtype == np.dtype(dtype)
    assert all(r.X.dtype == np.dtype(dtype) for r in net.record)
    assert net[0].dW.dtype == net[2].db.dtype == np.dtype(dtype)


@pytest.mark.parametrize("detach_reset", [True, False])
def test_backward_leaves_the_callers_arrays_alone(detach_reset):
    """Sequential never changes the caller's d_spk or d_mem. A layer's own backward may reuse
    the memory of the d_out it is given (the layer protocol), and gives the same result."""
    rng = np.random.default_rng(3)
    net = ms.Sequential(ms.Linear(6, 5, dtype="float64", rng=0),
                        ms.Leaky(0.9, threshold=0.4, detach_reset=detach_reset),
                        ms.Linear(5, 3, dtype="float64", rng=1), ms.Leaky(0.8, threshold=0.4))
    x = rng.random((4, 6)) * 2
    spk, mem = net(x, num_steps=5)
    d_spk, d_mem = rng.standard_normal(spk.shape), rng.standard_normal(mem.shape)
    kept = d_spk.copy(), d_mem.copy()
    net.backward(d_mem=d_mem, d_spk=d_spk)
    np.testing.assert_array_equal(d_spk, kept[0])
    np.testing.assert_array_equal(d_mem, kept[1])

    layer, rec = net[1], net.record[1]
    dS = rng.standard_normal(rec.U.shape)
    dI = layer.backward(rec, dS.copy())                # (1, B, N): the input was static
    assert dI.shape == (1, 4, 5)
    seq_rec = ms.record.Record(X=np.broadcast_to(rec.X, rec.U.shape).copy(), U=rec.U, S=rec.S)
    dS_kept = dS.copy()
    dI_fused = layer.backward(seq_rec, dS.copy())      # the fused kernels (where built) or not
    with ms.fused.disabled():                          # the reference: dI in dS's memory
        dI_time = layer.backward(seq_rec, dS)
    assert np.shares_memory(dI_time, dS) and not np.array_equal(dS, dS_kept)
    np.testing.assert_allclose(dI_time.sum(axis=0, keepdims=True), dI, rtol=1e-12)
    np.testing.assert_allclose(dI_fused, dI_time, rtol=1e-12)

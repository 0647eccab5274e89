"""Neurons with more state: Synaptic (a synaptic current) and RLeaky (a recurrent connection).

By-hand traces of their equations, then their BPTT checked like Leaky's (tests/test_gradients.py):
finite differences on the smooth stand-in (float64, h = 1e-6, max relative error ≤ 1e-6), the
literal double sum of eq. (6) with the extra factors written out as matrices (minisnn.literal,
≤ 1e-10), deliberately wrong backwards that must fail both, and — where torch and snntorch are
installed — snnTorch's autograd in float64 (≤ 1e-12, spikes identical).
"""
import copy
import math

import numpy as np
import pytest

import minisnn as ms
from minisnn import gradcheck
from minisnn.surrogate import SURROGATES

from helpers import both_losses

FD_BOUND, LITERAL_BOUND, SNNTORCH_BOUND = 1e-6, 1e-10, 1e-12
RESETS = ["subtract", "zero", "none"]
NEURONS = ["synaptic", "rleaky"]


def make_neuron(kind, n, reset="subtract", detach=True, surrogate="atan", seed=3):
    if kind == "synaptic":
        return ms.Synaptic(0.8, 0.9, threshold=0.5, surrogate=surrogate, reset=reset,
                           detach_reset=detach)
    return ms.RLeaky(n, 0.9, threshold=0.5, surrogate=surrogate, reset=reset,
                     detach_reset=detach, dtype="float64", rng=seed)


# ----------------------------------------------------------------------------- by hand

def test_synaptic_trace_by_hand():
    # α = 0.5, β = 0.5, θ = 1, one pulse I = 1.6 at t = 0, then nothing:
    #   I_syn: 1.6, 0.8, 0.4, 0.2
    #   U (subtract): 1.6 (spike), 0.8 + 0.8 − 1 = 0.6, 0.3 + 0.4 = 0.7, 0.35 + 0.2 = 0.55
    #   U (zero):     1.6 (spike), 0 (emptied, input too), 0.4, 0.2 + 0.2 = 0.4
    I = np.array([1.6, 0, 0, 0]).reshape(4, 1, 1)
    for reset, U_hand in (("subtract", [1.6, 0.6, 0.7, 0.55]), ("zero", [1.6, 0.0, 0.4, 0.4])):
        S, rec = ms.Synaptic(0.5, 0.5, threshold=1.0, reset=reset).forward(I, 4)
        np.testing.assert_allclose(rec.syn[:, 0, 0], [1.6, 0.8, 0.4, 0.2], rtol=0, atol=1e-12)
        np.testing.assert_allclose(rec.U[:, 0, 0], U_hand, rtol=0, atol=1e-12)
        np.testing.assert_array_equal(S[:, 0, 0], [1, 0, 0, 0])
    assert rec.names == ("X", "syn", "U", "S")


def test_rleaky_trace_by_hand():
    # Two neurons, β = 0.5, θ = 1; neuron 0 excites neuron 1 through V[1, 0] = 0.7.
    layer = ms.RLeaky(2, 0.5, threshold=1.0, dtype="float64")
    layer.V[...] = [[0.0, 0.0], [0.7, 0.0]]
    layer.b_V[...] = [0.0, 0.1]
    I = np.zeros((3, 1, 2))
    I[0, 0, 0] = 1.5                                   # neuron 0 spikes at t = 0
    S, rec = layer.forward(I, 3)
    #   neuron 0: 1.5 (spike), 0.75 − 1 = −0.25, −0.125
    #   neuron 1: b_V = 0.1, 0.05 + 0.7 + 0.1 = 0.85, 0.425 + 0 + 0.1 = 0.525
    np.testing.assert_allclose(rec.U[:, 0, 0], [1.5, -0.25, -0.125], atol=1e-12)
    np.testing.assert_allclose(rec.U[:, 0, 1], [0.1, 0.85, 0.525], atol=1e-12)
    np.testing.assert_array_equal(S[:, 0], [[1, 0], [0, 0], [0, 0]])


@pytest.mark.parametrize("kind", NEURONS)
def test_static_input_equals_repeated_input(kind):
    x = np.random.default_rng(1).random((2, 5)) * 3
    y = np.array([0, 2])
    grads = []
    for xin, T in ((x, 6), (np.broadcast_to(x, (6, 2, 5)).copy(), None)):
        net = ms.Sequential(ms.Linear(5, 3, dtype="float64", rng=0), make_neuron(kind, 3))
        spk, mem = net(xin, num_steps=T)
        net.backward(d_mem=ms.ce_membrane_loss(mem, y)[1])
        grads.append([p.grad.copy() for p in net.parameters()] + [mem])
    for a, b in zip(*grads):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)


def test_settings_are_checked():
    with pytest.raises(ValueError, match=r"alpha must be in \[0, 1\]"):
        ms.Synaptic(1.5, 0.9)
    with pytest.raises(TypeError, match="learn_alpha must be True or False"):
        ms.Synaptic(0.5, 0.9, learn_alpha="yes")
    with pytest.raises(ValueError, match="size must be a positive integer"):
        ms.RLeaky(0, 0.9)
    with pytest.raises(ValueError, match=r"RLeaky\(3\) needs an input current of shape"):
        ms.RLeaky(3, 0.9).forward(np.zeros((1, 2, 4), np.float32), 2)
    with pytest.raises(ValueError, match="layer sizes do not chain"):
        ms.Sequential(ms.Linear(4, 3), ms.RLeaky(5, 0.9))
    assert repr(ms.Synaptic(0.8, 0.9)) == (
        "Synaptic(alpha=0.8, beta=0.9, threshold=1.0, surrogate=ATan(alpha=2.0), "
        "reset='subtract', detach_reset=True, learn_beta=False, learn_alpha=False)")


# ----------------------------------------------------------------------------- gradients

def fd_errors(kind, reset, static=True, seed=0, T=6):
    net = gradcheck.smooth_stand_in((4, 5, 3), beta=0.85, reset=reset, seed=seed, neuron=kind)
    rng = np.random.default_rng(seed + 1)
    x = rng.random((3, 4)) * 2 if static else rng.random((T, 3, 4)) * 2
    return gradcheck.check_finite_differences(net, x, T, both_losses(rng.integers(0, 3, 3)))


@pytest.mark.parametrize("kind", NEURONS)
@pytest.mark.parametrize("reset", RESETS)
@pytest.mark.parametrize("static", [True, False], ids=["static", "time-varying"])
def test_finite_differences(kind, reset, static):
    errors = fd_errors(kind, reset, static)
    learned = {"synaptic": {"W", "b", "alpha", "beta"}, "rleaky": {"W", "b", "V", "b_V", "beta"}}
    assert {k.split(".")[1] for k in errors} == learned[kind]
    assert max(errors.values()) <= FD_BOUND, errors


def literal_errors(kind, reset, detach, surrogate="atan", seed=0, T=7):
    net = ms.Sequential(ms.Linear(6, 4, dtype="float64", rng=seed),
                        make_neuron(kind, 4, reset, detach, surrogate))
    rng = np.random.default_rng(seed + 1)
    x = rng.random((T, 3, 6)) * 2
    errors, _ = gradcheck.check_literal(net, x, T, both_losses(rng.integers(0, 4, 3)))
    return errors, net


@pytest.mark.parametrize("kind", NEURONS)
@pytest.mark.parametrize("surrogate", sorted(SURROGATES))
@pytest.mark.parametrize("reset", RESETS)
@pytest.mark.parametrize("detach", [True, False], ids=["detached", "attached"])
def test_literal_double_sum(kind, surrogate, reset, detach):
    errors, net = literal_errors(kind, reset, detach, surrogate)
    assert set(errors) == ({"W", "b", "V", "b_V"} if kind == "rleaky" else {"W", "b"})
    assert max(errors.values()) <= LITERAL_BOUND, errors
    assert np.abs(net[0].dW).max() > 0


# Deliberately wrong backwards: each drops one path that only these neurons have. The forward is
# untouched; the sabotage happens between the forward and the backward pass.

def forget_alpha(layer):              # the synaptic current's own decay, ∂I_syn[t+1]/∂I_syn[t]
    layer._alpha = lambda dtype: 0.0


def cut_recurrence(layer):            # the recurrent path ∂c[t+1]/∂S[t] = V
    layer.V = np.zeros_like(layer.V)


SABOTAGE = {"synaptic": forget_alpha, "rleaky": cut_recurrence}


def sabotaged_gradients(net, x, T, loss_fn, sabotage):
    real = copy.deepcopy(net)
    net.zero_grad()
    spk, mem = net(x, T)
    _, d_mem, d_spk = loss_fn(spk, mem)
    sabotage(net[1])
    net.backward(d_mem=d_mem, d_spk=d_spk)
    return real, {name: p.grad.copy() for name, p in net.named_parameters()}


@pytest.mark.parametrize("kind", NEURONS)
def test_wrong_backward_fails_finite_differences(kind):
    net = gradcheck.smooth_stand_in((4, 5), beta=0.85, neuron=kind, learn_beta=False)
    rng = np.random.default_rng(1)
    x, y = rng.random((3, 4)) * 2, rng.integers(0, 5, 3)
    real, wrong = sabotaged_gradients(net, x, 6, both_losses(y), SABOTAGE[kind])
    f = lambda: both_losses(y)(*real(x, 6))[0]
    W = real[0].W
    assert gradcheck.rel_error(wrong["0.W"], gradcheck.numerical_gradient(f, W)) > 1e-3


@pytest.mark.parametrize("kind", NEURONS)
def test_wrong_backward_fails_literal_check(kind):
    net = ms.Sequential(ms.Linear(6, 4, dtype="float64", rng=0), make_neuron(kind, 4))
    rng = np.random.default_rng(1)
    x, y = rng.random((7, 3, 6)) * 2, rng.integers(0, 4, 3)
    real, wrong = sabotaged_gradients(net, x, 7, both_losses(y), SABOTAGE[kind])
    real(x, 7)
    rec = real.record[1]
    _, d_mem, d_spk = both_losses(y)(rec.S, rec.U)
    from minisnn.literal import literal_gradients
    literal = literal_gradients(real[0], real[1], real.record[0].X, rec.X, rec.U, rec.S, d_mem,
                                d_spk)
    assert gradcheck.rel_error(wrong["0.W"], literal["W"]) > 1e-3


# ----------------------------------------------------------------------------- snnTorch

def test_agrees_with_snntorch_autograd():
    torch = pytest.importorskip("torch", reason="torch and snntorch not installed (optional)")
    snn = pytest.importorskip("snntorch", reason="torch and snntorch not installed (optional)")
    worst = {}
    for kind in NEURONS:
        for reset in RESETS:
            for static in (True, False):
                worst[(kind, reset, static)] = snntorch_errors(torch, snn, kind, reset, static)
    for key, (err, mismatches) in worst.items():
        assert mismatches == 0 and err <= SNNTORCH_BOUND, (key, err, mismatches)


class _ATan64:
    """snnTorch's atan surrogate (α = 2) with float64 spikes: snnTorch's own surrogates return
    float32 spikes, which its RLeaky cannot feed to a float64 recurrent layer and which round the
    gradient through the spikes to float32."""

    @staticmethod
    def make(torch):
        class Fn(torch.autograd.Function):
            @staticmethod
            def forward(ctx, v):
                ctx.save_for_backward(v)
                return (v > 0).to(v.dtype)

            @staticmethod
            def backward(ctx, grad):
                (v,) = ctx.saved_tensors
                return grad / (1 + (math.pi * v) ** 2)
        return Fn.apply


def snntorch_errors(torch, snn, kind, reset, static, T=8, B=3, F=5, N=4):
    """Max relative error of records and gradients of Linear → neuron, minisnn vs snnTorch
    (float64, the same weights, the membrane cross-entropy), and the number of spike mismatches.
    θ = 0.75 is exact in float32: snnTorch's Synaptic multiplies its float32 reset by θ in
    float32."""
    rng = np.random.default_rng(0)
    x = rng.random((B, F)) * 2 if static else rng.random((T, B, F)) * 2
    y = rng.integers(0, N, B)
    lin = ms.Linear(F, N, dtype="float64", rng=1)
    if kind == "synaptic":
        ours = ms.Synaptic(0.8, 0.9, threshold=0.75, reset=reset)
    else:
        ours = ms.RLeaky(N, 0.9, threshold=0.75, reset=reset, dtype="float64", rng=2)
    net = ms.Sequential(lin, ours)
    spk, mem = net(x, T)
    net.backward(d_mem=ms.ce_membrane_loss(mem, y)[1])

    dtype = torch.float64
    fc = torch.nn.Linear(F, N).to(dtype)
    with torch.no_grad():
        fc.weight.copy_(torch.tensor(lin.W))
        fc.bias.copy_(torch.tensor(lin.b))
    spike_grad = _ATan64.make(torch)
    f64 = lambda v: torch.tensor(v, dtype=dtype)      # snnTorch keeps plain floats in float32
    if kind == "synaptic":
        theirs = snn.Synaptic(alpha=f64(0.8), beta=f64(0.9), threshold=f64(0.75),
                              reset_mechanism=reset, spike_grad=spike_grad)
        state = theirs.init_synaptic()
    else:
        theirs = snn.RLeaky(beta=f64(0.9), threshold=f64(0.75), linear_features=N,
                            reset_mechanism=reset, spike_grad=spike_grad)
        theirs.recurrent = theirs.recurrent.to(dtype)
        with torch.no_grad():
            theirs.recurrent.weight.copy_(torch.tensor(ours.V))
            theirs.recurrent.bias.copy_(torch.tensor(ours.b_V))
        state = theirs.init_rleaky()
    X = torch.tensor(x)
    mems, spks = [], []
    for t in range(T):
        out = theirs(fc(X if static else X[t]), *state)
        s, state = out[0], (out[1:] if kind == "synaptic" else out)   # RLeaky takes (spk, mem)
        mems.append(out[-1])
        spks.append(s)
    M, S = torch.stack(mems), torch.stack(spks)
    loss = sum(torch.nn.functional.cross_entropy(M[t], torch.tensor(y)) for t in range(T))
    loss.backward()
    pairs = [(mem, M.detach().numpy()), (lin.dW, fc.weight.grad.numpy()),
             (lin.db, fc.bias.grad.numpy())]
    if kind == "rleaky":
        pairs += [(ours.dV, theirs.recurrent.weight.grad.numpy()),
                  (ours.db_V, theirs.recurrent.bias.grad.numpy())]
    mismatches = int((spk != S.detach().numpy()).sum())
    return max(gradcheck.rel_error(a, b) for a, b in pairs), mismatches


if __name__ == "__main__":     # the measured errors, for the record: python tests/test_neuron_state.py
    import torch
    import snntorch as snn
    for kind in NEURONS:
        fd = max(max(fd_errors(kind, r, static).values()) for r in RESETS for static in (True, False))
        lit = max(max(literal_errors(kind, r, d, s)[0].values()) for r in RESETS
                  for d in (True, False) for s in sorted(SURROGATES))
        st = [snntorch_errors(torch, snn, kind, r, static) for r in RESETS for static in (True, False)]
        print(f"{kind}: finite differences {fd:.1e} (bound {FD_BOUND:g}), literal eq. (6) "
              f"{lit:.1e} (bound {LITERAL_BOUND:g}), snnTorch autograd float64 "
              f"{max(e for e, _ in st):.1e} (bound {SNNTORCH_BOUND:g}), spikes differing "
              f"{sum(m for _, m in st)}")

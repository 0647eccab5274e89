"""The in-place hot path against the literal equations.

The engine's forward writes each step straight into the records, its backward reuses scratch
arrays, Adam and the loss work in place (see docs/benchmarks.md). None of that may change a
number: here a plain, allocate-everything transcription of eqs. (1)-(10) and of Adam, written
independently of the engine, must give the same records and gradients in float64 (≤ 1e-12,
in practice bit for bit) on every reset mode, detached or not, learnable β or not, static and
time-varying input, and on every surrogate.
"""
import math

import numpy as np
import pytest

import minisnn as ms
from minisnn.surrogate import SURROGATES

BOUND = 1e-12


def max_rel(a, b):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    scale = max(np.abs(a).max(initial=0), np.abs(b).max(initial=0), 1e-300)
    return np.abs(a - b).max(initial=0) / scale


def surrogate_grad(leaky, V, S):
    """∂S̃/∂U, with the atan surrogate written out as the printed formula."""
    if leaky.surrogate.name == "atan":
        a = leaky.surrogate.alpha
        return (a / 2) / (1 + (math.pi * a / 2 * V) ** 2)
    return leaky.surrogate.grad(V, S)


def literal_forward(net, x, T):
    """Eqs. (1)-(3) and I = W·X + b, one new array per operation. Returns every layer's
    (input, U, S)."""
    h, recs = x, []
    for layer in net.layers:
        if isinstance(layer, ms.Linear):
            recs.append((h, None, None))
            h = h @ layer.W.T + layer.b
            continue
        beta, thr = float(layer.beta), layer.threshold
        U_prev = S_prev = np.zeros(h.shape[-2:])
        Us, Ss = [], []
        for t in range(T):
            I_t = h if h.ndim == 2 else h[t]
            if layer.reset == "zero":          # emptied after a spike: U = I exactly then
                U = beta * ((1 - S_prev) * U_prev) + I_t
            else:
                U = beta * U_prev + I_t - (thr * S_prev if layer.reset == "subtract" else 0)
            S = layer.surrogate.spike(U - thr)
            Us.append(U)
            Ss.append(S)
            U_prev, S_prev = U, S
        recs.append((h, np.stack(Us), np.stack(Ss)))
        h = recs[-1][2]
    return recs


def literal_backward(net, recs, d_mem, d_spk):
    """Eqs. (4)-(7) by the chain rule, step by step. Returns {name: gradient}."""
    grads, dU_out, dS_out, dI = {}, d_mem, d_spk, None
    for i in range(len(net.layers) - 1, -1, -1):
        layer, (X, U, S) = net.layers[i], recs[i]
        if isinstance(layer, ms.Linear):
            X2, dI2 = X.reshape(-1, X.shape[-1]), dI.reshape(-1, dI.shape[-1])
            grads[f"{i}.W"], grads[f"{i}.b"] = dI2.T @ X2, dI2.sum(axis=0)
            dS_out = dI @ layer.W
            continue
        beta, thr, T = float(layer.beta), layer.threshold, U.shape[0]
        g = surrogate_grad(layer, U - thr, S)
        dU = np.zeros_like(U)
        if dU_out is not None:
            dU = dU + dU_out
        if dS_out is not None:
            dU = dU + dS_out * g
        dbeta = 0.0
        for t in range(T - 2, -1, -1):
            # ∂U[t+1]/∂U[t] and ∂U[t+1]/∂β from U[t+1] = β·U[t] + I[t+1] − R[t]
            if layer.reset == "zero":
                J = beta * (1 - S[t])
                if not layer.detach_reset:
                    J = J - beta * U[t] * g[t]
                dbeta_t = (1 - S[t]) * U[t]
            else:
                J = beta + 0 * U[t]
                if layer.reset == "subtract" and not layer.detach_reset:
                    J = J - thr * g[t]
                dbeta_t = U[t]
            dU[t] = dU[t] + J * dU[t + 1]
            dbeta += (dU[t + 1] * dbeta_t).sum()
        if layer.learn_beta:
            grads[f"{i}.beta"] = dbeta
        dI = dU.sum(axis=0) if X.ndim == 2 else dU
        dU_out = dS_out = None
    return grads


def engine_run(net, x, T, y):
    spk, mem = net(x, T)
    L1, d_mem = ms.ce_membrane_loss(mem, y)
    L2, d_spk = ms.ce_rate_loss(spk, y)
    net.zero_grad()
    net.backward(d_mem=d_mem, d_spk=d_spk)
    return d_mem, d_spk


def build(reset, detach, learn_beta, surrogate="atan", seed=0):
    rng = np.random.default_rng(seed)
    kw = dict(threshold=0.5, reset=reset, detach_reset=detach, surrogate=surrogate)
    return ms.Sequential(ms.Linear(5, 7, dtype="float64", rng=rng),
                         ms.Leaky(0.9, learn_beta=learn_beta, **kw),
                         ms.Linear(7, 4, dtype="float64", rng=rng),
                         ms.Leaky(0.8, learn_beta=learn_beta, **kw))


def check_against_literal(net, x, T, y):
    d_mem, d_spk = engine_run(net, x, T, y)
    recs = literal_forward(net, x, T)
    for i, (X, U, S) in enumerate(recs):
        if U is not None:
            assert max_rel(net.record[i].U, U) <= BOUND
            np.testing.assert_array_equal(net.record[i].S, S)
    literal = literal_backward(net, recs, d_mem, d_spk)
    engine = {f"{i}.{n}": getattr(l, "d" + n)
              for i, l in enumerate(net.layers) for n in l.param_names()}
    assert set(engine) == set(literal)
    errors = {k: max_rel(engine[k], literal[k]) for k in engine}
    assert max(errors.values()) <= BOUND, errors
    assert np.abs(engine["0.W"]).max() > 0


@pytest.mark.parametrize("reset", ["subtract", "zero", "none"])
@pytest.mark.parametrize("detach", [True, False], ids=["detached", "attached"])
@pytest.mark.parametrize("learn_beta", [False, True], ids=["fixed-beta", "learn-beta"])
@pytest.mark.parametrize("static", [True, False], ids=["static", "time-varying"])
def test_engine_matches_literal_equations(reset, detach, learn_beta, static):
    T = 6
    rng = np.random.default_rng(1)
    x = rng.random((3, 5)) * 2 if static else rng.random((T, 3, 5)) * 2
    y = rng.integers(0, 4, 3)
    check_against_literal(build(reset, detach, learn_beta), x, T, y)


@pytest.mark.parametrize("surrogate", sorted(SURROGATES))
def test_every_surrogate_matches_literal_equations(surrogate):
    rng = np.random.default_rng(2)
    x, y = rng.random((3, 5)) * 2, rng.integers(0, 4, 3)
    check_against_literal(build("subtract", True, True, surrogate), x, 5, y)


def test_records_are_fresh_arrays_each_forward():
    net = build("subtract", True, False)
    x = np.random.default_rng(3).random((3, 5)) * 2
    spk1, mem1 = net(x, 4)
    keep = spk1.copy(), mem1.copy()
    net(x * 0.5, 4)
    np.testing.assert_array_equal(spk1, keep[0])
    np.testing.assert_array_equal(mem1, keep[1])


def test_leaky_step_in_place_equals_new_arrays():
    rng = np.random.default_rng(4)
    U_prev, I_t = rng.normal(size=(3, 4)), rng.normal(size=(3, 4))
    S_prev = (rng.random((3, 4)) > 0.5).astype(float)
    spike = ms.surrogate.ATan().spike
    for reset in ("subtract", "zero", "none"):
        U, S = ms.neuron.leaky_step(U_prev, S_prev, I_t, 0.8, 0.7, reset, spike)
        out = np.empty_like(U), np.empty_like(S)
        U2, S2 = ms.neuron.leaky_step(U_prev, S_prev, I_t, 0.8, 0.7, reset, spike, out=out)
        assert U2 is out[0] and S2 is out[1]
        np.testing.assert_array_equal(U, U2)
        np.testing.assert_array_equal(S, S2)
        assert S.dtype == U.dtype


def test_loss_gradient_matches_literal_softmax():
    rng = np.random.default_rng(5)
    mem, y = rng.normal(size=(4, 3, 5)) * 3, np.array([0, 4, 2])
    loss, d_mem = ms.ce_membrane_loss(mem, y)
    p = np.exp(mem) / np.exp(mem).sum(axis=-1, keepdims=True)
    onehot = np.eye(5)[y]
    assert max_rel(loss, -(np.log(p) * onehot).sum() / 3) <= BOUND
    assert max_rel(d_mem, (p - onehot) / 3) <= BOUND


def test_adam_matches_literal_update_rule():
    class Holder:
        pass
    rng = np.random.default_rng(6)
    h = Holder()
    h.x, h.dx = rng.normal(size=(4, 3)), np.zeros((4, 3))
    opt = ms.Adam([ms.Param(h, "x")], lr=5e-4, betas=(0.9, 0.999))
    x, m, v = h.x.copy(), np.zeros((4, 3)), np.zeros((4, 3))
    for t in range(1, 5):
        g = rng.normal(size=(4, 3))
        h.dx[...] = g
        opt.step()
        m = 0.9 * m + (1 - 0.9) * g
        v = 0.999 * v + (1 - 0.999) * g * g
        x = x - 5e-4 / (1 - 0.9 ** t) * m / (np.sqrt(v) / np.sqrt(1 - 0.999 ** t) + 1e-8)
        assert max_rel(h.x, x) <= BOUND

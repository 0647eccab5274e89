"""Gradient checks 8a-8d: the backward pass against finite differences and the literal eq. (6).

Bounds: finite differences on the smooth stand-in, float64, h = 1e-6: max relative error ≤ 1e-6.
Literal double sum vs fast backward, float64: ≤ 1e-10. Relative error is
max|a − b| / max(max|a|, max|b|) per parameter array (minisnn.gradcheck.rel_error).
"""
import numpy as np
import pytest

import minisnn as ms
from minisnn import fused, gradcheck, neuron
from minisnn.surrogate import SURROGATES

from helpers import both_losses, one_layer

FD_BOUND, LITERAL_BOUND = 1e-6, 1e-10
RESETS = ["subtract", "zero", "none"]


def fd_errors(sizes, reset, static=True, learn_beta=True, seed=0, T=6):
    net = gradcheck.smooth_stand_in(sizes, beta=0.85, reset=reset, learn_beta=learn_beta, seed=seed)
    rng = np.random.default_rng(seed + 1)
    x = rng.random((3, sizes[0])) * 2 if static else rng.random((T, 3, sizes[0])) * 2
    y = rng.integers(0, sizes[-1], 3)
    return gradcheck.check_finite_differences(net, x, T, both_losses(y))


@pytest.mark.parametrize("reset", RESETS)
@pytest.mark.parametrize("sizes", [(4, 5, 3), (4, 5, 4, 3)], ids=["2-layer", "3-layer"])
@pytest.mark.parametrize("static", [True, False], ids=["static", "time-varying"])
def test_8a_finite_differences(reset, sizes, static):
    errors = fd_errors(sizes, reset, static)
    assert {k.split(".")[1] for k in errors} == {"W", "b", "beta"}
    assert max(errors.values()) <= FD_BOUND, errors


def test_8a_fixed_beta():
    errors = fd_errors((4, 5, 3), "subtract", learn_beta=False)
    assert "1.beta" not in errors and max(errors.values()) <= FD_BOUND, errors


def literal_errors(surrogate, reset, detach, static=True, seed=0, T=7):
    net = one_layer(6, 4, seed=seed, beta=0.9, threshold=0.5, surrogate=surrogate, reset=reset,
                    detach_reset=detach)
    rng = np.random.default_rng(seed + 1)
    x = rng.random((3, 6)) * 2 if static else rng.random((T, 3, 6)) * 2
    y = rng.integers(0, 4, 3)
    errors, contrib = gradcheck.check_literal(net, x, T, both_losses(y))
    return errors, contrib, net


@pytest.mark.parametrize("surrogate", sorted(SURROGATES))
@pytest.mark.parametrize("reset", RESETS)
@pytest.mark.parametrize("detach", [True, False], ids=["detached", "attached"])
def test_8b_literal_double_sum(surrogate, reset, detach):
    errors, contrib, net = literal_errors(surrogate, reset, detach)
    assert max(errors.values()) <= LITERAL_BOUND, errors
    assert np.abs(net[0].dW).max() > 0  # a gradient that is all zeros would agree trivially


@pytest.mark.parametrize("reset", RESETS)
def test_8b_time_varying_input(reset):
    errors, _, _ = literal_errors("atan", reset, True, static=False)
    assert max(errors.values()) <= LITERAL_BOUND, errors


def test_8c_contribution_matrix_is_causal_and_decays():
    # no reset and a straight-through surrogate: ∂L[t]/∂W[s] = β^(t−s) · ∂L[t]/∂U[t] · X
    net = one_layer(6, 4, beta=0.5, surrogate="straight_through", reset="none")
    x = np.random.default_rng(3).random((3, 6))
    y = np.array([0, 1, 2])
    _, contrib = gradcheck.check_literal(net, x, 5, gradcheck.membrane_loss(y))
    assert contrib.shape == (5, 5)
    assert np.all(np.triu(contrib, k=1) == 0)                     # s > t never contributes
    assert np.all(np.diag(contrib) > 0)
    for t in range(5):
        for s in range(t):                                        # each step back halves it
            np.testing.assert_allclose(contrib[t, s], contrib[t, t] * 0.5 ** (t - s), rtol=1e-12)
    rec = net.record[1]
    _, d_mem = ms.ce_membrane_loss(rec.U, y)
    dW, _, _ = gradcheck.literal_gradient(net[0], net[1], x, rec.U, rec.S, d_mem, None)
    direct = sum(0.5 ** (t - s) * d_mem[t].T @ x for t in range(5) for s in range(t + 1))
    np.testing.assert_allclose(dW, direct, rtol=1e-12)


def drop_beta_term(*args):
    J, dU_dbeta = REAL_MEMBRANE_GRADS(*args)
    return 0 * J, dU_dbeta


def double_surrogate(*args):
    return 2 * REAL_SURROGATE_GRAD(*args)


def ignore_reset_path(U, S, g, beta, thr, reset, detach_reset):
    return REAL_MEMBRANE_GRADS(U, S, g, beta, thr, reset, True)


@pytest.fixture
def reference_path():
    """The sabotage below is in the readable reference (neuron.py), so run it there: the fused
    kernels (on where a C compiler is) are checked against the reference in test_fused_logic."""
    with fused.disabled():
        yield


REAL_MEMBRANE_GRADS = neuron.membrane_grads
REAL_SURROGATE_GRAD = neuron.surrogate_grad
BROKEN = {drop_beta_term: "membrane_grads", double_surrogate: "surrogate_grad",
          ignore_reset_path: "membrane_grads"}


@pytest.mark.parametrize("broken", [drop_beta_term, double_surrogate, ignore_reset_path])
def test_8d_wrong_backward_fails_finite_differences(monkeypatch, broken, reference_path):
    monkeypatch.setattr(neuron, BROKEN[broken], broken)
    errors = fd_errors((4, 5, 3), "subtract")
    assert max(errors.values()) > 1e-3, errors


@pytest.mark.parametrize("broken", [drop_beta_term, double_surrogate])
def test_8d_wrong_backward_fails_literal_check(monkeypatch, broken, reference_path):
    monkeypatch.setattr(neuron, BROKEN[broken], broken)
    errors, _, _ = literal_errors("atan", "subtract", True)
    assert max(errors.values()) > 1e-3, errors


def test_8d_wrong_reset_path_fails_literal_check(monkeypatch, reference_path):
    monkeypatch.setattr(neuron, "membrane_grads", ignore_reset_path)
    errors, _, _ = literal_errors("atan", "subtract", False)
    assert max(errors.values()) > 1e-3, errors


def forget_the_carry(step_back, num_steps, carry=None):
    """A broken time loop: every step starts afresh, so no gradient flows back through time."""
    for t in range(num_steps - 1, -1, -1):
        step_back(t, None)


def test_8d_wrong_time_loop_fails(monkeypatch, reference_path):
    from minisnn import bptt
    monkeypatch.setattr(neuron, "backward_through_time", forget_the_carry)
    assert max(fd_errors((4, 5, 3), "subtract").values()) > 1e-3
    assert max(literal_errors("atan", "subtract", True)[0].values()) > 1e-3
    assert bptt.backward_through_time is not neuron.backward_through_time


def test_numerical_gradient_of_known_function():
    x = np.array([0.3, -1.2, 2.0])
    g = gradcheck.numerical_gradient(lambda: (x ** 3).sum(), x)
    np.testing.assert_allclose(g, 3 * x ** 2, rtol=1e-8)
    assert gradcheck.rel_error(np.ones(3), np.ones(3) * 1.5) == pytest.approx(1 / 3)

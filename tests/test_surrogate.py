"""Surrogates: Heaviside forward, and derivatives that match the functions they come from."""
import math

import numpy as np
import pytest

import minisnn as ms
from minisnn.surrogate import SURROGATES, ATan, get_surrogate

V = np.linspace(-2, 2, 401)


@pytest.mark.parametrize("name", sorted(set(SURROGATES) - {"smooth_sigmoid"}))
def test_forward_is_heaviside(name):
    s = get_surrogate(name)
    np.testing.assert_array_equal(s.spike(V), (V > 0).astype(float))
    assert s.spike(np.zeros(1))[0] == 0  # strict


def numeric_derivative(f, x, h=1e-6):
    return (f(x + h) - f(x - h)) / (2 * h)


def test_atan_is_derivative_of_smoothed_step_not_printed_eq5():
    alpha = 2.0
    smoothed = lambda U: np.arctan(math.pi * alpha / 2 * U) / math.pi + 0.5
    g = ATan(alpha).grad(V, None)
    np.testing.assert_allclose(g, numeric_derivative(smoothed, V), rtol=1e-7)
    assert ATan(alpha).grad(np.zeros(1), None)[0] == 1.0           # 1 at threshold
    printed = 1 / math.pi / (1 + (V * math.pi) ** 2)                 # eq. (5) as printed
    np.testing.assert_allclose(printed * math.pi, g, rtol=1e-12)     # off by exactly 1/π


@pytest.mark.parametrize("name, f", [
    ("sigmoid", lambda U: 1 / (1 + np.exp(-25 * U))),
    ("fast_sigmoid", lambda U: U / (1 + 25 * np.abs(U))),            # SuperSpike's smooth step
    ("smooth_sigmoid", lambda U: 1 / (1 + np.exp(-4 * U))),
])
def test_derivative_matches_its_smooth_function(name, f):
    s = get_surrogate(name)
    x = V[np.abs(V) > 1e-3]
    np.testing.assert_allclose(s.grad(x, s.spike(x)), numeric_derivative(f, x), rtol=1e-6, atol=1e-9)


def test_simple_surrogates():
    S = (V > 0).astype(float)
    np.testing.assert_array_equal(get_surrogate("spike_operator").grad(V, S), S)
    np.testing.assert_array_equal(get_surrogate("straight_through").grad(V, S), np.ones_like(V))
    np.testing.assert_allclose(get_surrogate("triangular").grad(V, S), np.maximum(0, 1 - np.abs(V)))


@pytest.mark.parametrize("name", sorted(SURROGATES))
def test_float32_stays_float32(name):
    x = V.astype(np.float32)
    s = get_surrogate(name)
    assert s.grad(x, s.spike(x)).dtype == np.float32 and s.spike(x).dtype == np.float32


def test_user_surrogate_is_used_in_backward():
    class Twice(ms.surrogate.Surrogate):
        name = "twice"

        def grad(self, V, S):
            return 0 * V + 2.0

    net = ms.Sequential(ms.Linear(3, 2, dtype="float64", rng=0), ms.Leaky(0.9, surrogate=Twice()))
    x = np.ones((1, 3))
    spk, mem = net(x, num_steps=1)
    d_spk = np.ones_like(spk)
    net.backward(d_spk=d_spk)
    np.testing.assert_allclose(net[0].db, [2.0, 2.0])


def test_unknown_surrogate_names_the_argument():
    with pytest.raises(ValueError, match="surrogate must be one of"):
        ms.Leaky(0.9, surrogate="tanh")
    with pytest.raises(TypeError, match="surrogate"):
        ms.Leaky(0.9, surrogate=3)

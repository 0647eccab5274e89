"""A user's own layer, written against the layer protocol of minisnn.network and nothing else,
works with Sequential, the optimizers, save/load and minisnn.gradcheck."""
import numpy as np
import pytest

import minisnn as ms
from minisnn import gradcheck
from minisnn.record import Record

from helpers import both_losses


class Gain:
    """out = g ⊙ X (a learned gain per feature), stateless. Its backward mirrors its forward:
    ∂L/∂g = Σ over time and batch of ∂L/∂out ⊙ X, ∂L/∂X = g ⊙ ∂L/∂out."""
    state_names = ()

    def __init__(self, n, seed=0):
        self.g = 0.5 + np.random.default_rng(seed).random(n)
        self.dg = np.zeros(n)

    def param_names(self):
        return ("g",)

    def forward(self, X, num_steps):
        return X * self.g, Record(X=X)

    def backward(self, rec, d_out):
        self.dg += (d_out * rec.X).reshape(-1, self.g.size).sum(axis=0)
        return d_out * self.g


def net_with_gain(seed=0):
    rng = np.random.default_rng(seed)
    return ms.Sequential(ms.Linear(4, 5, dtype="float64", rng=rng), Gain(5, seed),
                         ms.Leaky(0.9, threshold=0.5), ms.Linear(5, 3, dtype="float64", rng=rng),
                         ms.Leaky(0.8, threshold=0.5))


def test_users_layer_gradients_are_exact():
    """Finite differences on a smooth stand-in that contains the user's layer."""
    net = gradcheck.smooth_stand_in([4, 5, 3], seed=1)
    net = ms.Sequential(net[0], Gain(5), *net.layers[1:])
    rng = np.random.default_rng(2)
    x, y = rng.random((6, 3, 4)) * 2, rng.integers(0, 3, 3)
    errors = gradcheck.check_finite_differences(net, x, 6, both_losses(y))
    assert "1.g" in errors and max(errors.values()) <= 1e-6, errors


def test_users_layer_with_optimizer_and_checkpoint(tmp_path):
    net = net_with_gain()
    opt = ms.Adam(net.parameters(), lr=1e-2)
    x, y = np.random.default_rng(3).random((3, 4)) * 2, np.array([0, 1, 2])
    g0 = net[1].g.copy()
    spk, mem = net(x, 5)
    net.backward(d_mem=ms.ce_membrane_loss(mem, y)[1])
    assert np.abs(net[1].dg).max() > 0
    opt.step()
    assert not np.array_equal(net[1].g, g0)               # Adam reached the user's parameter
    ms.save(tmp_path / "m.npz", net, optimizer=opt)
    other = net_with_gain(seed=7)
    other_opt = ms.Adam(other.parameters(), lr=1e-2)
    ms.load(tmp_path / "m.npz", other, optimizer=other_opt)
    np.testing.assert_array_equal(other[1].g, net[1].g)
    np.testing.assert_array_equal(other_opt.state["m"][1], opt.state["m"][1])


def test_a_layer_missing_the_protocol_is_refused():
    class NoBackward:
        def forward(self, X, num_steps):
            return X, None

        def param_names(self):
            return ()

    with pytest.raises(TypeError, match=r"layer 1 \(NoBackward\) has no backward"):
        ms.Sequential(ms.Linear(4, 5), NoBackward(), ms.Leaky(0.9))


def test_mixed_dtypes_are_refused():
    with pytest.raises(TypeError, match="share one dtype"):
        ms.Sequential(ms.Linear(4, 5, dtype="float32"), ms.Leaky(0.9),
                      ms.Linear(5, 3, dtype="float64"), ms.Leaky(0.9))

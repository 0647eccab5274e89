"""One optimizer step against a hand computation of PyTorch's update rules."""
import numpy as np
import pytest

import minisnn as ms


def param(value, grad):
    class Holder:
        pass
    h = Holder()
    h.x, h.dx = np.array(value, dtype=np.float64), np.array(grad, dtype=np.float64)
    return h, ms.Param(h, "x")


def test_adam_two_steps_by_hand():
    h, p = param([1.0, -2.0], [0.5, -1.0])
    opt = ms.Adam([p], lr=0.1, betas=(0.9, 0.999), eps=1e-8)
    opt.step()
    # step 1: m = 0.1 g, v = 0.001 g²; m̂ = g, v̂ = g²  ->  x -= 0.1 · g / (|g| + 1e-8)
    np.testing.assert_allclose(h.x, [1.0 - 0.1 * 0.5 / (0.5 + 1e-8), -2.0 + 0.1 * 1.0 / (1.0 + 1e-8)])
    x1 = h.x.copy()
    h.dx[...] = [1.0, 1.0]
    opt.step()
    g1, g2 = np.array([0.5, -1.0]), np.array([1.0, 1.0])
    m = 0.9 * 0.1 * g1 + 0.1 * g2
    v = 0.999 * 0.001 * g1 ** 2 + 0.001 * g2 ** 2
    expect = x1 - 0.1 / (1 - 0.9 ** 2) * m / (np.sqrt(v) / np.sqrt(1 - 0.999 ** 2) + 1e-8)
    np.testing.assert_allclose(h.x, expect, rtol=1e-14)
    assert opt.state["step"] == 2


def test_sgd_momentum_by_hand():
    h, p = param([1.0], [2.0])
    opt = ms.SGD([p], lr=0.1, momentum=0.9)
    opt.step()                        # buf = g = 2 -> x = 1 - 0.2
    h.dx[...] = 1.0
    opt.step()                        # buf = 0.9·2 + 1 = 2.8 -> x = 0.8 - 0.28
    np.testing.assert_allclose(h.x, [0.52])
    opt.zero_grad()
    assert h.dx[0] == 0


def steps_beside_torch(torch, make, tmake, kw, seed=0, shape=(4, 3), steps=3):
    """The weights after `steps` random gradients, from minisnn's and torch's optimizer."""
    rng = np.random.default_rng(seed)
    w0, grads = rng.normal(size=shape), rng.normal(size=(steps, *shape))
    h, p = param(w0, grads[0])
    opt = make([p], **kw)
    tw = torch.tensor(w0, requires_grad=True)
    topt = tmake([tw], **kw)
    for g in grads:
        h.dx[...] = g
        opt.step()
        tw.grad = torch.tensor(g)
        topt.step()
    return h.x, tw.detach().numpy()


def test_adam_matches_torch_when_available():
    torch = pytest.importorskip("torch")
    ours, theirs = steps_beside_torch(torch, ms.Adam, torch.optim.Adam,
                                      dict(lr=5e-4, betas=(0.9, 0.999)))
    np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-15)


def test_learnable_beta_is_updated():
    net = ms.Sequential(ms.Linear(3, 2, rng=0), ms.Leaky(0.9, learn_beta=True))
    x = np.ones((2, 3), dtype=np.float32) * 0.6
    opt = ms.Adam(net.parameters(), lr=0.01)
    spk, mem = net(x, num_steps=5)
    net.backward(d_mem=np.ones_like(mem))
    assert net[1].dbeta != 0
    opt.step()
    assert float(net[1].beta) == pytest.approx(0.9 - 0.01 * np.sign(float(net[1].dbeta)), rel=1e-6)


def test_weight_decay_as_torch_adds_it_to_the_gradient():
    h, p = param([1.0, -2.0], [0.5, -1.0])
    ms.SGD([p], lr=0.1, weight_decay=0.2).step()
    np.testing.assert_allclose(h.x, [1.0 - 0.1 * (0.5 + 0.2 * 1.0), -2.0 - 0.1 * (-1.0 - 0.4)])
    np.testing.assert_array_equal(h.dx, [0.5, -1.0])          # the gradient is left as it was
    h, p = param([1.0, 0.0], [0.0, 0.0])                       # zero gradient: decay only
    opt = ms.Adam([p], lr=0.1, weight_decay=0.5)
    opt.step()
    g = np.array([0.5, 0.0])                                   # g + 0.5·p
    np.testing.assert_allclose(h.x, [1.0, 0.0] - 0.1 * g / (np.abs(g) + 1e-8))
    assert np.isfinite(h.x).all()


def test_weight_decay_matches_torch_when_available():
    torch = pytest.importorskip("torch")
    for make, tmake, kw in ((ms.Adam, torch.optim.Adam, dict(lr=1e-2, weight_decay=0.1)),
                            (ms.SGD, torch.optim.SGD, dict(lr=1e-2, momentum=0.9,
                                                           weight_decay=0.1))):
        ours, theirs = steps_beside_torch(torch, make, tmake, kw, seed=1, shape=(3, 2))
        np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-15)

"""The convolutional layers on CuPy: the same code, the same numbers as on NumPy.

Marked `gpu`; skipped, with the reason, where CuPy or a CUDA GPU is missing. On a machine with a
GPU:  python -m pytest -m gpu tests/test_conv_gpu.py
Bound: NumPy vs CuPy in float64 (different matrix libraries underneath) ≤ 1e-10 relative; spikes
and max-pool choices identical.
"""
import numpy as np
import pytest

import minisnn as ms
from minisnn import backend
from minisnn.network import named_parameters

from conv_helpers import both_losses, tiny_csnn
from test_gpu import cp  # noqa: F401  (the fixture: CuPy, or a skip that says why)

pytestmark = pytest.mark.gpu
BOUND = 1e-10


def rel(a, b):
    a, b = backend.to_numpy(a).astype("float64"), backend.to_numpy(b).astype("float64")
    scale = max(np.abs(a).max(initial=0), np.abs(b).max(initial=0))
    return float(np.abs(a - b).max(initial=0) / scale) if scale else 0.0


def on_cupy(layer, cp):
    for _, p in named_parameters([layer]):
        p.value, p.grad = cp.asarray(p.value), cp.asarray(p.grad)
    return layer


@pytest.mark.parametrize("make", [
    lambda: ms.Conv2d(3, 4, 3, dtype="float64", rng=0),
    lambda: ms.Conv2d(3, 4, (3, 2), stride=(2, 1), padding=1, dtype="float64", rng=0),
    lambda: ms.Conv2d(3, 4, 4, padding=1, dtype="float64", rng=0),
    lambda: ms.MaxPool2d(2), lambda: ms.MaxPool2d(3, stride=2), lambda: ms.AvgPool2d(2),
    lambda: ms.Flatten(),
    lambda: ms.Residual(ms.Conv2d(3, 3, 3, padding=1, dtype="float64", rng=0), ms.Leaky(0.7)),
], ids=["conv", "conv-strided", "conv-4x4", "maxpool", "maxpool-overlap", "avgpool", "flatten", "residual"])
@pytest.mark.parametrize("T", [1, 3], ids=["static", "time-varying"])
def test_layer_numpy_vs_cupy(cp, make, T):
    X = np.random.default_rng(1).random((T, 2, 3, 8, 8)) * 2
    host, dev = make(), on_cupy(make(), cp)
    out_h, rec_h = host.forward(X, 3)
    out_d, rec_d = dev.forward(cp.asarray(X), 3)
    assert type(out_d).__module__.startswith("cupy")
    R = np.random.default_rng(2).standard_normal(out_h.shape)
    dX_h = host.backward(rec_h, R.copy())
    dX_d = dev.backward(rec_d, cp.asarray(R))
    assert rel(out_h, out_d) <= BOUND and rel(dX_h, dX_d) <= BOUND
    if "argmax" in rec_h:
        np.testing.assert_array_equal(rec_h.argmax, backend.to_numpy(rec_d.argmax))
    for (name, p), (_, q) in zip(named_parameters([host]), named_parameters([dev])):
        assert rel(p.grad, q.grad) <= BOUND, name


def test_csnn_numpy_vs_cupy(cp):
    host = tiny_csnn(leaky=lambda: ms.Leaky(0.8), residual=True)
    dev = tiny_csnn(leaky=lambda: ms.Leaky(0.8), residual=True).to("cupy")
    x = np.random.default_rng(3).random((4, 1, 10, 10)) * 3
    y = np.array([0, 1, 2, 0])
    for net, xx, yy in ((host, x, y), (dev, cp.asarray(x), cp.asarray(y))):
        net.zero_grad()
        spk, mem = net(xx, 6)
        L, d_mem, d_spk = both_losses(yy)(spk, mem)
        net.backward(d_mem=d_mem, d_spk=d_spk)
    np.testing.assert_array_equal(host.record[-1].S, backend.to_numpy(dev.record[-1].S))
    for (name, p), (_, q) in zip(host.named_parameters(), dev.named_parameters()):
        assert rel(p.grad, q.grad) <= BOUND, name


def test_tutorial6_csnn_trains_on_cupy(cp):
    net = ms.models.build("csnn").to("cupy")
    opt = ms.Adam(net.parameters(), lr=1e-2)
    x = cp.asarray(np.random.default_rng(4).random((32, 1, 28, 28), dtype=np.float32))
    y = cp.asarray(np.random.default_rng(5).integers(0, 10, 32))
    losses = []
    for _ in range(5):
        opt.zero_grad()
        spk, _ = net(x, 10)
        L, d_spk = ms.ce_rate_loss(spk, y)
        net.backward(d_spk=d_spk)
        opt.step()
        losses.append(float(L))
    assert losses[-1] < losses[0]

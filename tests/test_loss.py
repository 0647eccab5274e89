"""Losses and decoding against direct formulas; each loss gradient against finite differences."""
import math

import numpy as np
import pytest

import minisnn as ms
from minisnn.gradcheck import numerical_gradient, rel_error

rng = np.random.default_rng(0)
MEM = rng.normal(size=(4, 3, 5))
SPK = (rng.random((4, 3, 5)) > 0.6).astype(float)
Y = np.array([1, 4, 0])


def test_ce_membrane_matches_eqs_8_to_10():
    loss, d_mem = ms.ce_membrane_loss(MEM, Y)
    direct = 0.0
    for t in range(4):                                   # eq. (10): sum over steps
        for b in range(3):                               # eq. (9), mean over the batch
            p = np.exp(MEM[t, b]) / np.exp(MEM[t, b]).sum()   # eq. (8)
            direct += -math.log(p[Y[b]]) / 3
    assert float(loss) == pytest.approx(direct, rel=1e-12)
    mem = MEM.copy()
    fd = numerical_gradient(lambda: ms.ce_membrane_loss(mem, Y)[0], mem)
    assert rel_error(d_mem, fd) < 1e-8


def test_ce_rate_and_mse_count_gradients():
    for fn in (ms.ce_rate_loss, ms.mse_count_loss):
        spk = SPK.copy()
        loss, d_spk = fn(spk, Y)
        fd = numerical_gradient(lambda: fn(spk, Y)[0], spk)
        assert rel_error(d_spk, fd) < 1e-8, fn.__name__


def test_ce_rate_and_mse_count_values():
    counts = SPK.sum(0)
    p = np.exp(counts) / np.exp(counts).sum(1, keepdims=True)
    assert float(ms.ce_rate_loss(SPK, Y)[0]) == pytest.approx(-np.log(p[np.arange(3), Y]).mean())
    target = np.full((3, 5), 0.2 * 4)
    target[np.arange(3), Y] = 0.8 * 4
    assert float(ms.mse_count_loss(SPK, Y)[0]) == pytest.approx(((counts - target) ** 2).mean())


def test_untrained_seed_network_gives_about_60(mnist_dir):
    from minisnn.data import load_dataset
    data = load_dataset(mnist_dir)
    net = ms.Sequential(ms.Linear(784, 1000, rng=0), ms.Leaky(0.95),
                        ms.Linear(1000, 10, rng=1), ms.Leaky(0.95))
    idx = np.random.default_rng(0).permutation(len(data.train_y))[:128]
    _, mem = net(data.train_x[idx], num_steps=25)
    loss, _ = ms.ce_membrane_loss(mem, data.train_y[idx])
    assert 50 < float(loss) < 70, float(loss)            # ≈ 25 · ln 10 = 57.6 for an untrained net


def test_rate_and_latency_decoding():
    spk = np.zeros((5, 2, 3))
    spk[[0, 1, 2], 0, 2] = 1     # sample 0: class 2 fires 3 times, from step 0
    spk[[3, 4], 0, 1] = 1        #           class 1 fires twice, later
    spk[[1], 1, 0] = 1           # sample 1: class 0 once, at step 1
    spk[[2, 3, 4], 1, 1] = 1     #           class 1 three times, from step 2
    np.testing.assert_array_equal(ms.rate(spk), [2, 1])
    np.testing.assert_array_equal(ms.latency(spk), [2, 0])
    np.testing.assert_array_equal(ms.first_spike_time(spk)[1], [1, 2, 5])   # never fired: T
    assert ms.accuracy(ms.rate(spk), np.array([2, 0])) == 0.5

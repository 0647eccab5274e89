"""Losses against direct formulas written out with loops, and each loss gradient against
central finite differences in float64 (bound 1e-8), where a deliberately wrong gradient fails.
snnTorch's own values and gradients: test_snntorch_names.py."""
import math

import numpy as np
import pytest

import minisnn as ms
from minisnn.gradcheck import numerical_gradient, rel_error

rng = np.random.default_rng(0)
MEM = rng.normal(size=(4, 3, 5))
SPK = (rng.random((4, 3, 5)) > 0.6).astype(float)
REAL = rng.normal(size=(4, 3, 5))           # any real input: the losses are smooth in it
Y = np.array([1, 4, 0])
FD_BOUND = 1e-8


def softmax(z):
    e = [math.exp(v) for v in z]
    return [v / sum(e) for v in e]


def test_ce_membrane_matches_eqs_8_to_10():
    loss, d_mem = ms.ce_membrane_loss(MEM, Y)
    direct = 0.0
    for t in range(4):                                   # eq. (10): sum over steps
        for b in range(3):                               # eq. (9), mean over the batch
            p = softmax(MEM[t, b])                       # eq. (8)
            direct += -math.log(p[Y[b]]) / 3
    assert float(loss) == pytest.approx(direct, rel=1e-12)


def test_ce_rate_loss_is_the_step_average_of_per_step_cross_entropy():
    for spk in (SPK, REAL):
        T, B, C = spk.shape
        direct, grad = 0.0, np.zeros_like(spk)
        for t in range(T):
            for b in range(B):
                p = softmax(spk[t, b])
                direct += -math.log(p[Y[b]]) / (B * T)
                for i in range(C):
                    grad[t, b, i] = (p[i] - (i == Y[b])) / (B * T)
        loss, d_spk = ms.ce_rate_loss(spk, Y)
        assert float(loss) == pytest.approx(direct, rel=1e-12)
        np.testing.assert_allclose(d_spk, grad, rtol=1e-12, atol=1e-15)


def test_ce_count_loss_is_one_softmax_of_the_counts():
    counts = SPK.sum(axis=0)
    direct = sum(-math.log(softmax(counts[b])[Y[b]]) for b in range(3)) / 3
    loss, d_spk = ms.ce_count_loss(SPK, Y)
    assert float(loss) == pytest.approx(direct, rel=1e-12)
    for t in range(4):                                   # the same gradient at every step
        for b in range(3):
            p = softmax(counts[b])
            np.testing.assert_allclose(d_spk[t, b], [(p[i] - (i == Y[b])) / 3 for i in range(5)],
                                       rtol=1e-12)


def test_mse_count_loss_targets_truncated_counts_and_divides_by_T():
    T, B, C = 25, 2, 3
    spk = (np.random.default_rng(1).random((T, B, C)) > 0.5).astype(float)
    y = np.array([2, 0])
    loss, d_spk = ms.mse_count_loss(spk, y, correct_rate=0.9, incorrect_rate=0.1)
    on, off = 22, 2                                      # int(22.5), int(2.5): truncated
    direct = 0.0
    for b in range(B):
        for i in range(C):
            target = on if i == y[b] else off
            c = spk[:, b, i].sum()
            direct += (c - target) ** 2 / (B * C) / T
            np.testing.assert_allclose(d_spk[:, b, i], 2 * (c - target) / (B * C * T), rtol=1e-12)
    assert float(loss) == pytest.approx(direct, rel=1e-12)
    # snnTorch's defaults: the correct class on every step, the others silent
    full = np.zeros((T, B, C))
    full[:, [0, 1], y] = 1
    assert float(ms.mse_count_loss(full, y)[0]) == 0.0


@pytest.mark.parametrize("rate", [-0.1, 1.5, "0.5", True])
def test_mse_count_loss_rates_must_be_in_0_1(rate):
    with pytest.raises(ValueError, match="correct_rate must be a number in"):
        ms.mse_count_loss(SPK, Y, correct_rate=rate)


def fd_error(fn, spk, wrong=None):
    """rel_error between fn's gradient (or `wrong` applied to it) and central differences."""
    spk = spk.copy()
    _, d = fn(spk, Y)
    d = d if wrong is None else wrong(d)
    fd = numerical_gradient(lambda: fn(spk, Y)[0], spk)
    return rel_error(d, fd)


LOSSES = [ms.ce_membrane_loss, ms.ce_rate_loss, ms.ce_count_loss, ms.mse_count_loss,
          lambda s, y: ms.mse_count_loss(s, y, correct_rate=0.8, incorrect_rate=0.3)]


@pytest.mark.parametrize("fn", LOSSES, ids=["ce_membrane", "ce_rate", "ce_count", "mse_count",
                                            "mse_count_0.8_0.3"])
def test_loss_gradients_match_finite_differences(fn):
    for spk in (SPK, REAL):
        assert fd_error(fn, spk) < FD_BOUND


def only_step_0(d):
    d = d.copy()
    d[1:] = 0
    return d


@pytest.mark.parametrize("fn, wrong", [
    (ms.ce_rate_loss, lambda d: d * 4),                            # forgot the 1/T
    (ms.ce_rate_loss, only_step_0),                                # one step's term only
    (ms.ce_rate_loss, lambda d: ms.ce_count_loss(REAL, Y)[1] / 4),  # the count loss's gradient
    (ms.ce_count_loss, lambda d: d / 4),                           # a 1/T too many
    (ms.mse_count_loss, lambda d: d * 4),                          # without snnTorch's 1/T
    (ms.mse_count_loss, lambda d: d / 2),                          # the factor 2 of the square
])
def test_a_wrong_gradient_fails_the_finite_difference_check(fn, wrong):
    assert fd_error(fn, REAL) < FD_BOUND
    assert fd_error(fn, REAL, wrong) > 1e-2


def test_losses_keep_float32():
    spk32 = SPK.astype("float32")
    for fn in (ms.ce_rate_loss, ms.ce_count_loss, ms.mse_count_loss):
        loss, d = fn(spk32, Y)
        assert loss.dtype == np.float32 and d.dtype == np.float32, fn.__name__
        assert float(loss) == pytest.approx(float(fn(SPK, Y)[0]), rel=1e-5)


def test_untrained_seed_network_gives_about_60(mnist_dir):
    from minisnn.data import load_dataset
    data = load_dataset(mnist_dir)
    net = ms.Sequential(ms.Linear(784, 1000, rng=0), ms.Leaky(0.95),
                        ms.Linear(1000, 10, rng=1), ms.Leaky(0.95))
    idx = np.random.default_rng(0).permutation(len(data.train_y))[:128]
    _, mem = net(data.train_x[idx], num_steps=25)
    loss, _ = ms.ce_membrane_loss(mem, data.train_y[idx])
    assert 50 < float(loss) < 70, float(loss)            # ≈ 25 · ln 10 = 57.6 for an untrained net

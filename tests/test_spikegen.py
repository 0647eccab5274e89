"""The spike encoders against their formulas, computed here by hand (element by element, with
math), and on a second array module. The comparison with snnTorch itself, spike for spike, is in
test_snntorch_names.py."""
import math
import types

import numpy as np
import pytest

import minisnn as ms
from minisnn import checks, spikegen
from fused_cpu_harness import make_array_module

sg = ms.spikegen


# ----------------------------------------------------------------------------------- rate

def test_rate_is_u_below_p_with_the_generator_given():
    x = np.array([[0.0, 0.3, 0.7, 1.0], [0.5, 0.1, 0.9, 0.2]], dtype="float32")
    S = sg.rate(x, 6, gain=0.8, offset=0.1, rng=np.random.default_rng(5))
    u = np.random.default_rng(5).random((6, 2, 4), dtype="float32")
    p = np.clip(x * np.float32(0.8) + np.float32(0.1), 0, 1)
    assert S.shape == (6, 2, 4) and S.dtype == np.float32
    np.testing.assert_array_equal(S, (u < p).astype("float32"))
    assert S.any() and not S.all()


def test_rate_extremes_and_clipping():
    x = np.array([0.0, 0.2, 1.0, 0.6])
    S = sg.rate(x, 300, rng=1)
    assert S.dtype == np.float64
    assert (S[:, 0] == 0).all() and (S[:, 2] == 1).all()      # p = 0 never, p = 1 always
    assert (sg.rate(x, 50, gain=10.0, rng=1)[:, 1:] == 1).all()     # p = 2, 10, 6 -> clipped to 1
    assert (sg.rate(x, 50, offset=-1.0, rng=1)[:, :2] == 0).all()   # p < 0 -> clipped to 0


def test_rate_fires_with_probability_p():
    p = np.linspace(0, 1, 11)
    n = 20000
    rates = sg.rate(p, n, rng=2).mean(axis=0)
    sigma = np.sqrt(p * (1 - p) / n)
    assert (np.abs(rates - p) <= 5 * sigma + 1e-12).all(), rates


def test_rate_is_seedable():
    x = np.full((3, 5), 0.5)
    a, b, c = sg.rate(x, 8, rng=7), sg.rate(x, 8, rng=7), sg.rate(x, 8, rng=8)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a, sg.rate(x, 8, rng=np.random.default_rng(7)))
    assert (a != c).any()
    g = np.random.default_rng(0)
    assert (sg.rate(x, 8, rng=g) != sg.rate(x, 8, rng=g)).any()   # a generator moves on


@pytest.mark.parametrize("bad, error, match", [
    (dict(rng="seed"), TypeError, "rng must be None, an int seed"),
    (dict(rng=np.random.RandomState(0)), TypeError, "numpy.random.Generator"),
    (dict(gain="2"), TypeError, "gain must be a finite number"),
    (dict(offset=float("nan")), TypeError, "offset must be a finite number"),
    (dict(num_steps=0), ValueError, "num_steps must be an integer >= 1"),
])
def test_rate_rejects_bad_arguments(bad, error, match):
    kw = dict(num_steps=4, rng=0)
    kw.update(bad)
    with pytest.raises(error, match=match):
        sg.rate(np.ones(3), **kw)


@pytest.mark.parametrize("fn", [lambda x: sg.rate(x, 3), lambda x: sg.latency(x, 3),
                                lambda x: sg.delta(x)])
def test_encoders_want_float_arrays(fn):
    with pytest.raises(TypeError, match="float32 or float64"):
        fn(np.array([0, 128, 255], dtype="uint8"))
    with pytest.raises(TypeError, match="must be a NumPy or CuPy array"):
        fn([0.1, 0.2])
    with pytest.raises(ValueError, match="NaN or inf"):
        fn(np.array([0.1, np.nan]))


# -------------------------------------------------------------------------------- latency

def first_steps(S):
    """The step of each value's spike, -1 where it has none (and at most one spike each)."""
    assert set(np.unique(S)) <= {0.0, 1.0} and (S.sum(axis=0) <= 1).all()
    return np.where(S.any(axis=0), S.argmax(axis=0), -1)


def log_time(x, thr, tau, eps=1e-7):
    xs = max(x, thr + eps)
    return tau * math.log(xs / (xs - thr))


def test_latency_log_code_by_hand():
    x = np.array([1.0, 0.5, 0.02, 0.011, 0.0101, 0.005, 0.0])
    S = sg.latency(x, 25, threshold=0.01, tau=2.0)
    expected = [round(log_time(v, 0.01, 2.0)) for v in x]     # Python's round: half to even
    assert expected == [0, 0, 1, 5, 9, 23, 23]                 # below θ: saturated, step 23 < 24
    np.testing.assert_array_equal(first_steps(S), expected)
    assert S.shape == (25, 7) and S.dtype == np.float64


def test_latency_log_normalize_uses_the_largest_time_of_the_whole_array():
    x = np.array([[1.0, 0.5, 0.2], [0.05, 0.03, 0.02]])
    T, thr, tau = 10, 0.01, 1.0
    t = np.array([[log_time(v, thr, tau) for v in row] for row in x])
    expected = np.round(t * (T - 1) / t.max()).astype(int)     # max over both samples
    S = sg.latency(x, T, threshold=thr, tau=tau, normalize=True)
    np.testing.assert_array_equal(first_steps(S), expected)
    assert expected[1, 2] == T - 1 and expected[0, 2] < T - 1
    # one value below θ saturates: it, not the smallest value above θ, now fires last
    x2 = np.array([[1.0, 0.5, 0.2], [0.05, 0.03, 0.001]])
    steps = first_steps(sg.latency(x2, T, threshold=thr, normalize=True))
    assert steps[1, 2] == T - 1 and steps[1, 1] < 4


def test_latency_linear_code_and_first_spike_time():
    x = np.array([1.0, 0.5, 0.25, 0.0, 0.005])
    # t = min(τ(1 − x), τ(1 − θ)): 0, 2, 3, 3.96, 3.96 -> steps 0, 2, 3, 4, 4
    np.testing.assert_array_equal(first_steps(sg.latency(x, 5, tau=4.0, linear=True)),
                                  [0, 2, 3, 4, 4])
    # normalize sets τ = T − 1 − t0 = 4 with T = 7, t0 = 2: the same times, shifted by 2
    np.testing.assert_array_equal(
        first_steps(sg.latency(x, 7, first_spike_time=2, normalize=True, linear=True)),
        [2, 4, 5, 6, 6])


def test_latency_rounds_half_to_even():
    x = np.array([0.5, 0.5])
    assert first_steps(sg.latency(x, 3, tau=1.0, linear=True)).tolist() == [0, 0]   # 0.5 -> 0
    assert first_steps(sg.latency(x, 3, tau=3.0, linear=True)).tolist() == [2, 2]   # 1.5 -> 2


def test_latency_clip_removes_values_below_threshold_only():
    x = np.array([0.9, 0.1, 0.0999, 0.0])
    both = dict(threshold=0.1, tau=2.0, linear=True)
    assert first_steps(sg.latency(x, 3, **both)).tolist() == [0, 2, 2, 2]
    assert first_steps(sg.latency(x, 3, clip=True, **both)).tolist() == [0, 2, -1, -1]


def test_latency_keeps_shape_and_dtype():
    x = np.random.default_rng(0).random((4, 2, 3, 3)).astype("float32")
    S = sg.latency(x, 30, tau=5.0, normalize=True)
    assert S.shape == (30, 4, 2, 3, 3) and S.dtype == np.float32
    assert (S.sum(axis=0) == 1).all()


@pytest.mark.parametrize("x, kw, error, match", [
    ([0.2, 1.5], {}, ValueError, r"values in \[0, 1\]"),
    ([-0.1, 0.5], {}, ValueError, r"values in \[0, 1\]"),
    ([0.5], dict(threshold=0.0), ValueError, r"threshold must be in \(0, 1\)"),
    ([0.5], dict(threshold=1.0), ValueError, r"threshold must be in \(0, 1\)"),
    ([0.5], dict(tau=0.0), ValueError, "tau must be > 0"),
    ([0.5], dict(first_spike_time=25), ValueError, r"first_spike_time must be an integer in"),
    ([0.5], dict(first_spike_time=-1), ValueError, r"first_spike_time must be an integer in"),
    ([0.5], dict(clip=1), TypeError, "clip must be True or False"),
    ([0.001], dict(num_steps=5), ValueError, "rounds to step 12, past the last step 4"),
])
def test_latency_rejects_bad_arguments(x, kw, error, match):
    kw = {"num_steps": 25, **kw}
    with pytest.raises(error, match=match):
        sg.latency(np.array(x), **kw)


# ---------------------------------------------------------------------------------- delta

def test_delta_by_hand():
    a = np.array([1.0, 2.0, 2.9, 3.0, 3.9])
    assert sg.delta(a, threshold=1.0).tolist() == [1, 1, 0, 0, 0]          # X[−1] = 0
    assert sg.delta(a, threshold=1.0, padding=True).tolist() == [0, 1, 0, 0, 0]
    b = np.array([1.0, 2.0, 0.0, 2.0, 2.9])
    assert sg.delta(b, threshold=1.0, off_spike=True).tolist() == [1, 1, -1, 1, 0]
    assert sg.delta(b, threshold=1.0, padding=True, off_spike=True).tolist() == [0, 1, -1, 1, 0]


def test_delta_on_a_batch_is_per_neuron_along_time():
    x = np.random.default_rng(3).random((9, 2, 4)).astype("float32")
    S = sg.delta(x, threshold=0.2, off_spike=True)
    assert S.shape == x.shape and S.dtype == np.float32
    for b in range(2):
        for i in range(4):
            prev = 0.0
            for t in range(9):
                d = x[t, b, i] - prev
                assert S[t, b, i] == (1 if d >= np.float32(0.2) else -1 if d <= -np.float32(0.2)
                                      else 0)
                prev = x[t, b, i]


def test_delta_rejects_bad_arguments():
    with pytest.raises(ValueError, match="threshold must be >= 0"):
        sg.delta(np.ones(3), threshold=-0.1)
    with pytest.raises(ValueError, match=r"time-major with at least one step"):
        sg.delta(np.ones(()))
    with pytest.raises(TypeError, match="off_spike must be True or False"):
        sg.delta(np.ones(3), off_spike="yes")


# ------------------------------------------------------------------- on another array module

@pytest.fixture
def fakexp(monkeypatch):
    """A CuPy-like module (its arrays refuse every implicit conversion to NumPy), plus the two
    things the encoders need that the shared harness does not list: rint and random."""
    xp = make_array_module("fakexp")
    cls = xp.ndarray

    class Generator:                       # what cupy.random.default_rng returns, on the CPU
        __module__ = "fakexp.random"

        def __init__(self, seed):
            self._g = np.random.default_rng(seed)

        def random(self, size, dtype):
            return cls(self._g.random(size, dtype=dtype))

    xp.rint = lambda a: cls(np.rint(a._a))
    xp.random = types.SimpleNamespace(default_rng=Generator, Generator=Generator)
    on_device = lambda a: isinstance(a, cls)
    monkeypatch.setattr(spikegen, "get_xp", lambda *a: xp if any(map(on_device, a)) else np)
    monkeypatch.setattr(spikegen, "is_cupy_array", on_device)
    monkeypatch.setattr(checks, "is_cupy_array", on_device)
    return xp


def test_encoders_on_another_array_module_give_numpy_results(fakexp):
    rng = np.random.default_rng(0)
    x = rng.random((3, 10)).astype("float32")
    x[0, :3] = [0.0, 0.005, 0.01]                          # below and at the threshold
    frames = rng.random((6, 3, 10))
    cases = [(lambda a: sg.rate(a, 7, gain=0.9, rng=4), x),
             (lambda a: sg.latency(a, 40, tau=3.0, clip=True), x),
             (lambda a: sg.latency(a, 12, normalize=True, first_spike_time=1), x),
             (lambda a: sg.latency(a, 12, linear=True, normalize=True), x),
             (lambda a: sg.delta(a, 0.1, padding=True, off_spike=True), frames)]
    for fn, host in cases:
        fakexp.events.clear()
        dev = fn(fakexp.asarray(host))
        assert isinstance(dev, fakexp.ndarray) and dev.dtype == host.dtype
        assert fakexp.events == [("upload", "test")]      # no device -> host copy inside
        np.testing.assert_array_equal(dev.get(), fn(host))
    with pytest.raises(TypeError, match="rng is a numpy generator but x is a fakexp array"):
        sg.rate(fakexp.asarray(x), 3, rng=np.random.default_rng(0))

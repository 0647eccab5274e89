"""recompute_every: BPTT by segments, each segment's forward recomputed in the backward pass.

The memory-flat path must give the full path's outputs and gradients: float64 max relative error
≤ 1e-12 per parameter (max|a − b| / max(max|a|, max|b|); only the order in which a weight's
gradient is summed over the segments differs), outputs and checkpoints bit for bit, float32
spikes identical. Checked on every neuron (Leaky, Synaptic, RLeaky), reset, detach setting,
learned and fixed β (and α), static and time-varying input, 1-3 hidden layers, segment lengths
that do not divide T and one longer than T. Deliberately broken segment handoffs must fail the
same comparison. Memory is counted from the arrays (the compact record's own bytes, and
tracemalloc's peak of the array allocations during an iteration), not from the process.
"""
import tracemalloc

import numpy as np
import pytest

import minisnn as ms
from minisnn import fused, recompute
from minisnn.record import CompactRecord, Record

from helpers import both_losses
from test_backend import EVENTS as FAKE_EVENTS, on_fakexp  # noqa: F401  (a fixture)

BOUND = 1e-12
KINDS = ["leaky", "synaptic", "rleaky"]
RESETS = ["subtract", "zero", "none"]


def rel(a, b):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    scale = max(np.abs(a).max(initial=0), np.abs(b).max(initial=0))
    return float(np.abs(a - b).max(initial=0) / scale) if scale > 0 else 0.0


def neuron(kind, n, rng, learn=True, dtype="float64", **kw):
    kw = dict(dict(threshold=0.5), **kw)
    if kind == "leaky":
        return ms.Leaky(0.9, learn_beta=learn, **kw)
    if kind == "synaptic":
        return ms.Synaptic(0.8, 0.9, learn_alpha=learn, learn_beta=learn, **kw)
    return ms.RLeaky(n, 0.9, learn_beta=learn, dtype=dtype, rng=rng, **kw)


def build(kind, hidden=1, seed=0, sizes=None, dtype="float64", **kw):
    """Linear → neuron, `hidden` times, then Linear → neuron (the output layer)."""
    rng = np.random.default_rng(seed)
    sizes = sizes or [5] + [7, 6, 8][:hidden] + [4]
    layers = []
    for a, b in zip(sizes, sizes[1:]):
        layers += [ms.Linear(a, b, dtype=dtype, rng=rng), neuron(kind, b, rng, dtype=dtype, **kw)]
    return ms.Sequential(*layers)


def data(T=None, seed=1, B=3, F=5, C=4):
    """x (B, F) static, or (T, B, F) time-varying when T is given, and labels y (B,)."""
    rng = np.random.default_rng(seed)
    return rng.random((B, F) if T is None else (T, B, F)) * 2, rng.integers(0, C, B)


def run(net, x, T, y, every):
    """Outputs and every gradient after one forward and backward (both losses: d_mem and d_spk
    reach the backward pass)."""
    net.zero_grad()
    spk, mem = net(x, T, recompute_every=every)
    _, d_mem, d_spk = both_losses(y)(spk, mem)
    net.backward(d_mem=d_mem, d_spk=d_spk)
    return spk.copy(), mem.copy(), {n: np.array(p.grad) for n, p in net.named_parameters()}


def compare(make, x, T, y, everies):
    """The worst relative gradient error of each recompute_every against the full path."""
    spk0, mem0, g0 = run(make(), x, T, y, None)
    assert max(np.abs(g).max() for g in g0.values()) > 0
    worst = {}
    for every in everies:
        spk, mem, g = run(make(), x, T, y, every)
        np.testing.assert_array_equal(spk, spk0)
        np.testing.assert_array_equal(mem, mem0)
        assert set(g) == set(g0)
        worst[every] = max(rel(g[n], g0[n]) for n in g0)
    return worst


# ----------------------------------------------------------------------------- gradients

@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("reset", RESETS)
@pytest.mark.parametrize("detach", [True, False], ids=["detached", "attached"])
@pytest.mark.parametrize("static", [True, False], ids=["static", "time-varying"])
def test_gradients_equal_full_path(kind, reset, detach, static):
    T = 10
    x, y = data(None if static else T)
    for hidden in (1, 2, 3):
        for learn in (True, False):
            make = lambda: build(kind, hidden, reset=reset, detach_reset=detach, learn=learn)
            worst = compare(make, x, T, y, everies=(1, 3, 4, 9, 10, 25))
            assert max(worst.values()) <= BOUND, (hidden, learn, worst)


def test_learned_decays_get_gradients_in_segments():
    x, y = data(seed=2)
    for kind in KINDS:
        _, _, g0 = run(build(kind, 2), x, 12, y, None)
        _, _, g = run(build(kind, 2), x, 12, y, 5)
        decays = [n for n in g0 if n.endswith(("beta", "alpha"))]
        assert len(decays) == (6 if kind == "synaptic" else 3)
        for n in decays:
            assert abs(g0[n]) > 0 and rel(g[n], g0[n]) <= BOUND, (kind, n)


def test_float32_spikes_identical_and_gradients_close():
    """A wider float32 network over 120 steps: the outputs and every checkpoint are bit for bit
    the full path's; gradients agree to float32 rounding of the sums."""
    rng = np.random.default_rng(3)
    x, y = rng.random((16, 40)).astype("float32"), rng.integers(0, 10, 16)
    make = lambda: build("leaky", 1, sizes=[40, 200, 10], dtype="float32", learn=False,
                         threshold=1.0)
    full = make()
    spk0, mem0 = full(x, 120)
    U_hidden = full.record[1].U
    assert 0 < float(full.record[1].S.mean()) < 0.5
    net = make()
    spk, mem = net(x, 120, recompute_every=11)
    np.testing.assert_array_equal(spk, spk0)
    np.testing.assert_array_equal(mem, mem0)
    for j, s in enumerate(net.record.starts[1:], start=1):       # state before step s
        U, S = net.record.checkpoints[j][1].unpack()
        np.testing.assert_array_equal(U, U_hidden[s - 1])
        np.testing.assert_array_equal(S, full.record[1].S[s - 1])
    _, _, g0 = run(make(), x, 120, y, None)
    _, _, g = run(make(), x, 120, y, 11)
    assert max(rel(g[n], g0[n]) for n in g0) <= 1e-5


def test_segments_through_the_neuron_interface():
    """Two segments by hand: forward from the first's last state, backward_segment with the
    later segment's carry, equal the whole window (each neuron, static and time-varying)."""
    rng = np.random.default_rng(4)
    for kind in KINDS:
        for static in (True, False):
            X = rng.random((1 if static else 9, 3, 4)) * 2
            dS, dU = rng.normal(size=(9, 3, 4)), rng.normal(size=(9, 3, 4))
            whole = neuron(kind, 4, np.random.default_rng(0), reset="zero", detach_reset=False)
            parts = neuron(kind, 4, np.random.default_rng(0), reset="zero", detach_reset=False)
            S, rec = whole.forward(X, 9)
            dX = whole.backward(rec, dS.copy(), dU)
            Xa, Xb = (X, X) if static else (X[:4], X[4:])
            _, ra = parts.forward(Xa, 4)
            state = tuple(getattr(ra, n)[-1].copy() for n in parts.state_names)
            _, rb = parts.forward(Xb, 5, state=state)
            assert "start" in rb and "start" not in ra and "start" not in rec
            for n in parts.state_names:
                np.testing.assert_array_equal(np.concatenate([getattr(ra, n), getattr(rb, n)]),
                                              getattr(rec, n))
            dXb, carry = parts.backward_segment(rb, dS[4:].copy(), dU[4:])
            assert carry is not None
            dXa, carry0 = parts.backward_segment(ra, dS[:4].copy(), dU[:4], carry=carry)
            assert carry0 is None                                    # segment 0 starts at rest
            got = dXa + dXb if static else np.concatenate([dXa, dXb])
            assert rel(got, dX) <= BOUND, kind
            for n in whole.param_names():
                assert rel(getattr(parts, "d" + n), getattr(whole, "d" + n)) <= BOUND, (kind, n)


# Deliberately wrong segment handoffs: each must fail the comparison above.

def drop_carry(monkeypatch):
    real = ms.Leaky.backward_segment
    monkeypatch.setattr(ms.Leaky, "backward_segment",
                        lambda self, rec, d_out=None, dU=None, carry=None:
                        (real(self, rec, d_out, dU, None)[0], None))


def restart_from_rest(monkeypatch):
    real = recompute.PackedState.unpack
    monkeypatch.setattr(recompute.PackedState, "unpack",
                        lambda self: tuple(np.zeros_like(a) for a in real(self)))


def keep_spikes_as_zeros(monkeypatch):
    real = recompute.PackedState.unpack
    monkeypatch.setattr(recompute.PackedState, "unpack",
                        lambda self: real(self)[:-1] + (0 * real(self)[-1],))


@pytest.mark.parametrize("sabotage", [drop_carry, restart_from_rest, keep_spikes_as_zeros])
def test_broken_handoff_fails(monkeypatch, sabotage):
    x, y = data(seed=5)
    _, _, g0 = run(build("leaky", 1, threshold=0.3), x, 12, y, None)
    sabotage(monkeypatch)
    _, _, g = run(build("leaky", 1, threshold=0.3), x, 12, y, 5)
    assert max(rel(g[n], g0[n]) for n in g0) > 1e-3


def test_fused_kernels_in_segments(tmp_path):
    """With Leaky routed through the fused kernels (their CPU build, tests/fused_cpu_harness.py):
    every segment runs the kernels, from its start state and with the carry in and out, and the
    result equals the fused full path (float64 ≤ 1e-12, float32 spikes identical)."""
    import fused_cpu_harness as harness
    if not harness.compilers_available():
        pytest.skip("gcc and g++ are needed to build the kernels for the CPU")
    kernels = harness.cpu_kernels(tmp_path, "c")
    launches = kernels.target.launches
    rng = np.random.default_rng(6)
    for dtype, bound in (("float64", BOUND), ("float32", 1e-5)):
        x, y = (rng.random((4, 5)) * 2).astype(dtype), rng.integers(0, 4, 4)
        make = lambda: build("leaky", 2, dtype=dtype, learn=False)     # 3 Leaky layers
        with harness.routed(kernels):
            launches.clear()
            spk0, _, g0 = run(make(), x, 13, y, None)
            assert launches == {"minisnn_lif_forward": 3, "minisnn_lif_backward": 3}
            launches.clear()
            spk, _, g = run(make(), x, 13, y, 4)
            # 4 segments × 3 layers, forward and backward; segments 0-2 recomputed (the last kept)
            assert launches == {"minisnn_lif_forward": 21, "minisnn_lif_backward": 12}, launches
            launches.clear()
            spk1, _, g1 = run(make(), x, 13, y, 20)                  # one segment: all fused
            assert launches == {"minisnn_lif_forward": 3, "minisnn_lif_backward": 3}
        np.testing.assert_array_equal(spk, spk0)
        np.testing.assert_array_equal(spk1, spk0)
        assert max(rel(g[n], g0[n]) for n in g0) <= bound
        assert max(rel(g1[n], g0[n]) for n in g0) <= bound


# ----------------------------------------------------------------------------- records

def test_compact_record_says_what_it_holds():
    rng = np.random.default_rng(7)
    net = build("leaky", 1)
    x = rng.random((3, 5))
    spk, mem = net(x, 12, recompute_every=5)
    rec = net.record
    assert isinstance(rec, recompute.CompactRecords) and len(rec) == 4
    assert rec.starts == [0, 5, 10] and rec.checkpoints[0] == [None] * 4
    assert rec.checkpoints[1][0] is None and rec.checkpoints[1][2] is None
    assert isinstance(rec[0], Record) and rec[0].X.shape == (1, 3, 5)     # static: run once
    assert isinstance(rec[1], CompactRecord)
    for name in ("U", "S", "X"):
        with pytest.raises(AttributeError, match=r"recompute_every=5.*without recompute_every"):
            getattr(rec[1], name)
    assert rec[-1].U is mem and rec[-1].S is spk                 # the outputs the net returned
    with pytest.raises(AttributeError, match=r"net.record\[3\] has no syn"):
        rec[3].syn
    assert "3 segments of 5 steps over 12: checkpoints and outputs" in repr(rec)
    net(x, 12)                                                     # the default path as before
    assert isinstance(net.record, list) and net.record[1].U.shape == (12, 3, 7)


def test_compact_record_bytes():
    """Checkpoints: one per segment after the first, U in float32 and S as bits."""
    rng = np.random.default_rng(8)
    net = build("leaky", 1, sizes=[5, 64, 4], dtype="float32")
    x = rng.random((8, 5)).astype("float32")
    net(x, 100, recompute_every=30)                              # segments at 0, 30, 60, 90
    mem = net.record.memory()
    hidden, out = 8 * 64, 8 * 4
    assert mem["checkpoints"] == 3 * (hidden * 4 + hidden // 8 + out * 4 + out // 8)
    assert mem["outputs"] == 2 * 100 * 8 * 4 * 4
    assert mem["last segment"] > 0


@pytest.mark.parametrize("bad", [0, -3])
def test_bad_recompute_every_value(bad):
    net = build("leaky", 1)
    with pytest.raises(ValueError, match="recompute_every must be >= 1"):
        net(np.ones((2, 5)), 4, recompute_every=bad)


@pytest.mark.parametrize("bad", [2.5, "5", True, [3]])
def test_bad_recompute_every_type(bad):
    net = build("leaky", 1)
    with pytest.raises(TypeError, match="recompute_every must be a positive integer"):
        net(np.ones((2, 5)), 4, recompute_every=bad)


def test_recompute_every_beyond_T_is_one_segment():
    rng = np.random.default_rng(9)
    x, y = rng.random((3, 5)), rng.integers(0, 4, 3)
    net = build("synaptic", 1)
    spk, mem = net(x, 6, recompute_every=np.int64(100))
    assert net.record.starts == [0]
    assert compare(lambda: build("synaptic", 1), x, 6, y, (100,))[100] <= BOUND


class Scale:
    """A stateless user layer: out = 2·X."""
    def __init__(self, state_names=()):
        if state_names is not None:
            self.state_names = state_names

    def param_names(self):
        return ()

    def forward(self, X, num_steps):
        return 2 * X, Record(X=X)

    def backward(self, rec, d_out):
        return 2 * d_out


def test_users_stateless_layer_runs_in_segments():
    rng = np.random.default_rng(10)
    x, y = rng.random((6, 3, 5)), rng.integers(0, 4, 3)

    def make():
        r = np.random.default_rng(0)
        return ms.Sequential(ms.Linear(5, 7, dtype="float64", rng=r), Scale(), ms.Leaky(0.9),
                             ms.Linear(7, 4, dtype="float64", rng=r), ms.Leaky(0.8))
    assert compare(make, x, 6, y, (4,))[4] <= BOUND


def test_layers_that_cannot_take_segments_are_refused():
    x = np.ones((2, 5))
    no_names = ms.Sequential(ms.Linear(5, 4, dtype="float64"), Scale(state_names=None),
                             ms.Leaky(0.9))
    no_names(x, 3)                                                 # fine without segments
    with pytest.raises(TypeError, match=r"layer 1 \(Scale\) does not declare state_names"):
        no_names(x, 3, recompute_every=2)
    stateful = ms.Sequential(ms.Linear(5, 4, dtype="float64"), Scale(state_names=("h",)),
                             ms.Leaky(0.9))
    with pytest.raises(TypeError, match=r"layer 1 \(Scale\) keeps state \('h',\) but does not "
                                        r"support segments"):
        stateful(x, 3, recompute_every=2)


def test_binary_state_only_for_the_heaviside():
    assert ms.Leaky(0.9).binary_state == ("S",)
    assert ms.Leaky(0.9, surrogate=ms.surrogate.SmoothSigmoid(4.0)).binary_state == ()
    net = ms.gradcheck.smooth_stand_in((4, 5, 3), seed=0)        # non-binary S: kept as floats
    x, y = np.random.default_rng(11).random((3, 4)), np.array([0, 1, 2])
    spk0, _, g0 = run(ms.gradcheck.smooth_stand_in((4, 5, 3), seed=0), x, 9, y, None)
    spk, _, g = run(net, x, 9, y, 4)
    assert not np.all((spk == 0) | (spk == 1))
    assert max(rel(g[n], g0[n]) for n in g0) <= BOUND


# ----------------------------------------------------------------------------- memory

def peak_bytes(net, x, T, y, every):
    """tracemalloc's peak of the array memory allocated during one forward and backward."""
    net(x, T, recompute_every=every)              # warm up, then measure a fresh iteration
    net.record = None
    tracemalloc.start()
    try:
        run(net, x, T, y, every)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_memory_bounded_in_T():
    """From T = 200 to T = 2000, the compact path's peak grows by under a tenth of the full
    path's growth, and its own record by no more than its checkpoints and outputs imply."""
    rng = np.random.default_rng(12)
    x, y = rng.random((8, 20)).astype("float32"), rng.integers(0, 4, 8)
    make = lambda: build("leaky", 1, sizes=[20, 256, 4], dtype="float32", learn=False)
    full = {T: peak_bytes(make(), x, T, y, None) for T in (200, 2000)}
    compact = {T: peak_bytes(make(), x, T, y, 40) for T in (200, 2000)}
    growth_full, growth_compact = full[2000] - full[200], compact[2000] - compact[200]
    assert growth_full > 1800 * 2 * 8 * 256 * 4                 # U and S of every step, at least
    assert growth_compact < growth_full / 10, (growth_compact, growth_full)
    net = make()
    nbytes = {}
    for T in (200, 2000):
        net(x, T, recompute_every=40)
        nbytes[T] = net.record.nbytes
    per_step = (8 * 256 * 4 + 8 * 256 // 8) / 40 + 2 * 8 * 4 * 4 * (1 + 1 / 40)
    assert nbytes[2000] - nbytes[200] <= 1800 * per_step * 1.01


# ----------------------------------------------------------------------------- other array module

def test_compact_path_on_another_array_module(monkeypatch, on_fakexp):
    """The segmented path is written against xp: on tests/test_backend.py's fakexp (given the
    packbits/unpackbits CuPy has) it equals NumPy's reference path exactly and copies nothing
    to the host."""
    from fused_cpu_harness import _unwrap, _wrap
    for name in ("packbits", "unpackbits"):
        monkeypatch.setattr(on_fakexp, name, lambda *a, _f=getattr(np, name):
                            _wrap(_f(*_unwrap(a)), on_fakexp.ndarray), raising=False)
    rng = np.random.default_rng(13)
    x, y = rng.random((3, 5)), rng.integers(0, 4, 3)
    grads = []
    for xp in (np, on_fakexp):
        net = build("leaky", 2)
        for p in net.parameters():
            p.value, p.grad = xp.asarray(p.value), xp.asarray(p.grad)
        with fused.disabled():                # NumPy's reference, not its CPU kernels
            spk, mem = net(xp.asarray(x), 9, recompute_every=4)
            d_mem = ms.ce_membrane_loss(mem, xp.asarray(y))[1]
            FAKE_EVENTS.clear()
            net.backward(d_mem=d_mem)
        assert not FAKE_EVENTS, FAKE_EVENTS
        grads.append([p.grad if xp is np else p.grad.get() for p in net.parameters()])
    for a, b in zip(*grads):
        np.testing.assert_array_equal(a, b)


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_compact_path_on_cupy(dtype):
    """On a GPU: the fused kernels for every segment (start state, carry in and out), bits kept
    with cupy.packbits; equal to the fused full path."""
    from minisnn import backend
    try:
        cp = backend.array_module("cupy")
    except RuntimeError as e:
        pytest.skip(str(e))
    rng = np.random.default_rng(14)
    x, y = (rng.random((32, 5)) * 2).astype(dtype), rng.integers(0, 4, 32)
    out = []
    for every in (None, 7):
        net = build("leaky", 2, sizes=[5, 300, 200, 4], dtype=dtype, learn=True).to("cupy")
        spk, mem = net(cp.asarray(x), 50, recompute_every=every)
        net.backward(d_mem=ms.ce_membrane_loss(mem, cp.asarray(y))[1])
        out.append((backend.to_numpy(spk), {n: backend.to_numpy(p.grad)
                                            for n, p in net.named_parameters()}))
    (spk0, g0), (spk, g) = out
    np.testing.assert_array_equal(spk, spk0)
    bound = BOUND if dtype == "float64" else 1e-3       # float32 ∂L/∂β: see tests/test_gpu.py
    assert max(rel(g[n], g0[n]) for n in g0) <= bound

"""minisnn's snnTorch names against snnTorch 1.0 itself, where torch and snntorch are installed
(the whole module is skipped, with one reason, where they are not): every snnTorch name on
docs/coming_from_snntorch.md exists in snnTorch, and the shared names agree: loss values and
autograd gradients in float64, decoders, encoders spike for spike, surrogate gradients. Each test
prints its measured figures (python -m pytest tests/test_snntorch_names.py -s)."""
import ast
import importlib
import importlib.util
import itertools
from pathlib import Path

import numpy as np
import pytest

REASON = "torch and snntorch not installed (pip install torch==2.13.0 snntorch)"
torch = pytest.importorskip("torch", reason=REASON)
snntorch = pytest.importorskip("snntorch", reason=REASON)

import minisnn as ms  # noqa: E402
from minisnn.gradcheck import rel_error  # noqa: E402
from test_coming_from_snntorch import PAGE, PREFIXES, code_names, table_rows  # noqa: E402



@pytest.fixture(scope="module")
def snn():
    return torch, snntorch


def resolve_peer(dotted):
    """Look up e.g. 'snntorch.spikeplot.raster'. A module that cannot be imported for want of a
    dependency snnTorch does not install (spikeplot needs pandas) is checked in its source."""
    parts = dotted.split(".")
    for k in range(len(parts) - 1, 0, -1):
        module_name = ".".join(parts[:k])
        if importlib.util.find_spec(module_name) is None:
            continue
        try:
            obj = importlib.import_module(module_name)
        except ModuleNotFoundError as e:
            if e.name.split(".")[0] in ("snntorch", "torch"):
                raise
            tree = ast.parse(Path(importlib.util.find_spec(module_name).origin).read_text())
            top = {n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
            if parts[k] not in top:
                raise AttributeError(dotted)
            return f"{dotted} (in the source; {e.name} is not installed)"
        for part in parts[k:]:
            obj = getattr(obj, part)
        return obj
    raise AttributeError(dotted)


@pytest.mark.filterwarnings("ignore:The module snntorch.backprop will be deprecated")
def test_every_snntorch_name_on_the_page_exists_in_snntorch(snn):
    missing = []
    for row in table_rows():
        for name in code_names(row[0]):
            head, _, rest = name.partition(".")
            try:
                resolve_peer(f"{PREFIXES[head]}.{rest}")
            except (AttributeError, KeyError):
                missing.append(name)
    assert not missing, f"names on {PAGE.name} that snnTorch {snn[1].__version__} lacks: {missing}"


def loss_cases():
    rng = np.random.default_rng(0)
    for (T, B, C), kind in itertools.product([(1, 1, 2), (5, 4, 3), (25, 16, 10), (8, 3, 10)],
                                             ("binary", "real")):
        spk = ((rng.random((T, B, C)) < 0.4).astype(float) if kind == "binary"
               else 3 * rng.normal(size=(T, B, C)))
        yield spk, rng.integers(0, C, B)


def compare_loss(snn, ours, theirs):
    """Worst relative value difference and relative gradient difference over loss_cases."""
    torch = snn[0]
    worst_value = worst_grad = 0.0
    for spk, y in loss_cases():
        s = torch.tensor(spk, requires_grad=True)
        L = theirs(s, torch.tensor(y))
        L.sum().backward()
        loss, d = ours(spk, y)
        worst_value = max(worst_value, abs(float(loss) - L.item()) / max(abs(L.item()), 1e-300))
        worst_grad = max(worst_grad, rel_error(d, s.grad.numpy()))
    return worst_value, worst_grad


@pytest.mark.parametrize("rates", [None, (0.8, 0.2), (0.9, 0.1), (0.75, 0.25), (0.5, 0.5)])
def test_mse_count_loss_equals_snntorchs(snn, rates):
    SF = importlib.import_module("snntorch.functional")
    if rates is None:
        ours, theirs = ms.mse_count_loss, SF.mse_count_loss()
    else:
        ours = lambda s, y: ms.mse_count_loss(s, y, *rates)
        theirs = SF.mse_count_loss(correct_rate=rates[0], incorrect_rate=rates[1])
    value, grad = compare_loss(snn, ours, theirs)
    print(f"mse_count_loss{rates or ''} vs snnTorch, float64: value rel {value:.2e}, "
          f"gradient rel {grad:.2e}")
    assert value < 1e-12 and grad < 1e-12


def test_ce_count_loss_equals_snntorchs(snn):
    SF = importlib.import_module("snntorch.functional")
    value, grad = compare_loss(snn, ms.ce_count_loss, SF.ce_count_loss())
    print(f"ce_count_loss vs snnTorch, float64: value rel {value:.2e}, gradient rel {grad:.2e}")
    assert value < 1e-12 and grad < 1e-12


def test_ce_rate_loss_equals_snntorchs(snn):
    """snnTorch adds the per-step losses into a float32 tensor (even for float64 spikes) and
    divides it by T in float32: its value and its gradient's factor 1/T are rounded to float32.
    So: against snnTorch itself to float32 rounding, and to float64 rounding against its
    definition written out with torch's float64 autograd, F.cross_entropy at each step / T."""
    torch, _ = snn
    SF = importlib.import_module("snntorch.functional")
    value, grad = compare_loss(snn, ms.ce_rate_loss, SF.ce_rate_loss())
    F = torch.nn.functional
    exact = lambda s, y: sum(F.cross_entropy(s[t], y) for t in range(s.shape[0])) / s.shape[0]
    value64, grad64 = compare_loss(snn, ms.ce_rate_loss, exact)
    print(f"ce_rate_loss vs snnTorch (float32 accumulator): value rel {value:.2e}, gradient rel "
          f"{grad:.2e}; vs its definition in float64 autograd: value rel {value64:.2e}, "
          f"gradient rel {grad64:.2e}")
    assert value < 1e-6 and grad < 1e-6
    assert value64 < 1e-12 and grad64 < 1e-12


def test_decoders_agree_with_snntorchs_accuracy(snn):
    torch, _ = snn
    SF = importlib.import_module("snntorch.functional")
    rng = np.random.default_rng(1)
    differ = 0
    for density in (0.02, 0.1, 0.5):
        spk = (rng.random((6, 400, 10)) < density).astype(float)
        y = rng.integers(0, 10, 400)
        st, yt = torch.tensor(spk), torch.tensor(y)
        assert ms.accuracy(ms.predict_rate(spk), y) == pytest.approx(SF.accuracy_rate(st, yt))
        T = spk.shape[0]
        theirs = np.minimum(ms.first_spike_time(spk), T - 1).argmin(axis=1)    # the page's recipe
        assert ms.accuracy(theirs, y) == pytest.approx(SF.accuracy_temporal(st, yt))
        differ += int((theirs != ms.predict_latency(spk)).sum())
    assert differ > 0           # the documented difference (silent: T, not T − 1) shows up


def test_latency_gives_snntorchs_spikes(snn):
    torch, _ = snn
    sg = importlib.import_module("snntorch.spikegen")
    rng = np.random.default_rng(0)
    values = np.concatenate([rng.random(300), np.arange(255) / 255,
                             [0, 1, 0.01, 0.0100001, 0.1, 0.5, 0.009999, 0.0999, 0.1001]])
    configs = mismatched = raised = 0
    for dtype, T, thr, tau, t0, clip, normalize, linear in itertools.product(
            ("float32", "float64"), (5, 25, 100), (0.01, 0.1, 0.5), (0.5, 1.0, 5.0, 20.0), (0, 2),
            (False, True), (False, True), (False, True)):
        x = values.astype(dtype).reshape(2, -1)
        kw = dict(threshold=thr, tau=tau, first_spike_time=t0, clip=clip, normalize=normalize,
                  linear=linear)
        try:
            ref = sg.latency(torch.from_numpy(x), num_steps=T, **kw).numpy()
        except Exception:               # snnTorch refuses: a spike time past the last step
            with pytest.raises(ValueError, match="past the last step"):
                ms.spikegen.latency(x, T, **kw)
            raised += 1
            continue
        configs += 1
        mismatched += int((ms.spikegen.latency(x, T, **kw) != ref).any(axis=0).sum())
    print(f"latency vs snnTorch: {configs} settings x {values.size} values, {mismatched} spike "
          f"trains differ; {raised} settings refused by both")
    assert configs > 500 and raised > 50 and mismatched == 0


def test_delta_gives_snntorchs_spikes(snn):
    torch, _ = snn
    sg = importlib.import_module("snntorch.spikegen")
    rng = np.random.default_rng(0)
    mismatched = 0
    for dtype, thr, padding, off in itertools.product(("float32", "float64"), (0.0, 0.1, 0.3, 1.0),
                                                      (False, True), (False, True)):
        x = (2 * rng.random((40, 4, 30)) - 0.5).astype(dtype)
        x[10:20] = np.round(x[10:20] * 10) / 10              # changes of exactly the threshold
        ref = sg.delta(torch.from_numpy(x), threshold=thr, padding=padding, off_spike=off)
        mismatched += int((ms.spikegen.delta(x, thr, padding, off) != ref.numpy()).sum())
    print(f"delta vs snnTorch: 32 settings x {x.size} values, {mismatched} spikes differ")
    assert mismatched == 0


def test_rate_has_snntorchs_distribution(snn):
    torch, _ = snn
    sg = importlib.import_module("snntorch.spikegen")
    p = np.linspace(0, 1, 21).astype("float32")
    n = 20000
    ours = ms.spikegen.rate(p, n, gain=0.8, offset=0.1, rng=0).mean(axis=0)
    torch.manual_seed(0)
    theirs = sg.rate(torch.from_numpy(p), num_steps=n, gain=0.8, offset=0.1).numpy().mean(axis=0)
    q = np.clip(0.8 * p + 0.1, 0, 1)
    sigma = np.sqrt(q * (1 - q) / n) + 1e-12
    worst = float((np.abs(ours - theirs) / (np.sqrt(2) * sigma)).max())
    print(f"rate vs snnTorch: firing rates differ by at most {worst:.2f} standard deviations")
    assert (np.abs(ours - q) <= 5 * sigma).all() and (np.abs(theirs - q) <= 5 * sigma).all()
    assert worst < 5


def test_surrogates_equal_snntorchs_or_differ_as_documented(snn):
    torch, snntorch = snn
    S = snntorch.surrogate
    V = np.concatenate([np.linspace(-3, 3, 601), [0.0]])             # no overflow in snnTorch
    same = [(S.atan(), ms.surrogate.ATan()), (S.fast_sigmoid(), ms.surrogate.FastSigmoid()),
            (S.sigmoid(), ms.surrogate.Sigmoid()),
            (S.straight_through_estimator(), ms.surrogate.StraightThrough()),
            (S.heaviside(), ms.surrogate.SpikeOperator())]
    worst = 0.0
    for theirs, ours in same + [(S.triangular(), None)]:
        v = torch.tensor(V, requires_grad=True)
        spk = theirs(v)
        spk.sum().backward()
        if ours is None:                # the documented difference: a sign step, not a triangle
            np.testing.assert_array_equal(v.grad.numpy(), np.where(V < 0, 1.0, -1.0))
            assert (ms.surrogate.Triangular().grad(V, None) >= 0).all()
            continue
        np.testing.assert_array_equal(ours.spike(V), spk.detach().numpy())
        worst = max(worst, rel_error(ours.grad(V, ours.spike(V)), v.grad.numpy()))
    print(f"surrogate gradients vs snnTorch, float64: rel {worst:.2e}")
    assert worst < 1e-12
    v = torch.tensor([-5.0], dtype=torch.float32, requires_grad=True)
    S.sigmoid()(v).sum().backward()           # snnTorch's overflows, as the page says
    assert torch.isnan(v.grad).all()
    assert np.isfinite(ms.surrogate.Sigmoid().grad(np.float32([-5.0]), None)).all()

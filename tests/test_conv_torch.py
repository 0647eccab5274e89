"""The convolutional layers against PyTorch autograd, and the CSNN against snnTorch's tutorial-6
network, in float64 with the same weights. Optional: skipped where torch (or snntorch) is not
installed (`pip install "minisnn[bench]"`).

Bounds: values and gradients ≤ 1e-12 relative for single layers (the same sums in another
order), ≤ 1e-10 for the whole CSNN (25 steps of recurrences in between); spikes identical.
"""
import numpy as np
import pytest

import minisnn as ms
from minisnn import gradcheck

torch = pytest.importorskip("torch")
F = torch.nn.functional
LAYER_BOUND, NET_BOUND = 1e-12, 1e-10


def t64(a, grad=False):
    return torch.tensor(np.asarray(a, dtype="float64"), requires_grad=grad)


def err(a, b):
    return gradcheck.rel_error(a, b.detach().numpy() if hasattr(b, "detach") else b)


@pytest.mark.parametrize("geometry", [dict(kernel_size=5), dict(kernel_size=3, padding=1),
                                      dict(kernel_size=(3, 2), stride=(2, 1), padding=(1, 2)),
                                      dict(kernel_size=2, stride=3, padding=1),
                                      dict(kernel_size=4, stride=(1, 2), padding=2)])
@pytest.mark.parametrize("T", [1, 3], ids=["static", "time-varying"])
def test_conv2d_matches_torch(geometry, T):
    layer = ms.Conv2d(3, 4, dtype="float64", rng=0, **geometry)
    rng = np.random.default_rng(1)
    X = rng.standard_normal((T, 2, 3, 9, 8))
    I, rec = layer.forward(X, T)
    R = rng.standard_normal(I.shape)
    dX = layer.backward(rec, R.copy())
    Xt, Wt, bt = t64(X.reshape(T * 2, 3, 9, 8), True), t64(layer.W, True), t64(layer.b, True)
    It = F.conv2d(Xt, Wt, bt, stride=layer.stride, padding=layer.padding)
    (It * t64(R.reshape(It.shape))).sum().backward()
    assert err(I.reshape(It.shape), It) <= LAYER_BOUND
    assert err(dX.reshape(Xt.shape), Xt.grad) <= LAYER_BOUND
    assert err(layer.dW, Wt.grad) <= LAYER_BOUND and err(layer.db, bt.grad) <= LAYER_BOUND


def test_conv2d_initialisation_bound_is_torchs():
    torch.manual_seed(0)
    tw = torch.nn.Conv2d(12, 64, 5).weight.detach().numpy()
    ours = ms.Conv2d(12, 64, 5, rng=0).W
    bound = 1 / np.sqrt(12 * 5 * 5)
    assert np.abs(tw).max() <= bound and np.abs(ours).max() <= bound
    assert abs(np.abs(tw).max() - np.abs(ours).max()) < 0.01 * bound
    assert abs(tw.std() - ours.std()) < 0.02 * bound            # both uniform on ±bound


def pool_and_torch(pool, torch_pool, X, seed):
    """Our pool's output and ∂L/∂X for L = Σ R·Y, and torch's, as NumPy arrays (torch's in our
    shapes)."""
    Y, rec = pool.forward(X, X.shape[0])
    R = np.random.default_rng(seed).standard_normal(Y.shape)
    dX = pool.backward(rec, R.copy())
    Xt = t64(X.reshape((-1,) + X.shape[2:]), True)
    Yt = torch_pool(Xt, pool.kernel_size, pool.stride)
    (Yt * t64(R.reshape(Yt.shape))).sum().backward()
    return Y, dX, Yt.detach().numpy().reshape(Y.shape), Xt.grad.numpy().reshape(X.shape)


@pytest.mark.parametrize("window", [dict(kernel_size=2), dict(kernel_size=3, stride=2),
                                    dict(kernel_size=(2, 3), stride=(1, 3))])
@pytest.mark.parametrize("spikes", [False, True], ids=["floats", "spikes-with-ties"])
def test_max_pool_matches_torch_ties_included(window, spikes):
    X = np.random.default_rng(2).standard_normal((2, 3, 4, 7, 9))
    if spikes:
        X = (X > 0.8).astype("float64")         # 0/1 values: most windows tie
    Y, dX, Yt, dXt = pool_and_torch(ms.MaxPool2d(**window), F.max_pool2d, X, seed=3)
    np.testing.assert_array_equal(Y, Yt)
    np.testing.assert_array_equal(dX != 0, dXt != 0)       # the gradient goes where torch's goes
    assert err(dX, dXt) <= LAYER_BOUND   # overlapping windows add in another order


@pytest.mark.parametrize("window", [dict(kernel_size=2), dict(kernel_size=3, stride=2)])
def test_avg_pool_matches_torch(window):
    X = np.random.default_rng(3).standard_normal((2, 3, 4, 7, 9))
    Y, dX, Yt, dXt = pool_and_torch(ms.AvgPool2d(**window), F.avg_pool2d, X, seed=4)
    assert err(Y, Yt) <= LAYER_BOUND and err(dX, dXt) <= LAYER_BOUND


def test_flatten_matches_torch():
    X = np.random.default_rng(4).standard_normal((2, 3, 4, 5, 6))
    Y, _ = ms.Flatten().forward(X, 2)
    want = torch.nn.Flatten()(t64(X.reshape(6, 4, 5, 6))).numpy().reshape(Y.shape)
    np.testing.assert_array_equal(Y, want)


# ----------------------------------------------------------------------------- with snnTorch

snn = pytest.importorskip("snntorch")
from snntorch import surrogate as snn_surrogate  # noqa: E402
from snntorch import utils as snn_utils  # noqa: E402
import snntorch.functional as SF  # noqa: E402


def run_steps(net, x_at, T):
    """snnTorch's forward_pass of tutorial 6: the network called once per step."""
    snn_utils.reset(net)
    spk, mem = [], []
    for t in range(T):
        s, m = net(x_at(t))
        spk.append(s)
        mem.append(m)
    return torch.stack(spk), torch.stack(mem)


@pytest.fixture
def spikes_in_float64(monkeypatch):
    """snnTorch's surrogates return float32 spikes whatever the input's dtype ((U > θ).float()),
    which a float64 Conv2d after a Leaky refuses. The spikes are exactly 0 and 1, so making them
    float64 changes no number."""
    def forward(ctx, input_, slope):
        ctx.save_for_backward(input_)
        ctx.slope = slope
        return (input_ > 0).to(input_.dtype)
    monkeypatch.setattr(snn_surrogate.FastSigmoid, "forward", staticmethod(forward))


@pytest.mark.parametrize("T", [1, 4], ids=["static-x", "time-varying-x"])
def test_residual_matches_torch(T, spikes_in_float64):
    """out[t] = leaky(conv(x[t])) + x[t] with snnTorch's Leaky, and a stateless block."""
    rng = np.random.default_rng(5)
    X = rng.random((T, 2, 3, 6, 6)) * 2
    conv = ms.Conv2d(3, 3, 3, padding=1, dtype="float64", rng=0)
    block = ms.Residual(conv, ms.Leaky(0.7, surrogate="fast_sigmoid"))
    out, rec = block.forward(X, 4)
    R = rng.standard_normal(out.shape)
    dX = block.backward(rec, R.copy())

    tconv = torch.nn.Conv2d(3, 3, 3, padding=1).double()
    with torch.no_grad():
        tconv.weight.copy_(t64(conv.W))
        tconv.bias.copy_(t64(conv.b))
    lif = snn.Leaky(beta=t64(0.7), spike_grad=snn_surrogate.fast_sigmoid(slope=25),
                    init_hidden=True)                       # β in float64, not 0.7 rounded to f32
    Xt = t64(X, True)
    snn_utils.reset(lif)
    outs = []
    for t in range(4):
        x_t = Xt[0 if T == 1 else t]
        outs.append(lif(tconv(x_t)) + x_t)
    out_t = torch.stack(outs)
    (out_t * t64(R)).sum().backward()
    np.testing.assert_array_equal(out, out_t.detach().numpy())
    assert err(dX, Xt.grad) <= LAYER_BOUND
    assert err(conv.dW, tconv.weight.grad) <= LAYER_BOUND


@pytest.fixture
def loss_in_float64(monkeypatch):
    """snnTorch's losses add the per-step terms into a float32 accumulator (the module constant
    snntorch.functional.loss.dtype = torch.float), whatever the input's dtype; for a float64
    comparison the accumulator is made float64."""
    import snntorch.functional.loss as snn_loss
    monkeypatch.setattr(snn_loss, "dtype", torch.float64)


def tutorial6_pair(seed=0):
    """minisnn's CSNN (models.build) and snnTorch tutorial 6's nn.Sequential, float64, the same
    weights."""
    net = ms.models.build("csnn", dtype="float64", rng=seed)
    sg = snn_surrogate.fast_sigmoid(slope=25)
    tnet = torch.nn.Sequential(
        torch.nn.Conv2d(1, 12, 5), torch.nn.MaxPool2d(2),
        snn.Leaky(beta=0.5, spike_grad=sg, init_hidden=True),
        torch.nn.Conv2d(12, 64, 5), torch.nn.MaxPool2d(2),
        snn.Leaky(beta=0.5, spike_grad=sg, init_hidden=True),
        torch.nn.Flatten(), torch.nn.Linear(64 * 4 * 4, 10),
        snn.Leaky(beta=0.5, spike_grad=sg, init_hidden=True, output=True)).double()
    with torch.no_grad():
        for i in (0, 3, 7):
            tnet[i].weight.copy_(t64(net[i].W))
            tnet[i].bias.copy_(t64(net[i].b))
    return net, tnet


@pytest.mark.parametrize("T", [5, 25])
def test_csnn_matches_snntorch_tutorial6(T, loss_in_float64, spikes_in_float64):
    net, tnet = tutorial6_pair()
    for layer in (net[0], net[3], net[7]):        # stronger weights: every layer spikes
        layer.W *= 4
    with torch.no_grad():
        for i in (0, 3, 7):
            tnet[i].weight.mul_(4)
    rng = np.random.default_rng(7)
    x = rng.random((6, 1, 28, 28))
    y = rng.integers(0, 10, 6)
    net.zero_grad()
    spk, mem = net(x, T)
    assert all(float(r.S.mean()) > 0.01 for r in net.record if "S" in r), "a silent layer"
    L, d_spk = ms.ce_rate_loss(spk, y)
    net.backward(d_spk=d_spk)

    xt = t64(x)
    spk_t, mem_t = run_steps(tnet, lambda t: xt, T)
    Lt = SF.ce_rate_loss()(spk_t, torch.tensor(y))
    Lt.backward()
    np.testing.assert_array_equal(spk, spk_t.detach().numpy())
    assert err(mem, mem_t) <= NET_BOUND
    assert abs(float(L) - Lt.item()) <= NET_BOUND * abs(Lt.item())
    for i in (0, 3, 7):
        assert err(net[i].dW, tnet[i].weight.grad) <= NET_BOUND, i
        assert err(net[i].db, tnet[i].bias.grad) <= NET_BOUND, i


if __name__ == "__main__":   # the measured agreement, for the record: python tests/test_conv_torch.py
    import snntorch.functional.loss as snn_loss
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(snn_loss, "dtype", torch.float64)
        mp.setattr(snn_surrogate.FastSigmoid, "forward", staticmethod(
            lambda ctx, u, slope: (ctx.save_for_backward(u), setattr(ctx, "slope", slope),
                                   (u > 0).to(u.dtype))[-1]))
        for T in (5, 25):
            net, tnet = tutorial6_pair()
            for i in (0, 3, 7):
                net[i].W *= 4
                with torch.no_grad():
                    tnet[i].weight.mul_(4)
            rng = np.random.default_rng(7)
            x, y = rng.random((6, 1, 28, 28)), rng.integers(0, 10, 6)
            spk, mem = net(x, T)
            L, d_spk = ms.ce_rate_loss(spk, y)
            net.backward(d_spk=d_spk)
            spk_t, mem_t = run_steps(tnet, lambda t: t64(x), T)
            Lt = SF.ce_rate_loss()(spk_t, torch.tensor(y))
            Lt.backward()
            grads = max(max(err(net[i].dW, tnet[i].weight.grad), err(net[i].db, tnet[i].bias.grad))
                        for i in (0, 3, 7))
            print(f"CSNN vs snnTorch tutorial 6, float64, {T} steps: spikes equal "
                  f"{bool((spk == spk_t.detach().numpy()).all())}, loss "
                  f"{abs(float(L) - Lt.item()) / Lt.item():.1e}, membrane {err(mem, mem_t):.1e}, "
                  f"gradients {grads:.1e}")

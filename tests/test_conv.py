"""Conv2d, MaxPool2d, AvgPool2d, Flatten and Residual: their gradients, two independent ways.

Bounds (float64, relative error max|a − b| / max(max|a|, max|b|), minisnn.gradcheck.rel_error):
finite differences (h = 1e-6) ≤ 1e-6, for each layer alone (L = Σ R·out) and inside a small CSNN
on the smooth stand-in; the literal double sum of eq. (6) for Conv2d → Leaky ≤ 1e-10. Each check
is shown to fail (error > 1e-3) on a deliberately wrong backward.
"""
import numpy as np
import pytest

import minisnn as ms
from minisnn import conv as conv_mod
from minisnn import gradcheck, network, pool
from minisnn.record import Record

from conv_helpers import (both_losses, image_loss, layer_fd_errors, layer_grads, smooth_leaky,
                          tiny_csnn)

FD_BOUND, LITERAL_BOUND, WRONG = 1e-6, 1e-10, 1e-3
GEOMETRIES = [dict(kernel_size=3), dict(kernel_size=(3, 2), stride=(2, 1), padding=(1, 2)),
              dict(kernel_size=2, stride=3, padding=1),
              dict(kernel_size=4, padding=1)]     # 5 output columns in groups of 3: one padded


def images(shape, seed=1):
    return np.random.default_rng(seed).standard_normal(shape)


# ----------------------------------------------------------------------------- each layer alone

@pytest.mark.parametrize("geometry", GEOMETRIES, ids=["3x3", "3x2-s21-p12", "2x2-s3-p1", "4x4-p1"])
@pytest.mark.parametrize("T", [1, 3], ids=["static", "time-varying"])
def test_conv2d_finite_differences(geometry, T):
    layer = ms.Conv2d(2, 3, dtype="float64", rng=0, **geometry)
    errors = layer_fd_errors(layer, images((T, 2, 2, 7, 6)), 3)
    assert set(errors) == {"X", "0.W", "0.b"}
    assert max(errors.values()) <= FD_BOUND, errors


@pytest.mark.parametrize("cls", [ms.MaxPool2d, ms.AvgPool2d])
@pytest.mark.parametrize("window", [dict(kernel_size=2), dict(kernel_size=3, stride=2),
                                    dict(kernel_size=(2, 3), stride=(1, 3))],
                         ids=["2", "3-s2-overlapping", "2x3-s13"])
def test_pool_finite_differences(cls, window):
    errors = layer_fd_errors(cls(**window), images((3, 2, 2, 7, 7)), 3)
    assert errors["X"] <= FD_BOUND, errors


def test_flatten_is_pytorch_order_and_its_gradient_the_inverse_reshape():
    X = images((2, 3, 4, 5, 6))
    Y, rec = ms.Flatten().forward(X, 2)
    assert Y.shape == (2, 3, 4 * 5 * 6)
    assert Y[1, 2, 3 * 30 + 4 * 6 + 5] == X[1, 2, 3, 4, 5]    # (c, h, w) order
    assert layer_fd_errors(ms.Flatten(), X, 2)["X"] <= FD_BOUND


@pytest.mark.parametrize("T", [1, 4], ids=["static-x", "time-varying-x"])
def test_residual_finite_differences(T):
    block = ms.Residual(ms.Conv2d(2, 2, 3, padding=1, dtype="float64", rng=0), smooth_leaky())
    errors = layer_fd_errors(block, images((T, 2, 2, 5, 5)), 4)
    assert set(errors) == {"X", "0.0.W", "0.0.b", "0.1.beta"}
    assert max(errors.values()) <= FD_BOUND, errors


def test_residual_with_a_stateless_block_keeps_a_static_input_static():
    block = ms.Residual(ms.Conv2d(2, 2, 3, padding=1, dtype="float64", rng=0))
    out, _ = block.forward(images((1, 2, 2, 5, 5)), 4)
    assert out.shape == (1, 2, 2, 5, 5)
    assert max(layer_fd_errors(block, images((1, 2, 2, 5, 5)), 4).values()) <= FD_BOUND


# ----------------------------------------------------------------------------- inside a CSNN

@pytest.mark.parametrize("residual_block", [False, True], ids=["plain", "with-residual"])
@pytest.mark.parametrize("static", [True, False], ids=["static", "time-varying"])
def test_csnn_finite_differences(residual_block, static):
    net = tiny_csnn(residual=residual_block)
    T, rng = 4, np.random.default_rng(5)
    x = rng.random((2, 1, 10, 10)) * 3 if static else rng.random((T, 2, 1, 10, 10)) * 3
    errors = gradcheck.check_finite_differences(net, x, T, both_losses(np.array([0, 2])))
    names = {k.split(".")[-1] for k in errors}
    assert names == {"W", "b", "beta"}
    assert max(errors.values()) <= FD_BOUND, errors


def test_static_image_is_convolved_once_and_equals_the_repeated_image():
    net = tiny_csnn(leaky=lambda: ms.Leaky(0.8), residual=True)
    x = np.random.default_rng(2).random((3, 1, 10, 10)) * 3
    y = np.array([0, 1, 2])
    spk_s, _ = net(x, 5)
    assert net.record[0].X.shape[0] == 1 and net.record[2].X.shape[0] == 1   # conv, pool once
    g_static = gradcheck.analytic_gradients(net, x, 5, both_losses(y))
    g_repeat = gradcheck.analytic_gradients(net, np.broadcast_to(x, (5,) + x.shape).copy(), 5,
                                            both_losses(y))
    spk_r, _ = net(np.broadcast_to(x, (5,) + x.shape).copy(), 5)
    np.testing.assert_array_equal(spk_s, spk_r)
    for name in g_static:
        assert gradcheck.rel_error(g_static[name], g_repeat[name]) <= 1e-12, name


def test_chunking_does_not_change_a_number(monkeypatch):
    layer = ms.Conv2d(3, 4, 3, padding=1, dtype="float64", rng=0)
    X, R = images((3, 5, 3, 6, 6)), images((3, 5, 4, 6, 6), seed=2)
    dX_one, g_one = layer_grads(layer, X, 3, R)
    I_one = layer.forward(X, 3)[0]
    monkeypatch.setattr(conv_mod, "CHUNK_BYTES", 1)       # one image per chunk
    assert len(conv_mod.chunks(15, 6 * 6 * 27 * 8)) == 15
    dX_many, g_many = layer_grads(layer, X, 3, R)
    np.testing.assert_allclose(layer.forward(X, 3)[0], I_one, rtol=0, atol=1e-13)
    np.testing.assert_allclose(dX_many, dX_one, rtol=0, atol=1e-13)
    for name in g_one:
        np.testing.assert_allclose(g_many[name], g_one[name], rtol=1e-13, atol=1e-13)


# ----------------------------------------------------------------------------- the literal eq. (6)

def literal_conv_gradient(conv, leaky, X, U, S, dU_direct, dS_direct):
    """Eq. (6) for Conv2d → Leaky as the literal double sum Σ_t Σ_{s≤t} ∂L[t]/∂W[s].

    ∂L[t]/∂U[s] is ∂L[t]/∂U[t] times every factor ∂U[k]/∂U[k−1] of eq. (7) for k = t … s+1,
    multiplied out one by one; ∂L[t]/∂W[s][o, c, i, j] is then the sum, over samples and output
    positions (y, x), of ∂L[t]/∂U[s][b, o, y, x] times the input that weight saw there,
    X[s][b, c, sh·y + i − ph, sw·x + j − pw]: written with explicit loops, independent of the
    layer's patch matrices."""
    T, B, O, OH, OW = U.shape
    (kh, kw), (sh, sw), (ph, pw) = conv.kernel_size, conv.stride, conv.padding
    Xp = np.pad(X, ((0, 0), (0, 0), (0, 0), (ph, ph), (pw, pw)))
    g = leaky.surrogate.grad(U - leaky.threshold, S)                   # ∂S̃/∂U, eq. (5)
    dW, db = np.zeros(conv.W.shape), np.zeros(conv.b.shape)
    for t in range(T):
        dLt_dUt = dU_direct[t] + dS_direct[t] * g[t]                    # ∂L[t]/∂U[t]
        for s in range(t + 1):
            chain = dLt_dUt
            for k in range(t, s, -1):                                   # Π ∂U[k]/∂U[k−1]
                chain = chain * gradcheck._dU_dUprev(leaky, U, S, g, k)
            X_s = Xp[0] if Xp.shape[0] == 1 else Xp[s]                  # (B, C, Hp, Wp)
            for o in range(O):
                for c in range(X.shape[2]):
                    for i in range(kh):
                        for j in range(kw):
                            for y in range(OH):
                                for x in range(OW):
                                    dW[o, c, i, j] += np.dot(chain[:, o, y, x],
                                                             X_s[:, c, sh * y + i, sw * x + j])
            db += chain.sum(axis=(0, 2, 3))
    return dW, db


def literal_errors(surrogate, reset, detach, geometry=None, static=True, T=4):
    geometry = geometry or dict(kernel_size=3)
    conv = ms.Conv2d(2, 2, dtype="float64", rng=0, **geometry)
    leaky = ms.Leaky(0.9, threshold=0.5, surrogate=surrogate, reset=reset, detach_reset=detach)
    net = ms.Sequential(conv, leaky)
    rng = np.random.default_rng(1)
    x = rng.random((3, 2, 6, 6)) * 2 if static else rng.random((T, 3, 2, 6, 6)) * 2
    out_shape = (T, 3, 2) + conv.output_shape(6, 6)
    loss_fn = image_loss(out_shape)
    analytic = gradcheck.analytic_gradients(net, x, T, loss_fn)
    rec = net.record[1]
    _, d_mem, d_spk = loss_fn(rec.S, rec.U)
    dW, db = literal_conv_gradient(conv, leaky, net.record[0].X, rec.U, rec.S, d_mem, d_spk)
    assert np.abs(dW).max() > 0             # a gradient of zeros would agree trivially
    return {"W": gradcheck.rel_error(analytic["0.W"], dW),
            "b": gradcheck.rel_error(analytic["0.b"], db)}


@pytest.mark.parametrize("surrogate,reset,detach", [("atan", "subtract", True),
                                                     ("fast_sigmoid", "zero", False),
                                                     ("sigmoid", "none", True),
                                                     ("triangular", "subtract", False)])
def test_literal_double_sum(surrogate, reset, detach):
    errors = literal_errors(surrogate, reset, detach)
    assert max(errors.values()) <= LITERAL_BOUND, errors


@pytest.mark.parametrize("static", [True, False], ids=["static", "time-varying"])
def test_literal_double_sum_strided_padded(static):
    errors = literal_errors("fast_sigmoid", "subtract", True, static=static,
                            geometry=dict(kernel_size=(3, 2), stride=2, padding=1))
    assert max(errors.values()) <= LITERAL_BOUND, errors


# ----------------------------------------------------------------------------- wrong backwards

REAL_BAND, REAL_IM2COL = conv_mod.band_matrix, conv_mod.im2col


def transposed_kernel_band(W, OW, sw):
    """∂L/∂X computed with the kernel transposed (i ↔ j): a classic slip."""
    return REAL_BAND(W.transpose(0, 1, 3, 2), OW, sw)


def flipped_patches(X, kernel, stride, padding):
    """Patches with the kernel offsets reversed: a convolution where a correlation is meant."""
    m, C = X.shape[:2]
    kh, kw = kernel
    cols = REAL_IM2COL(X, kernel, stride, padding)
    return cols.reshape(-1, kh, kw, C)[:, ::-1, ::-1].reshape(cols.shape)


def test_wrong_conv_input_gradient_fails_finite_differences(monkeypatch):
    monkeypatch.setattr(conv_mod, "band_matrix", transposed_kernel_band)
    layer = ms.Conv2d(2, 3, 3, dtype="float64", rng=0)
    assert layer_fd_errors(layer, images((2, 2, 2, 6, 6)), 2)["X"] > WRONG
    net = tiny_csnn()
    x = np.random.default_rng(5).random((2, 1, 10, 10)) * 3
    errors = gradcheck.check_finite_differences(net, x, 4, both_losses(np.array([0, 2])))
    assert errors["0.W"] > WRONG, errors        # the first conv learns through conv 2's ∂L/∂X


def test_wrong_weight_gradient_fails_the_literal_check(monkeypatch):
    real_backward = ms.Conv2d.backward

    def backward_with_flipped_patches(self, rec, dI, need_dX=True):
        monkeypatch.setattr(conv_mod, "im2col", flipped_patches)
        try:
            return real_backward(self, rec, dI, need_dX)
        finally:
            monkeypatch.setattr(conv_mod, "im2col", REAL_IM2COL)
    monkeypatch.setattr(ms.Conv2d, "backward", backward_with_flipped_patches)
    assert literal_errors("atan", "subtract", True)["W"] > WRONG
    layer = ms.Conv2d(2, 3, 3, dtype="float64", rng=0)
    assert layer_fd_errors(layer, images((2, 2, 2, 6, 6)), 2)["0.W"] > WRONG


def test_wrong_pool_routing_fails_finite_differences(monkeypatch):
    real_backward = ms.MaxPool2d.backward

    def routed_to_the_next_position(self, rec, dY):
        shifted = Record(argmax=(rec.argmax + 1) % 4, shape=rec.shape,
                         channels_last=rec.channels_last)
        return real_backward(self, shifted, dY)
    monkeypatch.setattr(ms.MaxPool2d, "backward", routed_to_the_next_position)
    assert layer_fd_errors(ms.MaxPool2d(2), images((2, 2, 2, 6, 6)), 2)["X"] > WRONG
    net = tiny_csnn()
    x = np.random.default_rng(5).random((2, 1, 10, 10)) * 3
    errors = gradcheck.check_finite_differences(net, x, 4, both_losses(np.array([0, 2])))
    assert errors["0.W"] > WRONG, errors


def test_residual_that_drops_its_skip_gradient_fails(monkeypatch):
    def block_path_only(self, rec, d_out, need_dX=True):
        return network.backward_layers(self.layers, rec.block, d_out, need_dX=need_dX)
    monkeypatch.setattr(ms.Residual, "backward", block_path_only)
    block = ms.Residual(ms.Conv2d(2, 2, 3, padding=1, dtype="float64", rng=0), smooth_leaky())
    assert layer_fd_errors(block, images((4, 2, 2, 5, 5)), 4)["X"] > WRONG
    net = tiny_csnn(residual=True)
    x = np.random.default_rng(5).random((2, 1, 10, 10)) * 3
    errors = gradcheck.check_finite_differences(net, x, 4, both_losses(np.array([0, 2])))
    assert errors["0.W"] > WRONG, errors


def test_residual_that_lets_the_block_overwrite_its_skip_gradient_fails(monkeypatch):
    """The block may reuse the memory of the gradient it is given (the layer protocol): a
    Residual that hands it d_out and then reads d_out again for the skip path is wrong."""
    def without_the_copy(self, rec, d_out, need_dX=True):
        dX = network.backward_layers(self.layers, rec.block, d_out)   # Leaky reuses d_out
        d_out += dX
        return d_out
    monkeypatch.setattr(ms.Residual, "backward", without_the_copy)
    block = ms.Residual(ms.Conv2d(2, 2, 3, padding=1, dtype="float64", rng=0), smooth_leaky())
    assert layer_fd_errors(block, images((4, 2, 2, 5, 5)), 4)["X"] > WRONG


# ----------------------------------------------------------------------------- max-pool details

def test_max_pool_routes_each_gradient_to_its_maximum_and_ties_to_the_first():
    X = np.zeros((1, 1, 1, 4, 4))
    X[0, 0, 0, 1, 1] = 5                    # the maximum of the top-left window: (1, 1)
    X[0, 0, 0, 0, 3] = X[0, 0, 0, 1, 2] = 2  # a tie in the top-right window: (0, 1) comes first
    # the bottom windows are all zeros: a 4-way tie, the gradient goes to (0, 0)
    Y, rec = ms.MaxPool2d(2).forward(X, 1)
    np.testing.assert_array_equal(Y[0, 0, 0], [[5, 2], [0, 0]])
    assert rec.argmax.dtype == np.uint8 and "X" not in rec           # small: no copy of X
    dX = ms.MaxPool2d(2).backward(rec, np.array([[[[[1., 2.], [3., 4.]]]]]))
    want = np.zeros((4, 4))
    want[1, 1], want[0, 3], want[2, 0], want[2, 2] = 1, 2, 3, 4
    np.testing.assert_array_equal(dX[0, 0, 0], want)


def test_overlapping_max_pool_adds_the_gradients_an_input_receives():
    X = np.zeros((1, 1, 1, 3, 5))
    X[0, 0, 0, 1, 2] = 1                    # in both 3×3 windows (stride 2)
    Y, rec = ms.MaxPool2d(3, stride=2).forward(X, 1)
    dX = ms.MaxPool2d(3, stride=2).backward(rec, np.array([[[[[1.5, 2.5]]]]]))
    assert dX[0, 0, 0, 1, 2] == 4.0 and np.count_nonzero(dX) == 1


# ----------------------------------------------------------------------------- settings, errors

def test_conv_initialisation_layout_and_repr():
    layer = ms.Conv2d(12, 64, 5, rng=0)
    bound = 1 / np.sqrt(12 * 25)
    assert layer.W.shape == (64, 12, 5, 5) and layer.b.shape == (64,)
    assert layer.W.dtype == np.float32 and np.abs(layer.W).max() <= bound
    assert np.abs(layer.W).max() > 0.99 * bound and abs(layer.W.mean()) < 0.01 * bound
    np.testing.assert_array_equal(layer.W, ms.Conv2d(12, 64, 5, rng=0).W)     # seeded
    assert repr(layer) == ("Conv2d(12, 64, kernel_size=(5, 5), stride=(1, 1), padding=(0, 0), "
                           "dtype=float32)")
    assert layer.sample_ndim == 3 and layer.state_names == () and layer.param_names() == ("W", "b")
    assert repr(ms.MaxPool2d(2)) == "MaxPool2d(kernel_size=(2, 2), stride=(2, 2))"
    assert ms.AvgPool2d(3, stride=1).stride == (1, 1)


@pytest.mark.parametrize("kwargs,match", [
    (dict(in_channels=0, out_channels=2, kernel_size=3), "in_channels"),
    (dict(in_channels=1, out_channels=2, kernel_size=(3, 0)), "kernel_size"),
    (dict(in_channels=1, out_channels=2, kernel_size=3, stride=0), "stride"),
    (dict(in_channels=1, out_channels=2, kernel_size=3, padding=-1), "padding"),
    (dict(in_channels=1, out_channels=2, kernel_size=3, dtype="int32"), "dtype"),
])
def test_conv_bad_settings(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ms.Conv2d(**kwargs)


def test_bad_inputs_get_clear_errors():
    conv = ms.Conv2d(3, 4, 5)
    with pytest.raises(ValueError, match=r"shape \(T, B, 3, H, W\)"):
        conv.forward(np.zeros((1, 2, 2, 8, 8), "float32"), 1)
    with pytest.raises(ValueError, match="smaller than the kernel"):
        conv.forward(np.zeros((1, 2, 3, 4, 8), "float32"), 1)
    with pytest.raises(ValueError, match=r"\(T, B, C, H, W\)"):
        ms.MaxPool2d(2).forward(np.zeros((2, 8, 8)), 1)
    block = ms.Residual(ms.Conv2d(2, 3, 3, padding=1, dtype="float64"))
    with pytest.raises(ValueError, match="Residual: the block's output has shape"):
        block.forward(np.zeros((1, 2, 2, 5, 5)), 1)
    with pytest.raises(TypeError, match="layer 0 of the Residual block"):
        ms.Residual(object())
    net = tiny_csnn()
    with pytest.raises(ValueError, match="x must have shape"):
        net(np.zeros((2, 10, 10)), 3)
    with pytest.raises(ValueError, match="the last layer must be"):
        ms.Sequential(ms.Conv2d(1, 2, 3), ms.Leaky(0.5), ms.Residual(ms.Leaky(0.5)))


def test_csnn_parameters_are_found_saved_and_loaded(tmp_path):
    net = tiny_csnn(residual=True)
    names = [n for n, _ in net.named_parameters()]
    assert names[:4] == ["0.W", "0.b", "2.beta", "3.0.W"]      # the Residual's block: '3.j.W'
    ms.save(tmp_path / "c.npz", net)
    other = tiny_csnn(residual=True, seed=9)
    ms.load(tmp_path / "c.npz", other)
    for (n, p), (_, q) in zip(net.named_parameters(), other.named_parameters()):
        np.testing.assert_array_equal(p.value, q.value)


def test_pool_module_keeps_its_record_small():
    X = (np.random.default_rng(0).random((25, 4, 64, 8, 8)) < 0.3).astype("float32")
    _, rec = ms.MaxPool2d(2).forward(X, 25)
    assert rec.argmax.nbytes * 16 == X.nbytes and rec.shape == X.shape
    assert pool.MaxPool2d is ms.MaxPool2d


if __name__ == "__main__":      # the measured errors, for the record: python tests/test_conv.py
    x_img = np.random.default_rng(5).random((2, 1, 10, 10)) * 3
    for geometry in GEOMETRIES:
        for T in (1, 3):
            e = layer_fd_errors(ms.Conv2d(2, 3, dtype="float64", rng=0, **geometry),
                                images((T, 2, 2, 7, 6)), 3)
            print(f"finite differences, Conv2d {geometry} T={T}: {max(e.values()):.2e}")
    for cls in (ms.MaxPool2d, ms.AvgPool2d):
        for window in (dict(kernel_size=2), dict(kernel_size=3, stride=2)):
            e = layer_fd_errors(cls(**window), images((3, 2, 2, 7, 7)), 3)
            print(f"finite differences, {cls.__name__} {window}: {e['X']:.2e}")
    print(f"finite differences, Flatten: "
          f"{layer_fd_errors(ms.Flatten(), images((2, 3, 4, 5, 6)), 2)['X']:.2e}")
    for T in (1, 4):
        block = ms.Residual(ms.Conv2d(2, 2, 3, padding=1, dtype="float64", rng=0), smooth_leaky())
        e = layer_fd_errors(block, images((T, 2, 2, 5, 5)), 4)
        print(f"finite differences, Residual(Conv2d, Leaky) T={T}: {max(e.values()):.2e}")
    for res in (False, True):
        for static in (True, False):
            x = x_img if static else np.random.default_rng(5).random((4, 2, 1, 10, 10)) * 3
            e = gradcheck.check_finite_differences(tiny_csnn(residual=res), x, 4,
                                                   both_losses(np.array([0, 2])))
            print(f"finite differences, CSNN residual={res} static={static}, 4 steps, "
                  f"{len(e)} parameter arrays: {max(e.values()):.2e}")
    for args in (("atan", "subtract", True), ("fast_sigmoid", "zero", False),
                 ("sigmoid", "none", True), ("triangular", "subtract", False)):
        print(f"literal eq. (6), Conv2d -> Leaky {args}: "
              f"{max(literal_errors(*args).values()):.2e}")
    for static in (True, False):
        e = literal_errors("fast_sigmoid", "subtract", True, static=static,
                           geometry=dict(kernel_size=(3, 2), stride=2, padding=1))
        print(f"literal eq. (6), strided padded, static={static}: {max(e.values()):.2e}")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(conv_mod, "band_matrix", transposed_kernel_band)
        e = layer_fd_errors(ms.Conv2d(2, 3, 3, dtype="float64", rng=0), images((2, 2, 2, 6, 6)), 2)
        print(f"WRONG (transposed kernel in ∂L/∂X), finite differences: {e['X']:.2e}")
    with pytest.MonkeyPatch.context() as mp:
        real = ms.MaxPool2d.backward
        mp.setattr(ms.MaxPool2d, "backward", lambda self, rec, dY: real(self, Record(
            argmax=(rec.argmax + 1) % 4, shape=rec.shape, channels_last=rec.channels_last), dY))
        e = layer_fd_errors(ms.MaxPool2d(2), images((2, 2, 2, 6, 6)), 2)
        print(f"WRONG (max-pool gradient to the next position), finite differences: {e['X']:.2e}")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(ms.Residual, "backward", lambda self, rec, d, need_dX=True:
                   network.backward_layers(self.layers, rec.block, d, need_dX=need_dX))
        block = ms.Residual(ms.Conv2d(2, 2, 3, padding=1, dtype="float64", rng=0), smooth_leaky())
        e = layer_fd_errors(block, images((4, 2, 2, 5, 5)), 4)
        print(f"WRONG (Residual without its skip gradient), finite differences: {e['X']:.2e}")

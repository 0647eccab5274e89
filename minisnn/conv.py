"""A 2-D convolution layer: the input current I = W ⋆ X + b of eq. (1) for images.

Every step of every sample is one image: (T, B, C, H, W) is folded to (T·B, C, H, W), so the
layer makes one batched computation for all steps (and a static (1, B, C, H, W) image, the same
at every step, is convolved once). The convolution is a matrix product on patches ("im2col"):
each output position's receptive field, kh·kw·C numbers, becomes one row of a matrix, and
I = patches · Wᵀ. The images are processed in chunks, so that the patch matrix of all T·B
images (300 numbers per position for a 5×5 kernel on 12 channels) never exists at once.
"""

import numpy as np

from .backend import get_xp
from .linear import check_positive_int, init_weights
from .record import Record

#: Bytes of patch matrix processed per chunk of images: large enough for well-shaped matrix
#: products, small enough to stay near the cache and keep the peak memory low.
CHUNK_BYTES = 4 * 2 ** 20


def matmul(a, b, out=None):
    """a @ b (into `out` when given): every matrix product of this layer goes through here, so a
    profiler can time them (benchmarks/bench_csnn.py does)."""
    return get_xp(a).matmul(a, b, out=out)


def as_pair(value, name, least):
    """An int or a pair of ints (height, width), each >= least, as a tuple of two ints."""
    pair = tuple(value) if isinstance(value, (tuple, list)) else (value, value)
    if len(pair) != 2 or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool)
                                 and v >= least for v in pair):
        raise ValueError(f"{name} must be an integer >= {least} or a pair of them, "
                         f"got {value!r}")
    return int(pair[0]), int(pair[1])


def output_size(size, kernel, stride, padding):
    """Output height or width of a convolution or pooling: ⌊(size + 2·padding − kernel)/stride⌋ + 1
    (PyTorch's rule, no ceil mode)."""
    return (size + 2 * padding - kernel) // stride + 1


def chunks(n, bytes_per_image):
    """(lo, hi) ranges that cut n images into chunks of about CHUNK_BYTES of patches each."""
    step = max(1, CHUNK_BYTES // max(1, bytes_per_image))
    return [(lo, min(n, lo + step)) for lo in range(0, n, step)]


def im2col(X, kernel, stride, padding):
    """Patches of X (m, C, H, W): a matrix (m·OH·OW, kh·kw·C) with one row per output position
    (m, oh, ow) holding X[m, c, sh·oh + i − ph, sw·ow + j − pw] at column (i, j, c).

    The images are moved to channels-last (m, H, W, C) first: then the kw·C numbers of one
    kernel row (i) of a patch lie next to each other in memory, and the patch matrix is a
    strided view of the images, copied once with long contiguous runs."""
    xp = get_xp(X)
    m, C, H, W = X.shape
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    OH, OW = output_size(H, kh, sh, ph), output_size(W, kw, sw, pw)
    Hp, Wp, it = H + 2 * ph, W + 2 * pw, X.itemsize
    s0, s1, s2, s3 = Hp * Wp * C * it, Wp * C * it, C * it, it      # (m, Hp, Wp, C) in memory
    Xt = X.transpose(0, 2, 3, 1)
    if ph or pw or Xt.strides != (s0, s1, s2, s3):   # no copy if X is channels-last already
        Xt = (xp.zeros if ph or pw else xp.empty)((m, Hp, Wp, C), dtype=X.dtype)
        Xt[:, ph:ph + H, pw:pw + W, :] = X.transpose(0, 2, 3, 1)
    view = xp.lib.stride_tricks.as_strided(Xt, (m, OH, OW, kh, kw * C),
                                           (s0, sh * s1, sw * s2, s1, s3))
    return xp.ascontiguousarray(view).reshape(m * OH * OW, kh * kw * C)


def band_matrix(W, OW, sw):
    """The kernel as a banded matrix for g neighbouring output columns (g = kw − 1, at most OW):
    entry [(q, o), (i, v, c)] = W[o, c, i, v − sw·q] where 0 ≤ v − sw·q < kw, else 0.
    Returns the matrix (g·O, kh·span·C), g and span = sw·(g − 1) + kw input columns."""
    xp = get_xp(W)
    O, C, kh, kw = W.shape
    g = max(1, min(OW, kw - 1))
    span = sw * (g - 1) + kw
    B = xp.zeros((g, O, kh, span, C), dtype=W.dtype)
    for q in range(g):
        for j in range(kw):
            B[q, :, :, sw * q + j, :] = W[:, :, :, j].transpose(0, 2, 1)    # (O, kh, C)
    return B.reshape(g * O, kh * span * C), g, span


def input_grad(dI, band, in_shape, kernel, stride, padding):
    """∂L/∂X (m, C, H, W) from ∂L/∂I given channels-last, (m, OH, OW, O): every output position
    sends ∂L/∂I[m, y, x, :] · W back to the kh·kw·C inputs of its window, and the inputs that
    several windows share add up what they receive.

    The output columns are taken g at a time: what g neighbouring columns send back to the
    kh rows × span columns of input they cover is ONE matrix product with the kernel written as
    a banded matrix (`band`, from band_matrix), the same for every group. Each group then adds kh
    contiguous blocks into the input gradient: few, long additions (the sums over the kernel's
    columns happen inside the matrix product), at the price of the band's zeros, (g − 1 + kw)/kw
    times the minimal work for stride 1 (1.6× for a 5×5 kernel)."""
    xp = get_xp(dI)
    m, OH, OW, O = dI.shape
    C, H, W = in_shape
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    B, g, span = band
    groups = -(-OW // g)
    if groups * g != OW:                                    # zero columns fill the last group
        dI = xp.concatenate([dI, xp.zeros((m, OH, groups * g - OW, O), dtype=dI.dtype)], axis=2)
    width = max(W + 2 * pw, sw * (groups * g - 1) + kw)     # the padded input, or more
    dXp = xp.zeros((m, max(H + 2 * ph, sh * (OH - 1) + kh), width * C), dtype=dI.dtype)
    for k in range(groups):
        Z = matmul(dI[:, :, k * g:(k + 1) * g].reshape(m * OH, g * O), B)
        Z = Z.reshape(m, OH, kh, span * C)                  # (image, y, kernel row i, (v, c))
        cols = slice(sw * k * g * C, (sw * k * g + span) * C)
        for i in range(kh):
            dXp[:, i:i + sh * (OH - 1) + 1:sh, cols] += Z[:, :, i]
    dXp = dXp.reshape(m, dXp.shape[1], width, C)[:, ph:ph + H, pw:pw + W]
    return dXp.transpose(0, 3, 1, 2)                         # (m, C, H, W)


class Conv2d:
    """I[n, o] = b[o] + Σ_c W[o, c] ⋆ X[n, c]: for every image n = (t, b) and output channel o,

        I[n, o, y, x] = b[o] + Σ_{c, i, j} W[o, c, i, j] · X[n, c, sh·y + i − ph, sw·x + j − pw]

    (a cross-correlation, as in PyTorch; X is zero outside the image). W is (out, in, kH, kW),
    b (out,), initialised like torch.nn.Conv2d: uniform in ±1/sqrt(in·kH·kW) (PyTorch's
    kaiming_uniform_(a=√5) gives that bound, and its bias uses the same), from `rng` (a seed or a
    numpy Generator). X is (T, B, C, H, W), or (1, B, C, H, W) for an image that is the same at
    every step: its current is then computed once, not T times.

    The gradients (eq. 6: W is used at every step and position, so every use adds up):

        ∂L/∂W[o, c, i, j] = Σ_{t, b} Σ_{y, x} ∂L/∂I[t, b, o, y, x] · X[t, b, c, sh·y + i − ph, sw·x + j − pw]
        ∂L/∂b[o]          = Σ_{t, b, y, x} ∂L/∂I[t, b, o, y, x]
        ∂L/∂X[t, b, c, h, w] = Σ_{o, i, j} ∂L/∂I[t, b, o, y, x] · W[o, c, i, j]   where h = sh·y + i − ph, w = sw·x + j − pw

    ∂L/∂W is the cross-correlation of the input with ∂L/∂I, summed over time and batch: weight
    (i, j) saw the input shifted by (i, j) at every output position, so its gradient collects the
    input there times the gradient that position received. ∂L/∂X is the "full" convolution of
    ∂L/∂I with the kernel (each input receives from every output whose patch covers it). A
    static input's current is used at every step; Leaky already summed its gradient over time.
    """
    state_names = ()   # stateless: nothing is carried from one step to the next
    sample_ndim = 3    # one input sample is an image (C, H, W)

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0,
                 dtype="float32", rng=None):
        for name, n in (("in_channels", in_channels), ("out_channels", out_channels)):
            check_positive_int(name, n)
        self.kernel_size = as_pair(kernel_size, "kernel_size", 1)
        self.stride = as_pair(stride, "stride", 1)
        self.padding = as_pair(padding, "padding", 0)
        self.W, self.b, self.dW, self.db = init_weights(
            (out_channels, in_channels) + self.kernel_size, dtype, rng)

    in_channels = property(lambda self: self.W.shape[1])
    out_channels = property(lambda self: self.W.shape[0])

    def __repr__(self):
        return (f"Conv2d({self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding}, dtype={self.W.dtype})")

    def param_names(self):
        return ("W", "b")

    def output_shape(self, H, W):
        """(OH, OW) for an input of height H and width W."""
        (kh, kw), (sh, sw), (ph, pw) = self.kernel_size, self.stride, self.padding
        return output_size(H, kh, sh, ph), output_size(W, kw, sw, pw)

    def _W_rows(self):
        """W as a matrix (out, kh·kw·C) whose columns follow the patch order (i, j, c)."""
        return self.W.transpose(0, 2, 3, 1).reshape(self.out_channels, -1)

    def _geometry(self):
        return self.kernel_size, self.stride, self.padding

    def forward(self, X, num_steps=None):
        """I for X (T, B, C, H, W) or (1, B, C, H, W). Returns I (…, out, OH, OW) and the record
        (X: the backward pass recomputes the patches from it, chunk by chunk)."""
        T, B, C, H, W = self._check_input(X)
        xp = get_xp(X)
        OH, OW = self.output_shape(H, W)
        O, n = self.out_channels, T * B
        Xn = X.reshape(n, C, H, W)                       # every step of every sample: an image
        W_rows = self._W_rows()                          # (O, K)
        P = OH * OW
        I_rows = xp.empty((n * P, O), dtype=X.dtype)     # one row per image and position
        for lo, hi in chunks(n, P * W_rows.shape[1] * X.itemsize):
            cols = im2col(Xn[lo:hi], *self._geometry())             # (m·OH·OW, K)
            rows = I_rows[lo * P:hi * P]
            matmul(cols, W_rows.T, out=rows)
            rows += self.b                                          # while it is in the cache
        # (T, B, O, OH, OW) as a view of the rows: its memory is channels-last, which is what
        # pooling (and this layer's backward) read fastest
        I = I_rows.reshape(n, OH, OW, O).transpose(0, 3, 1, 2).reshape(T, B, O, OH, OW)
        return I, Record(X=X)

    def backward(self, rec, dI, need_dX=True):
        """∂L/∂W, ∂L/∂b added into dW, db (summed over time, batch and positions); returns
        ∂L/∂X with X's shape, or None with need_dX=False (the network's input needs none)."""
        X = rec.X
        T, B, C, H, W = X.shape
        xp = get_xp(dI)
        O, n = self.out_channels, T * B
        OH, OW = self.output_shape(H, W)
        if dI.shape != (T, B, O, OH, OW):
            raise ValueError(f"dI must have the shape of the layer's output {(T, B, O, OH, OW)}, "
                             f"got {tuple(dI.shape)}")
        dI = dI.reshape(n, O, OH, OW)
        Xn = X.reshape(n, C, H, W)
        W_rows = self._W_rows()
        dW_rows = xp.zeros(W_rows.shape, dtype=dI.dtype)             # (O, K), patch order
        db = xp.zeros(O, dtype=dI.dtype)
        dX = xp.empty((n, C, H, W), dtype=dI.dtype) if need_dX else None
        band = band_matrix(self.W, OW, self.stride[1]) if need_dX else None
        for lo, hi in chunks(n, OH * OW * W_rows.shape[1] * X.itemsize):
            d = dI[lo:hi].transpose(0, 2, 3, 1)                      # (m, OH, OW, O)
            cols = im2col(Xn[lo:hi], *self._geometry())             # (m·OH·OW, K)
            d_rows = d.reshape(-1, O)                                # (m·OH·OW, O)
            dW_rows += matmul(d_rows.T, cols)                        # Σ over images, positions
            db += d_rows.sum(axis=0)
            if need_dX:
                dX[lo:hi] = input_grad(d, band, (C, H, W), *self._geometry())
        kh, kw = self.kernel_size
        self.dW += dW_rows.reshape(O, kh, kw, C).transpose(0, 3, 1, 2)
        self.db += db
        return None if dX is None else dX.reshape(T, B, C, H, W)

    def _check_input(self, X):
        C = self.in_channels
        if X.ndim != 5 or X.shape[2] != C:
            raise ValueError(f"{self!r} needs an input of shape (T, B, {C}, H, W), got "
                             f"{tuple(X.shape)}")
        if X.dtype.kind != "f":
            raise TypeError(f"the input of {self!r} must be floating-point, got {X.dtype}")
        OH, OW = self.output_shape(*X.shape[3:])
        if OH < 1 or OW < 1:
            raise ValueError(f"the input images {tuple(X.shape[3:])} are smaller than the "
                             f"kernel {self.kernel_size} of {self!r} (with its padding)")
        return X.shape

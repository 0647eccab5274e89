"""Pooling and flattening: stateless layers that reshape an image's currents or spikes.

All of them act on (T, B, C, H, W) arrays, every step and sample at once (a static (1, B, …)
input is pooled once), looping only over the kh·kw offsets inside a pooling window: for each
offset (i, j), X[..., i::sh, j::sw] (cut to the output size) is the window's element (i, j) for
every output position at once.
"""
import numpy as np

from .backend import get_xp
from .conv import as_pair, output_size
from .record import Record


def channels_last(X):
    """True when X (T, B, C, H, W) keeps its channels next to each other in memory, as Conv2d's
    output does (then every window offset is a view with long contiguous runs of channels)."""
    return X.strides[2] == X.itemsize and X.shape[2] > 1


def zeros_in_layout(xp, shape, dtype, last):
    """Zeros of shape (T, B, C, H, W), channels-last in memory when `last` (a transposed view)."""
    if not last:
        return xp.zeros(shape, dtype=dtype)
    T, B, C, H, W = shape
    return xp.zeros((T, B, H, W, C), dtype=dtype).transpose(0, 1, 4, 2, 3)


def _copy_like(template, a):
    out = get_xp(a).empty_like(template, dtype=a.dtype)
    out[...] = a
    return out


class _Pool2d:
    """What the two pools share: the window, its offsets, the input check."""
    state_names = ()   # stateless

    def __init__(self, kernel_size, stride=None):
        self.kernel_size = as_pair(kernel_size, "kernel_size", 1)
        self.stride = self.kernel_size if stride is None else as_pair(stride, "stride", 1)

    def __repr__(self):
        return f"{type(self).__name__}(kernel_size={self.kernel_size}, stride={self.stride})"

    def param_names(self):
        return ()

    def _out_size(self, X):
        if X.ndim != 5:
            raise ValueError(f"{self!r} needs an input of shape (T, B, C, H, W), got "
                             f"{tuple(X.shape)}")
        (kh, kw), (sh, sw) = self.kernel_size, self.stride
        OH, OW = output_size(X.shape[3], kh, sh, 0), output_size(X.shape[4], kw, sw, 0)
        if OH < 1 or OW < 1:
            raise ValueError(f"the input images {tuple(X.shape[3:])} are smaller than the "
                             f"window {self.kernel_size} of {self!r}")
        return OH, OW

    def _windows(self, A, OH, OW):
        """[(a, view)]: for each offset a = i·kw + j of the window, the (…, OH, OW) view of A at
        that offset of every window."""
        (kh, kw), (sh, sw) = self.kernel_size, self.stride
        return [(i * kw + j, A[..., i:i + sh * (OH - 1) + 1:sh, j:j + sw * (OW - 1) + 1:sw])
                for i in range(kh) for j in range(kw)]

    def _disjoint(self):
        """True when no input element belongs to two windows (stride >= kernel)."""
        return all(s >= k for s, k in zip(self.stride, self.kernel_size))


class MaxPool2d(_Pool2d):
    """Y[..., y, x] = max_{i, j} X[..., sh·y + i, sw·x + j]   (kernel kh×kw, stride = kernel by
    default, as torch.nn.MaxPool2d; no padding, the output size rounds down).

    Gradient: the maximum passes its gradient to the one input it came from, the others get 0:

        ∂L/∂X[..., sh·y + i, sw·x + j] += ∂L/∂Y[..., y, x]   where (i, j) = argmax of window (y, x)

    (+= because overlapping windows, stride < kernel, can route several gradients to one input).
    A tie sends the whole gradient to the FIRST maximum in row-major order of the window, as
    PyTorch's CPU kernel does (ties are common: every all-zero patch of a spiking input gives a
    conv current equal to the bias at every position). The record keeps that choice as one small
    integer per output (uint8), not the input.
    """

    def forward(self, X, num_steps=None):
        OH, OW = self._out_size(X)
        xp = get_xp(X)
        windows = self._windows(X, OH, OW)
        Y = xp.empty_like(windows[0][1])            # in X's memory layout (see channels_last)
        Y[...] = windows[0][1]                      # offset (0, 0)
        n = self.kernel_size[0] * self.kernel_size[1]
        idx = xp.zeros_like(Y, dtype=np.uint8 if n <= 256 else np.int32)
        step = xp.empty_like(idx)
        for a, view in windows[1:]:
            bigger = view > Y                    # strictly: a tie keeps the earlier offset
            xp.maximum(Y, view, out=Y)
            # idx = a where bigger, else idx; as arithmetic (a masked copy is several times
            # slower): idx + bigger·(a − idx), exact in integers even where a − idx wraps
            xp.subtract(idx.dtype.type(a), idx, out=step)
            step *= bigger
            idx += step
        return Y, Record(argmax=idx, shape=X.shape, channels_last=channels_last(X))

    def backward(self, rec, dY):
        xp = get_xp(dY)
        idx = rec.argmax
        if dY.shape != idx.shape:
            raise ValueError(f"dY must have the shape of the layer's output "
                             f"{tuple(idx.shape)}, got {tuple(dY.shape)}")
        dX = zeros_in_layout(xp, rec.shape, dY.dtype, rec.channels_last)
        if rec.channels_last and not channels_last(dY):    # one copy into the layout of idx:
            dY = _copy_like(idx, dY)                       # the four passes below then stream
        OH, OW = idx.shape[-2:]
        disjoint = self._disjoint()
        for a, view in self._windows(dX, OH, OW):
            if disjoint:                         # each input in one window: write, no sum
                xp.multiply(dY, idx == a, out=view)
            else:
                view += dY * (idx == a)
        return dX


class AvgPool2d(_Pool2d):
    """Y[..., y, x] = 1/(kh·kw) · Σ_{i, j} X[..., sh·y + i, sw·x + j]   (torch.nn.AvgPool2d
    without padding; stride = kernel by default).

    Gradient: every input of a window gets an equal share, ∂L/∂X[..., sh·y + i, sw·x + j] +=
    ∂L/∂Y[..., y, x] / (kh·kw), summed over the windows that contain it.
    """

    def forward(self, X, num_steps=None):
        OH, OW = self._out_size(X)
        xp = get_xp(X)
        windows = self._windows(X, OH, OW)
        Y = xp.empty_like(windows[0][1])
        Y[...] = windows[0][1]
        for _, view in windows[1:]:
            Y += view
        Y /= X.dtype.type(len(windows))
        return Y, Record(shape=X.shape, channels_last=channels_last(X))

    def backward(self, rec, dY):
        xp = get_xp(dY)
        dX = zeros_in_layout(xp, rec.shape, dY.dtype, rec.channels_last)
        share = dY / dY.dtype.type(self.kernel_size[0] * self.kernel_size[1])
        for _, view in self._windows(dX, *dY.shape[-2:]):
            view += share
        return dX


class Flatten:
    """(T, B, C, H, W) -> (T, B, C·H·W) in PyTorch's order (c, then h, then w: nn.Flatten on
    each step's (B, C, H, W)); any (T, B, ...) becomes (T, B, N). The gradient is reshaped
    back. A view when the input is contiguous: it costs nothing."""
    state_names = ()

    def __repr__(self):
        return "Flatten()"

    def param_names(self):
        return ()

    def forward(self, X, num_steps=None):
        if X.ndim < 3:
            raise ValueError(f"Flatten needs an input of shape (T, B, ...), got {tuple(X.shape)}")
        return X.reshape(X.shape[0], X.shape[1], -1), Record(shape=X.shape)

    def backward(self, rec, dY):
        return dY.reshape(rec.shape)

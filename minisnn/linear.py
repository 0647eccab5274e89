"""A fully connected layer: the input current I = W·X + b of eq. (1)."""
import math

import numpy as np

from .backend import get_backend
from .narrow import add_dt_x, x_wt
from .record import Record


def check_positive_int(name, n):
    """A layer size: an integer >= 1 (not a bool), or ValueError naming it."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"{name} must be a positive integer, got {n!r}")


def init_weights(shape, dtype, rng):
    """W of `shape` (out, in, ...) and b (out,), uniform in ±1/sqrt(fan_in) with fan_in the
    product of shape[1:] (torch's default for nn.Linear and nn.Conv2d: kaiming_uniform_(a=√5)
    gives that bound, and the bias uses the same), drawn W first from `rng` (a seed or a numpy
    Generator), in `dtype` on the current backend; returns (W, b, dW, db), the gradients zero."""
    dtype = np.dtype(dtype)
    if dtype.kind != "f":
        raise ValueError(f"dtype must be a floating-point type such as 'float32', got {dtype}")
    gen = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    bound = 1 / math.sqrt(math.prod(shape[1:]))
    xp = get_backend()
    W = xp.asarray(gen.uniform(-bound, bound, shape).astype(dtype))
    b = xp.asarray(gen.uniform(-bound, bound, (shape[0],)).astype(dtype))
    return W, b, xp.zeros_like(W), xp.zeros_like(b)


class Linear:
    """I = X·Wᵀ + b, with W (out, in) and b (out,) as in PyTorch.

    Initialised like PyTorch, uniform in ±1/sqrt(in_features), from `rng` (a seed or a
    numpy Generator). W, b and their gradients dW, db are plain arrays a user may read or assign.
    X is (T, B, in), or (1, B, in) for an input that is the same at every step: its current is
    then computed once, not at every step. The products are NumPy's matmul, or for a layer with
    few outputs on the CPU the faster kernels of minisnn.narrow (the same numbers to rounding).
    """
    state_names = ()  # stateless: nothing is carried from one step to the next
    sample_ndim = 1   # one input sample is a vector (in,): Sequential adds a static x's time axis

    def __init__(self, in_features, out_features, dtype="float32", rng=None):
        for name, n in (("in_features", in_features), ("out_features", out_features)):
            check_positive_int(name, n)
        self.W, self.b, self.dW, self.db = init_weights((out_features, in_features), dtype, rng)

    in_features = property(lambda self: self.W.shape[1])
    out_features = property(lambda self: self.W.shape[0])

    def __repr__(self):
        return f"Linear({self.in_features}, {self.out_features}, dtype={self.W.dtype})"

    def param_names(self):
        return ("W", "b")

    def forward(self, X, num_steps=None):
        """I = X·Wᵀ + b for X (T, B, in) or (1, B, in). Returns I (…, out) and the record."""
        if X.ndim < 2 or X.shape[-1] != self.in_features:
            raise ValueError(f"Linear({self.in_features}, {self.out_features}) needs an input of "
                             f"shape (T, B, {self.in_features}), got {tuple(X.shape)}")
        I = x_wt(X.reshape(-1, X.shape[-1]), self.W)   # X·Wᵀ, all steps at once  (T·B, out)
        I += self.b
        return I.reshape(X.shape[:-1] + (self.out_features,)), Record(X=X)

    def backward(self, rec, dI, need_dX=True):
        """∂I/∂W = X (eq. 4), summed over batch and time (eq. 6); returns ∂L/∂X, or None with
        need_dX=False (the network's input needs no gradient: one matmul saved)."""
        X = rec.X
        dI2 = dI.reshape(-1, dI.shape[-1])              # (T·B, out), or (B, out) for static X
        add_dt_x(self.dW, dI2, X.reshape(-1, X.shape[-1]))   # dW += dI2ᵀ·X  (out, in)
        self.db += dI2.sum(axis=0)                      # (out,)
        if not need_dX:
            return None
        return (dI2 @ self.W).reshape(dI.shape[:-1] + (self.in_features,))   # (…, in), one matmul

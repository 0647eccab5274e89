"""The matrix products of a Linear layer, with a faster path for layers with few outputs.

    x_wt(X, W)          X·Wᵀ:  X (R, K), W (N, K)  ->  (R, N)       the forward current
    add_dt_x(G, D, X)   G += Dᵀ·X: D (R, N), X (R, K), G (N, K)     ∂L/∂W, accumulated

Both are NumPy's (or CuPy's) matmul, except on NumPy where the CPU kernels are built
(minisnn.cpu_kernels) and the product is narrow and large, in float32: the seed's output layer,
1000 -> 10 over T·B = 3200 rows, is one. A general BLAS is slow at that shape (on the 2-core
machine of docs/benchmarks.md, OpenBLAS's X·Wᵀ takes 1.0–1.2 ms where reading X takes 0.25 ms);
narrow_kernels.c keeps the N sums in registers instead. The results agree with matmul's to
rounding (float64 ≤ 1e-12 relative, tests/test_narrow.py) and do not depend on the number of
threads. `with minisnn.fused.disabled():` uses matmul everywhere.

The third product, ∂L/∂X = D·W, is left to BLAS: it writes an (R, K) array and already runs at
the speed of that write.
"""
import numpy as np

from . import cpu_kernels, fused
from .backend import get_xp

# Where the kernels run: float32, 2..16 outputs, X at least 6 MB (past the cores' L2 caches;
# below that, and in float64, OpenBLAS is as fast or faster: python benchmarks/narrow_products.py
# prints both, shape by shape). The kernels are built for float64 too, and tested in it.
DTYPES = ("float32",)
MIN_OUTPUTS, MAX_OUTPUTS = 2, cpu_kernels.NARROW_MAX_OUTPUTS
MIN_BYTES = 6 * 2 ** 20


def _kernels(X, W, *others):
    """The narrow kernels for X (R, K) against W (N, K) (or G, its gradient, of the same shape),
    and any other arrays the call takes; or None (then matmul)."""
    arrays = (X, W, *others)
    if not all(isinstance(a, np.ndarray) and a.flags.c_contiguous for a in arrays):
        return None
    if len({a.dtype for a in arrays}) != 1 or X.dtype.name not in DTYPES:
        return None
    if X.nbytes < MIN_BYTES or not MIN_OUTPUTS <= W.shape[0] <= MAX_OUTPUTS:
        return None
    return cpu_kernels.narrow(X.dtype) if fused.enabled() else None


def x_wt(X, W):
    """X·Wᵀ for X (R, K) and W (N, K): a new (R, N) array."""
    kernels = _kernels(X, W)
    if kernels is None:
        return X @ W.T
    out = get_xp(X).empty((X.shape[0], W.shape[0]), dtype=X.dtype)     # NumPy here
    kernels[0](X, W, out)
    return out


def add_dt_x(G, D, X):
    """G += Dᵀ·X for D (R, N), X (R, K), G (N, K), in place (a gradient is accumulated)."""
    kernels = _kernels(X, G, D) if G.flags.writeable else None
    if kernels is None:
        G += D.T @ X
    else:
        kernels[1](G, D, X)

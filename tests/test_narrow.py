"""The narrow products (minisnn/narrow.py, narrow_kernels.c) against NumPy's matmul.

Bounds: float64 relative error ≤ 1e-12 of the largest value (measured ~1e-15), float32 ≤ 1e-5
(measured ~1e-6). Shapes cover the kernels' edges: rows not a multiple of 4 or 8, inputs not a
multiple of the vector width, every number of outputs the kernels take.
"""
import contextlib
import os
import subprocess
import sys

import numpy as np
import pytest

import minisnn as ms
from minisnn import cpu_kernels, fused, narrow

needs_kernels = pytest.mark.skipif(cpu_kernels.narrow("float32") is None,
                                   reason="no C compiler: the narrow kernels are not built")
BOUND = {"float64": 1e-12, "float32": 1e-5}
SHAPES = [(3200, 1000, 10), (513, 256, 2), (1027, 257, 16), (2049, 300, 7), (1031, 1003, 13),
          (515, 779, 3)]


def rel(a, b):
    return float(np.abs(a - b).max() / np.abs(b).max())


def arrays(R, K, N, dtype, seed=0):
    rng = np.random.default_rng(seed)
    return tuple(rng.standard_normal(s).astype(dtype) for s in ((R, K), (N, K), (R, N), (N, K)))


def x_wt(X, W):
    out = np.empty((X.shape[0], W.shape[0]), X.dtype)
    cpu_kernels.narrow(X.dtype)[0](X, W, out)
    return out


@needs_kernels
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("R,K,N", SHAPES)
def test_kernels_equal_matmul(R, K, N, dtype):
    """The kernels themselves, on every edge of their loops (minisnn uses them on fewer
    shapes: narrow.DTYPES, MIN_BYTES)."""
    X, W, D, G = arrays(R, K, N, dtype)
    assert rel(x_wt(X, W), X @ W.T) <= BOUND[dtype]
    want = G + D.T @ X
    cpu_kernels.narrow(dtype)[1](G, D, X)
    assert rel(G, want) <= BOUND[dtype]


@needs_kernels
def test_the_seed_output_layer_runs_the_kernels():
    X, W, D, G = arrays(3200, 1000, 10, "float32")
    assert narrow._kernels(X, W) is not None and narrow._kernels(X, G, D) is not None
    assert rel(narrow.x_wt(X, W), X @ W.T) <= BOUND["float32"]
    want = G + D.T @ X
    narrow.add_dt_x(G, D, X)
    assert rel(G, want) <= BOUND["float32"]


@needs_kernels
def test_add_dt_x_accumulates():
    X, W, D, G = arrays(1024, 512, 10, "float64")
    G *= 100                                          # what is already there must stay
    want = G + D.T @ X
    cpu_kernels.narrow("float64")[1](G, D, X)
    assert rel(G, want) <= 1e-12
    assert rel(G, D.T @ X) > 1                        # an overwrite would fail the line above


@needs_kernels
def test_kernel_arguments_are_checked():
    x_wt, add_dt_x = cpu_kernels.narrow("float32")
    X, W, D, G = arrays(600, 300, 10, "float32")
    out = np.empty((600, 10), np.float32)
    with pytest.raises(ValueError, match="at most 16 outputs"):
        x_wt(X, np.ones((17, 300), np.float32), np.empty((600, 17), np.float32))
    with pytest.raises(ValueError, match="W must be .* shape \\(any, 300\\)"):
        x_wt(X, W[:, :299].copy(), out)
    with pytest.raises(ValueError, match="out must be"):
        x_wt(X, W, out[:599])
    with pytest.raises(ValueError, match="X must be"):
        x_wt(X.astype(np.float64), W, out)
    with pytest.raises(ValueError, match="G must be"):
        add_dt_x(G[:, ::2], D, X)


@needs_kernels
def test_a_wrong_product_fails_the_bound():
    X, W, _, _ = arrays(1024, 512, 10, "float64")
    wrong = x_wt(X[:, :-1].copy(), W[:, :-1].copy())    # one input left out
    assert rel(wrong, X @ W.T) > BOUND["float64"]


@pytest.mark.parametrize("case", ["one output", "17 outputs", "under 6 MB", "float64",
                                  "mixed dtypes", "strided", "disabled"])
def test_matmul_where_the_kernels_do_not_apply(case):
    X, W, _, _ = arrays(2048, 1024, 10, "float32")              # 8 MB: the kernels' size
    changes = {"one output": lambda: (X, W[:1]), "17 outputs": lambda: (X, np.ones((17, 1024),
               np.float32)), "under 6 MB": lambda: (X[:1535], W), "float64":
               lambda: (X.astype(np.float64), W.astype(np.float64)), "mixed dtypes":
               lambda: (X, W.astype(np.float64)), "strided": lambda: (X[:, ::2], W[:, ::2]),
               "disabled": lambda: (X, W)}
    X2, W2 = changes[case]()
    with fused.disabled() if case == "disabled" else contextlib.nullcontext():
        assert narrow._kernels(X2, W2) is None
        assert np.array_equal(narrow.x_wt(X2, W2), X2 @ W2.T)    # matmul itself, bit for bit


@needs_kernels
def test_results_do_not_depend_on_the_number_of_threads():
    code = ("import numpy as np, hashlib; from minisnn import narrow; "
            "rng = np.random.default_rng(1); X = rng.standard_normal((2051, 1003)).astype('f4'); "
            "W = rng.standard_normal((10, 1003)).astype('f4'); "
            "D = rng.standard_normal((2051, 10)).astype('f4'); G = np.zeros((10, 1003), 'f4'); "
            "assert narrow._kernels(X, W) is not None; narrow.add_dt_x(G, D, X); "
            "print(hashlib.sha256(narrow.x_wt(X, W).tobytes() + G.tobytes()).hexdigest())")
    digests = set()
    for threads in ("1", "3"):
        env = dict(os.environ, OMP_NUM_THREADS=threads)
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                             text=True, check=True)
        digests.add(out.stdout.strip())
    assert len(digests) == 1


@needs_kernels
def test_output_layer_gradients_match_matmul_float64(monkeypatch):
    """An output layer 1000 -> 10 over T·B = 1600 rows in a whole float64 network (the kernels
    allowed in float64 for the test): forward, backward and every gradient the same with the
    kernels as with matmul (≤ 1e-12)."""
    rng = np.random.default_rng(0)
    x = rng.random((64, 100))
    y = rng.integers(0, 10, 64)

    def run():
        net = ms.Sequential(ms.Linear(100, 1000, dtype="float64", rng=0), ms.Leaky(0.9),
                            ms.Linear(1000, 10, dtype="float64", rng=1), ms.Leaky(0.9))
        spk, mem = net(x, 25)
        _, d_mem = ms.ce_membrane_loss(mem, y)
        net.backward(d_mem=d_mem)
        return mem, [p.grad.copy() for p in net.parameters()], net
    monkeypatch.setattr(narrow, "DTYPES", ("float32", "float64"))    # the kernels in float64
    mem, grads, net = run()
    assert narrow._kernels(net.record[2].X.reshape(-1, 1000), net[2].W) is not None
    monkeypatch.setattr(narrow, "DTYPES", ())                       # matmul everywhere
    mem_ref, grads_ref, _ = run()
    assert rel(mem, mem_ref) <= 1e-12
    for g, g_ref in zip(grads, grads_ref):
        assert rel(g, g_ref) <= 1e-12

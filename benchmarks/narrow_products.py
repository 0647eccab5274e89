"""The narrow products of minisnn.narrow against NumPy's matmul (its BLAS), shape by shape.

    python benchmarks/narrow_products.py [--dtype float32] [--repeat 200]

For each shape (R rows, K inputs, N outputs): X·Wᵀ and G += Dᵀ·X with the kernels of
narrow_kernels.c and with matmul, the fastest of --repeat calls each (the arrays stay in cache
from one call to the next, as the same sizes do in a training loop), and the ratio. The shapes
are the seed's output layer (3200 × 1000 × 10) and the edges of the region where minisnn uses
the kernels (minisnn.narrow: float32, 2..16 outputs, X of at least 6 MB), on both sides of it.
"""
import argparse
import time

import numpy as np

from minisnn import cpu_kernels, narrow

SHAPES = [(3200, 1000, 10), (256, 1000, 10), (1024, 1000, 10), (1600, 1000, 10),
          (2048, 1000, 10), (3200, 256, 10), (3200, 512, 10), (3200, 1000, 16), (3200, 1000, 12),
          (3200, 1000, 2), (3200, 1000, 1)]


def fastest_ms(f, repeat):
    for _ in range(5):
        f()
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        f()
        best = min(best, time.perf_counter() - t)
    return 1e3 * best


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    ap.add_argument("--repeat", type=int, default=200)
    args = ap.parse_args()
    kernels = cpu_kernels.narrow(args.dtype)
    if kernels is None:
        raise SystemExit(f"no narrow kernels here: {cpu_kernels.status()}")
    x_wt, add_dt_x = kernels
    rng = np.random.default_rng(0)
    print(f"{args.dtype}, fastest of {args.repeat} calls, ms (ratio = matmul ÷ kernel)")
    print(f"{'R':>5} {'K':>5} {'N':>3} {'used':>5} | {'X·Wᵀ kernel':>12} {'matmul':>7} {'ratio':>6}"
          f" | {'G+=Dᵀ·X kernel':>14} {'matmul':>7} {'ratio':>6}")
    for R, K, N in SHAPES:
        X = rng.random((R, K)).astype(args.dtype)
        W, D = rng.random((N, K)).astype(args.dtype), rng.random((R, N)).astype(args.dtype)
        out, G = np.empty((R, N), args.dtype), np.zeros((N, K), args.dtype)
        a = fastest_ms(lambda: x_wt(X, W, out), args.repeat)
        b = fastest_ms(lambda: X @ W.T, args.repeat)
        c = fastest_ms(lambda: add_dt_x(G, D, X), args.repeat)
        d = fastest_ms(lambda: np.add(G, D.T @ X, out=G), args.repeat)
        used = "yes" if narrow._kernels(X, W) is not None else "no"
        print(f"{R:5d} {K:5d} {N:3d} {used:>5} | {a:12.3f} {b:7.3f} {b / a:5.2f}x"
              f" | {c:14.3f} {d:7.3f} {d / c:5.2f}x")


if __name__ == "__main__":
    main()

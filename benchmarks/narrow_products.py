"""The narrow products of minisnn.narrow against NumPy's matmul (its BLAS), shape by shape.

    python benchmarks/narrow_products.py [--dtype float32] [--repeat 200]
    OPENBLAS_THREAD_TIMEOUT=4 python benchmarks/narrow_products.py --seed-iteration

For each shape (R rows, K inputs, N outputs): X·Wᵀ and G += Dᵀ·X with the kernels of
narrow_kernels.c and with matmul, the fastest of --repeat calls each (the arrays stay in cache
from one call to the next, as the same sizes do in a training loop), and the ratio. The shapes
are the seed's output layer (3200 × 1000 × 10) and the edges of the region where minisnn uses
the kernels (minisnn.narrow: float32, 2..16 outputs, X of at least 6 MB), on both sides of it.

--seed-iteration: the whole seed training iteration (784-1000-10, batch 128, 25 steps, Adam)
with the narrow kernels and with matmul everywhere, alternately in one process (12 rounds of
10 iterations each), and the median of each.
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


def seed_iteration(rounds=12, iters=10):
    import minisnn as ms
    from minisnn.malloc import keep_freed_memory
    from minisnn.models import build
    keep_freed_memory()
    rng = np.random.default_rng(0)
    net = build("mlp")                           # the seed network, minisnn's recipe
    opt = ms.Adam(net.parameters(), lr=5e-4)
    x, y = rng.random((128, 784), dtype=np.float32), rng.integers(0, 10, 128)

    def iteration():
        opt.zero_grad()
        _, mem = net(x, 25)
        net.backward(d_mem=ms.ce_membrane_loss(mem, y)[1])
        opt.step()
    times = {"narrow kernels": [], "matmul": []}
    used = narrow.DTYPES
    for _ in range(5):
        iteration()
    try:
        for _ in range(rounds):
            for mode, samples in times.items():
                narrow.DTYPES = used if mode == "narrow kernels" else ()
                iteration()
                for _ in range(iters):
                    t = time.perf_counter()
                    iteration()
                    samples.append(time.perf_counter() - t)
    finally:
        narrow.DTYPES = used
    a, b = (1e3 * float(np.median(v)) for v in times.values())
    print(f"seed iteration, median of {rounds} × {iters}: narrow kernels {a:.2f} ms, matmul "
          f"{b:.2f} ms ({b / a:.2f}×)")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    ap.add_argument("--repeat", type=int, default=200)
    ap.add_argument("--seed-iteration", action="store_true",
                    help="time the whole seed iteration with and without the kernels instead")
    args = ap.parse_args()
    kernels = cpu_kernels.narrow(args.dtype)
    if kernels is None:
        raise SystemExit(f"no narrow kernels here: {cpu_kernels.status()}")
    if args.seed_iteration:
        return seed_iteration()
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

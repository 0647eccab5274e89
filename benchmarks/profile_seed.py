"""Where the seed iteration's time goes, layer by layer, against this machine's floor.

    OPENBLAS_THREAD_TIMEOUT=4 python benchmarks/profile_seed.py    # as the minisnn command runs

The seed network (784-1000-10, batch 128, 25 steps, float32, Adam) in this process, with the
`minisnn` command's allocator and thread settings (set the variable above before NumPy loads,
as `minisnn` does: minisnn/threads.py). Each layer's forward and backward, the loss and the
optimizer are timed by wrapping them (median over 60 iterations after 5, per part), then the
same five matrix products on their own, which is the floor for those parts on this machine with
NumPy's BLAS; then the two that minisnn runs with its narrow kernels (minisnn.narrow), so.
"""
import collections
import inspect
import time

import numpy as np

import minisnn as ms
from minisnn import narrow
from minisnn.malloc import keep_freed_memory

N = 60


def median_ms(samples):
    return 1e3 * float(np.median(samples))


def main():
    keep_freed_memory()
    rng = np.random.default_rng(0)
    net = ms.Sequential(ms.Linear(784, 1000, rng=0), ms.Leaky(0.95),
                        ms.Linear(1000, 10, rng=1), ms.Leaky(0.95))
    opt = ms.Adam(net.parameters(), lr=5e-4)
    x, y = rng.random((128, 784), dtype=np.float32), rng.integers(0, 10, 128)
    parts = collections.defaultdict(list)

    def timed(obj, name, label):
        f = getattr(obj, name)

        def g(*a, **k):
            t = time.perf_counter()
            out = f(*a, **k)
            parts[label].append(time.perf_counter() - t)
            return out
        g.__signature__ = inspect.signature(f)
        setattr(obj, name, g)
    for i, layer in enumerate(net.layers):
        for name in ("forward", "backward"):
            timed(layer, name, f"{i} {type(layer).__name__} {name}")
    timed(opt, "step", "Adam step")
    timed(opt, "zero_grad", "zero_grad")
    loss = ms.ce_membrane_loss
    totals = []
    for i in range(5 + N):
        t = time.perf_counter()
        opt.zero_grad()
        spk, mem = net(x, 25)
        t_loss = time.perf_counter()
        _, d_mem = loss(mem, y)
        parts["loss"].append(time.perf_counter() - t_loss)
        net.backward(d_mem=d_mem)
        opt.step()
        totals.append(time.perf_counter() - t)
        if i == 4:
            totals.clear()
            parts.clear()
    print(f"seed iteration: median {median_ms(totals):.1f} ms (min {1e3 * min(totals):.1f})")
    for label, samples in sorted(parts.items(), key=lambda kv: -np.median(kv[1])):
        print(f"  {label:22s} {median_ms(samples):6.2f} ms")

    S = (rng.random((25 * 128, 1000)) < 0.2).astype(np.float32)
    W1, W2 = net[0].W, net[2].W
    dI1, dI2 = rng.random((128, 1000), dtype=np.float32), rng.random((3200, 10), dtype=np.float32)
    products = {"x·W1ᵀ (forward, once)": lambda: x @ W1.T,
                "S·W2ᵀ (forward)": lambda: S @ W2.T,
                "dI2·W2 (∂L/∂S)": lambda: dI2 @ W2,
                "dI2ᵀ·S (∂L/∂W2)": lambda: dI2.T @ S,
                "dI1ᵀ·x (∂L/∂W1)": lambda: dI1.T @ x}
    floor = 0.0
    print("the five matrix products alone:")
    for label, f in products.items():
        samples = repeat(f)
        floor += median_ms(samples)
        print(f"  {label:22s} {median_ms(samples):6.2f} ms")
    print(f"  together               {floor:6.2f} ms")
    # the two narrow products as minisnn runs them (minisnn.narrow: its kernels where they apply)
    G = np.zeros_like(W2)
    narrow_products = {"S·W2ᵀ, narrow kernel": lambda: narrow.x_wt(S, W2),
                       "dI2ᵀ·S, narrow kernel": lambda: narrow.add_dt_x(G, dI2, S)}
    if narrow._kernels(S, W2) is None:
        print("(no narrow kernels here: minisnn uses NumPy's matmul for every product)")
        return
    for label, f in narrow_products.items():
        print(f"  {label:22s} {median_ms(repeat(f)):6.2f} ms")


def repeat(f):
    for _ in range(5):
        f()
    samples = []
    for _ in range(N):
        t = time.perf_counter()
        f()
        samples.append(time.perf_counter() - t)
    return samples


if __name__ == "__main__":
    main()

# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 06 · One engine, two backends: NumPy and CuPy
#
# Everything so far ran on NumPy, on the CPU. [CuPy](https://cupy.dev) is a GPU array library
# with (almost) the same interface as NumPy: `cupy.zeros`, `cupy.exp`, `a @ b`, `a.sum(axis=0)`.
# minisnn is written so that the *same* engine code runs on either. This tutorial shows
#
# 1. the seam that makes that possible (`minisnn.backend`),
# 2. how to move a network, an optimizer and data to the GPU and back,
# 3. what happens when you ask for CuPy on a machine without it, and
# 4. how to run the benchmarks, `python -m minisnn bench`, and read their table.
#
# It runs everywhere; the GPU parts run only where CuPy and a CUDA GPU are present.

# %%
import inspect
import time

import matplotlib.ticker
import numpy as np

import minisnn as ms
from minisnn import backend, bench
from minisnn.backend import array_module, get_xp, to_numpy, to_xp
from minisnn.bench.frameworks import label
from tutorial_utils import FAST, OUT, plt, savefig

# %% [markdown]
# ## 1. The seam: `xp`
#
# No equation in the engine names NumPy. Each function asks its input which array module it
# lives in, `xp = get_xp(x)`, and then calls `xp.exp`, `xp.zeros_like`, `xp.where`, … So a NumPy
# array in gives NumPy code, a CuPy array in gives CuPy code, and the equation is written once.
# For example, the latency decoder of tutorial 04:

# %%
print(inspect.getsource(ms.decode.first_spike_time))
print(f"get_xp of a NumPy array: {get_xp(np.zeros(3)).__name__}")

# %% [markdown]
# Arrays that the engine *creates* from nothing (weights, optimizer moments) need to know where
# to go. That is the one piece of global state: the default backend, read with
# `ms.get_backend()` and changed with `ms.set_backend("numpy" | "cupy")`. It only affects
# objects built afterwards.
#
# The rule for everything else is: **no silent copies.** Data moves between host and GPU only
# when you say so, with `to_xp(a, xp)` (or `backend.to_numpy(a)` to come back), and mixing
# backends in one call is an error, not a hidden transfer:
#
# ```python
# ms.set_backend("cupy")                 # new parameters go to the GPU from here on
# net = ms.Sequential(...)               # ... so this network lives on the GPU
# net.to("numpy"); net.to("cupy")        # or move an existing network, explicitly
# opt = ms.Adam(net.parameters())        # build the optimizer after moving (or opt.to("cupy"))
# xb = to_xp(x_numpy, cupy)              # move a batch; load_dataset(folder, xp=cupy) moves all
# spk, mem = net(xb, num_steps=25)       # runs on the GPU
# pred = to_numpy(ms.predict_rate(spk))          # bring results back to the host
# ```
#
# `minisnn.train` does all of this for you from one setting, `TrainConfig(backend="cupy")`
# (and the command line from `python -m minisnn train --backend cupy`).

# %% [markdown]
# ## 2. Asking for CuPy
#
# `array_module("cupy")` (which `set_backend` and `net.to` use) imports CuPy only when asked
# and checks that a GPU is usable. Without one you get a single clear error that says what to
# install, not an `ImportError` from deep inside:

# %%
try:
    cupy = array_module("cupy")
    print("cupy available: yes")
    print(f"CuPy {cupy.__version__}, {cupy.cuda.runtime.getDeviceCount()} GPU(s)")
except RuntimeError as e:
    cupy = None
    print("cupy available: no")
    print(f"asking for cupy raised RuntimeError: {e}")

# The same check guards net.to(...) and set_backend(...): nothing is changed when it fails.
net_probe = ms.Sequential(ms.Linear(4, 3), ms.Leaky(beta=0.9))
if cupy is None:
    try:
        net_probe.to("cupy")
    except RuntimeError:
        print(f"net.to('cupy') raised RuntimeError too; the network is still on "
              f"{backend.backend_name(net_probe.xp)}")
print(f"default backend: {ms.get_backend().__name__}")

# %% [markdown]
# ## 3. Same network, both backends
#
# On a GPU machine we build the seed network twice from the same seed (so with the same
# weights), move the second copy to CuPy, and run one forward and backward pass on the same
# batch on both. The gradients must agree
# up to float32 rounding (the GPU adds numbers in a different order). On a CPU-only machine
# only the NumPy half runs.
#
# We also time one training iteration (forward, loss, backward; no optimizer step) for a few
# batch sizes. On a CPU the time grows roughly in proportion to the batch: a couple of cores
# are kept busy by even a small batch, so the time *per image* stays about the same. A GPU has
# so much parallelism that small batches cost about the same as large ones (each of the 25
# steps is a kernel launch whatever the batch); it pulls ahead once there is enough work per
# step. (Timings on a shared machine are noisy: we keep the best of a few runs.)

# %%
rng = np.random.default_rng(0)
x = rng.random((128, 784)).astype("float32")   # stand-in images: timing does not need MNIST
y = rng.integers(0, 10, 128)
num_steps = 25


def seed_net():
    r = np.random.default_rng(0)
    return ms.Sequential(ms.Linear(784, 1000, rng=r), ms.Leaky(beta=0.95),
                         ms.Linear(1000, 10, rng=r), ms.Leaky(beta=0.95))


def iteration(net, xb, yb):
    net.zero_grad()
    spk, mem = net(xb, num_steps)
    loss, d_mem = ms.ce_membrane_loss(mem, yb)
    net.backward(d_mem=d_mem)
    return loss


def grads(net):
    return [to_numpy(p.grad) for p in net.parameters()]


net_np = seed_net()
iteration(net_np, x, y)
if cupy is not None:
    net_cp = seed_net().to("cupy")                 # the same weights (same seed), moved
    iteration(net_cp, to_xp(x, cupy), to_xp(y, cupy))
    err = max(ms.gradcheck.rel_error(a, b) for a, b in zip(grads(net_np), grads(net_cp)))
    print(f"numpy vs cupy gradient max rel error: {err:.1e}")


def time_iteration(net, xb, yb, repeats):
    """Best of `repeats` wall times of one iteration. GPU work is queued asynchronously, so the
    clock may only be read after backend.synchronize (a no-op on NumPy)."""
    xp = get_xp(xb)
    iteration(net, xb, yb)                        # warm-up (GPU: compiles the kernels)
    backend.synchronize(xp)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        iteration(net, xb, yb)
        backend.synchronize(xp)
        best = min(best, time.perf_counter() - t0)
    return best


batch_sizes = [16, 64, 128] if FAST else [16, 32, 64, 128, 256, 512]
repeats = 2 if FAST else 5
x_all = rng.random((max(batch_sizes), 784)).astype("float32")
y_all = rng.integers(0, 10, max(batch_sizes))
timings = {"numpy": [time_iteration(net_np, x_all[:b], y_all[:b], repeats) for b in batch_sizes]}
if cupy is not None:
    xc, yc = to_xp(x_all, cupy), to_xp(y_all, cupy)
    timings["cupy"] = [time_iteration(net_cp, xc[:b], yc[:b], repeats) for b in batch_sizes]
for name, ts in timings.items():
    for b, t in zip(batch_sizes, ts):
        print(f"{name:5s} batch {b:4d}: {1000 * t:8.2f} ms per iteration, "
              f"{1e6 * t / b:8.1f} us per image")

fig, ax = plt.subplots(figsize=(6.5, 3.8))
for name, ts in timings.items():
    ax.plot(batch_sizes, [1000 * t for t in ts], marker="o", label=name)
ax.set(xscale="log", yscale="log", xlabel="batch size", ylabel="ms per iteration (best of runs)",
       title="one training iteration of the seed network (784-1000-10, 25 steps)")
ax.minorticks_off()
ax.set_xticks(batch_sizes, [str(b) for b in batch_sizes])
ax.yaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
ax.grid(True, alpha=0.3)
ax.legend()
fig.tight_layout()
savefig(fig, "06_backend_timing")

# %% [markdown]
# ## 4. The benchmarks: `python -m minisnn bench`
#
# The timing above is a sketch. The benchmark command does it carefully, and beside snnTorch
# when `torch` and `snntorch` are installed (`pip install -e ".[bench]"`):
#
# ```bash
# python -m minisnn bench --quick      # the seed network only, every available backend
# python -m minisnn bench              # + a sweep over batch size, hidden size and time steps
# python -m minisnn bench --train      # + a full training run per framework (epoch time, accuracy)
# python -m minisnn bench --help       # everything else (--backend, --no-peer, --repeats, ...)
# ```
#
# How it measures, in short:
#
# * one **training iteration** of the seed network, split into three phases: *forward* (the
#   network over all steps plus the loss), *backward* (zeroing the gradients and BPTT) and
#   *step* (one Adam update);
# * each number is the **median** over several iterations after a few untimed warm-up ones;
#   on the GPU the phases are timed with CUDA events, because GPU work is asynchronous;
# * every framework and backend runs in a **fresh subprocess** with the same number of BLAS
#   threads, so they cannot slow each other down or share memory; *peak RSS* is that process's
#   peak memory, *start RSS* its memory before the first iteration (the framework imported and
#   the data loaded), *peak GPU MB* the peak of the GPU memory pool.
#
# The table lists one row per framework/backend with those columns, all in milliseconds per
# iteration, then the speed ratios (e.g. `minisnn/numpy is 6.0x as fast as snnTorch/cpu`, or the
# cupy/numpy ratio on a GPU machine). Results also go to `bench.json` (every number) and
# `bench.png` (the sweep, log-log) in `--out`.
#
# Here we run it, through `minisnn.bench.benchmark`: the function the command calls, which
# takes the command's arguments and returns the report it prints (and writes `bench.json` and
# `bench.png` into `--out`). In fast mode: a tiny network and minisnn alone (about a second);
# otherwise the `--quick` benchmark of the seed network.

# %%
bench_out = OUT / "bench"
if FAST:
    bench_args = ["--quick", "--no-peer", "--batch", "32", "--hidden", "100", "--steps", "10",
                  "--repeats", "3", "--warmup", "1", "--no-plot"]
else:
    bench_args = ["--quick", "--repeats", "10"]
print("$ python -m minisnn bench " + " ".join(bench_args + ["--out", str(bench_out)]))
report, _ = bench.benchmark(bench_args + ["--out", str(bench_out)], progress=lambda text: None)
print(bench.format_report(report))
for r in report["runs"]:                       # every number is in the report dict too
    row = r["results"][0]
    print(f"bench {label(r['framework'], r['backend'])} total ms per iteration: "
          f"{row['total_ms']:.2f} (forward {row['forward_ms']:.2f}, "
          f"backward {row['backward_ms']:.2f}, step {row['step_ms']:.2f})")

# %% [markdown]
# ## Summary
#
# * The engine is written once against an array module `xp`; `get_xp` picks NumPy or CuPy
#   from the arrays themselves.
# * `ms.set_backend` decides where new parameters go; `net.to`, `opt.to`, `to_xp` and
#   `to_numpy` move things explicitly; mixing backends is an error, never a silent copy.
# * Asking for CuPy where there is none gives one clear message saying what to install.
# * `python -m minisnn bench` times forward, backward and the optimizer step per backend (and
#   beside snnTorch), each in a fresh process, and writes `bench.json` and `bench.png`.

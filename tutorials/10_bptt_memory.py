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
# # 10 · What backprop through time must remember
#
# Training the seed network for 25 steps is cheap. Ask for 1,000 steps, a window long enough for
# slow signals, and the same code needs gigabytes: every framework's BPTT memory grows with the
# number of time steps $T$. This tutorial measures why, and two remedies:
#
# 1. what the backward pass reads at each step, and how many bytes that is per step;
# 2. spikes stored as bits, `xp.packbits`: exact, and what it does (and does not) save;
# 3. checkpointing the time loop: keep the state every $k$ steps, recompute the rest in the
#    backward pass, `net(x, num_steps, recompute_every=k)`, with the very same gradients;
# 4. what the recomputation costs, and which $k$ to choose for a given $T$.
#
# Memory is counted from the arrays themselves, not from the process: `tracemalloc` sees every
# NumPy allocation, so its peak is the largest amount of array memory alive at one moment.

# %%
import math
import time
import tracemalloc

import numpy as np

import minisnn as ms
from tutorial_utils import FAST, plt, savefig

MB = 2 ** 20
B, N_IN, N_HID, N_OUT = (32 if FAST else 128), 784, 1000, 10
rng = np.random.default_rng(0)
x = rng.random((B, N_IN)).astype("float32")          # a batch of static images
y = rng.integers(0, N_OUT, B)


def seed_net(dtype="float32", seed=0):
    r = np.random.default_rng(seed)
    return ms.Sequential(ms.Linear(N_IN, N_HID, dtype=dtype, rng=r), ms.Leaky(beta=0.95),
                         ms.Linear(N_HID, N_OUT, dtype=dtype, rng=r), ms.Leaky(beta=0.95))


def iteration(net, T, every=None, x=x, y=y):
    """One forward and backward pass (no optimizer step: it does not depend on T)."""
    spk, mem = net(x, T, recompute_every=every)
    loss, d_mem = ms.ce_membrane_loss(mem, y)
    net.backward(d_mem=d_mem)
    return spk, mem


def peak_mb(net, T, every=None):
    """The peak of array memory during one iteration, in MB (tracemalloc)."""
    net.record = None
    tracemalloc.start()
    try:
        iteration(net, T, every)
        return tracemalloc.get_traced_memory()[1] / MB
    finally:
        tracemalloc.stop()
        net.record = None


def record_mb(records):
    """The bytes the forward pass keeps for the backward pass: every array of every layer's
    record, each counted once (a Linear layer's input is the previous neuron's S: one array)."""
    seen = {}
    for rec in records:
        for name in rec.names:
            a = getattr(rec, name)
            seen[id(a)] = a.nbytes
    return sum(seen.values()) / MB

# %% [markdown]
# ## 1. What the backward pass reads
#
# Walk the backward pass of the seed network, $784 \to 1000 \to 10$, at one step $t$:
#
# * the output layer's $\partial\mathcal{L}/\partial U[t]$ needs the surrogate at $U_2[t]$ (eq. 5);
# * $\partial\mathcal{L}/\partial W_2$ adds $\partial\mathcal{L}/\partial I_2[t] \cdot S_1[t]$: the
#   hidden layer's spikes at step $t$ (eq. 6);
# * the hidden layer's $\partial\mathcal{L}/\partial U_1[t]$ needs the surrogate at $U_1[t]$, and
#   $\partial\mathcal{L}/\partial S_1[t] = \partial\mathcal{L}/\partial I_2[t]\, W_2$, one more
#   (B, 1000) array per step while the backward pass runs;
# * $\partial\mathcal{L}/\partial W_1$ needs the input, which is the same image at every step:
#   one array, whatever $T$.
#
# So the forward pass must leave $U_1[t]$ and $S_1[t]$ behind for every step: two (B, 1000)
# float32 arrays, 1 MB per step at batch 128, and the backward pass adds
# $\partial\mathcal{L}/\partial S_1$ of the same size. The output layer's (B, 10) records are a
# hundred times smaller. Measured:

# %%
Ts = (25, 50, 100, 200) if FAST else (25, 100, 250, 500, 1000)
full_record, full_peak = {}, {}
for T in Ts:
    net = seed_net()
    iteration(net, T)
    full_record[T] = record_mb(net.record)
    full_peak[T] = peak_mb(net, T)
    print(f"T = {T:4d}: records kept {full_record[T]:7.1f} MB, peak during the iteration "
          f"{full_peak[T]:7.1f} MB")
per_step = (full_record[Ts[-1]] - full_record[Ts[0]]) / (Ts[-1] - Ts[0])
expected = 2 * B * N_HID * 4 / MB
print(f"full record MB per step: {per_step:.4f}")
print(f"U and S of the hidden layer, MB per step: {expected:.4f}")
print(f"full peak MB per step: {(full_peak[Ts[-1]] - full_peak[Ts[0]]) / (Ts[-1] - Ts[0]):.4f}")

# %% [markdown]
# The records grow by exactly the hidden layer's $U$ and $S$ per step (plus the small output
# layer), and the peak by half as much again: $\partial\mathcal{L}/\partial S_1$ for all steps.
# At $T = 1000$ and batch 128 that is 1.5 GB for a network whose weights take 3 MB.
#
# ## 2. Spikes as bits
#
# A spike is 0 or 1, yet it is stored as a 4-byte float (so that the next layer can multiply it
# by its weights). `np.packbits` stores 8 of them in a byte: 1/32 of the float32 size, and
# `np.unpackbits` gives back exactly the same array.

# %%
net = seed_net()
T = Ts[-1]
iteration(net, T)
S1 = net.record[1].S                                   # (T, B, 1000) float32, 0 or 1
bits = np.packbits(S1.reshape(-1) != 0)
back = np.unpackbits(bits)[:S1.size].reshape(S1.shape).astype(S1.dtype)
print(f"spikes at T = {T}: {S1.nbytes / MB:.1f} MB as float32, {bits.nbytes / MB:.2f} MB as bits")
print(f"packbits round trip mismatches: {int((back != S1).sum())}")
bits_record = {T_: full_record[T_] - (T_ * B * N_HID * 4 - T_ * B * N_HID / 8) / MB for T_ in Ts}
print(f"bit-packed record MB per step: "
      f"{(bits_record[Ts[-1]] - bits_record[Ts[0]]) / (Ts[-1] - Ts[0]):.4f}")

# %% [markdown]
# Exact, and it halves the records, no more: $U_1$ cannot be packed, because the surrogate needs
# its value, and $\partial\mathcal{L}/\partial S_1$ is not binary. (The spikes could even be
# dropped altogether: $S[t] = \Theta(U[t] - \theta)$ can be recomputed from $U$.) Memory still
# grows linearly with $T$; only the slope changes.
#
# ## 3. Checkpointing the time loop
#
# The other remedy trades work for memory. The forward pass of a spiking network is a
# recurrence: the state at step $t$ (for Leaky, $U[t]$ and $S[t]$) is all it needs to go on.
# So cut the window into segments of $k$ steps and keep only the state at the start of each
# segment, a *checkpoint*. The backward pass then takes the segments last to first: it reruns
# the segment's forward from its checkpoint (full records for $k$ steps only), backprops through
# it, and hands what reaches the segment's first state, the *carry*, to the segment before. Each
# step's backward reads exactly what that step's forward computed, so the gradients are those
# of the full pass. What is kept for the whole window:
#
# * one checkpoint per segment: $U$ as float32 and $S$ as bits;
# * the output layer's spikes and membrane at every step (the loss needs them; they are small);
# * the hidden layer's input current, computed once for a static image.
#
# That is `recompute_every=k`:

# %%
every = math.ceil(math.sqrt(T))
net = seed_net()
spk, mem = net(x, T, recompute_every=every)
print(net.record)
try:
    net.record[1].U
except AttributeError as e:
    print(f"net.record[1].U -> AttributeError: {e}")
print(f"checkpoint of the hidden layer before segment 1: {net.record.checkpoints[1][1].nbytes} "
      f"bytes ({B}x{N_HID} floats of U and as many bits of S)")

# %% [markdown]
# The gradients agree with the full pass to rounding: in float64 the only difference is the order
# in which each weight's gradient is summed over the segments. In float32 the forward pass, and
# so every spike, is bit for bit the same.

# %%
small = dict(T=60, every=7)
x64, y64 = rng.random((8, N_IN)), rng.integers(0, N_OUT, 8)
grads = []
for every_ in (None, small["every"]):
    net = seed_net("float64")
    iteration(net, small["T"], every_, x64, y64)
    grads.append({n: p.grad.copy() for n, p in net.named_parameters()})
err = max(ms.gradcheck.rel_error(grads[0][n], grads[1][n]) for n in grads[0])
print(f"checkpointed vs full max rel error (float64): {err:.1e}")
spikes = [seed_net()(x, T, recompute_every=e)[0] for e in (None, every)]
print(f"float32 spike mismatches: {int((spikes[0] != spikes[1]).sum())} of {spikes[0].size}")

# %% [markdown]
# And the memory, against $T$, with $k = \lceil\sqrt{T}\,\rceil$. What stays for the whole
# window is the checkpoints, the outputs and the static input current; the last segment's records
# also wait for the backward pass, which starts with them, and are part of the peak.

# %%
flat_record, flat_peak = {}, {}
for T_ in Ts:
    k = math.ceil(math.sqrt(T_))
    net = seed_net()
    net(x, T_, recompute_every=k)
    kept = net.record.memory()          # bytes by kind; the last segment's records go first
    flat_record[T_] = (kept["checkpoints"] + kept["outputs"] + kept["static"]) / MB
    flat_peak[T_] = peak_mb(net, T_, k)
    print(f"T = {T_:4d}, k = {k:2d}: checkpoints and outputs {flat_record[T_]:5.1f} MB (full "
          f"records {full_record[T_]:6.1f}), peak {flat_peak[T_]:5.1f} MB "
          f"(full {full_peak[T_]:6.1f})")
print(f"checkpointed peak MB per step: "
      f"{(flat_peak[Ts[-1]] - flat_peak[Ts[0]]) / (Ts[-1] - Ts[0]):.4f}")
print(f"peak ratio full / checkpointed at T = {Ts[-1]}: "
      f"{full_peak[Ts[-1]] / flat_peak[Ts[-1]]:.1f}")

fig, ax = plt.subplots(figsize=(6.4, 4))
ax.plot(Ts, [full_record[t] for t in Ts], "o-", label="full records (U, S float32)")
ax.plot(Ts, [bits_record[t] for t in Ts], "s-", label="full records, S as bits")
ax.plot(Ts, [flat_record[t] for t in Ts], "^-", label=r"checkpoints, $k=\lceil\sqrt{T}\rceil$")
ax.plot(Ts, [full_peak[t] for t in Ts], "o:", color="C0", label="peak, full")
ax.plot(Ts, [flat_peak[t] for t in Ts], "^:", color="C2", label="peak, checkpointed")
ax.set(xlabel="time steps T", ylabel="MB", title=f"BPTT memory of the seed network, batch {B}")
ax.legend()
savefig(fig, "10_memory_vs_T")

# %% [markdown]
# ## 4. What the recomputation costs, and which $k$
#
# Every segment but the last (whose records are still there when the backward pass starts) runs
# its forward twice. So the extra work is one forward pass of the recurrent layers, whatever
# $k$; a static image's first Linear layer runs once. How much is that? Time the forward and the
# backward pass of the full path, then the checkpointed iteration:

# %%
def best_times(fns, rounds=3 if FAST else 5):
    """The fastest of `rounds` runs of each function, taken in turns (fairer on a busy machine)."""
    best = [math.inf] * len(fns)
    for _ in range(rounds):
        for i, fn in enumerate(fns):
            t0 = time.perf_counter()
            fn()
            best[i] = min(best[i], time.perf_counter() - t0)
    return best


T = Ts[2]
k = math.ceil(math.sqrt(T))
net = seed_net()
t_fwd, t_all, t_flat = best_times([lambda: net(x, T), lambda: iteration(net, T),
                                   lambda: iteration(net, T, k)])
print(f"T = {T}: forward {1e3 * t_fwd:.0f} ms, forward + backward {1e3 * t_all:.0f} ms, "
      f"checkpointed (k = {k}) {1e3 * t_flat:.0f} ms")
print(f"forward share of the full iteration: {t_fwd / t_all:.2f}")
print(f"recompute time ratio: {t_flat / t_all:.2f}")

# %% [markdown]
# The checkpointed iteration costs at most one more forward pass; on a CPU it often costs less
# than that, or nothing, because its arrays are $k$ steps long instead of $T$ and stay in the
# processor's caches, while the full pass streams gigabytes through memory.
#
# Now the choice of $k$. With $c_s$ the bytes of one checkpoint (the state of every layer) and
# $c_k$ the bytes one step of a recomputed segment needs (its records and gradients),
#
# $$M(k) \approx \frac{T}{k}\,c_s + k\,c_k, \qquad \text{smallest at } k^* = \sqrt{T c_s / c_k},
#   \quad M(k^*) = 2\sqrt{T c_s c_k}.$$
#
# A fixed $k$ keeps the segment's memory fixed and lets the checkpoints grow as $T/k$; $k \propto
# \sqrt{T}$ makes both grow as $\sqrt{T}$. Scan $k$ at one $T$:

# %%
T = Ts[-1]
ks = sorted({1, 2, 4, 8, 16, 32, 64, 128, T} & set(range(1, T + 1)) | {math.ceil(math.sqrt(T))})
scan = {k: peak_mb(seed_net(), T, k) for k in ks}
for k, m in scan.items():
    print(f"k = {k:4d}: peak {m:7.1f} MB")
best = min(scan, key=scan.get)
c_s = (B * N_HID * 4 + B * N_HID / 8) / MB                # U float32 + S as bits
c_k = (scan[ks[-2]] - scan[ks[-3]]) / (ks[-2] - ks[-3])   # MB per step of segment, measured
print(f"best k at T = {T}: {best}")
print(f"sqrt(T c_s / c_k) = {math.sqrt(T * c_s / c_k):.1f}  (c_s = {c_s:.3f} MB, "
      f"c_k = {c_k:.3f} MB per step)")

fig, ax = plt.subplots(figsize=(6.4, 4))
ax.plot(list(scan), list(scan.values()), "o-")
ax.axvline(math.sqrt(T * c_s / c_k), color="gray", ls=":", label=r"$\sqrt{T c_s / c_k}$")
ax.set(xscale="log", xlabel="recompute_every k", ylabel="peak MB",
       title=f"peak memory against k at T = {T}")
ax.legend()
savefig(fig, "10_memory_vs_k")

# %% [markdown]
# Very small $k$ fills memory with checkpoints, very large $k$ with one long segment, and the
# minimum is flat: anything within a factor of two of $\sqrt{T c_s / c_k}$ does about as well.
# For the seed network $c_k$ is about three times $c_s$ ($U_1$, $S_1$ and
# $\partial\mathcal{L}/\partial S_1$ per step against one $U_1$ and a bit per spike), so
# $k \approx \sqrt{T/3}$; $\lceil\sqrt{T}\,\rceil$ is a fine rule of thumb.
#
# To compare with the other frameworks, `python benchmarks/t_sweep.py` times the seed network
# for T = 25 … 2000 with minisnn's full and checkpointed paths beside snnTorch, SpikingJelly and
# Norse, each in its own process, and prints the time and peak memory of each.

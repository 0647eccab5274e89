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
# # 07 · Encoding input as spikes
#
# The seed network of tutorial 05 reads a *static* image: the same pixel intensities drive the
# first layer at every step. A spiking sensor (an event camera, a silicon cochlea) or a
# neuromorphic chip hands over spikes instead, and a network meant for them has to be trained
# on spikes. `minisnn.spikegen` turns numbers into spike trains three ways, with snnTorch's
# definitions:
#
# 1. **rate**: each value is a firing probability at every step,
# 2. **latency**: each value fires once, brighter values earlier,
# 3. **delta**: a signal that changes over time fires where it changes.
#
# We try each on real MNIST digits, with numbers you can check by hand, and then train the
# seed network for one epoch on rate-coded digits and on static digits, from the same initial
# weights, and compare their test accuracy.

# %%
import math
import time

import numpy as np

import minisnn as ms
from minisnn.data import DataError, iterate_batches, load_dataset
from tutorial_utils import FAST, OUT, data_error_message, mnist_source, plt, savefig

try:
    data = load_dataset(mnist_source())       # prints which data it is; floats in [0, 1]
except DataError as e:                        # only where $MINISNN_DATA names unusable data
    raise SystemExit(data_error_message(e))
print(data)
T = 25                                        # the seed network's number of steps
digit, label = data.test_x[:1], int(data.test_y[0])     # (1, 784): one test digit
print(f"test digit 0 is a {label}; {int((digit > 0).sum())} of its 784 pixels are not black")

# %% [markdown]
# ## 1. Rate code
#
# Every value $x$ becomes a probability $p = \mathrm{clip}(g\,x + o,\ 0,\ 1)$ (gain $g$, offset
# $o$; by default $g = 1$, $o = 0$), and at each of the $T$ steps the neuron fires with that
# probability, independently of the other steps:
#
# $$S[t] \sim \mathrm{Bernoulli}(p), \qquad
#   \mathbb{E}\Big[\sum_t S[t]\Big] = T\,p, \qquad
#   \mathrm{Var}\Big[\sum_t S[t]\Big] = T\,p\,(1 - p).$$
#
# So a white pixel fires at every step, a black one never, and a grey one with $x = 0.6$
# fires $15$ times in $25$ steps *on average*. `ms.spikegen.rate(x, T, rng=...)` returns
# a (T, *x.shape) array of 0s and 1s in x's dtype; `rng` is a seed or a NumPy Generator, so a
# draw can be repeated. Let us check the two formulas on one pixel, drawn 4,000 times, and on
# the whole digit.

# %%
spikes = ms.spikegen.rate(digit, T, rng=0)                  # (T, 1, 784)
counts = spikes[:, 0].sum(axis=0)                           # spikes of each pixel
print(f"rate: spikes of the digit in {T} steps: {int(counts.sum())}; "
      f"expected T * sum(x) = {T * float(digit.sum()):.1f}")

x_pix = np.float32(153 / 255)                               # a grey pixel, x = 0.6
draws = ms.spikegen.rate(np.full(4000, x_pix), T, rng=1).sum(axis=0)    # 4000 spike counts
print(f"rate: mean spike count of a pixel with x = {x_pix:.4f}, 4000 draws: {draws.mean():.3f}")
print(f"rate: T * x: {T * x_pix:.3f}")
print(f"rate: variance of the count: {draws.var():.3f} (T x (1 - x) = {T * x_pix * (1 - x_pix):.3f})")
half = ms.spikegen.rate(np.full(4000, x_pix), T, gain=0.5, rng=2).sum(axis=0)
print(f"rate: mean spike count with gain = 0.5: {half.mean():.3f} (T * 0.5 * x = {T * 0.5 * x_pix:.3f})")

# %% [markdown]
# The figure shows the digit, each pixel's spike count divided by $T$ (a noisy copy of the
# digit: that is all a rate code can say in 25 steps), the spike raster of all 784 input
# neurons (`ms.plot.raster`; neuron $28r + c$ is pixel $(r, c)$, so the digit's rows show up as
# bands), and the counts of the first 200 test digits against their pixel values, scattered
# around the line $T x$. An animation of the 25 frames is saved as a GIF by `ms.plot.animate`.

# %%
fig, axes = plt.subplots(1, 4, figsize=(16, 3.8), gridspec_kw={"width_ratios": [1, 1, 2.2, 1.4]})
axes[0].imshow(digit.reshape(28, 28), cmap="gray")
axes[0].set(title=f"the digit ({label})", xticks=[], yticks=[])
axes[1].imshow(counts.reshape(28, 28) / T, cmap="gray", vmin=0, vmax=1)
axes[1].set(title="spike count / T", xticks=[], yticks=[])
ms.plot.raster(spikes[:, 0], ax=axes[2], marker=".", s=3)
axes[2].set_title(f"rate-coded digit: {int(counts.sum())} spikes, 784 neurons, {T} steps")
many = data.test_x[:200]
many_counts = ms.spikegen.rate(many, T, rng=3).sum(axis=0)
axes[3].scatter(many.ravel()[::7], many_counts.ravel()[::7], s=2, alpha=0.2)
axes[3].plot([0, 1], [0, T], color="tab:red", label="$T x$")
axes[3].set(xlabel="pixel value $x$", ylabel=f"spike count in {T} steps",
            title="200 digits, every 7th pixel")
axes[3].legend()
fig.tight_layout()
savefig(fig, "07_rate")

OUT.mkdir(parents=True, exist_ok=True)
fig, ax = plt.subplots(figsize=(3, 3))
ms.plot.animate(spikes[:, 0].reshape(T, 28, 28), OUT / "07_rate.gif", interval=120, ax=ax)
plt.close(fig)
print(f"saved animation: {OUT / '07_rate.gif'}")

# %% [markdown]
# ## 2. Latency code
#
# Here each value fires exactly **once**, and the information is *when*. snnTorch's default is
# the charging time of an RC circuit driven by $x$ up to a threshold $\theta$ (time constant
# $\tau$): the stronger the input, the earlier the spike,
#
# $$t = \tau \ln\frac{x}{x - \theta} \quad (x > \theta), \qquad\qquad
#   t = \tau\,(1 - x) \quad \text{(linear=True)},$$
#
# rounded to the nearest step. Values at or below $\theta$ never charge up; they get the latest
# time the formula allows instead, and fire then (`clip=True` removes those spikes).
# `normalize=True` stretches the times so that the latest one falls on step $T-1$ (for the
# linear code: $\tau = T - 1$).
#
# By hand first, with snnTorch's defaults $\tau = 5$, $\theta = 0.01$, for four values:

# %%
values = np.array([0.02, 0.05, 0.2, 1.0], dtype="float32")
by_hand = [5 * math.log(v / (v - 0.01)) for v in values.tolist()]
engine = ms.spikegen.latency(values, T, tau=5, threshold=0.01).argmax(axis=0)
for v, t in zip(values, by_hand):
    print(f"  x = {v:.2f}: t = 5 ln(x / (x - 0.01)) = {t:.3f} -> step {round(t)}")
print(f"latency (log): steps by hand {[round(t) for t in by_hand]}, engine {engine.tolist()}")

# %% [markdown]
# Already at $x = 0.2$ the spike comes at step 0: with $\theta = 0.01$ the log code puts almost
# every visible pixel into the first step. On a digit that is worse still: a black pixel's
# saturated time is $5 \ln\big((\theta + \epsilon)/\epsilon\big) \approx 58$ steps (minisnn,
# like snnTorch, raises an error for a time past $T - 1$), and `normalize=True` squeezes that to
# step 24, and nearly everything else to step 0. The **linear** code spreads the pixel values over the
# steps. With `linear=True, normalize=True, clip=True` (the settings snnTorch's tutorial ends
# with) a pixel fires at step $\mathrm{round}\big((T-1)(1 - x)\big)$ and black pixels stay
# silent. One pixel of our digit, by hand:

# %%
log_norm = ms.spikegen.latency(digit, T, normalize=True)                     # (T, 1, 784)
lin = ms.spikegen.latency(digit, T, linear=True, normalize=True, clip=True)   # (T, 1, 784)
j = int(np.argmin(np.abs(digit[0] - 0.6)))                # the pixel closest to 0.6
x_j = float(digit[0, j])
t_j = (T - 1) * (1 - x_j)
print(f"latency (linear): pixel ({j // 28}, {j % 28}), x = {x_j:.4f}: "
      f"t = 24 (1 - x) = {t_j:.3f} -> step {round(t_j)}")
print(f"latency (linear): by hand step: {round(t_j)}")
print(f"latency (linear): engine step: {int(lin[:, 0, j].argmax())}")
print(f"latency (linear): spikes per pixel: at most {int(lin.sum(axis=0).max())}; "
      f"{int(lin.sum())} spikes for {int((digit > 0.01).sum())} pixels above threshold")
print(f"latency (log, normalized): {int(log_norm[0].sum())} pixels fire at step 0, "
      f"{int(log_norm[T - 1].sum())} (black, or below the threshold) at step {T - 1}, "
      f"{int(log_norm[1:T - 1].sum())} in between")

# %%
fig, axes = plt.subplots(1, 3, figsize=(15, 3.8), gridspec_kw={"width_ratios": [1, 2.2, 1.4]})
first = np.where(lin[:, 0].sum(axis=0) > 0, lin[:, 0].argmax(axis=0), np.nan)
im = axes[0].imshow(first.reshape(28, 28), cmap="viridis_r")
fig.colorbar(im, ax=axes[0], shrink=0.8, label="spike step")
axes[0].set(title="linear latency: spike step", xticks=[], yticks=[])
ms.plot.raster(lin[:, 0], ax=axes[1], marker=".", s=12)
axes[1].set_title(f"linear latency code: {int(lin.sum())} spikes, one per visible pixel")
steps = np.arange(T)
axes[2].bar(steps - 0.2, log_norm[:, 0].sum(axis=1), width=0.4, label="log, normalize")
axes[2].bar(steps + 0.2, lin[:, 0].sum(axis=1), width=0.4, label="linear, normalize, clip")
axes[2].set(yscale="log", xlabel="time step t", ylabel="pixels firing at t",
            title="when the pixels fire")
axes[2].legend(fontsize=8)
fig.tight_layout()
savefig(fig, "07_latency")

# %% [markdown]
# ## 3. Delta modulation
#
# Rate and latency codes turn a *still* value into spikes. Delta modulation takes a signal that
# already has a time axis and fires where it changes, as an event camera does:
#
# $$\Delta X[t] = X[t] - X[t-1], \qquad S[t] = \begin{cases} 1 & \Delta X[t] \ge \theta \\
#   -1 & \Delta X[t] \le -\theta \ \ (\text{off\_spike=True}) \\ 0 & \text{otherwise,}
#   \end{cases}$$
#
# with $X[-1] = 0$ (so every value $\ge \theta$ fires at $t = 0$), or $X[-1] = X[0]$ with
# `padding=True` (nothing fires at $t = 0$). Our signal: the digit sliding one pixel to the
# right per step, for 8 steps. A still image would fire only once; the moving digit fires on
# its leading edge (on spikes) and its trailing edge (off spikes). We count the spikes of one
# step by hand, straight from the definition.

# %%
img = digit.reshape(28, 28)
frames = np.stack([np.roll(np.pad(img, ((0, 0), (0, 8))), t, axis=1)[:, :28]
                   for t in range(8)])                       # (8, 28, 28): moves right
movie = frames.reshape(8, 1, 784)                            # (T, B, N)
d = ms.spikegen.delta(movie, threshold=0.1, off_spike=True)
d_pad = ms.spikegen.delta(movie, threshold=0.1, padding=True)
change = movie[3] - movie[2]
print(f"delta: step 3 by hand: {int((change >= 0.1).sum())} on, {int((change <= -0.1).sum())} off")
print(f"delta: step 3 engine: {int((d[3] == 1).sum())} on, {int((d[3] == -1).sum())} off")
print(f"delta: step 0 fires {int((d[0] == 1).sum())} pixels (those >= 0.1: "
      f"{int((movie[0] >= 0.1).sum())}); with padding=True: {int(d_pad[0].sum())}")

fig, axes = plt.subplots(1, 4, figsize=(15, 3.6), gridspec_kw={"width_ratios": [1, 1, 1, 2.2]})
for ax, t in zip(axes[:2], (2, 3)):
    ax.imshow(frames[t], cmap="gray")
    ax.set(title=f"frame t = {t}", xticks=[], yticks=[])
axes[2].imshow(d[3, 0].reshape(28, 28), cmap="bwr_r", vmin=-1, vmax=1)
axes[2].set(title="delta spikes at t = 3\n(blue on, red off)", xticks=[], yticks=[])
ms.plot.raster(d[:, 0], ax=axes[3], marker=".", s=6)
axes[3].set_title("delta-coded moving digit")
fig.tight_layout()
savefig(fig, "07_delta")

# %% [markdown]
# ## 4. The seed network on rate-coded digits
#
# Now the seed network of tutorial 05 (784-1000-10, $\beta = 0.95$, atan surrogate, membrane
# cross-entropy, Adam with learning rate $5\cdot10^{-4}$, batches of 128, 25 steps), trained
# for one epoch twice:
#
# * **static**: the pixel values drive the first layer at every step (the input current is
#   computed once);
# * **rate-coded**: each batch is turned into (25, 128, 784) spikes by `ms.spikegen.rate`, a
#   fresh Bernoulli draw for every batch, so the network never sees the same spikes twice.
#
# Both networks start from the same weights (built from the same seed) and see the batches in
# the same order (`iterate_batches` with the same seed), so the encoding is the only difference.
# The loop is the one of tutorial 04, written out.
#
# **How to test them.** A network trained on spikes is tested on spikes: the test digits are
# rate-coded too (one fixed draw), because that is the input it is meant for. We also cross the
# two over, since the expected input current of a rate-coded pixel is $W\,\mathbb{E}[S] = W x$,
# exactly the static current.

# %%
if FAST:   # a quick version: 5 batches of random training images, 1,000 test images
    pick = np.random.default_rng(0).permutation(len(data.train_x))[:640]
    train_x, train_y, test_x, test_y = (data.train_x[pick], data.train_y[pick],
                                        data.test_x[:1000], data.test_y[:1000])
else:
    train_x, train_y, test_x, test_y = data.train_x, data.train_y, data.test_x, data.test_y
print(f"training on {len(train_x)} images for one epoch, testing on {len(test_x)}")


def seed_network():
    rng = np.random.default_rng(0)
    return ms.Sequential(ms.Linear(784, 1000, rng=rng), ms.Leaky(beta=0.95),
                         ms.Linear(1000, 10, rng=rng), ms.Leaky(beta=0.95))


def static(x, rng):
    return x                                   # (B, 784): the same input at every step


def rate_coded(x, rng):
    return ms.spikegen.rate(x, T, rng=rng)     # (T, B, 784): a fresh draw each call


def train_one_epoch(net, encode):
    opt = ms.Adam(net.parameters(), lr=5e-4)
    rng, losses = np.random.default_rng(1), []
    for xb, yb in iterate_batches(train_x, train_y, 128, seed=0, epoch=0):
        opt.zero_grad()
        _, mem = net(encode(xb, rng), T)
        loss, d_mem = ms.ce_membrane_loss(mem, yb)
        net.backward(d_mem=d_mem)
        opt.step()
        losses.append(float(loss))
    return losses


def test_accuracy(net, encode):
    rng, correct = np.random.default_rng(2), 0          # the same test draw for every network
    for xb, yb in iterate_batches(test_x, test_y, 500, shuffle=False, drop_last=False):
        spk, _ = net(encode(xb, rng), T)
        correct += int((ms.predict_rate(spk) == yb).sum())
    return correct / len(test_x)


nets = {"static": seed_network(), "rate-coded": seed_network()}
print(f"same initial weights: max |W1 difference| = "
      f"{float(np.abs(nets['static'][0].W - nets['rate-coded'][0].W).max())}")
losses, seconds = {}, {}
for name, encode in (("static", static), ("rate-coded", rate_coded)):
    t0 = time.perf_counter()
    losses[name] = train_one_epoch(nets[name], encode)
    seconds[name] = time.perf_counter() - t0
    print(f"{name} input: loss {losses[name][0]:.2f} -> {losses[name][-1]:.2f} in "
          f"{len(losses[name])} iterations, {seconds[name]:.1f} s")

# %%
acc = {(n, e): test_accuracy(nets[n], enc) for n in nets
       for e, enc in (("static", static), ("rate-coded", rate_coded))}
print(f"static input: test accuracy: {acc['static', 'static']:.4f}")
print(f"rate-coded input: test accuracy: {acc['rate-coded', 'rate-coded']:.4f}")
print(f"rate-coded minus static: {acc['rate-coded', 'rate-coded'] - acc['static', 'static']:+.4f}")
print(f"static-trained network on rate-coded test digits: {acc['static', 'rate-coded']:.4f}")
print(f"rate-trained network on static test digits: {acc['rate-coded', 'static']:.4f}")

fig, ax = plt.subplots(figsize=(8, 3.6))
for name in nets:
    ax.plot(losses[name], label=f"{name} input: test accuracy {acc[name, name]:.1%}")
ax.axhline(T * np.log(10), color="gray", ls=":", label=r"chance: $25\log 10$")
ax.set(xlabel="iteration", ylabel="training loss (eq. 10)",
       title="the seed network, one epoch, the same initial weights and batches")
ax.legend()
fig.tight_layout()
savefig(fig, "07_rate_vs_static")

# %% [markdown]
# What the numbers say (on the bundled 5,000-image sample, one epoch: about 86% for both; run
# it to see yours):
#
# * After one epoch the two networks are about equally good. Averaged over its 25 steps, a
#   rate-coded pixel delivers the static current; in one short epoch the Bernoulli noise around
#   it costs next to nothing.
# * The crossed-over numbers show the same thing from the other side: each network also works
#   on the other kind of input.
# * The price is compute. A static image's input current is computed once; spikes change at
#   every step, so the first layer's matrix products (forward, and for its weight gradient)
#   are 25 times larger. The rest of an iteration (the neurons' time loops, the backward pass)
#   is the same for both and costs more than that on a CPU, so the rate-coded epoch takes only
#   somewhat longer (the times printed above).
#
# Where spikes pay off is elsewhere: on hardware that only moves spikes around, and with codes
# that use time, like the latency code, whose one spike per pixel (115 for our digit) is far
# sparser than the rate code (1,803).
#
# ## Summary
#
# * `ms.spikegen.rate`: a Bernoulli spike at every step with $p = \mathrm{clip}(g x + o)$; the
#   count is $T p$ on average, with variance $T p (1 - p)$.
# * `ms.spikegen.latency`: one spike per value at $\tau \ln(x/(x-\theta))$ or $\tau(1-x)$;
#   for images, `linear=True, normalize=True, clip=True`.
# * `ms.spikegen.delta`: spikes where a signal changes by at least $\theta$.
# * Trained for one epoch, the seed network does about as well on rate-coded digits as on
#   static ones, at a higher cost per step.
#
# Tutorial 08 turns from the input to the neuron: neurons with more state than one membrane.

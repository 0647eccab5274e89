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
# # 05 · Training the seed network on MNIST
#
# Everything is in place: the LIF neuron (01), surrogate gradients (02), backpropagation through
# time (03), and the membrane cross-entropy with rate decoding (04). Now we train the reference
# tutorial's network on handwritten digits:
#
# 1. build the network and look at one training iteration up close,
# 2. run the training loop with its periodic report,
# 3. plot the loss curves and measure accuracy on the whole test set,
# 4. look inside: spikes and membrane potentials of both layers for one digit.
#
# We use `minisnn.train`, which packages the loop of the previous tutorials; each piece is a
# plain function you can call yourself (`build_net`, `train_step`, `evaluate`, `train`).
#
# **Data.** The tutorial chooses its data as `python -m minisnn train` does
# (`minisnn.data.resolve_data`) and prints which it used: the folder in `$MINISNN_DATA` if that
# is set, else the repository's `data/mnist/` if it holds the four MNIST files, else the MNIST
# sample that ships with minisnn (5,000 real training images, the official 10,000 test images).
# For full MNIST (60,000 training images), run `python -m minisnn download` once: it fills
# `data/mnist/`, which the tutorial then picks up by itself.

# %%
import time
from dataclasses import replace

import numpy as np

import minisnn as ms
from minisnn import train as T
from minisnn.data import DataError, Dataset, iterate_batches, pixels_to_float
from tutorial_utils import FAST, data_error_message, mnist_source, plt, savefig

# %% [markdown]
# ## 1. The seed network
#
# 784 input pixels → 1000 LIF neurons → 10 LIF output neurons, $\beta = 0.95$ in both layers,
# threshold $\theta = 1$, arctangent surrogate, 25 time steps. The image is a *static* input:
# the same pixel intensities drive the first layer at every step, so its current
# $I^{(1)} = W^{(1)} x + b^{(1)}$ is computed once and reused for all 25 steps. Training uses
# Adam with learning rate $5\cdot10^{-4}$ on batches of 128 images.
#
# These settings are the defaults of `TrainConfig`, a frozen dataclass; `replace` changes a copy.
# `load_data` keeps the images as their raw uint8 pixels (a quarter of the memory of float32);
# each batch is scaled to floats in $[0, 1]$ as it is used (`iterate_batches(..., dtype=...)`).

# %%
cfg = T.TrainConfig()
print(cfg)
if FAST:
    cfg = replace(cfg, epochs=1, report_every=10)
else:
    cfg = replace(cfg, epochs=10, report_every=50)

source = mnist_source()                      # prints which data it is
try:
    data = T.load_data(source, cfg)          # (N, 784) uint8 pixels 0..255, labels (N,)
except DataError as e:                       # only where $MINISNN_DATA names unusable data
    raise SystemExit(data_error_message(e))
if FAST:   # evaluate on part of the test set only, to stay fast
    data = Dataset(data.train_x, data.train_y, data.test_x[:2000], data.test_y[:2000],
                   name=data.name)
print(data)

net = T.build_net(cfg)
print(net)

# %% [markdown]
# ## 2. One iteration, up close
#
# One training iteration is: forward 25 steps, the membrane loss of eqs. (8)–(10), BPTT, one
# Adam step. `T.train_step` does exactly that. We take the first shuffled training batch,
# measure its loss and rate-decoded accuracy, take one step, and measure again on the *same*
# batch. (A fresh network starts near $25 \log 10 \approx 58$, as tutorial 04 explained.)

# %%
opt = T.build_optimizer(net, cfg)
x, y = next(iterate_batches(data.train_x, data.train_y, cfg.batch_size, seed=cfg.seed, epoch=0,
                            dtype=cfg.dtype))   # each batch becomes floats in [0, 1]
tx, ty = next(iterate_batches(data.test_x, data.test_y, cfg.batch_size, seed=cfg.seed, epoch=0,
                              dtype=cfg.dtype))

loss_before, spk = T.eval_batch(net, x, y, cfg.steps)
test_loss_before, test_spk = T.eval_batch(net, tx, ty, cfg.steps)
acc_before, test_acc_before = T.batch_accuracy(spk, y), T.batch_accuracy(test_spk, ty)

T.train_step(net, opt, x, y, cfg.steps)

loss_after, spk = T.eval_batch(net, x, y, cfg.steps)
test_loss_after, test_spk = T.eval_batch(net, tx, ty, cfg.steps)
print(f"loss before one iteration: {float(loss_before):.2f}")
print(f"loss after one iteration: {float(loss_after):.2f}")
print(f"training minibatch accuracy: {acc_before:.2%} -> {T.batch_accuracy(spk, y):.2%}")
print(f"test minibatch loss: {float(test_loss_before):.2f} -> {float(test_loss_after):.2f}, "
      f"accuracy {test_acc_before:.2%} -> {T.batch_accuracy(test_spk, ty):.2%}")

# %% [markdown]
# A single Adam step moves every weight by about the learning rate, in the direction that lowers
# this batch's loss; the loss drops and the accuracy climbs well above chance (10%) already.
#
# ## 3. The training loop
#
# `T.train(cfg, data)` builds a fresh network from `cfg.seed` and loops over shuffled batches.
# After every iteration it also computes the loss on one test minibatch (forward only), and
# every `report_every` iterations it prints the reference tutorial's report. Note one detail:
# the *training* minibatch accuracy in the report is measured on the spikes of the forward pass
# that the update was computed from, i.e. just *before* the update; the test minibatch is run
# just after it. At the end it evaluates the whole test set.
#
# The bundled sample has only 5,000 training images, 39 batches; one epoch is over quickly, so
# the full run makes several passes (on full MNIST, one epoch is 468 batches).

# %%
t0 = time.perf_counter()
result = T.train(cfg, data, log=print, progress=False)
print(f"training time: {time.perf_counter() - t0:.1f} s for {result.iterations} iterations")
print(f"test accuracy: {result.test_accuracy:.4f} ({result.correct}/{result.total})")
print(f"final training loss: {result.history.train_loss[-1]:.2f}")

# %% [markdown]
# ## 4. Loss curves

# %%
h = result.history
fig, ax = plt.subplots(figsize=(8, 3.8))
ax.plot(h.iteration, h.train_loss, label="training minibatch")
ax.plot(h.iteration, h.test_loss, label="test minibatch", alpha=0.8)
ax.axhline(cfg.steps * np.log(10), color="gray", ls=":", label=r"chance: $25\log 10$")
ax.set(title=f"membrane cross-entropy (eq. 10) — test accuracy {result.test_accuracy:.1%}",
       xlabel="iteration", ylabel="loss")
ax.legend()
fig.tight_layout()
savefig(fig, "05_loss_curves")

# %% [markdown]
# ## 5. Inside the trained network, for one digit
#
# After a forward pass, `net.record[i]` holds the records of layer `i`: its input `X`, and for a
# `Leaky` layer the membrane `U` and spikes `S`, each of shape (steps, batch, neurons). Layer 1
# is the hidden LIF layer, layer 3 the output layer. We pick a digit that the network gets right
# (the first one among the test digits), run it alone, and look at both layers.

# %%
net = result.net
first = pixels_to_float(data.test_x[:50], cfg.dtype)      # the first test digits, in [0, 1]
pred = ms.predict_rate(net(first, cfg.steps)[0])
k = int(np.argmax(pred == data.test_y[:50]))             # the first one classified correctly
print(f"of the first 50 test digits, {int((pred == data.test_y[:50]).sum())} are classified "
      f"correctly; we look at test digit {k}")
digit, label = first[k:k + 1], int(data.test_y[k])
spk_out, mem_out = net(digit, cfg.steps)
hidden, output = net.record[1], net.record[3]
print(f"hidden layer: U {hidden.U.shape}, S {hidden.S.shape}; output layer: U {output.U.shape}")
counts = spk_out[:, 0, :].sum(axis=0)
print(f"digit label {label}; output spike counts {counts.astype(int).tolist()}; "
      f"rate-decoded prediction {int(ms.predict_rate(spk_out)[0])}")
S_h = hidden.S[:, 0, :]                                  # (T, 1000)
per_neuron = S_h.sum(axis=0)                             # spikes of each hidden neuron
print(f"hidden neurons that fired at least once: {int((per_neuron > 0).sum())} of "
      f"{S_h.shape[1]}; mean hidden firing rate {float(S_h.mean()):.3f} spikes per step")
print(f"hidden neurons by spike count: silent {int((per_neuron == 0).sum())}, "
      f"1-5 spikes {int(((per_neuron >= 1) & (per_neuron <= 5)).sum())}, "
      f"6-{cfg.steps - 1} spikes {int(((per_neuron >= 6) & (per_neuron < cfg.steps)).sum())}, "
      f"at every step {int((per_neuron == cfg.steps).sum())}")

# %%
def spike_raster(ax, S, colors=None):
    t, n = np.nonzero(S)
    ax.scatter(t, n, marker="|", s=90, linewidths=1.2,
               c="black" if colors is None else [colors[i] for i in n])
    ax.set_xlim(-0.5, S.shape[0] - 0.5)


fig, axes = plt.subplots(2, 3, figsize=(14, 7.5), gridspec_kw={"width_ratios": [0.8, 1.2, 1.2]})
axes[0, 0].imshow(np.asarray(digit).reshape(28, 28), cmap="gray_r")
axes[0, 0].set(title=f"input: a test digit, label {label}", xticks=[], yticks=[])

fired = np.flatnonzero(per_neuron > 0)
fired = fired[np.argsort(per_neuron[fired], kind="stable")]   # the neurons that fired, by count
sample = fired[np.linspace(0, len(fired) - 1, min(60, len(fired))).astype(int)]  # 60 of them
axes[0, 1].imshow(S_h[:, sample].T, cmap="Greys", aspect="auto", origin="lower",
                  interpolation="nearest")                # one row per neuron, black = spike
rows = np.arange(0, len(sample), 6)
axes[0, 1].set(title=f"hidden spikes: {len(sample)} of the {len(fired)} neurons that fired\n"
                     f"(sorted by spike count; {S_h.shape[1] - len(fired)} stayed silent)",
               xlabel="time step $t$", ylabel="hidden neuron (index)", yticks=rows,
               yticklabels=[str(n) for n in sample[rows]])
axes[0, 1].tick_params(axis="y", labelsize=7)

busy = np.argsort(S_h.sum(axis=0))[::-1]
show = [busy[0], busy[len(busy) // 20], busy[len(busy) // 8], busy[-1]]  # busy ... silent
for n in show:
    axes[0, 2].plot(hidden.U[:, 0, n], marker=".", label=f"neuron {n}: {int(S_h[:, n].sum())} spikes")
axes[0, 2].axhline(1.0, color="tab:red", ls="--", lw=1)
axes[0, 2].set(title="hidden membrane $U^{(1)}[t]$, four neurons", xlabel="time step $t$",
               ylabel="$U[t]$")
axes[0, 2].legend(fontsize=7)

colors = ["tab:red" if i == label else "tab:gray" for i in range(10)]
axes[1, 0].barh(range(10), counts, color=colors)
axes[1, 0].set(title="output spike counts (rate code)", xlabel="spikes in 25 steps",
               ylabel="class", yticks=range(10))
spike_raster(axes[1, 1], output.S[:, 0, :], colors)
axes[1, 1].set(title="output layer spikes", xlabel="time step $t$", ylabel="output neuron (class)",
               yticks=range(10), ylim=(-0.6, 9.6))
for i in range(10):
    axes[1, 2].plot(output.U[:, 0, i], color=colors[i], lw=2.2 if i == label else 0.8,
                    label=f"class {i} (the label)" if i == label else None)
axes[1, 2].axhline(1.0, color="black", ls="--", lw=1, label=r"threshold $\theta$")
axes[1, 2].set(title="output membrane $U^{(2)}[t]$", xlabel="time step $t$", ylabel="$U[t]$")
axes[1, 2].legend(fontsize=8)
fig.suptitle(f"the trained seed network on one test digit (test accuracy {result.test_accuracy:.1%})")
fig.tight_layout()
savefig(fig, "05_raster_and_membrane")

# %% [markdown]
# What to look for:
#
# * The hidden layer is busy but uneven (the counts printed above): for this digit a little more
#   than half of the 1000 neurons fire at least once, at rates from one spike in 25 steps to
#   nearly one per step, and the rest stay silent (the raster shows a sample of the ones that
#   fired, from the quietest at the bottom to the busiest at the top). Every hidden neuron receives a constant current (static input), so a neuron that
#   fires does so at a steady rhythm, like the step input of tutorial 01.
# * A neuron whose input current is larger than the threshold ($I > \theta$) fires at every
#   step, and one spike per step is the most a neuron can do; its potential keeps climbing
#   towards $(I - \theta)/(1 - \beta)$ instead of resetting below threshold. The rate code
#   saturates there.
# * In the output layer the labelled class's membrane climbs above threshold and fires at
#   (nearly) every step, while the wrong classes are pushed down: exactly what the membrane
#   cross-entropy asks for at every step (tutorial 04). The loss keeps rewarding a higher
#   $U$ even after the neuron fires at every step, which is why that trace keeps rising.
#
# ## Summary
#
# * `T.train_step` is one forward/backward/update; one step already lowers the loss.
# * On the 5,000-image subset the seed network reaches roughly 90% test accuracy in a few
#   hundred iterations on a laptop CPU (the exact number depends on how long you train).
# * `net.record` exposes every layer's spikes and membrane for inspection.
#
# Tutorial 06 shows how the same code runs on a GPU.

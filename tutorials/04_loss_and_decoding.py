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
# # 04 · The loss and reading out a class
#
# A classifier built from spiking neurons ends in a layer of output neurons, one per class.
# Two questions remain before we can train it:
#
# 1. **Decoding:** given the output spikes, which class does the network predict?
# 2. **The loss:** what number do we minimise, and what is its gradient?
#
# The seed network answers (1) with a *rate code* (the class whose neuron spikes most) and (2)
# with a cross-entropy applied to the output *membrane potential* at every step. We compute that
# loss by hand and compare it with the engine, explain why an untrained network starts near 60,
# and compare rate decoding with latency decoding on a small trained network.

# %%
import numpy as np

import minisnn as ms
from minisnn.data import DataError, load_dataset
from tutorial_utils import data_error_message, mnist_source, plt, savefig, synthetic_patterns

# %% [markdown]
# ## 1. Cross-entropy on the membrane, one step at a time
#
# At each step $t$ the output layer's potentials $U_i[t]$ are turned into a probability for
# each of the $C$ classes by a softmax,
#
# $$p_i[t] = \frac{e^{U_i[t]}}{\sum_{j=1}^{C} e^{U_j[t]}}, \tag{8}$$
#
# and compared with the one-hot target $y$ (1 for the right class, 0 elsewhere):
#
# $$\mathcal{L}_{CE}[t] = -\sum_{i=1}^{C} y_i \log p_i[t]. \tag{9}$$
#
# The loss is applied at every step and the steps are added up:
#
# $$\mathcal{L}_{CE} = \sum_t \mathcal{L}_{CE}[t]. \tag{10}$$
#
# Raising the correct class's potential and lowering the others' lowers the loss, at every
# step. So the loss pushes the right neuron above threshold (it fires often) and the wrong ones
# below (they stay quiet): a membrane-level proxy for "the right neuron should fire most".
#
# For a batch, minisnn averages over the examples (as PyTorch's `CrossEntropyLoss` does) and
# sums over time. Its gradient has a famously simple form, $\partial\mathcal{L}/\partial U_i[t] =
# (p_i[t] - y_i)/B$ for a batch of $B$.
#
# Let us check all of this on a record small enough to print: $T = 3$ steps, $B = 2$ examples,
# $C = 3$ classes.

# %%
mem_rec = np.array([[[0.2, 0.5, -0.1], [1.0, 0.0, 0.3]],
                    [[0.4, 1.1, 0.0], [1.5, -0.2, 0.2]],
                    [[0.3, 1.6, 0.1], [0.9, 0.1, 1.2]]])      # (T=3, B=2, C=3)
y = np.array([1, 0])                                          # true classes of the 2 examples
T, B, C = mem_rec.shape

p = np.exp(mem_rec) / np.exp(mem_rec).sum(axis=2, keepdims=True)   # eq. (8)
onehot = np.eye(C)[y]                                               # (B, C)
L_step = -(onehot * np.log(p)).sum(axis=2)                          # eq. (9), (T, B)
L_direct = L_step.mean(axis=1).sum()                                # batch mean, eq. (10)

print(" t | p[t] for example 0 (true class 1) | p[t] for example 1 (true class 0) | L[t] batch mean")
for t in range(T):
    print(f" {t} | {np.array2string(p[t, 0], precision=3):33s} | "
          f"{np.array2string(p[t, 1], precision=3):33s} | {L_step[t].mean():.4f}")

L_engine, d_mem = ms.ce_membrane_loss(mem_rec, y)
print(f"direct formula: {L_direct:.12f}   engine: {float(L_engine):.12f}")
print(f"loss engine vs direct formula abs error: {abs(float(L_engine) - L_direct):.1e}")


# %% [markdown]
# And the gradient: the engine's $(p - y)/B$ against central differences of our direct formula.

# %%
def direct_loss(m):
    q = np.exp(m) / np.exp(m).sum(axis=2, keepdims=True)
    return -(onehot * np.log(q)).sum(axis=2).mean(axis=1).sum()


fd = ms.gradcheck.numerical_gradient(lambda: direct_loss(mem_rec), mem_rec, h=1e-6)
print(f"d_mem vs finite differences max abs error: {np.abs(d_mem - fd).max():.1e}")
print(f"d_mem vs (p - y)/B max abs error: {np.abs(d_mem - (p - onehot) / B).max():.1e}")

# %% [markdown]
# ## 2. Why an untrained network starts near 60
#
# An untrained network has no preference: its output potentials are small and similar, so
# $p_i[t] \approx 1/C$ for every class and $\mathcal{L}_{CE}[t] \approx \log C$. Summed over
# the seed's $T = 25$ steps with $C = 10$ classes, that is $25 \log 10 \approx 57.6$. The
# real number is a little higher because random weights do have (wrong) preferences. We measure
# it on 128 MNIST training images (the data that `python -m minisnn train` would use: the line
# printed below says which).

# %%
num_steps = 25
print(f"25 * log(10) = {num_steps * np.log(10):.2f}")
rng = np.random.default_rng(0)
seed_net = ms.Sequential(ms.Linear(784, 1000, rng=rng), ms.Leaky(beta=0.95),
                         ms.Linear(1000, 10, rng=rng), ms.Leaky(beta=0.95))
try:
    data = load_dataset(mnist_source())
except DataError as e:                       # only where $MINISNN_DATA names unusable data
    raise SystemExit(data_error_message(e))
pick = np.random.default_rng(1).permutation(len(data.train_x))[:128]
xb, yb = data.train_x[pick], data.train_y[pick]
_, mem = seed_net(xb, num_steps)
print(f"untrained seed network loss on 128 MNIST training images: "
      f"{float(ms.ce_membrane_loss(mem, yb)[0]):.2f}")

# %% [markdown]
# ## 3. Rate code and latency code
#
# Once trained, the network has to *say* a class. Two common readings of the output spikes:
#
# * **rate code** (`ms.predict_rate`): the class whose neuron fired most often over the $T$ steps;
# * **latency code** (`ms.predict_latency`): the class whose neuron fired first
#   (`ms.first_spike_time` gives each neuron's first spike step, or $T$ if it never fired).
#
# Both break ties towards the lowest class index, so an output layer that never fires predicts
# class 0. A hand-made record shows that the two can disagree: neuron 0 fires once, early;
# neuron 2 starts late and then fires at every other step.

# %%
spk = np.zeros((10, 1, 3))      # (T=10, B=1, C=3)
spk[1, 0, 0] = 1                # neuron 0: one early spike
spk[4::2, 0, 2] = 1             # neuron 2: late, but often
spk[6, 0, 1] = 1                # neuron 1: one spike in the middle
print("spike counts:", spk.sum(axis=0)[0].astype(int).tolist(),
      "  first spike steps:", ms.first_spike_time(spk)[0].tolist())
print(f"rate code predicts class {int(ms.predict_rate(spk)[0])}, latency code predicts class "
      f"{int(ms.predict_latency(spk)[0])}")

# %% [markdown]
# The seed network is trained with the membrane loss, which rewards the right neuron for being
# high at *every* step, so both codes should usually agree. To compare them on something real
# we train a small network for a few dozen Adam steps on the noisy synthetic task of tutorial 02
# (made harder here with more noise) and decode its test outputs both ways.

# %%
num_inputs, num_hidden, num_outputs = 100, 64, 10
train_x, train_y = synthetic_patterns(1024, num_inputs, num_outputs, noise=0.9, seed=1)
test_x, test_y = synthetic_patterns(1000, num_inputs, num_outputs, noise=0.9, seed=2)
rng = np.random.default_rng(0)
net = ms.Sequential(ms.Linear(num_inputs, num_hidden, rng=rng), ms.Leaky(beta=0.95),
                    ms.Linear(num_hidden, num_outputs, rng=rng), ms.Leaky(beta=0.95))
opt = ms.Adam(net.parameters(), lr=5e-3)

spk_before, mem_before = net(test_x[:1], num_steps)
print(f"before training: test accuracy rate {ms.accuracy(ms.predict_rate(net(test_x, num_steps)[0]), test_y):.3f}")
batch_size = 64
for it in range(40):
    start = (it * batch_size) % len(train_x)
    opt.zero_grad()
    _, mem = net(train_x[start:start + batch_size], num_steps)
    loss, d_mem = ms.ce_membrane_loss(mem, train_y[start:start + batch_size])
    net.backward(d_mem=d_mem)
    opt.step()
print(f"training loss after 40 Adam steps: {float(loss):.2f}")

spk_test, _ = net(test_x, num_steps)
acc_rate = ms.accuracy(ms.predict_rate(spk_test), test_y)
acc_latency = ms.accuracy(ms.predict_latency(spk_test), test_y)
first = ms.first_spike_time(spk_test)
ties = float(((first == first.min(axis=1, keepdims=True)).sum(axis=1) > 1).mean())
silent = float((spk_test.sum(axis=(0, 2)) == 0).mean())
print(f"test accuracy, rate code: {acc_rate:.3f}")
print(f"test accuracy, latency code: {acc_latency:.3f}")
print(f"codes agree on {float((ms.predict_rate(spk_test) == ms.predict_latency(spk_test)).mean()):.3f} of the "
      f"test examples; first spike tied between classes on {ties:.3f}; output silent on {silent:.3f}")

# %% [markdown]
# The rate code uses all $T$ steps of evidence; the latency code only the first spike. With a
# static input every output neuron receives the same current at every step, so first spikes
# bunch up in the first few steps and ties are frequent, and a tie goes to the lowest index.
# The latency code is faster to read out (you can stop at the first output spike), which is its
# appeal on neuromorphic hardware; networks meant for it are usually trained with a loss on
# spike times rather than the membrane loss.
#
# A picture of what the loss did, for one test example: the output membrane traces before and
# after the short training, and the spikes that the two codes read.

# %%
ex = 0
spk_after, mem_after = net(test_x[ex:ex + 1], num_steps)
fig, axes = plt.subplots(1, 3, figsize=(14, 3.8), gridspec_kw={"width_ratios": [1, 1, 1.1]})
for ax, m, title in ((axes[0], mem_before, "before training"), (axes[1], mem_after, "after 40 Adam steps")):
    for i in range(num_outputs):
        right = i == test_y[ex]
        ax.plot(m[:, 0, i], color="tab:red" if right else "tab:gray", lw=2.2 if right else 0.8,
                label=f"class {i} (true)" if right else None)
    ax.axhline(1.0, color="black", ls="--", lw=0.8)
    ax.set(title=f"output membrane, {title}", xlabel="time step $t$", ylabel="$U_i[t]$")
    ax.legend(fontsize=8, loc="lower left")
s_ex = spk_after[:, 0, :]
for i in range(num_outputs):
    ts = np.flatnonzero(s_ex[:, i])
    axes[2].scatter(ts, np.full(len(ts), i), marker="|", s=120,
                    color="tab:red" if i == test_y[ex] else "black")
counts, first_ex = s_ex.sum(axis=0), ms.first_spike_time(spk_after)[0]
axes[2].set(title=f"output spikes after training: rate → {int(ms.predict_rate(spk_after)[0])}, "
                  f"latency → {int(ms.predict_latency(spk_after)[0])}",
            xlabel="time step $t$", ylabel="output neuron (class)", yticks=range(num_outputs),
            xlim=(-0.5, num_steps - 0.5), ylim=(-0.6, num_outputs + 0.4))
for i in range(num_outputs):
    axes[2].text(num_steps + 0.3, i, f"{int(counts[i])}", va="center", fontsize=8)
axes[2].text(num_steps + 0.3, num_outputs - 0.1, "count", fontsize=8)
fig.tight_layout()
savefig(fig, "04_output_membrane_and_spikes")

# %% [markdown]
# ## Summary
#
# * The seed loss is a softmax cross-entropy on the output membrane at every step, summed over
#   time (eqs. 8–10); its gradient is $(p - y)/B$ per step, and both match a direct computation.
# * An untrained 10-class network over 25 steps starts near $25 \log 10 \approx 58$.
# * Rate decoding counts spikes; latency decoding takes the first spike. On a network trained
#   with the membrane loss the rate code is the natural reading.
#
# Tutorial 05 puts everything together and trains the seed network on MNIST.

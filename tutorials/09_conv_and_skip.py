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
# # 09 · Convolutions, pooling and skip connections
#
# The reference tutorial closes by saying that spiking neurons fit other layer types too. This
# tutorial takes the two that matter most for images. A **convolution** is a `Linear` layer
# whose weights are shared across positions; a **skip connection** adds a block's input to its
# output. Neither changes the neuron or the time loop: they only change the current I[t] that
# reaches eq. (1), and the gradient that comes back from it. We
#
# 1. write a convolution's forward and backward by hand on a tiny example and check both against
#    `ms.Conv2d` and against finite differences,
# 2. follow the gradient through max-pooling (where it goes, and what a tie does),
# 3. train snnTorch tutorial 6's convolutional SNN on MNIST,
# 4. measure what a skip connection does to the gradient of a deep spiking stack.

# %%
import numpy as np

import minisnn as ms
from minisnn import gradcheck
from minisnn.data import DataError, iterate_batches, load_dataset
from minisnn.models import as_images
from tutorial_utils import FAST, data_error_message, mnist_source, plt, savefig

# %% [markdown]
# ## 1. A convolution by hand
#
# For every image n (one per step and sample: the layer folds (T, B, C, H, W) into T·B images),
# output channel o and position (y, x):
#
# $$I[n, o, y, x] = b_o + \sum_{c, i, j} W[o, c, i, j]\; X[n, c, y + i, x + j]$$
#
# (stride 1, no padding: PyTorch's cross-correlation). Every weight is used at every position
# and every step, so by eq. (6) its gradient is the sum of all those uses:
#
# $$\frac{\partial L}{\partial W[o, c, i, j]} = \sum_{n}\sum_{y, x}
#   \frac{\partial L}{\partial I[n, o, y, x]}\; X[n, c, y + i, x + j]$$
#
# — the input *correlated* with the gradient of the current, summed over time and batch. And an
# input pixel feeds every output whose window covers it:
#
# $$\frac{\partial L}{\partial X[n, c, h, w]} = \sum_{o, i, j}
#   \frac{\partial L}{\partial I[n, o, h - i, w - j]}\; W[o, c, i, j]$$
#
# — a "full" convolution of the gradient with the kernel (zero where h − i or w − j falls
# outside the output). Below, both with plain loops, on one 5×5 image, two input channels,
# three output channels and a 3×3 kernel.

# %%
rng = np.random.default_rng(0)
conv = ms.Conv2d(2, 3, 3, dtype="float64", rng=0)
X = rng.standard_normal((1, 1, 2, 5, 5))            # (T, B, C, H, W): one step, one sample
I, rec = conv.forward(X, 1)
print("output shape", I.shape)                      # (1, 1, 3, 3, 3)

I_loops = np.zeros((3, 3, 3))
for o in range(3):
    for y in range(3):
        for x in range(3):
            I_loops[o, y, x] = conv.b[o] + (conv.W[o] * X[0, 0, :, y:y + 3, x:x + 3]).sum()
print("conv forward vs loops max abs error:", np.abs(I[0, 0] - I_loops).max())

# %% [markdown]
# A loss to differentiate: L = Σ R·I with a fixed random R, so ∂L/∂I = R.

# %%
R = rng.standard_normal(I.shape)
conv.dW[...] = 0
conv.db[...] = 0
dX = conv.backward(rec, R.copy())

dW_loops = np.zeros_like(conv.W)
for o in range(3):
    for c in range(2):
        for i in range(3):
            for j in range(3):
                dW_loops[o, c, i, j] = (R[0, 0, o] * X[0, 0, c, i:i + 3, j:j + 3]).sum()
dX_loops = np.zeros((2, 5, 5))
for o in range(3):
    for y in range(3):
        for x in range(3):                          # output (y, x) sends R·W to its window
            dX_loops[:, y:y + 3, x:x + 3] += R[0, 0, o, y, x] * conv.W[o]
print("dW vs loops max abs error:", np.abs(conv.dW - dW_loops).max())
print("dX vs loops max abs error:", np.abs(dX[0, 0] - dX_loops).max())

f = lambda: float((conv.forward(X, 1)[0] * R).sum())
print("dW vs finite differences max rel error:",
      gradcheck.rel_error(conv.dW, gradcheck.numerical_gradient(f, conv.W)))
print("dX vs finite differences max rel error:",
      gradcheck.rel_error(dX, gradcheck.numerical_gradient(f, X)))

# %% [markdown]
# The layer does not loop over positions. It copies each window into one row of a "patch
# matrix" (im2col): 3·3·2 = 18 numbers per output position here, and then **one** matrix product
# gives every output channel at every position, I = patches · Wᵀ. Its backward is two more
# products: ∂L/∂W = (∂L/∂I)ᵀ · patches; and ∂L/∂X, where each group of neighbouring output
# columns sends its gradient back through the kernel written as a banded matrix, and the rows
# it reaches are added into the input gradient. In snnTorch's CSNN the second convolution has
# 5·5·12 = 300 numbers per position, 8·8 positions per image and 25·128 = 3,200 images per
# batch: a patch matrix of 245 MB in float32. minisnn never builds it whole: it works through
# the images in chunks of a few MB, and recomputes the patches in the backward pass from the
# input spikes it kept (spikes are needed anyway; the patches are 25 times larger).

# %%
patches = ms.conv.im2col(X[0], conv.kernel_size, conv.stride, conv.padding)
print("patch matrix", patches.shape, "(positions × (i, j, c))")
print("conv as one matrix product vs the layer max abs error:",
      np.abs(patches @ conv._W_rows().T + conv.b - I[0, 0].reshape(3, -1).T).max())

# %% [markdown]
# ## 2. Where max-pooling sends the gradient
#
# Y[y, x] = max of a 2×2 window. The maximum is the only input that moved the output, so the
# whole gradient ∂L/∂Y[y, x] goes back to the position of the maximum and the other three get 0.
# When several inputs tie for the maximum, minisnn (like PyTorch) gives it all to the **first**
# one in row-major order. Ties are not rare in a spiking network: every window of a conv current
# over silent inputs equals the bias at all four positions. An average pool, by contrast, gives
# each input a quarter.

# %%
X4 = np.array([[1., 3., 0., 2.],
               [2., 0., 2., 1.],
               [0., 0., 5., 4.],
               [0., 0., 4., 6.]])[None, None, None]     # (1, 1, 1, 4, 4)
pool = ms.MaxPool2d(2)
Y4, prec = pool.forward(X4, 1)
dY4 = np.array([[[[[10., 20.], [30., 40.]]]]])
dX4 = pool.backward(prec, dY4)
print("max-pooled:\n", Y4[0, 0, 0])
print("argmax offset of each window (0 = top-left, 3 = bottom-right):\n", prec.argmax[0, 0, 0])
print("gradient routed back:\n", dX4[0, 0, 0])
print("bottom-left window (all zeros) sends its gradient to offset:", int(prec.argmax[0, 0, 0, 1, 0]))
avg = ms.AvgPool2d(2)
_, arec = avg.forward(X4, 1)
print("average pool gradient:\n", avg.backward(arec, dY4)[0, 0, 0])

fig, axes = plt.subplots(1, 3, figsize=(10, 3.2))
for ax, a, title in zip(axes, (X4[0, 0, 0], dX4[0, 0, 0], avg.backward(arec, dY4)[0, 0, 0]),
                        ("input (windows 2×2)", "max-pool: ∂L/∂X", "average pool: ∂L/∂X")):
    im = ax.imshow(a, cmap="viridis")
    for (r, c), v in np.ndenumerate(a):
        ax.text(c, r, f"{v:g}", ha="center", va="center", color="w")
    ax.set_title(title)
    ax.set_xticks([]), ax.set_yticks([])
    ax.axhline(1.5, color="w"), ax.axvline(1.5, color="w")
fig.suptitle("∂L/∂Y = [[10, 20], [30, 40]]")
savefig(fig, "09_pool_routing")

# %% [markdown]
# ## 3. snnTorch tutorial 6's convolutional SNN
#
# 12C5-MP2-64C5-MP2-FC10, in snnTorch's order (each max-pool acts on the conv's current, before
# the neuron), β = 0.5, the fast-sigmoid surrogate of slope 25, snnTorch's `ce_rate_loss` (the
# cross-entropy of the spikes at every step, averaged over the steps), Adam with lr 1e-2, batch
# 128, 25 steps. The image is static: the first convolution and pooling run **once**, and the
# first Leaky layer receives the same (1, B, 12, 12, 12) current at every step (snnTorch
# recomputes them at all 25 steps).

# %%
net = ms.models.build("csnn")
print(net)
source = mnist_source()                      # prints which data it is
try:
    data = load_dataset(source, dtype="uint8")  # (N, 784) uint8 pixels, labels (N,)
except DataError as e:                       # only where $MINISNN_DATA names unusable data
    raise SystemExit(data_error_message(e))
print(data)

x0 = as_images(data.train_x[:128].astype("float32") / 255, "csnn")     # (128, 1, 28, 28)
spk, mem = net(x0, 25)
for i, (layer, r) in enumerate(zip(net.layers, net.record)):
    kept = ", ".join(f"{k} {tuple(getattr(r, k).shape)}" for k in r.names
                     if hasattr(getattr(r, k), "shape"))
    print(f"layer {i} {type(layer).__name__:<9} keeps {kept}")
print("first conv computed for time steps:", net.record[0].X.shape[0])

# %% [markdown]
# One training iteration is the seed's, with the spike loss: forward, ∂L/∂S from the loss,
# backward through all nine layers, one Adam step.

# %%
def train_step(net, opt, x, y, num_steps=25):
    opt.zero_grad()
    spk, _ = net(x, num_steps)
    L, d_spk = ms.ce_rate_loss(spk, y)
    net.backward(d_spk=d_spk)
    opt.step()
    return float(L)


def accuracy(net, x, y, num_steps=25):
    correct = 0
    for xb, yb in iterate_batches(x, y, 128, shuffle=False, drop_last=False, dtype="float32"):
        spk, _ = net(as_images(xb, "csnn"), num_steps)
        correct += int((ms.predict_rate(spk) == yb).sum())
    return correct / len(y)


opt = ms.Adam(net.parameters(), lr=1e-2)
max_iters = 15 if FAST else None
test_x, test_y = (data.test_x[:500], data.test_y[:500]) if FAST else (data.test_x, data.test_y)
losses = []
for it, (xb, yb) in enumerate(iterate_batches(data.train_x, data.train_y, 128, seed=0,
                                              dtype="float32")):
    losses.append(train_step(net, opt, as_images(xb, "csnn"), yb))
    if it % 10 == 0:
        print(f"iteration {it}: loss {losses[-1]:.3f}")
    if max_iters and it + 1 >= max_iters:
        break
print("training iterations:", len(losses))
print("csnn test accuracy:", round(accuracy(net, test_x, test_y), 4),
      f"({len(test_y)} test images)")

fig, ax = plt.subplots(figsize=(6, 3.2))
ax.plot(losses)
ax.set_xlabel("iteration")
ax.set_ylabel("ce_rate_loss")
ax.set_title("CSNN training loss")
savefig(fig, "09_csnn_loss")

# %% [markdown]
# ## 4. What a skip connection does to the gradient
#
# Stack many spiking layers and the gradient that reaches the first one is a product of many
# factors, each a surrogate derivative times a weight: it shrinks (or blows up) layer by layer.
# `ms.Residual(*block)` computes out = block(X) + X, so
#
# $$\frac{\partial L}{\partial X} = \frac{\partial L}{\partial \text{out}}
#   \frac{\partial\, \text{block}}{\partial X} + \frac{\partial L}{\partial \text{out}}:$$
#
# the second term passes the gradient through unchanged, whatever the block does. Below: a deep
# stack of Linear(64, 64) → Leaky blocks, plain and with every block wrapped in a Residual, the
# same weights, and the norm of each block's weight gradient. The weights are scaled up (×6)
# so that every layer of the plain stack keeps firing: its gradient does not vanish because the
# spikes die out, but because of the factors themselves.

# %%
def deep_stack(depth, residual, gain=6.0, seed=0):
    rng = np.random.default_rng(seed)

    def block(n_in, n_out):
        linear = ms.Linear(n_in, n_out, dtype="float64", rng=rng)
        linear.W *= gain
        return [linear, ms.Leaky(0.5, surrogate="fast_sigmoid")]
    layers = block(100, 64)
    for _ in range(depth):
        layers += [ms.Residual(*block(64, 64))] if residual else block(64, 64)
    layers += [ms.Linear(64, 10, dtype="float64", rng=rng), ms.Leaky(0.5, surrogate="fast_sigmoid")]
    return ms.Sequential(*layers)


def block_grads_and_rates(net, x, y, num_steps=10):
    """‖∂L/∂W‖ of each hidden block's Linear layer, and the spike rate of its neurons."""
    net.zero_grad()
    spk, _ = net(x, num_steps)
    _, d_spk = ms.ce_rate_loss(spk, y)
    net.backward(d_spk=d_spk)
    layers, records = net.layers[2:-2], net.record[2:-2]
    if isinstance(layers[0], ms.Residual):          # each block: one Residual(Linear, Leaky)
        blocks = [(l.layers[0], r.block[1]) for l, r in zip(layers, records)]
    else:                                           # each block: Linear, then Leaky
        blocks = [(layers[i], records[i + 1]) for i in range(0, len(layers), 2)]
    return ([float(np.linalg.norm(linear.dW)) for linear, _ in blocks],
            [float(rec.S.mean()) for _, rec in blocks])


depth = 10
xs = np.random.default_rng(1).random((64, 100)) * 2
ys = np.random.default_rng(2).integers(0, 10, 64)
plain, plain_rates = block_grads_and_rates(deep_stack(depth, residual=False), xs, ys)
skip, skip_rates = block_grads_and_rates(deep_stack(depth, residual=True), xs, ys)
print("plain ‖∂L/∂W‖ per block:   ", " ".join(f"{g:.1e}" for g in plain))
print("residual ‖∂L/∂W‖ per block:", " ".join(f"{g:.1e}" for g in skip))
print("plain spike rate per block:   ", " ".join(f"{r:.2f}" for r in plain_rates))
print("residual spike rate per block:", " ".join(f"{r:.2f}" for r in skip_rates))
print("plain last/first block gradient ratio:", f"{plain[-1] / plain[0]:.3e}")
print("residual last/first block gradient ratio:", f"{skip[-1] / skip[0]:.3e}")

fig, ax = plt.subplots(figsize=(6, 3.5))
ax.semilogy(range(1, depth + 1), plain, "o-", label="plain stack")
ax.semilogy(range(1, depth + 1), skip, "s-", label="every block in a Residual")
ax.set_xlabel("block (1 = nearest the input)")
ax.set_ylabel("‖∂L/∂W‖")
ax.set_title(f"gradient norms of a {depth}-block spiking stack")
ax.legend()
savefig(fig, "09_skip_gradients")

# %% [markdown]
# Without skips, the gradient reaching the block nearest the input is about a million times
# smaller than at the top, although every layer fires: each block multiplies the gradient by its
# surrogate derivatives (the fast sigmoid of slope 25 is far below 1 a little away from the
# threshold) and its weights. With skips it stays within a small factor across the whole stack:
# every block receives the gradient of the output directly, plus its own correction. That is
# why deep spiking ResNets (SEW-ResNet adds spikes exactly this way) train at all. Note also
# what the addition does to the forward pass: a Residual's output counts the spikes of both
# paths, so it is no longer 0/1 (SEW-ResNet's ADD connection accepts that).

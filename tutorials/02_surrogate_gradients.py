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
# # 02 · Dead neurons and surrogate gradients
#
# Tutorial 01 built the neuron; now we want to train it. Gradient descent needs the derivative
# of the loss with respect to every weight, and on the way from the loss back to a weight the
# chain rule passes through the spike $S = \Theta(U - \theta)$. The derivative of a step
# function is zero everywhere except at the step, where it is infinite. This tutorial
#
# 1. writes down where that derivative appears (eq. 4),
# 2. shows that with the true derivative a hidden layer gets **exactly zero** gradient and
#    never learns, while a surrogate derivative (eq. 5) trains it, and
# 3. checks eq. (5) itself: the formula printed in the reference tutorial has an extra factor
#    $1/\pi$, which we find by differentiating numerically.

# %%
from dataclasses import dataclass

import numpy as np

import minisnn as ms
from minisnn.surrogate import SURROGATES, Surrogate
from tutorial_utils import plt, savefig, synthetic_patterns

# %% [markdown]
# ## 1. Where the spike's derivative gets in the way
#
# For one step, with input current $I = W X$, the chain rule from the loss to the weights reads
#
# $$\frac{\partial \mathcal{L}}{\partial W} =
#   \frac{\partial \mathcal{L}}{\partial S}\;
#   \underbrace{\frac{\partial S}{\partial U}}_{\{0,\ \infty\}}\;
#   \frac{\partial U}{\partial I}\;
#   \frac{\partial I}{\partial W}. \tag{4}$$
#
# From eq. (1), $\partial U/\partial I = 1$ and $\partial I/\partial W = X$, and
# $\partial \mathcal{L}/\partial S$ comes from whatever loss we pick. The trouble is the middle
# factor. Since $S = \Theta(U - \theta)$ (eq. 3), $\partial S/\partial U$ is the Dirac delta:
# $0$ whenever $U \ne \theta$, which is always in practice. Every gradient that has to pass
# through a spike is multiplied by zero. This is the **dead neuron problem**.
#
# The standard remedy keeps the step in the forward pass (neurons still emit 0 or 1) but, in the
# backward pass only, replaces $\partial S/\partial U$ by the derivative of a smooth stand-in
# $\tilde S$. That replacement, $\partial \tilde S/\partial U$, is a **surrogate gradient**. The
# seed network uses the arctangent surrogate (snnTorch's default):
#
# $$\tilde S = \frac{1}{\pi}\arctan\!\Big(\frac{\pi\alpha}{2}\,(U-\theta)\Big) + \frac12,
# \qquad
# \frac{\partial \tilde S}{\partial U} = \frac{\alpha/2}{1 + \big(\frac{\pi\alpha}{2}(U-\theta)\big)^2}
# \tag{5}$$
#
# with $\alpha = 2$, so that the surrogate is exactly 1 at threshold. (Section 4 explains why this
# differs from the eq. (5) printed in the reference tutorial.)
#
# In minisnn a surrogate is a small object with `spike(V)` (always the step, $V = U - \theta$)
# and `grad(V, S)` (the stand-in derivative). These are the ones that ship:

# %%
for name, cls in SURROGATES.items():
    summary = " ".join(cls.__doc__.split()).split(". ")[0]   # the docstring's first sentence
    print(f"{name:17s} {summary}")

# %% [markdown]
# `smooth_sigmoid` is special: its *forward* pass is smooth too, so it is not a spiking neuron
# at all. It exists so that finite differences can check the backward pass (tutorial 03). We
# leave it out of the plot below.

# %%
V = np.linspace(-2, 2, 801)
fig, axes = plt.subplots(2, 4, figsize=(13, 5.5), sharex=True)
axes = axes.ravel()
axes[0].plot(V, Surrogate().spike(V), color="black", lw=2, label=r"$\Theta(V)$ (forward)")
axes[0].plot(V, np.arctan(np.pi * V) / np.pi + 0.5, ls="--", label=r"$\arctan(\pi V)/\pi + 1/2$")
axes[0].set_title("the step and a smooth stand-in", fontsize=10)
axes[0].legend(fontsize=7, loc="upper left")
axes[1].axhline(0, color="tab:red")
axes[1].annotate("", xy=(0, 1.0), xytext=(0, 0), arrowprops=dict(arrowstyle="->", color="tab:red", lw=2))
axes[1].set_ylim(-0.05, 1.1)
axes[1].set_title("true derivative: 0, and ∞ at 0", fontsize=10)
panels = [(name, cls) for name, cls in SURROGATES.items() if not cls.smooth]
with np.errstate(over="ignore"):  # sigmoid's exp(-slope·V) overflows to inf far below threshold
    for ax, (name, cls) in zip(axes[2:], panels):
        s = cls()
        g = s.grad(V, s.spike(V))
        ax.plot(V, g, color="tab:blue")
        ax.set_ylim(-0.05 * g.max(), 1.08 * g.max())
        ax.set_title(f"{name}", fontsize=10)
for ax in axes:
    ax.axvline(0, color="gray", lw=0.5)
for ax in axes[4:]:
    ax.set_xlabel(r"$V = U - \theta$")
axes[0].set_ylabel("$S$")
axes[4].set_ylabel(r"$\partial\tilde S/\partial U$")
fig.suptitle(r"the spike's true derivative and the surrogates $\partial\tilde S/\partial U$ "
             "(default parameters)")
fig.tight_layout()
savefig(fig, "02_surrogates")

# %% [markdown]
# They share one idea: a bump of gradient near threshold that lets a neuron "feel" how close it
# was to spiking (or to not spiking). `spike_operator` is the reference tutorial's simplest
# choice, $\partial\tilde S/\partial U = S$: gradient 1 where the neuron fired and 0 where it
# did not. `straight_through` ignores the step altogether and passes the gradient unchanged.

# %% [markdown]
# ## 2. A network with the *true* derivative
#
# To see the dead neuron problem rather than just read about it, we write the true derivative
# as a surrogate: a `Surrogate` subclass whose `grad` is zero everywhere (which is what the Dirac
# delta is, at every $U$ we will ever meet).

# %%
@dataclass(frozen=True)
class TrueDerivative(Surrogate):
    """The honest derivative of the step: 0 wherever U != threshold, i.e. always in practice."""
    name = "true_derivative"

    def grad(self, V, S):
        return np.zeros_like(V)


# %% [markdown]
# The task is a small stand-in for MNIST that needs no download: 10 classes, each a fixed
# random pattern over 100 "pixels", with noise added to every example. The network has the seed
# network's shape, scaled down: 100 inputs → 16 LIF neurons → 10 LIF outputs, $\beta = 0.95$,
# 25 steps, trained with the seed's loss (cross-entropy on the output membrane, tutorial 04) and
# Adam. We build it twice from the same random seed, once with each surrogate, and compare.

# %%
num_inputs, num_hidden, num_outputs, num_steps = 100, 16, 10, 25
train_x, train_y = synthetic_patterns(512, num_inputs, num_outputs, noise=0.3, seed=1)
test_x, test_y = synthetic_patterns(512, num_inputs, num_outputs, noise=0.3, seed=2)
num_iters, batch_size = 40, 64


def build(surrogate):
    rng = np.random.default_rng(0)            # the same initial weights for every surrogate
    return ms.Sequential(ms.Linear(num_inputs, num_hidden, rng=rng), ms.Leaky(0.95, surrogate=surrogate),
                         ms.Linear(num_hidden, num_outputs, rng=rng), ms.Leaky(0.95, surrogate=surrogate))


def train(surrogate):
    net = build(surrogate)
    opt = ms.Adam(net.parameters(), lr=5e-3)
    W_hidden_before = net[0].W.copy()
    losses, first_grad_norm = [], None
    for it in range(num_iters):
        start = (it * batch_size) % len(train_x)
        xb, yb = train_x[start:start + batch_size], train_y[start:start + batch_size]
        opt.zero_grad()
        spk, mem = net(xb, num_steps)
        loss, d_mem = ms.ce_membrane_loss(mem, yb)
        net.backward(d_mem=d_mem)
        if first_grad_norm is None:
            first_grad_norm = (float(np.linalg.norm(net[0].dW)), float(np.linalg.norm(net[2].dW)))
        opt.step()
        losses.append(float(loss))
    spk, mem = net(test_x, num_steps)
    test_loss = float(ms.ce_membrane_loss(mem, test_y)[0])
    return dict(losses=losses, grad_norms=first_grad_norm, test_loss=test_loss,
                test_acc=ms.accuracy(ms.predict_rate(spk), test_y),
                hidden_change=float(np.abs(net[0].W - W_hidden_before).max()))


results = {"true derivative": train(TrueDerivative()), "atan": train("atan")}
for label, r in results.items():
    print(f"[{label}] hidden-layer gradient norm: {r['grad_norms'][0]:.4g}   "
          f"output-layer gradient norm: {r['grad_norms'][1]:.4g}")
    print(f"[{label}] loss before: {r['losses'][0]:.2f}  after {num_iters} steps: {r['losses'][-1]:.2f}")
    print(f"[{label}] largest change of a hidden weight: {r['hidden_change']:.3g}   "
          f"test loss: {r['test_loss']:.2f}  test accuracy: {r['test_acc']:.3f}")

# %%
fig, ax = plt.subplots(figsize=(6, 3.6))
for label, r in results.items():
    ax.plot(r["losses"], label=label)
ax.set(title="training loss, same network and data", xlabel="Adam step",
       ylabel=r"loss $\mathcal{L}_{CE}$ (eq. 10)")
ax.legend()
fig.tight_layout()
savefig(fig, "02_dead_neurons")

# %% [markdown]
# With the true derivative the hidden layer's gradient is exactly zero, so its weights never
# move: whatever random features it computed at initialisation, it computes forever. The loss
# still goes down. That is not a contradiction: the loss reads the output layer's
# *membrane* (tutorial 04), and the path from the loss to the output weights,
# $\mathcal{L} \to U^{(2)} \to I^{(2)} \to W^{(2)}$, never crosses a spike. Only the output
# layer learns, on top of frozen random hidden spikes. With the arctangent surrogate both layers
# learn and the network fits the task far better.
#
# Every surrogate in the table gives the hidden layer a gradient; they differ in how far from
# threshold a neuron still receives one:

# %%
for name, cls in panels:
    with np.errstate(over="ignore"):
        r = train(name)
    print(f"{name:17s} hidden grad norm {r['grad_norms'][0]:9.4g}   final train loss "
          f"{r['losses'][-1]:6.2f}   test accuracy {r['test_acc']:.3f}")

# %% [markdown]
# `spike_operator` lags behind: its gradient is $S$ itself, so a hidden neuron that did not
# spike gets no gradient at all, and a neuron that is silent at the start can never be switched
# on. Surrogates with a bump on *both* sides of the threshold avoid that.

# %% [markdown]
# ## 3. Checking eq. (5): the extra $1/\pi$
#
# The reference tutorial prints the arctangent surrogate as
#
# $$\frac{\partial \tilde{S}}{\partial U} \leftarrow \frac{1}{\pi}\,\frac{1}{1+(\pi U)^2}
# \qquad \text{(as printed)}$$
#
# Let us differentiate the smoothed step ourselves. With $\alpha = 2$ the stand-in is
# $\tilde S(V) = \frac{1}{\pi}\arctan(\pi V) + \frac12$. The chain rule gives
#
# $$\frac{d\tilde S}{dV} = \frac{1}{\pi}\cdot\frac{\pi}{1 + (\pi V)^2} = \frac{1}{1 + (\pi V)^2},$$
#
# because the inner derivative $\pi$ cancels the outer $1/\pi$. The printed formula forgot the
# inner derivative, so it is smaller by a factor $\pi$ everywhere: at threshold it is
# $1/\pi \approx 0.318$ instead of $1$. The same slip appears in snnTorch's docstring, while
# snnTorch's code (and minisnn's `ATan.grad`) compute the correct $\frac{\alpha/2}{1 + (\pi\alpha V/2)^2}$.
#
# A second way to see it: $\tilde S$ climbs from 0 to 1, so the area under its derivative must
# be 1. The area under the printed formula is only $1/\pi$.
#
# Now numerically, with central differences $\big(\tilde S(V+h) - \tilde S(V-h)\big)/2h$:

# %%
def smoothed_step(V, alpha=2.0):
    return np.arctan(np.pi * alpha / 2 * V) / np.pi + 0.5


V = np.linspace(-3, 3, 1201)
h = 1e-5
numerical = (smoothed_step(V + h) - smoothed_step(V - h)) / (2 * h)
engine = ms.surrogate.ATan(alpha=2.0).grad(V, None)
printed = (1 / np.pi) / (1 + (np.pi * V) ** 2)

print(f"ATan.grad vs numerical derivative max abs error: {np.abs(engine - numerical).max():.2e}")
print(f"printed eq. (5) vs numerical derivative max abs error: {np.abs(printed - numerical).max():.4f}")
at0 = np.argmin(np.abs(V))
print(f"at threshold: numerical {numerical[at0]:.6f}, ATan.grad {engine[at0]:.6f}, "
      f"printed eq. (5) {printed[at0]:.6f}")
print(f"numerical / printed ratio: min {np.min(numerical / printed):.6f} max "
      f"{np.max(numerical / printed):.6f} (pi = {np.pi:.6f})")

# The same check for other values of alpha: ATan.grad must match d/dV of the alpha-smoothed step.
for alpha in (0.5, 1.0, 4.0):
    num_a = (smoothed_step(V + h, alpha) - smoothed_step(V - h, alpha)) / (2 * h)
    err = np.abs(ms.surrogate.ATan(alpha=alpha).grad(V, None) - num_a).max()
    print(f"alpha={alpha}: ATan.grad vs numerical derivative max abs error: {err:.2e}")

# Areas: the exact jump of the smoothed step over [-L, L] against the area under each formula.
L = 200.0
Vw = np.linspace(-L, L, 400001)
print(f"area on [-{L:g}, {L:g}]: smoothed-step jump {smoothed_step(L) - smoothed_step(-L):.4f}, "
      f"ATan.grad {np.trapezoid(ms.surrogate.ATan().grad(Vw, None), Vw):.4f}, "
      f"printed eq. (5) {np.trapezoid((1 / np.pi) / (1 + (np.pi * Vw) ** 2), Vw):.4f}")

# %%
fig, ax = plt.subplots(figsize=(6.5, 3.8))
ax.plot(V, numerical, color="black", lw=3, alpha=0.35, label="central differences of $\\tilde S$")
ax.plot(V, engine, "--", label="minisnn ATan.grad (α = 2)")
ax.plot(V, printed, ":", lw=2, label="eq. (5) as printed")
ax.set(title=r"the derivative of $\tilde S = \arctan(\pi V)/\pi + 1/2$",
       xlabel=r"$V = U - \theta$", ylabel=r"$d\tilde S/dV$")
ax.legend(fontsize=8)
fig.tight_layout()
savefig(fig, "02_atan_misprint")

# %% [markdown]
# Does the factor matter for training? It scales every gradient that passes through a spike by
# $1/\pi$ per layer crossed. With plain SGD that is like a smaller learning rate for the deeper
# layers; Adam largely normalises a constant scale away. Either way, minisnn follows the
# derivative of the function it claims to smooth (and what snnTorch actually computes).
#
# ## Summary
#
# * The true derivative of a spike is zero almost everywhere: hidden layers behind a spike get
#   exactly zero gradient (the dead neuron problem).
# * A surrogate keeps the step in the forward pass and swaps in a smooth derivative backward;
#   with it, hidden layers learn.
# * The arctangent surrogate at $\alpha=2$ is $1/(1+(\pi V)^2)$, equal to 1 at threshold; the
#   printed eq. (5) is this divided by $\pi$.
#
# Tutorial 03 follows the gradient through time, step by step.

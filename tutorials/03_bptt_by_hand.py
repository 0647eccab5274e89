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
# # 03 · Backpropagation through time, by hand
#
# Tutorial 02 fixed the gradient of a single spike. A spiking neuron, though, is a recurrence:
# the weight $W$ is used at every step, and $U[t]$ depends on every earlier input through the
# decay $\beta$. This tutorial follows the gradient of one neuron through eight time steps,
# writes every factor down, and checks the engine's fast backward pass three ways:
#
# 1. against our own hand-multiplied eq. (7),
# 2. against `minisnn.gradcheck.check_literal`, which evaluates the double sum literally,
# 3. against finite differences on a smooth stand-in network.
#
# At the end we look at what changes when the reset is *not* detached from the graph.

# %%
import numpy as np

import minisnn as ms
from minisnn import gradcheck
from minisnn.bptt import backward_through_time
from minisnn.neuron import leaky_local_grads
from tutorial_utils import plt, savefig

# %% [markdown]
# ## 1. From one step to all steps
#
# Because the same $W$ is used at every step, think of it as a separate copy $W[s]$ at each step
# $s$, all equal to $W$. The loss is summed over steps, and a copy used at step $s$ can only
# affect the loss at the same or later steps $t \ge s$ (causality). So
#
# $$\frac{\partial \mathcal{L}}{\partial W} = \sum_t \frac{\partial \mathcal{L}[t]}{\partial W}
#   = \sum_t \sum_{s \le t} \frac{\partial \mathcal{L}[t]}{\partial W[s]}\,
#     \frac{\partial W[s]}{\partial W}, \tag{5b}$$
#
# (the reference tutorial numbers this sum (5) as well; we call it (5b) to keep it apart from
# the surrogate). Every copy is the same $W$, so $\partial W[s]/\partial W = 1$:
#
# $$\frac{\partial \mathcal{L}}{\partial W} = \sum_t \sum_{s \le t}
#   \frac{\partial \mathcal{L}[t]}{\partial W[s]}. \tag{6}$$
#
# One term, for the copy used one step earlier, $s = t-1$:
#
# $$\frac{\partial \mathcal{L}[t]}{\partial W[t-1]} =
#   \frac{\partial \mathcal{L}[t]}{\partial S[t]}\,
#   \underbrace{\frac{\partial \tilde{S}[t]}{\partial U[t]}}_{\text{eq. (5)}}\,
#   \underbrace{\frac{\partial U[t]}{\partial U[t-1]}}_{\beta}\,
#   \underbrace{\frac{\partial U[t-1]}{\partial I[t-1]}}_{1}\,
#   \underbrace{\frac{\partial I[t-1]}{\partial W[t-1]}}_{X[t-1]}. \tag{7}$$
#
# Going further back just adds one more factor $\partial U[k]/\partial U[k-1] = \beta$ per step:
# $\partial \mathcal{L}[t]/\partial W[s] = \frac{\partial \mathcal{L}[t]}{\partial S[t]}\,
# \frac{\partial \tilde S[t]}{\partial U[t]}\,\beta^{\,t-s}\,X[s]$.
#
# Why is the temporal factor just $\beta$? From eq. (1), $U[t] = \beta U[t-1] + I[t] - \theta S[t-1]$.
# The reset term also depends on $U[t-1]$, through $S[t-1]$, but the seed network **detaches**
# it: the backward pass treats $S[t-1]$ inside the reset as a constant. Section 5 undoes that.

# %% [markdown]
# ## 2. One neuron, eight steps
#
# One input, one neuron: $I[t] = w\,x[t] + b$ with $w = 0.7$, $b = 0$, $\beta = 0.8$,
# $\theta = 1$, and an input that changes over time. As a loss we ask for a target spike train
# and penalise every step where the neuron gets it wrong:
#
# $$\mathcal{L}[t] = \tfrac12\big(S[t] - S^*[t]\big)^2, \qquad
#   \frac{\partial \mathcal{L}[t]}{\partial S[t]} = S[t] - S^*[t].$$
#
# (A loss on the spikes makes $\partial\mathcal{L}/\partial S$ of eq. (7) visible. The seed
# network's loss reads the membrane instead; tutorial 04.) We work in float64 so that
# agreements down to rounding error are visible.

# %%
T = 8
x = np.array([1.0, 0.8, 1.2, 0.5, 1.5, 0.9, 0.3, 1.1]).reshape(T, 1, 1)   # (T, batch, inputs)
target = np.array([0, 0, 1, 0, 0, 1, 0, 1], dtype="float64").reshape(T, 1, 1)
beta, thr = 0.8, 1.0


def one_neuron(detach_reset=True):
    net = ms.Sequential(ms.Linear(1, 1, dtype="float64"),
                        ms.Leaky(beta=beta, threshold=thr, detach_reset=detach_reset))
    net[0].W[...] = 0.7
    net[0].b[...] = 0.0
    return net


def spike_loss(spk, mem):
    """Σ_t ½ (S[t] − S*[t])², as (loss, ∂L/∂U, ∂L/∂S): the form minisnn.gradcheck expects."""
    err = spk - target
    return 0.5 * float((err ** 2).sum()), None, err


net = one_neuron()
net.zero_grad()
spk, mem = net(x)
loss, _, dL_dS = spike_loss(spk, mem)
net.backward(d_spk=dL_dS)
print(f"loss: {loss}   engine dW: {net[0].dW[0, 0]:.6f}   engine db: {net[0].db[0]:.6f}")

# %% [markdown]
# Every factor of eq. (7), step by step. The surrogate is the arctangent of tutorial 02,
# $\partial\tilde S/\partial U = 1/(1 + (\pi(U - \theta))^2)$. The last column is the
# "immediate" term $s = t$ of eq. (6), the product of all the others.

# %%
g = net[1].surrogate.grad(mem - thr, spk)                     # ∂S̃/∂U at every step, eq. (5)
X = x[:, 0, 0]
print("  t |  X[t] |   U[t] | S[t] | S*[t] | dL/dS |  dS~/dU | beta | dU/dI | dL[t]/dW[t]")
for t in range(T):
    immediate = dL_dS[t, 0, 0] * g[t, 0, 0] * 1.0 * X[t]
    print(f"  {t} | {X[t]:5.2f} | {mem[t, 0, 0]:6.3f} | {int(spk[t, 0, 0]):4d} | "
          f"{int(target[t, 0, 0]):5d} | {dL_dS[t, 0, 0]:+5.0f} | {g[t, 0, 0]:7.4f} | "
          f"{beta:4} |     1 | {immediate:+.4f}")

# %% [markdown]
# ## 3. The double sum, multiplied out
#
# Now all terms of eq. (6): a $T \times T$ table with one entry per (loss step $t$, weight-use
# step $s$), zero above the diagonal because a weight used at step $s$ cannot change the loss
# at an earlier step. We multiply it out ourselves, then ask `gradcheck.literal_gradient`,
# which does the same with the engine's records and returns the magnitude of each entry as
# `contrib[t, s]`.

# %%
terms = np.zeros((T, T))
for t in range(T):
    for s in range(t + 1):
        terms[t, s] = dL_dS[t, 0, 0] * g[t, 0, 0] * beta ** (t - s) * 1.0 * X[s]   # eq. (7)

rec = net.record[1]
dW_lit, db_lit, contrib = gradcheck.literal_gradient(net[0], net[1], x, rec.U, rec.S,
                                                     dS_direct=dL_dS)
print(f"hand eq. (7) vs literal_gradient contrib max abs error: "
      f"{np.abs(np.abs(terms) - contrib).max():.1e}")
print(f"hand double sum: {terms.sum():.12f}   literal_gradient dW: {dW_lit[0, 0]:.12f}   "
      f"engine dW: {net[0].dW[0, 0]:.12f}")
print(f"hand double sum vs engine abs error: {abs(terms.sum() - net[0].dW[0, 0]):.1e}")

# %%
CONTRIBUTION = r"$\partial \mathcal{L}[t]/\partial W[s]$ (red: raises $\mathcal{L}$ as $W$ grows)"


def heat_map(ax, m, title, vmax=None):
    """The signed (t, s) terms, on a colour scale centred at 0: red > 0, blue < 0, white = 0."""
    vmax = np.abs(m).max() if vmax is None else vmax
    shown = np.ma.masked_where(np.triu(np.ones_like(m, dtype=bool), k=1), m)   # hide s > t
    im = ax.imshow(shown, cmap="RdBu_r", vmin=-vmax, vmax=vmax, origin="upper")
    for t in range(m.shape[0]):
        for s in range(t + 1):
            ax.text(s, t, f"{m[t, s]:+.2f}" if m[t, s] else "0", ha="center", va="center",
                    fontsize=7, color="white" if abs(m[t, s]) > 0.6 * vmax else "black")
    ax.set(title=title, xlabel="step $s$ where $W$ is used", ylabel="loss step $t$",
           xticks=range(m.shape[0]), yticks=range(m.shape[0]))
    return im


fig, ax = plt.subplots(figsize=(5.8, 4.8))
im = heat_map(ax, terms, "the terms of eq. (6), detached reset")
fig.colorbar(im, ax=ax, shrink=0.8, label=CONTRIBUTION)
fig.tight_layout()
savefig(fig, "03_contributions")

# %% [markdown]
# Read the heat map row by row. Rows $t = 0, 3, 5, 6$ are empty: the neuron did what the target
# asked at those steps, so $\partial\mathcal{L}[t]/\partial S[t] = 0$. The sign of a row is the
# sign of $S[t] - S^*[t]$: red where the neuron spiked without being asked (a larger $W$ would
# make that worse), blue where it missed a target spike; $dW$ adds them all up, red and blue.
# In a non-empty row the diagonal entry is the immediate effect, and moving left each entry
# shrinks by $\beta = 0.8$ (times the ratio of the inputs): the neuron forgets. Row $t = 4$ is faint even though the
# neuron erred there, because $U[4] = 1.80$ is far above threshold and the surrogate is small.
#
# ## 4. The engine does it in $O(T)$, not $O(T^2)$
#
# The double sum has $T(T+1)/2$ terms. The engine never forms it. Swap the order of summation:
# every term with the same $s$ shares the factor $X[s]$, so
#
# $$\frac{\partial \mathcal{L}}{\partial W} = \sum_s \delta[s]\, X[s], \qquad
#   \delta[s] = \frac{\partial \mathcal{L}}{\partial U[s]}
#   = \frac{\partial \mathcal{L}[s]}{\partial U[s]} + \beta\,\delta[s+1],$$
#
# a recurrence run once, backwards from the last step. `bptt.backward_through_time` is that
# loop for every neuron: it calls a neuron's `step_back(s, carry)` for s = T−1, …, 0, where
# `carry` is δ[s+1] (None after the last step) and the return value becomes the next carry.
# Here is the seed's step back written out, with the factors of eq. (7) for all steps at once
# from `neuron.leaky_local_grads`. (`Leaky.backward` runs the same loop with its own
# `step_back`, which computes the factors one step at a time and never stores them.)

# %%
g_eng, J, _ = leaky_local_grads(rec.U, rec.S, beta, thr, "subtract", net[1].surrogate, True)
direct = dL_dS * g_eng                 # ∂L[s]/∂U[s]: the direct terms
delta = np.empty_like(direct)


def step_back(s, delta_next):
    """δ[s] = ∂L[s]/∂U[s] + J · δ[s+1]"""
    delta[s] = direct[s] if delta_next is None else direct[s] + J * delta_next
    return delta[s]


backward_through_time(step_back, T)    # s = T−1, …, 0: last step first
print(f"J (dU[t+1]/dU[t]) from the engine: {J}")
print(" s |  X[s] | dL[s]/dU[s] |  delta[s]")
for s in range(T):
    print(f" {s} | {X[s]:5.2f} | {dL_dS[s, 0, 0] * g[s, 0, 0]:+11.5f} | {delta[s, 0, 0]:+9.5f}")
print(f"sum_s delta[s] X[s] = {float((delta[:, 0, 0] * X).sum()):.12f}  "
      f"(engine dW {net[0].dW[0, 0]:.12f})")

# %% [markdown]
# ## 5. Two independent checks
#
# **The literal double sum.** `gradcheck.check_literal` runs the engine's backward and the
# literal eq. (6) on the same network and reports the largest relative error
# $\max|a-b| / \max(|a|, |b|)$ for $W$ and $b$. Here on our neuron, and on a layer of 4 neurons
# with 6 inputs and a batch of 3, with the seed's loss:

# %%
errors, _ = gradcheck.check_literal(one_neuron(), x, T, spike_loss)
print(f"one neuron: literal vs engine max rel error: {max(errors.values()):.1e}")

rng = np.random.default_rng(0)
layer = ms.Sequential(ms.Linear(6, 4, dtype="float64", rng=rng), ms.Leaky(beta=0.9, threshold=0.5))
x_layer = rng.random((3, 6)) * 2
y_layer = rng.integers(0, 4, 3)
errors, _ = gradcheck.check_literal(layer, x_layer, 10, gradcheck.membrane_loss(y_layer))
print(f"4-neuron layer: literal vs engine max rel error: {max(errors.values()):.1e}")

# %% [markdown]
# **Finite differences.** Why not just nudge $w$ and watch the loss, $(\mathcal{L}(w+h) -
# \mathcal{L}(w-h))/2h$? On the real spiking network that answer is useless: the loss only
# changes when a spike appears or disappears, so for a small $h$ the difference quotient is 0.

# %%
fd_real = gradcheck.numerical_gradient(lambda: spike_loss(*net(x))[0], net[0].W, h=1e-6)
print(f"finite differences on the spiking neuron: dW = {fd_real[0, 0]}  "
      f"(the surrogate gradient is {net[0].dW[0, 0]:.4f})")

# %% [markdown]
# The surrogate gradient is not the derivative of the spiking network's loss; it is the
# derivative of a smoothed network's loss. To check the *code* that computes it, minisnn builds
# that smoothed network for real: `gradcheck.smooth_stand_in` replaces the spike by a sigmoid in
# the forward pass too, keeps the reset attached and makes $\beta$ learnable. Its loss is smooth
# in every parameter, so finite differences must agree with the backward pass, which runs the
# very same recurrence. Here on a two-layer stand-in (3 inputs, 4 hidden, 2 outputs), with a
# time-varying input and our spike loss:

# %%
stand_in = gradcheck.smooth_stand_in([3, 4, 2], beta=0.85, seed=1)
x_si = np.random.default_rng(2).random((T, 2, 3)) * 2                  # (T, batch, inputs)
target_si = (np.random.default_rng(3).random((T, 2, 2)) > 0.5).astype("float64")


def spike_loss_si(spk, mem):
    err = spk - target_si
    return 0.5 * float((err ** 2).sum()), None, err


fd_errors = gradcheck.check_finite_differences(stand_in, x_si, T, spike_loss_si)
for name, err in fd_errors.items():
    print(f"  parameter {name:7s} rel error {err:.1e}")
print(f"finite differences vs engine max rel error: {max(fd_errors.values()):.1e}")

# %% [markdown]
# ## 6. When the reset is not detached
#
# The reset $-\theta S[t-1]$ in eq. (1) depends on $U[t-1]$ through the spike. If the backward
# pass keeps that path (`Leaky(detach_reset=False)`), the surrogate enters it as well and the
# temporal factor becomes
#
# $$J[t] = \frac{\partial U[t+1]}{\partial U[t]} = \beta - \theta\,\frac{\partial \tilde S[t]}{\partial U[t]}.$$
#
# Near threshold the surrogate is large, so $J$ is small or even negative: raising $U[t]$
# makes a spike more likely, which then *subtracts* $\theta$ at the next step. Far from
# threshold $J \approx \beta$ as before. The seed network detaches the reset (as snnTorch does
# by default): the gradient then treats the reset as an external event.

# %%
net_att = one_neuron(detach_reset=False)
net_att.zero_grad()
spk_a, mem_a = net_att(x)
net_att.backward(d_spk=spike_loss(spk_a, mem_a)[2])
_, J_att, _ = leaky_local_grads(net_att.record[1].U, net_att.record[1].S, beta, thr, "subtract",
                                net_att[1].surrogate, False)
print(" t |  dS~/dU[t] | J detached | J attached = beta - theta*dS~/dU")
for t in range(T - 1):
    print(f" {t} | {g[t, 0, 0]:10.4f} | {beta:10.2f} | {J_att[t, 0, 0]:+10.4f} "
          f"(by hand {beta - thr * g[t, 0, 0]:+.4f})")
print(f"dW detached: {net[0].dW[0, 0]:+.6f}   dW attached: {net_att[0].dW[0, 0]:+.6f}")
errors_att, contrib_att = gradcheck.check_literal(one_neuron(detach_reset=False), x, T, spike_loss)
print(f"reset attached: literal vs engine max rel error: {max(errors_att.values()):.1e}")

# the signed terms by hand, as in section 3, with J_att for beta (same forward: same S, g, X)
terms_att = np.zeros((T, T))
for t in range(T):
    for s in range(t + 1):
        terms_att[t, s] = dL_dS[t, 0, 0] * g[t, 0, 0] * np.prod(J_att[s:t, 0, 0]) * X[s]
print(f"hand terms vs literal_gradient, reset attached, max abs error: "
      f"{np.abs(np.abs(terms_att) - contrib_att).max():.1e}")

# %%
fig, axes = plt.subplots(1, 2, figsize=(11.5, 4.6))
vmax = max(np.abs(terms).max(), np.abs(terms_att).max())      # one colour scale for both
heat_map(axes[0], terms, "detached reset: $J = \\beta$", vmax)
im = heat_map(axes[1], terms_att,
              "attached reset: $J = \\beta - \\theta\\,\\partial\\tilde S/\\partial U$", vmax)
fig.colorbar(im, ax=axes, shrink=0.8, label=CONTRIBUTION)
savefig(fig, "03_reset_detached_vs_attached")

# %% [markdown]
# With the reset attached, the contributions from earlier steps fade much faster: every step
# back near threshold multiplies by a $J$ close to zero, or negative, which flips the sign of
# the terms behind it. The forward pass is identical in both
# cases; only the gradient changes.
#
# ## Summary
#
# * Eq. (6) sums, over every pair $s \le t$, the effect of the weight used at step $s$ on the
#   loss at step $t$; each term is the chain of eq. (7), with one factor $\beta$ per step back.
# * The engine gets the same number with one backward recurrence, $O(T)$ instead of $O(T^2)$;
#   the literal sum and finite differences on a smooth stand-in both agree with it to rounding.
# * Attaching the reset changes the temporal factor to $\beta - \theta\,\partial\tilde S/\partial U$.
#
# Tutorial 04 turns to the loss that the seed network actually uses.

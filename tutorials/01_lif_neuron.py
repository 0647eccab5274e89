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
# # 01 · The leaky integrate-and-fire neuron as a recurrence
#
# A spiking neuron keeps one number between time steps: its **membrane potential** $U$. At each
# step the old potential leaks away a little, the input current is added, and if the result is
# above a **threshold** $\theta$ the neuron emits a spike (a 1) and is pushed back down. Written
# as a recurrence, this is exactly the shape of a recurrent neural network with one hidden state
# per neuron, and it is the shape we will later train with backpropagation through time.
#
# In this tutorial we
#
# 1. write the three equations down,
# 2. run them by hand for a few steps and check the engine against the hand computation,
# 3. drive one neuron with a step of current and look at $U$ and $S$,
# 4. see what the decay $\beta$ and the threshold $\theta$ do, and
# 5. compare two ways of resetting the neuron after a spike.
#
# Run it as a script (`python tutorials/01_lif_neuron.py`) or open it as a notebook.

# %%
import numpy as np

import minisnn as ms
from minisnn.neuron import leaky_step
from tutorial_utils import FAST, plt, savefig

# %% [markdown]
# ## 1. The equations
#
# With the step index written so that everything on the right is already known at step $t$:
#
# $$U[t] = \underbrace{\beta\,U[t-1]}_\text{decay} + \underbrace{W X[t]}_\text{input} - \underbrace{R[t-1]}_\text{reset} \tag{1}$$
#
# $$S[t] = \begin{cases} 1 & \text{if } U[t] > \theta \\ 0 & \text{otherwise} \end{cases} \tag{2}$$
#
# and, saying the same thing with the Heaviside step function $\Theta$,
#
# $$S[t] = \Theta\big(U[t] - \theta\big). \tag{3}$$
#
# (The reference tutorial writes eq. (1) one step later, $U[t+1] = \beta U[t] + W X[t+1] - R[t]$;
# it is the same rule.)
#
# * $I[t] = W X[t]$ is the input current. Here we feed the current in directly; in a network it
#   comes from a `Linear` layer.
# * $\beta \in [0, 1]$ is the decay: how much of the potential survives one step.
# * The **subtractive reset** of the seed network is $R[t-1] = \theta\,S[t-1]$: one step after a
#   spike, the threshold is subtracted from the potential.
# * The state starts at zero, $U[-1] = 0$ and $S[-1] = 0$, and the comparison is strict: a
#   potential exactly at threshold does not fire.
#
# The only hidden state is $U$; the "recurrent connection" is the constant self-weight $\beta$
# (plus the reset). `minisnn.neuron.leaky_step` is eqs. (1)–(3) for one step:
#
# ```python
# U = beta * U_prev + I - reset_term(...)   # eq. (1)
# S = spike(U - thr)                        # eqs. (2), (3): (U - thr > 0) as 0.0 / 1.0
# ```

# %% [markdown]
# ## 2. A case you can check with pencil and paper
#
# Take $\beta = 0.5$, $\theta = 1$ and a constant current $I = 0.6$. Then
#
# * $U[0] = 0.5 \cdot 0 + 0.6 = 0.6$, no spike;
# * $U[1] = 0.5 \cdot 0.6 + 0.6 = 0.9$, no spike;
# * $U[2] = 0.5 \cdot 0.9 + 0.6 = 1.05 > 1$: a spike, $S[2] = 1$;
# * $U[3] = 0.5 \cdot 1.05 + 0.6 - 1 = 0.125$: the reset subtracts $\theta$ one step later;
# * and so on.
#
# We run the same recurrence with `leaky_step` (one step at a time, as the equations read), and
# with a one-neuron `Leaky` layer (which runs the whole time loop for us), and compare both with
# the numbers above.

# %%
beta, thr, current, T = 0.5, 1.0, 0.6, 8
spike = ms.surrogate.ATan().spike          # every surrogate spikes the same way forward: eq. (3)

U_prev, S_prev = np.zeros(1), np.zeros(1)  # the state starts at zero
U_steps, S_steps = [], []
for t in range(T):
    U_t, S_t = leaky_step(U_prev, S_prev, np.array([current]), beta, thr, "subtract", spike)
    U_steps.append(U_t[0])
    S_steps.append(S_t[0])
    U_prev, S_prev = U_t, S_t

# The same neuron as a layer. Arrays in minisnn lead with the time axis, (T, batch, neurons);
# a time axis of length 1 means "the same at every step", as in NumPy's broadcasting.
layer = ms.Leaky(beta=beta, threshold=thr)
S_layer, rec = layer.forward(np.full((1, 1, 1), current), num_steps=T)
U_layer = rec.U[:, 0, 0]

hand = [0.6, 0.9, 1.05, 0.125, 0.6625, 0.93125, 1.065625, 0.1328125]
print(" t |  I[t] |     U[t] (layer) | S[t]")
for t in range(T):
    print(f"{t:2d} | {current:5.2f} | {U_layer[t]:16.7f} | {int(S_layer[t, 0, 0])}")
print(f"leaky_step vs hand max abs error: {np.abs(np.array(U_steps) - hand).max():.1e}")
print(f"Leaky layer vs hand max abs error: {np.abs(U_layer - hand).max():.1e}")
print(f"spike steps: {np.flatnonzero(S_layer[:, 0, 0]).tolist()}")

# %% [markdown]
# ## 3. A step of current
#
# Now a longer run with the seed network's decay $\beta = 0.95$. The current is off for ten
# steps and then switches on at $I = 0.12$. Without a threshold the potential would climb
# towards the fixed point of $U = \beta U + I$, namely $I / (1 - \beta) = 2.4$. It never gets
# there: each time it crosses $\theta = 1$ the neuron spikes and drops by $\theta$.
#
# The input can also change over time: a `(T, B, N)` array gives the current at every step.

# %%
T = 80
beta, thr = 0.95, 1.0
I_step = np.zeros((T, 1, 1))
I_step[10:] = 0.12                               # (T, batch, neurons)
S_step, rec = ms.Leaky(beta=beta, threshold=thr).forward(I_step, num_steps=T)
U_step = rec.U[:, 0, 0]
spike_times = np.flatnonzero(S_step[:, 0, 0])
print(f"step input: {len(spike_times)} spikes, first at t = {spike_times[0]}, "
      f"intervals {np.diff(spike_times).tolist()}")

fig, axes = plt.subplots(3, 1, figsize=(8, 5.5), sharex=True,
                         gridspec_kw={"height_ratios": [1, 2.5, 0.8]})
axes[0].plot(I_step[:, 0, 0], drawstyle="steps-post", color="tab:gray")
axes[0].set_ylabel("input $I[t]$")
axes[1].plot(U_step, marker=".", color="tab:blue", label="membrane $U[t]$")
axes[1].axhline(thr, color="tab:red", ls="--", label=r"threshold $\theta$")
axes[1].axhline(0.12 / (1 - beta), color="tab:gray", ls=":", label=r"$I/(1-\beta)$ (no threshold)")
axes[1].set_ylabel("membrane $U[t]$")
axes[1].legend(loc="center left", bbox_to_anchor=(0.0, 0.62), fontsize=8)
axes[2].vlines(spike_times, 0, 1, color="black")
axes[2].set_yticks([])
axes[2].set_ylabel("spikes $S[t]$")
axes[2].set_xlabel("time step $t$")
fig.suptitle(r"One LIF neuron, $\beta=0.95$, $\theta=1$, step input")
savefig(fig, "01_step_input")

# %% [markdown]
# ## 4. What $\beta$ and $\theta$ do
#
# * **$\beta$** sets the memory. With $\beta$ near 1 the neuron integrates its input over many
#   steps; with $\beta$ near 0 it only sees the current step. A constant current $I$ can only
#   make the neuron fire if the fixed point lies above threshold, $I/(1-\beta) > \theta$, i.e.
#   $I > \theta(1-\beta)$: the smaller $\beta$, the stronger the input has to be.
# * **$\theta$** sets how much charge one spike costs. With a subtractive reset, each spike
#   removes exactly $\theta$, so for strong inputs the firing rate approaches $I/\theta$ spikes
#   per step (at most 1).
#
# A whole sweep is one call: we put one neuron per input strength in the layer's neuron axis.
# (Tradition calls the spike count versus input curve the *f–I curve*.)

# %%
T = 100 if FAST else 200
currents = np.linspace(0, 0.6, 61)
betas = [0.5, 0.8, 0.9, 0.95, 1.0]
thresholds = [0.5, 1.0, 2.0]


def spike_counts(beta, thr, currents, T, reset="subtract"):
    """Spikes fired in T steps by one neuron per constant current (neurons laid side by side)."""
    I = currents[None, None, :]                  # (1, batch=1, neurons): constant in time
    S, _ = ms.Leaky(beta=beta, threshold=thr, reset=reset).forward(I, num_steps=T)
    return S[:, 0, :].sum(axis=0)


fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
I_small = np.full((40, 1, 1), 0.08)
for b in betas:
    _, r = ms.Leaky(beta=b, threshold=1.0).forward(I_small, num_steps=40)
    axes[0].plot(r.U[:, 0, 0], label=rf"$\beta={b}$")
    axes[1].plot(currents, spike_counts(b, 1.0, currents, T) / T, label=rf"$\beta={b}$")
axes[0].axhline(1.0, color="tab:red", ls="--", lw=1)
axes[0].set(title=r"$U[t]$ for $I=0.08$, $\theta=1$", xlabel="time step $t$", ylabel="$U[t]$")
axes[1].set(title=r"firing rate vs current, $\theta=1$", xlabel="constant current $I$",
            ylabel="spikes per step")
for th in thresholds:
    axes[2].plot(currents, spike_counts(0.9, th, currents, T) / T, label=rf"$\theta={th}$")
axes[2].set(title=r"firing rate vs current, $\beta=0.9$", xlabel="constant current $I$",
            ylabel="spikes per step")
for ax in axes:
    ax.legend(fontsize=8)
fig.tight_layout()
savefig(fig, "01_beta_threshold")

for b in betas:
    fires = currents[spike_counts(b, 1.0, currents, T) > 0]
    onset = fires[0] if len(fires) else float("nan")
    print(f"beta={b:4}: weakest current that fires {onset:.2f} (theory: above {1.0 * (1 - b):.2f})")

# %% [markdown]
# Two things to read off the plots. The onset of firing moves right as $\beta$ shrinks, as the
# fixed-point argument predicts (with finitely many steps it can sit a little above the
# theoretical value: the neuron has to *reach* the threshold within the run). And halving
# $\theta$ roughly doubles the rate for strong inputs: a spike costs half as much charge.

# %% [markdown]
# ## 5. Subtractive reset versus reset to zero
#
# The seed network subtracts the threshold after a spike. A common alternative sets the
# potential back to zero, so the next step starts from the input alone. In minisnn that is
# `reset="zero"`, which empties the membrane one step after a spike,
# $U[t] = \beta\,(1 - S[t-1])\,U[t-1] + I[t]$, so that $U[t] = I[t]$ exactly then (the same
# form as snnTorch's, so the two agree spike for spike).
#
# The difference is what happens to the charge *above* the threshold.
#
# * **Reset to zero** forgets everything: after a spike the neuron starts from the same state,
#   $U = I$, every time. Under a constant input it is perfectly periodic, with a whole number of
#   steps between spikes, so its rate can only be $1, 1/2, 1/3, \dots$: a staircase.
# * **Subtraction** carries the rest over: one step after a spike the potential is
#   $\beta U - \theta + I$. That can be above the zero-reset value (a large overshoot is kept) or
#   below it (a small overshoot, once decayed, is less than $\theta$: the neuron undershoots).
#   Spike intervals then vary slightly and the average rate grows smoothly with the input.
#
# First the hand-checkable case again ($\beta = 0.5$, $\theta = 1$, $I = 0.6$): the
# overshoot at $t = 2$ is small, so subtraction lands at $0.125$ while reset to zero lands at
# $0.6$, and here reset to zero fires *sooner*.

# %%
T = 8
traces = {}
for reset in ("subtract", "zero"):
    S_r, r = ms.Leaky(beta=0.5, threshold=1.0, reset=reset).forward(np.full((1, 1, 1), 0.6),
                                                                  num_steps=T)
    traces[reset] = (r.U[:, 0, 0], S_r[:, 0, 0])
print(" t | U subtract | S | U zero | S")
for t in range(T):
    print(f"{t:2d} | {traces['subtract'][0][t]:10.5f} | {int(traces['subtract'][1][t])} | "
          f"{traces['zero'][0][t]:6.3f} | {int(traces['zero'][1][t])}")

T = 100 if FAST else 200
fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))
I_strong = np.full((30, 1, 1), 0.45)
for reset, style in (("subtract", "-"), ("zero", "--")):
    _, r = ms.Leaky(beta=0.9, threshold=1.0, reset=reset).forward(I_strong, num_steps=30)
    axes[0].plot(r.U[:, 0, 0], style, marker=".", label=f"reset={reset!r}")
    axes[1].plot(currents, spike_counts(0.9, 1.0, currents, T, reset) / T, style,
                 label=f"reset={reset!r}")
axes[0].axhline(1.0, color="tab:red", ls=":", lw=1)
axes[0].set(title=r"$U[t]$ for $I=0.45$, $\beta=0.9$, $\theta=1$", xlabel="time step $t$",
            ylabel="$U[t]$")
axes[1].set(title=r"firing rate vs current, $\beta=0.9$, $\theta=1$",
            xlabel="constant current $I$", ylabel="spikes per step")
for ax in axes:
    ax.legend(fontsize=8)
fig.tight_layout()
savefig(fig, "01_reset")

rate_sub = spike_counts(0.9, 1.0, np.array([0.45]), T, "subtract")[0] / T
rate_zero = spike_counts(0.9, 1.0, np.array([0.45]), T, "zero")[0] / T
print(f"rate at I=0.45: subtract {rate_sub:.3f}, zero {rate_zero:.3f} spikes per step")

# %% [markdown]
# On the right, the zero-reset curve is the staircase of rates $1/k$; the subtractive curve
# runs smoothly through it. A smoothly graded rate is what a rate-coded network wants, and it is
# the seed network's choice.

# %% [markdown]
# ## Summary
#
# * A LIF neuron is a one-number recurrence: decay, add the input, compare with the threshold,
#   reset (eqs. 1–3).
# * $\beta$ decides how long the neuron remembers; $\theta$ decides what a spike costs.
# * The subtractive reset keeps the charge above threshold; reset to zero discards it.
#
# The spike of eq. (3) is a step function, and its derivative is zero almost everywhere. That
# is a problem for gradient descent; tutorial 02 shows the problem and the usual way around it.

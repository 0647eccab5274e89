"""The second-order LIF neuron: a synaptic current that decays by α feeds a membrane that decays
by β (snnTorch's `Synaptic`)."""
from .backend import get_xp
from .neuron import (LIF, _check_decay, _check_flag, _decay_param, input_factor, membrane_grads,
                     membrane_update, spike_into, surrogate_grad)


class Synaptic(LIF):
    """A layer of synaptic-current LIF neurons: snnTorch's `Synaptic`. Records syn, U, S.

        I_syn[t] = α·I_syn[t−1] + I[t]                       the synaptic current
        U[t]     = β·U[t−1] + I_syn[t] − R[t−1]              eq. (1) with I_syn as its input
        S[t]     = Θ(U[t] − θ)                               eqs. (2), (3)

    The input spikes are smoothed twice before they reach the threshold, so a neuron responds to
    a pulse some steps later and for longer than a Leaky neuron. State starts at zero.
    Synaptic(alpha, beta, threshold=1.0, surrogate="atan", reset="subtract", detach_reset=True,
    learn_alpha=False, learn_beta=False); see `LIF` for the settings shared with Leaky. As in
    snnTorch, reset="zero" empties the whole membrane after a spike: U[t] = 0 (Leaky keeps the
    step's input, U[t] = I[t]); the synaptic current is never reset. α and β are not clamped to
    [0, 1] when learned (snnTorch clamps them at every step).
    """
    state_names = ("syn", "U", "S")

    def __init__(self, alpha, beta, threshold=1.0, surrogate="atan", reset="subtract",
                 detach_reset=True, learn_alpha=False, learn_beta=False):
        super().__init__(beta, threshold, surrogate, reset, detach_reset, learn_beta)
        self.learn_alpha = _check_flag("learn_alpha", learn_alpha)
        self.alpha_init = _check_decay("alpha", alpha)
        self.alpha, self.dalpha = _decay_param(self.alpha_init, learn_alpha)

    def __repr__(self):
        alpha = self.alpha_init if self.learn_alpha else self.alpha
        return (f"Synaptic(alpha={alpha!r}, {self._settings()}, "
                f"learn_alpha={self.learn_alpha})")

    def param_names(self):
        return (("alpha",) if self.learn_alpha else ()) + super().param_names()

    def _alpha(self, dtype):
        return self.alpha.astype(dtype) if self.learn_alpha else self.alpha

    def _step(self, dtype):
        alpha, beta = self._alpha(dtype), self._beta(dtype)
        thr, reset, surrogate = self.threshold, self.reset, self.surrogate

        def step(prev, I_t, out):
            syn_prev, U_prev, S_prev = prev
            syn_t, U_t, S_t = out
            get_xp(I_t).multiply(syn_prev, alpha, out=syn_t)            # α·I_syn[t−1]
            syn_t += I_t                                       # + I[t]
            membrane_update(U_prev, S_prev, syn_t, beta, thr, reset, out=U_t, zero_input=True)
            spike_into(surrogate, U_t, thr, out=S_t)
        return step

    def _step_back(self, rec, dS, dU, sink, dtype):
        """carry: (∂L/∂U[t+1], ∂L/∂I_syn[t+1]), totals. At step t:

            ∂L/∂U[t]     = dU[t] + ∂L/∂S[t]·g[t] + J[t]·∂L/∂U[t+1]            (4), (5), (7)
            ∂L/∂I_syn[t] = ∂U[t]/∂I_syn[t] · ∂L/∂U[t] + α·∂L/∂I_syn[t+1]
            ∂L/∂I[t]     = ∂L/∂I_syn[t]
            ∂L/∂α += ∂L/∂I_syn[t+1]·I_syn[t],   ∂L/∂β += ∂L/∂U[t+1]·∂U[t+1]/∂β

        with ∂U[t]/∂I_syn[t] = 1, or 1 − S[t−1] for the zero reset."""
        syn, U, S = rec.syn, rec.U, rec.S
        xp = get_xp(U)
        alpha, beta = self._alpha(dtype), self._beta(dtype)
        thr, reset, detach, surrogate = self.threshold, self.reset, self.detach_reset, self.surrogate
        T = U.shape[0]
        dU_buf = [xp.empty(U.shape[1:], dtype=dtype) for _ in range(2)]
        sums = {}
        if self.learn_alpha:
            sums["alpha"] = xp.zeros((), dtype=dtype)
        if self.learn_beta:
            sums["beta"] = xp.zeros((), dtype=dtype)

        def step_back(t, carry):
            d = dU_buf[t % 2]                                  # ∂L/∂U[t]
            g = surrogate_grad(surrogate, U[t], S[t], thr)     # ∂S̃[t]/∂U[t]  (5)
            if dS is not None:
                xp.multiply(dS[t], g, out=d)                   # spike path  (4)
            else:
                d[...] = 0
            if dU is not None:
                d += dU[t]
            dsyn = sink.at(t)                                  # ∂L/∂I_syn[t] goes here
            if carry is not None:                              # temporal paths  (7)
                dU_next, dsyn_next = carry
                base = beta * U[t] + syn[t + 1] if reset == "zero" else None
                J, dU_dbeta = membrane_grads(U[t], S[t], g, beta, thr, reset, detach, base)
                d += J * dU_next
                if "beta" in sums:
                    sums["beta"][...] += (dU_next * dU_dbeta).sum()
                if "alpha" in sums:
                    sums["alpha"][...] += (dsyn_next * syn[t]).sum()
                xp.multiply(dsyn_next, alpha, out=dsyn)
                dsyn += input_factor(S[t - 1], reset, True) * d if t > 0 else d
            else:
                dsyn[...] = input_factor(S[t - 1], reset, True) * d if t > 0 else d
            sink.add(t, dsyn)
            return d, dsyn
        return step_back, sums


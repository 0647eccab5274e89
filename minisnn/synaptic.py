"""The second-order LIF neuron: a synaptic current that decays by α feeds a membrane that decays
by β (snnTorch's `Synaptic`)."""
from .backend import get_xp
from .neuron import (LIF, _check_decay, _check_flag, _decay_param, input_factor, membrane_grads,
                     membrane_update, spike_into, surrogates)


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
        """carry: what reaches (U[t], I_syn[t]) from the steps after t (None at the end). At t:

            ∂L/∂U[t]     = dU[t] + ∂L/∂S[t]·g[t] + carry_U                      (4), (5)
            ∂L/∂I_syn[t] = ∂U[t]/∂I_syn[t] · ∂L/∂U[t] + carry_syn
            ∂L/∂I[t]     = ∂L/∂I_syn[t]
            ∂L/∂α += ∂L/∂I_syn[t]·I_syn[t−1],   ∂L/∂β += ∂L/∂U[t]·∂U[t]/∂β
            carry for t − 1:  (J[t−1]·∂L/∂U[t],  α·∂L/∂I_syn[t])                        (7)

        with ∂U[t]/∂I_syn[t] = 1, or 1 − S[t−1] for the zero reset, and J[t−1] = ∂U[t]/∂U[t−1]
        from the state before step t."""
        syn, U, S = rec.syn, rec.U, rec.S
        xp = get_xp(U)
        alpha, beta = self._alpha(dtype), self._beta(dtype)
        thr, reset, detach = self.threshold, self.reset, self.detach_reset
        before, g_at = self._state_before(rec), surrogates(self.surrogate, thr)
        dU_buf = [xp.empty(U.shape[1:], dtype=dtype) for _ in range(2)]
        sums = {}
        if self.learn_alpha:
            sums["alpha"] = xp.zeros((), dtype=dtype)
        if self.learn_beta:
            sums["beta"] = xp.zeros((), dtype=dtype)

        def step_back(t, carry):
            d = dU_buf[t % 2]                                  # ∂L/∂U[t]
            g = g_at(t, U[t], S[t])                            # ∂S̃[t]/∂U[t]  (5)
            if dS is not None:
                xp.multiply(dS[t], g, out=d)                   # spike path  (4)
            else:
                d[...] = 0
            if dU is not None:
                d += dU[t]
            if carry is not None:                              # temporal path from t + 1
                d += carry[0]
            prev = before(t)
            d_in = d if prev is None else input_factor(prev[2], reset, True) * d
            dsyn = sink.at(t)                                  # ∂L/∂I_syn[t] goes here
            if carry is not None:
                xp.add(carry[1], d_in, out=dsyn)
            else:
                dsyn[...] = d_in
            sink.add(t, dsyn)
            if prev is None:                                   # step 0 from rest
                return None
            syn_p, U_p, S_p = prev
            g_p = None if detach else g_at(t - 1, U_p, S_p, keep=True)
            base = beta * U_p + syn[t] if reset == "zero" and not detach else None
            J, dU_dbeta = membrane_grads(U_p, S_p, g_p, beta, thr, reset, detach, base)
            if "beta" in sums:
                sums["beta"][...] += (d * dU_dbeta).sum()
            if "alpha" in sums:
                sums["alpha"][...] += (dsyn * syn_p).sum()
            return J * d, alpha * dsyn                         # (7)
        return step_back, sums

"""The recurrent LIF neuron: each neuron's spikes come back, through trainable weights V, as
input at the next step (snnTorch's `RLeaky` with `linear_features`)."""
from .backend import get_xp
from .linear import check_positive_int, init_weights
from .neuron import LIF, input_factor, membrane_grads, membrane_update, spike_into, surrogates


class RLeaky(LIF):
    """A layer of `size` LIF neurons with all-to-all recurrent connections: snnTorch's
    `RLeaky(beta, linear_features=size)`. Records U, S.

        U[t] = β·U[t−1] + I[t] + V·S[t−1] + b_V − R[t−1]          eq. (1) plus the recurrence
        S[t] = Θ(U[t] − θ)                                        eqs. (2), (3)

    V (size, size) and b_V (size,) are parameters with gradients dV, db_V, initialised like a
    Linear(size, size) (uniform in ±1/sqrt(size), from `rng`). S[−1] = 0, so at t = 0 the
    recurrence adds only b_V, as in snnTorch. The recurrent path is part of the backward pass:
    ∂L/∂S[t−1] gains Vᵀ·∂L/∂I_V[t] and flows on through the surrogate of S[t−1], as snnTorch's
    autograd does; only the reset is detached (detach_reset=True). Input: (T, B, size) or
    (1, B, size). As in snnTorch, reset="zero" empties the whole membrane after a spike,
    U[t] = 0 (Leaky keeps the step's input). V may only be a full matrix here: snnTorch's
    one-to-one (all_to_all=False) and convolutional recurrences are not in minisnn.
    RLeaky(size, beta, threshold=1.0, surrogate="atan", reset="subtract", detach_reset=True,
    learn_beta=False, dtype="float32", rng=None); see `LIF` for the shared settings.
    """

    def __init__(self, size, beta, threshold=1.0, surrogate="atan", reset="subtract",
                 detach_reset=True, learn_beta=False, dtype="float32", rng=None):
        super().__init__(beta, threshold, surrogate, reset, detach_reset, learn_beta)
        check_positive_int("size", size)
        self.V, self.b_V, self.dV, self.db_V = init_weights((size, size), dtype, rng)  # a Linear's

    size = in_features = out_features = property(lambda self: self.V.shape[0])

    def __repr__(self):
        return f"RLeaky({self.size}, {self._settings()}, dtype={self.V.dtype})"

    def param_names(self):
        return ("V", "b_V") + super().param_names()

    def forward(self, X, num_steps, state=None):
        if X.ndim != 3 or X.shape[-1] != self.size:
            raise ValueError(f"RLeaky({self.size}) needs an input current of shape "
                             f"(T, B, {self.size}) or (1, B, {self.size}), got {tuple(X.shape)}")
        if X.dtype != self.V.dtype:
            raise TypeError(f"RLeaky({self.size}) computes in {self.V.dtype} but its input is "
                            f"{X.dtype}")
        return super().forward(X, num_steps, state)

    def _recurrent(self, S_prev, I_t):
        """The membrane's input at t: I[t] + V·S[t−1] + b_V, for (B, size) arrays."""
        c = S_prev @ self.V.T
        c += self.b_V
        c += I_t
        return c

    def _step(self, dtype):
        beta, thr, reset, surrogate = self._beta(dtype), self.threshold, self.reset, self.surrogate

        def step(prev, I_t, out):
            U_prev, S_prev = prev
            U_t, S_t = out
            c = self._recurrent(S_prev, I_t)
            membrane_update(U_prev, S_prev, c, beta, thr, reset, out=U_t, zero_input=True)
            spike_into(surrogate, U_t, thr, out=S_t)
        return step

    def _step_back(self, rec, dS, dU, sink, dtype):
        """carry: what reaches (U[t], S[t]) from the steps after t (None at the end), where
        c[t] = I[t] + V·S[t−1] + b_V is what drives the membrane. At step t:

            ∂L/∂S[t] = dS[t] + carry_S                                 the recurrent path
            ∂L/∂U[t] = dU[t] + ∂L/∂S[t]·g[t] + carry_U                          (4), (5)
            ∂L/∂c[t] = ∂U[t]/∂c[t] · ∂L/∂U[t] = ∂L/∂I[t]
            ∂L/∂V += ∂L/∂c[t] ⊗ S[t−1],  ∂L/∂b_V += ∂L/∂c[t],  ∂L/∂β += ∂L/∂U[t]·∂U[t]/∂β
            carry for t − 1:  (J[t−1]·∂L/∂U[t],  Vᵀ·∂L/∂c[t])                           (7)

        with ∂U[t]/∂c[t] = 1, or 1 − S[t−1] for the zero reset, and J[t−1] = ∂U[t]/∂U[t−1]
        from the state before step t."""
        U, S, X = rec.U, rec.S, rec.X
        xp = get_xp(U)
        beta, thr, reset, detach = self._beta(dtype), self.threshold, self.reset, self.detach_reset
        before, g_at, V = self._state_before(rec), surrogates(self.surrogate, thr), self.V
        dU_buf = [xp.empty(U.shape[1:], dtype=dtype) for _ in range(2)]
        sums = {"beta": xp.zeros((), dtype=dtype)} if self.learn_beta else {}

        def step_back(t, carry):
            dS_t = xp.zeros(U.shape[1:], dtype=dtype) if dS is None else dS[t].copy()
            if carry is not None:
                dS_t += carry[1]                               # recurrent path into S[t]
            d = dU_buf[t % 2]                                  # ∂L/∂U[t]
            g = g_at(t, U[t], S[t])                            # ∂S̃[t]/∂U[t]  (5)
            xp.multiply(dS_t, g, out=d)                        # spike path  (4)
            if dU is not None:
                d += dU[t]
            if carry is not None:                              # temporal path from t + 1  (7)
                d += carry[0]
            prev = before(t)
            dc = sink.at(t)                                    # ∂L/∂c[t] = ∂L/∂I[t]
            if prev is not None:
                xp.multiply(input_factor(prev[1], reset, True), d, out=dc)
            else:
                dc[...] = d
            self.db_V += dc.sum(axis=0)
            sink.add(t, dc)
            if prev is None:                                   # step 0 from rest: S[−1] = 0
                return None
            U_p, S_p = prev
            self.dV += dc.T @ S_p                              # V is used at step t on S[t−1]
            g_p = None if detach else g_at(t - 1, U_p, S_p, keep=True)
            base = None
            if reset == "zero" and not detach:                 # β·U[t−1] + c[t], recomputed
                base = beta * U_p + self._recurrent(S_p, X[0] if X.shape[0] == 1 else X[t])
            J, dU_dbeta = membrane_grads(U_p, S_p, g_p, beta, thr, reset, detach, base)
            if "beta" in sums:
                sums["beta"][...] += (d * dU_dbeta).sum()
            return J * d, dc @ V
        return step_back, sums

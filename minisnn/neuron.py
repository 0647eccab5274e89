"""The leaky integrate-and-fire neuron (eqs. 1-3) and the local derivatives its BPTT needs (4-7).

`leaky_step` is one forward step. From the forward records alone, `surrogate_grads` computes the
surrogate ∂S̃/∂U of every step and `temporal_grads` the temporal term ∂U[t+1]/∂U[t] and ∂U/∂β:
the factors of eq. (7) (`leaky_local_grads` returns all three at once). `Leaky` is the layer: its
forward runs the generic time loop of `bptt.py` and returns a record; its backward reads that
record and nothing else.
"""
import numpy as np

from .backend import backend_name, get_backend, get_xp, to_xp
from .bptt import backward_through_time, forward_through_time
from .record import LayerRecord
from .surrogate import get_surrogate

RESETS = ("subtract", "zero", "none")


def reset_term(U_prev, S_prev, beta, thr, reset):
    """R[t−1], the reset of eq. (1), from the previous step's membrane and spike.

    subtract: R = θ·S[t−1] (the seed's);  zero: R = β·S[t−1]·U[t−1], so that U[t] = I[t] after a
    spike;  none: R = 0.
    """
    if reset == "subtract":
        return thr * S_prev
    if reset == "zero":
        return beta * S_prev * U_prev
    return 0


def leaky_step(U_prev, S_prev, I, beta, thr, reset, spike, out=None):
    """One step of the LIF neuron.

        U[t] = β·U[t−1] + I[t] − R[t−1]                                        (1)
        S[t] = Θ(U[t] − θ),  i.e. 1 if U[t] > θ else 0                         (2), (3)

    Returns U[t], S[t]: new arrays, or `out=(U_t, S_t)` filled in place (the time loop passes
    the records' step t, so a step makes no full-size temporaries).
    """
    xp = get_xp(U_prev)
    U_t, S_t = out if out is not None else (None, None)
    U_t = xp.multiply(U_prev, beta, out=U_t)                    # β·U[t−1]
    U_t += I                                                    # + I[t]
    if reset != "none":
        U_t -= reset_term(U_prev, S_prev, beta, thr, reset)     # − R[t−1]
    S = spike(U_t - thr)                                        # Θ(U[t] − θ)
    if S_t is None:
        return U_t, S
    S_t[...] = S
    return U_t, S_t


def surrogate_grads(U, S, thr, surrogate, dS=None):
    """∂S̃[t]/∂U[t], the surrogate of eq. (5), at every step: a new array (T, B, N).

    Given dS = ∂L/∂S (T, B, N), returns instead the spike path's share of ∂L/∂U,
    ∂L/∂S[t] · ∂S̃[t]/∂U[t] (eq. 4), written into dS itself. Either way it goes one step at a time,
    so the surrogate's temporaries stay (B, N)-sized and, with dS, no (T, B, N) array of
    surrogate values is ever made.
    """
    out = get_xp(U).empty_like(U) if dS is None else dS
    for t in range(U.shape[0]):
        g_t = surrogate.grad(U[t] - thr, S[t])
        if dS is None:
            out[t] = g_t
        else:
            out[t] *= g_t
    return out


def temporal_grads(U, S, beta, thr, reset, surrogate, detach_reset):
    """The factors of eq. (7) that link one step to the next, from the records U, S (T, B, N).

    Returns
      J        scalar or (T−1, B, N)  ∂U[t+1]/∂U[t]; β for the seed's detached subtractive reset
      dU_dbeta (T−1, B, N)            ∂U[t+1]/∂β (U[0] does not depend on β: the state starts at 0)
    """
    U_prev, S_prev = U[:-1], S[:-1]
    # Partial derivatives of U[t+1] = β·U[t] + I[t+1] − R[t] with respect to U[t], S[t] and β.
    if reset == "subtract":
        J, dU_dS, dU_dbeta = beta, -thr, U_prev
    elif reset == "zero":
        J, dU_dS, dU_dbeta = beta * (1 - S_prev), -beta * U_prev, (1 - S_prev) * U_prev
    else:
        J, dU_dS, dU_dbeta = beta, 0, U_prev
    # The one switch: a detached reset treats S[t] inside R[t] as a constant. Otherwise the reset
    # is a second path from U[t] to U[t+1], through the spike and its surrogate.
    if not detach_reset:
        J = J + dU_dS * surrogate_grads(U_prev, S_prev, thr, surrogate)
    return J, dU_dbeta


def leaky_local_grads(U, S, beta, thr, reset, surrogate, detach_reset):
    """Every factor of eq. (7) for every step, from the records U, S (T, B, N), as arrays to look
    at: g = ∂S̃[t]/∂U[t] (T, B, N) from `surrogate_grads`, and J, dU_dbeta from `temporal_grads`.
    (`Leaky.backward` calls those two itself, and folds g into ∂L/∂S step by step.)"""
    return (surrogate_grads(U, S, thr, surrogate),
            *temporal_grads(U, S, beta, thr, reset, surrogate, detach_reset))


class Leaky:
    """A layer of leaky integrate-and-fire neurons (eqs. 1-3), trained with a surrogate (eq. 5).

    beta: membrane decay β in [0, 1]; threshold: θ > 0; surrogate: a name from
    `minisnn.surrogate.SURROGATES` or a Surrogate; reset: 'subtract' (the seed's), 'zero' or
    'none'; detach_reset: keep the reset out of the backward pass (the seed's choice);
    learn_beta: make β a parameter with a gradient `dbeta` (it is not clipped to [0, 1]).
    """

    def __init__(self, beta, threshold=1.0, surrogate="atan", reset="subtract",
                 detach_reset=True, learn_beta=False):
        if isinstance(beta, bool) or not isinstance(beta, (int, float, np.floating, np.integer)):
            raise TypeError(f"beta must be a number in [0, 1], got {beta!r}")
        if not 0.0 <= float(beta) <= 1.0:
            raise ValueError(f"beta must be in [0, 1], got {beta}")
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float, np.floating, np.integer)) \
                or not float(threshold) > 0:
            raise ValueError(f"threshold must be a number > 0, got {threshold!r}")
        if reset not in RESETS:
            raise ValueError(f"reset must be one of {RESETS}, got {reset!r}")
        for name, flag in (("detach_reset", detach_reset), ("learn_beta", learn_beta)):
            if not isinstance(flag, bool):
                raise TypeError(f"{name} must be True or False, got {flag!r}")
        self.threshold = float(threshold)
        self.surrogate = get_surrogate(surrogate)
        self.reset = reset
        self.detach_reset = detach_reset
        self.learn_beta = learn_beta
        if learn_beta:  # a 0-d parameter array, used in the dtype of the layer's input
            self.beta = get_backend().asarray(float(beta), dtype="float64")
            self.dbeta = get_backend().zeros((), dtype="float64")
        else:
            self.beta = float(beta)

    def __repr__(self):
        b = float(self.beta)
        return (f"Leaky(beta={b:g}, threshold={self.threshold:g}, surrogate={self.surrogate.name!r}, "
                f"reset={self.reset!r}, detach_reset={self.detach_reset}, learn_beta={self.learn_beta})")

    def param_names(self):
        return ("beta",) if self.learn_beta else ()

    def _beta(self, dtype):
        return self.beta.astype(dtype) if self.learn_beta else self.beta

    def _fused(self, xp):
        """The fused GPU kernels for this layer (minisnn.fused), or None: on NumPy, or for a
        setting the kernels do not cover, the readable reference below runs instead."""
        if backend_name(xp) != "cupy":
            return None
        from . import fused
        return fused.kernels_for(self)

    def forward(self, I, num_steps):
        """I: input current, (B, N) static or (T, B, N). Returns S (T, B, N) and the record."""
        xp = get_xp(I)
        kernels = self._fused(xp)
        if kernels is not None:
            U, S = kernels.forward(self, I, num_steps)
            return S, LayerRecord(X=I, U=U, S=S)
        beta, thr, reset, spike = self._beta(I.dtype), self.threshold, self.reset, self.surrogate.spike
        step = lambda U_prev, S_prev, I_t, out: leaky_step(U_prev, S_prev, I_t, beta, thr, reset,
                                                           spike, out=out)
        U, S = forward_through_time(step, I, num_steps, I.shape[-2:], xp)
        return S, LayerRecord(X=I, U=U, S=S)

    def backward(self, rec, dU_out=None, dS_out=None, overwrite_dS=False):
        """Eqs. (4)-(7). dU_out, dS_out (T, B, N): ∂L/∂U and ∂L/∂S from outside the layer (the
        loss, or the next layer). Returns ∂L/∂I with the shape of the layer's input.
        overwrite_dS: dS_out's memory may be reused for ∂L/∂U (Sequential allows it for the
        ∂L/∂S a Linear layer has just made; a caller's own array is never changed otherwise)."""
        U, S, I = rec.U, rec.S, rec.X
        xp = get_xp(U)
        kernels = self._fused(xp)
        if kernels is not None:
            return kernels.backward(self, rec, dU_out, dS_out)
        beta, thr = self._beta(U.dtype), self.threshold
        # The direct terms of ∂L/∂U (T, B, N): dU_out, and the spike path ∂L/∂S · ∂S̃/∂U  (4), (5)
        if dS_out is None:
            dU = xp.zeros_like(U) if dU_out is None else dU_out.copy()
        else:
            dS = dS_out if overwrite_dS else dS_out.copy()
            dU = surrogate_grads(U, S, thr, self.surrogate, dS=dS)   # in dS's memory
            if dU_out is not None:
                dU += dU_out
        J, dU_dbeta = temporal_grads(U, S, beta, thr, self.reset, self.surrogate, self.detach_reset)
        backward_through_time(dU, J)              # temporal path: + ∂U[t+1]/∂U[t] · dU[t+1]   (7)
        if self.learn_beta:
            self.dbeta += to_xp((dU[1:] * dU_dbeta).sum(), xp).astype(self.dbeta.dtype)
        # ∂U[t]/∂I[t] = 1; a static input is used at every step, so its gradient sums over time.
        return dU.sum(axis=0) if I.ndim == 2 else dU

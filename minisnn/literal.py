"""Eq. (6) as the literal double sum, for a Linear layer feeding any LIF neuron of minisnn.

    ∂L/∂W = Σ_t Σ_{s≤t} ∂L[t]/∂W[s],
    ∂L[t]/∂W[s] = ∂L[t]/∂z[t] · M[t] · M[t−1] ⋯ M[s+1] · E[s] · ∂I[s]/∂W

where z[t] is the neuron's whole state at step t (U for Leaky and RLeaky; (I_syn, U) for
Synaptic), M[k] = ∂z[k]/∂z[k−1] its Jacobian from one step to the next and E[k] = ∂z[k]/∂I[k].
For the seed's neuron M[k] is the number β of eq. (7); for the others it is a matrix per sample:
the synaptic current adds a second row and column, the recurrence V adds V·diag(∂S̃/∂U). Every
factor is written out here from the neuron's equations, independently of the engine's backward,
and multiplied out with slow loops (one sample at a time): a check, not a method.
"""
import numpy as np

from .rleaky import RLeaky
from .synaptic import Synaptic


def _membrane_partials(neuron, U_prev, S_prev, c):
    """∂U[k]/∂U[k−1], ∂U[k]/∂S[k−1] (through the reset, 0 when detached) and ∂U[k]/∂c[k], per
    neuron, for U[k] = β·U[k−1] + c[k] − R[k−1] (c: what drives the membrane)."""
    beta, thr = float(neuron.beta), neuron.threshold
    ones = np.ones_like(U_prev)
    empties_input = isinstance(neuron, (Synaptic, RLeaky))
    if neuron.reset == "subtract":                      # U = β·U' + c − θ·S'
        dU_dUp, dU_dSp, dU_dc = beta * ones, -thr * ones, ones
    elif neuron.reset == "zero" and empties_input:      # U = (1 − S')·(β·U' + c)
        dU_dUp, dU_dSp, dU_dc = beta * (1 - S_prev), -(beta * U_prev + c), 1 - S_prev
    elif neuron.reset == "zero":                        # U = β·(1 − S')·U' + c
        dU_dUp, dU_dSp, dU_dc = beta * (1 - S_prev), -beta * U_prev, ones
    else:                                               # U = β·U' + c
        dU_dUp, dU_dSp, dU_dc = beta * ones, 0 * ones, ones
    if neuron.detach_reset:
        dU_dSp = 0 * ones
    return dU_dUp, dU_dSp, dU_dc


def jacobians(neuron, X, U, S, k):
    """M = ∂z[k]/∂z[k−1] (B, n, n) and E = ∂z[k]/∂I[k] (B, n, N) at step k ≥ 0 (M at k = 0 is
    unused: the state starts at zero). X: the neuron's input current, (T or 1, B, N)."""
    B, N = U.shape[1], U.shape[2]
    zeros = np.zeros((B, N))
    U_prev, S_prev = (U[k - 1], S[k - 1]) if k > 0 else (zeros, zeros)
    g_prev = neuron.surrogate.grad(U_prev - neuron.threshold, S_prev) if k > 0 else zeros
    I_k = X[0] if X.shape[0] == 1 else X[k]
    if isinstance(neuron, Synaptic):
        syn = neuron_state(neuron, X, U, S)
        c = syn[k]
    elif isinstance(neuron, RLeaky):
        c = I_k + S_prev @ neuron.V.T + neuron.b_V
    else:
        c = I_k
    a, r, dc = _membrane_partials(neuron, U_prev, S_prev, c)
    diag = lambda v: np.einsum("bi,ij->bij", v, np.eye(N))        # (B, N) -> (B, N, N)
    dU_dUp = diag(a + r * g_prev)                                  # through U' and the reset
    if isinstance(neuron, RLeaky):                                 # c = I + V·S' + b_V
        dU_dUp = dU_dUp + diag(dc) @ (neuron.V[None] * g_prev[:, None, :])
    if not isinstance(neuron, Synaptic):
        return dU_dUp, diag(dc)
    alpha = float(neuron.alpha)                                    # z = (I_syn, U)
    M = np.zeros((B, 2 * N, 2 * N))
    M[:, :N, :N] = alpha * np.eye(N)                               # ∂I_syn[k]/∂I_syn[k−1]
    M[:, N:, :N] = diag(dc) * alpha                                # ∂U[k]/∂I_syn[k−1]
    M[:, N:, N:] = dU_dUp                                          # ∂U[k]/∂U[k−1]
    E = np.concatenate([np.broadcast_to(np.eye(N), (B, N, N)), diag(dc)], axis=1)
    return M, E


def neuron_state(neuron, X, U, S):
    """Synaptic's current I_syn[t] = α·I_syn[t−1] + I[t], recomputed from the input."""
    syn, prev = np.zeros(U.shape), 0
    for t in range(U.shape[0]):
        prev = float(neuron.alpha) * prev + (X[0] if X.shape[0] == 1 else X[t])
        syn[t] = prev
    return syn


def literal_gradients(linear, neuron, X_lin, X, U, S, dU_direct=None, dS_direct=None):
    """The double sum of eq. (6) for Linear → neuron. X_lin: the Linear layer's input, X: the
    neuron's input current (T or 1, B, ·); U, S (T, B, N): the neuron's records;
    dU_direct[t], dS_direct[t]: ∂L[t]/∂U[t] and ∂L[t]/∂S[t]. Returns {'W', 'b'} (and 'V',
    'b_V' for RLeaky, whose V is used at every step on S[s−1] just as W is used on X[s])."""
    T, B, N = U.shape
    zeros = np.zeros_like(U)
    dU_direct = zeros if dU_direct is None else dU_direct
    dS_direct = zeros if dS_direct is None else dS_direct
    g = neuron.surrogate.grad(U - neuron.threshold, S)                       # eq. (5)
    M, E = zip(*(jacobians(neuron, X, U, S, k) for k in range(T)))
    n = M[0].shape[-1]
    out = {"W": np.zeros_like(linear.W), "b": np.zeros_like(linear.b)}
    if isinstance(neuron, RLeaky):
        out.update(V=np.zeros_like(neuron.V), b_V=np.zeros_like(neuron.b_V))
    for t in range(T):
        direct = np.zeros((B, n))
        direct[:, n - N:] = dU_direct[t] + dS_direct[t] * g[t]              # ∂L[t]/∂U[t]
        for s in range(t + 1):
            chain = direct
            for k in range(t, s, -1):                                       # · M[t] ⋯ M[s+1]
                chain = np.einsum("bi,bij->bj", chain, M[k])
            chain = np.einsum("bi,bij->bj", chain, E[s])                    # ∂L[t]/∂I[s] (B, N)
            X_s = X_lin[0] if X_lin.shape[0] == 1 else X_lin[s]
            out["W"] += chain.T @ X_s                                       # ∂I[s]/∂W = X[s]
            out["b"] += chain.sum(axis=0)
            if isinstance(neuron, RLeaky):
                if s > 0:
                    out["V"] += chain.T @ S[s - 1]
                out["b_V"] += chain.sum(axis=0)
    return out

"""The one generic time loop, forward and backward, shared by every neuron type.

Forward: run a neuron's `step(U_prev, S_prev, I_t, out=(U_t, S_t))` for t = 0 … T−1 from a
state of zeros; each step writes U[t] and S[t] straight into the records (no copies).

Backward: a neuron's dynamics only couple U[t] to U[t+1], so once the direct terms of ∂L/∂U[t]
are in place, backprop through time is the linear recurrence

    dU[t] += J[t] · dU[t+1],      J[t] = ∂U[t+1]/∂U[t]  (= β for the seed's neuron, eq. 7)

run from the last step to the first. Summing dU over time afterwards gives eq. (6).
"""
from .backend import get_xp


def forward_through_time(step, I, num_steps, shape, xp):
    """Record U, S (T, B, N) of `step` driven by I: (B, N) static or (T, B, N) time-varying."""
    static = I.ndim == len(shape)
    U = xp.empty((num_steps,) + shape, dtype=I.dtype)  # (T, B, N)
    S = xp.empty((num_steps,) + shape, dtype=I.dtype)  # (T, B, N)
    U_prev = S_prev = xp.zeros(shape, dtype=I.dtype)   # state starts at zero (read, never written)
    for t in range(num_steps):
        step(U_prev, S_prev, I if static else I[t], out=(U[t], S[t]))
        U_prev, S_prev = U[t], S[t]
    return U, S


def backward_through_time(dU, J):
    """Add the temporal term of eq. (7) to dU (T, B, N) in place, last step first.

    On entry dU[t] holds the terms of ∂L/∂U[t] that do not pass through U[t+1]; J is ∂U[t+1]/∂U[t]
    for t = 0 … T−2, a scalar or an array (T−1, B, N). Each dU[t] *accumulates* the gradient that
    flows back from U[t+1]: U[t] feeds both S[t] and U[t+1].
    """
    xp = get_xp(dU)
    scalar = getattr(J, "ndim", 0) == 0
    carry = xp.empty_like(dU[0])   # J[t]·dU[t+1]: one step of scratch, reused at every step
    for t in range(dU.shape[0] - 2, -1, -1):
        xp.multiply(J if scalar else J[t], dU[t + 1], out=carry)
        dU[t] += carry
    return dU

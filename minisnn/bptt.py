"""The one generic time loop, forward and backward, shared by every neuron type.

A neuron is a state (a tuple of arrays, e.g. (U, S) for Leaky, (syn, U, S) for Synaptic) and two
functions of one step:

    step(prev, I_t, out)       forward: the state at t from the state at t−1 and the input at t,
                               written into `out` (the records' step t: no copies)
    step_back(t, carry)        backward: the gradient ∂L/∂state[t] from the direct terms at t and
                               the `carry`, ∂L/∂state[t+1] (total); returns it as the next carry

Forward runs t = 0 … T−1 from a state of zeros. Backward runs t = T−1 … 0: because each step's
state depends only on the previous step's, backprop through time is this one recurrence,

    ∂L/∂state[t] = (direct terms at t) + (∂state[t+1]/∂state[t])ᵀ · ∂L/∂state[t+1],

and every use of the input current at every step is collected along the way (eq. 6). For the
seed's neuron ∂U[t+1]/∂U[t] = β (eq. 7).
"""
from .backend import get_xp


def forward_through_time(step, I, num_steps, state0):
    """Record the state of `step` driven by I (T, B, ...), or (1, B, ...) for an input that is the
    same at every step, starting from `state0` (a tuple of (B, ...) arrays, read, never written).
    Returns one record (T, B, ...) per state variable."""
    xp = get_xp(I)
    records = tuple(xp.empty((num_steps,) + s.shape, dtype=s.dtype) for s in state0)
    static = I.shape[0] == 1
    prev = state0
    for t in range(num_steps):
        out = tuple(r[t] for r in records)
        step(prev, I[0] if static else I[t], out)
        prev = out
    return records


def backward_through_time(step_back, num_steps, carry=None):
    """Run `carry = step_back(t, carry)` for t = T−1 … 0 (carry None beyond the last step).
    Returns the last carry: the gradient with respect to the state at step 0."""
    for t in range(num_steps - 1, -1, -1):
        carry = step_back(t, carry)
    return carry


"""The leaky integrate-and-fire neuron (eqs. 1-3), the local derivatives of its BPTT (eqs. 4-7),
and what every LIF-type neuron (Leaky, Synaptic, RLeaky) shares.

`membrane_update` and `leaky_step` are one forward step; `membrane_grads` gives the factors of
eq. (7) that link one step to the next. `LIF` is the base of the neuron layers: it validates
their settings and drives the one generic time loop of `bptt.py` with each neuron's own step
(forward) and step back (backward). `Leaky` is the seed network's neuron.
"""
import math

import numpy as np

from .backend import backend_name, get_backend, get_xp, to_xp
from .bptt import backward_through_time, forward_through_time
from .checks import check_array, check_num_steps
from .record import Record
from .surrogate import Surrogate, get_surrogate

RESETS = ("subtract", "zero", "none")


def membrane_update(U_prev, S_prev, I, beta, thr, reset, out=None, zero_input=False):
    """U[t] = β·U[t−1] + I[t] − R[t−1]                                             (1)

    with the reset R[t−1] taken from the previous step's spike:
      subtract  R[t−1] = θ·S[t−1] (the seed's);
      zero      the membrane is emptied after a spike: U[t] = β·(1 − S[t−1])·U[t−1] + I[t], so
                U[t] = I[t] exactly (Leaky, as snnTorch's Leaky). With zero_input the step's
                input is emptied too, U[t] = (1 − S[t−1])·(β·U[t−1] + I[t]) = 0 after a spike
                (snnTorch's Synaptic and RLeaky). Both are computed in snnTorch's form, so that
                the spikes agree bit for bit;
      none      R[t−1] = 0.
    I is whatever drives the membrane (the input current; the synaptic current of Synaptic).
    Writes U[t] into `out` (a new array when None) and returns it.
    """
    xp = get_xp(U_prev)
    if reset == "zero" and not zero_input:
        out = xp.subtract(1, S_prev, out=out)      # 1 − S[t−1]
        out *= U_prev
        out *= beta                                # β·(1 − S[t−1])·U[t−1]
    else:
        out = xp.multiply(U_prev, beta, out=out)   # β·U[t−1]
    out += I                                       # + I[t]
    if reset == "subtract":
        out -= thr * S_prev                        # − θ·S[t−1]
    elif reset == "zero" and zero_input:
        out *= 1 - S_prev                          # (1 − S[t−1])·(β·U[t−1] + I[t])
    return out


def spike_into(surrogate, U, thr, out=None):
    """S[t] = Θ(U[t] − θ): 1 if U[t] > θ else 0                                    (2), (3)
    (the surrogate's forward: a step for every built-in surrogate)."""
    S = surrogate.spike(U - thr)
    _check_shape(S, U, f"{_name(surrogate)}.spike")
    if out is None:
        return S
    out[...] = S
    return out


def leaky_step(U_prev, S_prev, I, beta, thr, reset, spike, out=None):
    """One step of the LIF neuron: eq. (1) by `membrane_update`, then S[t] = spike(U[t] − θ).
    `spike` is a function of V = U − θ. Returns U[t], S[t]: new arrays, or `out=(U_t, S_t)`
    filled in place (the time loop passes the records' step t)."""
    U_t, S_t = out if out is not None else (None, None)
    U_t = membrane_update(U_prev, S_prev, I, beta, thr, reset, out=U_t)
    S = spike(U_t - thr)
    if S_t is None:
        return U_t, S
    S_t[...] = S
    return U_t, S_t


def membrane_grads(U, S, g, beta, thr, reset, detach_reset, base=None):
    """The factors of eq. (7) that link step t to step t+1, from U[t], S[t] and the surrogate
    g[t] = ∂S̃[t]/∂U[t] (any shapes that broadcast: one step, or all steps at once):

        J = ∂U[t+1]/∂U[t]           subtract: β;         zero: β·(1 − S[t]);        none: β
        dU_dbeta = ∂U[t+1]/∂β       subtract: U[t];      zero: (1 − S[t])·U[t];     none: U[t]

    A detached reset treats S[t] inside R[t] as a constant. Attached, the reset is a second path
    from U[t] to U[t+1], through the spike and its surrogate: J gains ∂U[t+1]/∂S[t] · g[t], which
    is −θ·g[t] (subtract) or −β·U[t]·g[t] (zero). For the zero reset that also empties the input
    (`membrane_update(zero_input=True)`), pass base = β·U[t] + I[t+1]: J, dU_dbeta are the same
    when detached, the attached term is −base·g[t], and the input's own factor
    ∂U[t+1]/∂I[t+1] = 1 − S[t] is `input_factor`.
    """
    if reset == "zero":
        J, dU_dbeta = beta * (1 - S), (1 - S) * U
        if not detach_reset:
            J = J - (beta * U if base is None else base) * g
    else:
        J, dU_dbeta = beta, U
        if reset == "subtract" and not detach_reset:
            J = J - thr * g
    return J, dU_dbeta


def input_factor(S_prev, reset, zero_input):
    """∂U[t]/∂I[t]: 1, or 1 − S[t−1] for a zero reset that empties the input (zero_input)."""
    return 1 - S_prev if reset == "zero" and zero_input else 1


def surrogate_grad(surrogate, U, S, thr):
    """∂S̃/∂U at V = U − θ, the surrogate of eq. (5), checked to have U's shape and dtype."""
    g = surrogate.grad(U - thr, S)
    _check_shape(g, U, f"{_name(surrogate)}.grad")
    return g


def surrogates(surrogate, thr):
    """g_at(t, U_t, S_t, keep=False): ∂S̃/∂U at step t, for a step back. A step back that also
    needs g[t − 1] (the Jacobian of an attached reset) asks for it with keep=True, and step t − 1
    then gets the same array instead of computing it again."""
    memo = {}

    def g_at(t, U_t, S_t, keep=False):
        g = memo.pop(t, None)
        if g is None:
            g = surrogate_grad(surrogate, U_t, S_t, thr)
        if keep:
            memo[t] = g
        return g
    return g_at


def leaky_local_grads(U, S, beta, thr, reset, surrogate, detach_reset):
    """Every factor of eq. (7) at every step, from the records U, S (T, B, N), as arrays to look
    at: g (T, B, N) = ∂S̃[t]/∂U[t], and J, dU_dbeta (T−1, B, N) linking step t to t+1 (J is a
    scalar β for the seed's detached subtractive reset). Leaky.backward computes the same
    factors one step at a time and never stores them."""
    g = surrogate_grad(surrogate, U, S, thr)
    return (g, *membrane_grads(U[:-1], S[:-1], g[:-1], beta, thr, reset, detach_reset))


def _check_shape(a, like, what):
    if getattr(a, "shape", None) != like.shape or a.dtype != like.dtype:
        raise ValueError(f"surrogate {what} must return an array of the shape and dtype of its "
                         f"input, {tuple(like.shape)} {like.dtype}; got "
                         f"{getattr(a, 'shape', type(a).__name__)} "
                         f"{getattr(a, 'dtype', '')}".rstrip())


def _name(surrogate):
    return type(surrogate).__name__


class LIF:
    """What every LIF-type neuron layer shares: the settings of eq. (1), their checks, and the
    forward/backward that run the one generic time loop (`bptt.py`) with the neuron's own step.

    A subclass sets `state_names` (the records it keeps, the spikes S last) and defines
    `_step(dtype)` -> step(prev, I_t, out) and `_step_back(rec, dS, dU, sink, dtype)` ->
    (step_back(t, carry), sums), see `bptt.py`; `sums` maps a parameter's name to the 0-d or
    array accumulator its step back fills, added into the parameter's gradient at the end. Step
    t's backward reads what step t's forward read: the state before it (`_state_before`: the
    records' step t − 1, or a segment's `start`), its input and its own state.

    beta: membrane decay β in [0, 1]; threshold: θ, finite and > 0; surrogate: a name from
    `minisnn.surrogate.SURROGATES` or a Surrogate; reset: 'subtract' (the seed's), 'zero' or
    'none'; detach_reset: keep the reset out of the backward pass (the seed's choice);
    learn_beta: make β a parameter with a gradient `dbeta`. Unlike snnTorch, which clamps a
    learned β into [0, 1] at every step, minisnn uses β as it is (clip `layer.beta` yourself after
    the optimizer step for snnTorch's behaviour).
    """
    state_names = ("U", "S")

    def __init__(self, beta, threshold=1.0, surrogate="atan", reset="subtract",
                 detach_reset=True, learn_beta=False):
        self.threshold = _check_threshold(threshold)
        self.surrogate = get_surrogate(surrogate)
        if reset not in RESETS:
            raise ValueError(f"reset must be one of {RESETS}, got {reset!r}")
        self.reset = reset
        self.detach_reset = _check_flag("detach_reset", detach_reset)
        self.learn_beta = _check_flag("learn_beta", learn_beta)
        self.beta_init = _check_decay("beta", beta)
        self.beta, self.dbeta = _decay_param(self.beta_init, learn_beta)

    def _settings(self):
        beta = self.beta_init if self.learn_beta else self.beta
        return (f"beta={beta!r}, threshold={self.threshold!r}, surrogate={self.surrogate!r}, "
                f"reset={self.reset!r}, detach_reset={self.detach_reset}, "
                f"learn_beta={self.learn_beta}")

    def __repr__(self):
        return f"{type(self).__name__}({self._settings()})"

    def param_names(self):
        return ("beta",) if self.learn_beta else ()

    def _beta(self, dtype):
        return self.beta.astype(dtype) if self.learn_beta else self.beta

    @property
    def binary_state(self):
        """The state variables that only ever hold 0 or 1: the spikes S, when the surrogate fires
        with the Heaviside step of `Surrogate.spike` (every built-in one; not the smooth stand-in
        of the gradient checks). `recompute_every` keeps them as bits between segments."""
        return ("S",) if type(self.surrogate).spike is Surrogate.spike else ()

    def forward(self, X, num_steps, state=None):
        """X: input current (T, B, ...), or (1, B, ...) for a current that is the same at every
        step. Returns S (T, B, ...) and the record (X and one array per state variable).

        state: the state before step 0, a tuple of (B, ...) arrays in `state_names` order (the
        last step of the previous segment, for `recompute_every`); None starts from rest (zeros).
        A record made from a given state keeps it as `start`, for the backward pass."""
        num_steps = _check_current(X, num_steps)
        xp = get_xp(X)
        if state is None:
            state0 = tuple(xp.zeros(X.shape[1:], dtype=X.dtype) for _ in self.state_names)
        else:
            state0 = self._check_state(state, X)
        records = dict(zip(self.state_names,
                           forward_through_time(self._step(X.dtype), X, num_steps, state0)))
        rec = Record(X=X, **records) if state is None else Record(X=X, **records, start=state0)
        return rec.S, rec

    def backward(self, rec, d_out=None, dU=None):
        """Eqs. (4)-(7). d_out = ∂L/∂S and dU = ∂L/∂U (T, B, ...), from outside the layer (the
        next layer, or the loss); either may be None. Returns ∂L/∂X, with the shape of the
        layer's input. d_out's memory may be reused (the layer protocol allows it)."""
        return self.backward_segment(rec, d_out, dU)[0]

    def backward_segment(self, rec, d_out=None, dU=None, carry=None):
        """`backward` for one segment of a longer window (`recompute_every`): `carry` is what
        reaches the state at the segment's last step from the steps after it (the carry the later
        segment returned; None: nothing after it). Returns (∂L/∂X, carry), the carry being what
        reaches the state before the segment's step 0: ∂L/∂(rec.start) through this segment, for
        the earlier segment (None when the record starts from rest)."""
        _check_grads(rec, d_out, dU)
        sink = InputGrad(rec.X, rec.U, reuse=d_out)
        step_back, sums = self._step_back(rec, d_out, dU, sink, rec.U.dtype)
        carry = backward_through_time(step_back, rec.U.shape[0], carry)
        for name, total in sums.items():      # gradients accumulate: never overwritten
            grad = getattr(self, "d" + name)
            grad += to_xp(total, get_xp(grad)).astype(grad.dtype, copy=False)
        return sink.result(), carry

    def _state_before(self, rec):
        """before(t): the state before step t, a tuple in `state_names` order: the records' step
        t − 1; at t = 0 the record's `start` (a segment's initial state), or None from rest."""
        arrays = tuple(getattr(rec, n) for n in self.state_names)
        start = rec.start if "start" in rec else None

        def before(t):
            return tuple(a[t - 1] for a in arrays) if t > 0 else start
        return before

    def _check_state(self, state, X):
        names = self.state_names
        if not isinstance(state, (tuple, list)) or len(state) != len(names):
            raise ValueError(f"state must be a tuple of {len(names)} arrays {names} (the state "
                             f"before step 0), or None to start from rest; got {state!r:.80}")
        for name, a in zip(names, state):
            check_array(a, f"state {name}")
            if a.shape != X.shape[1:] or a.dtype != X.dtype:
                raise ValueError(f"state {name} must have shape {tuple(X.shape[1:])} and dtype "
                                 f"{X.dtype} like one step of the input, got {tuple(a.shape)} "
                                 f"{a.dtype}")
        return tuple(state)


class InputGrad:
    """Where a neuron's backward puts ∂L/∂I[t] = ∂L/∂(its input current at t): for an input that
    is the same at every step, summed over time into one (1, B, ...) array (eq. 6: it is used at
    every step); otherwise step t of a (T, B, ...) array, which may be the memory of `reuse`
    (an array the layer was given and no longer needs: its step t is read before it is written).
    `at(t)` is where step t's gradient goes; `add(t)` folds it in."""

    def __init__(self, X, U, reuse=None):
        xp = get_xp(U)
        self.static = X.shape[0] == 1
        if self.static:
            self.total = xp.zeros(X.shape, dtype=U.dtype)               # (1, B, ...)
            self._scratch = [xp.empty(U.shape[1:], dtype=U.dtype) for _ in range(2)]
        else:
            self.total = reuse if reuse is not None else xp.empty_like(U)   # (T, B, ...)

    def at(self, t):
        return self._scratch[t % 2] if self.static else self.total[t]

    def add(self, t, d):
        if self.static:
            self.total[0] += d

    def result(self):
        return self.total


class Leaky(LIF):
    """A layer of leaky integrate-and-fire neurons (eqs. 1-3), trained with a surrogate (eq. 5):
    snnTorch's `Leaky`. Records U and S.

    Leaky(beta, threshold=1.0, surrogate="atan", reset="subtract", detach_reset=True,
    learn_beta=False); see `LIF` for the settings. On CuPy (and, where available, on the CPU)
    its forward and backward run as fused kernels (`minisnn.fused`) with the same results,
    segments of `recompute_every` included; `with minisnn.fused.disabled():` runs the readable
    per-step code below instead.
    """

    def _step(self, dtype):
        beta, thr, reset, surrogate = self._beta(dtype), self.threshold, self.reset, self.surrogate

        def step(prev, I_t, out):
            U_prev, S_prev = prev
            U_t, S_t = out
            membrane_update(U_prev, S_prev, I_t, beta, thr, reset, out=U_t)
            spike_into(surrogate, U_t, thr, out=S_t)
        return step

    def _step_back(self, rec, dS, dU, sink, dtype):
        """At step t, with carry = what reaches U[t] from the steps after it (None at the end):

            ∂L/∂U[t] = dU[t] + ∂L/∂S[t]·g[t] + carry                            (4), (5)
            ∂L/∂I[t] = ∂L/∂U[t]                                      (∂U[t]/∂I[t] = 1)
            ∂L/∂β   += ∂L/∂U[t]·∂U[t]/∂β
            carry for step t − 1:  J[t−1]·∂L/∂U[t],  J[t−1] = ∂U[t]/∂U[t−1]          (7)

        J and ∂U[t]/∂β come from the state before step t, as step t's forward used it."""
        U, S = rec.U, rec.S
        xp = get_xp(U)
        beta, thr, reset, detach = self._beta(dtype), self.threshold, self.reset, self.detach_reset
        learn_beta = self.learn_beta
        before, g_at = self._state_before(rec), surrogates(self.surrogate, thr)
        dbeta = xp.zeros((), dtype=dtype)                    # Σ_t ∂L/∂U[t]·∂U[t]/∂β

        def step_back(t, carry):
            d = sink.at(t)                                   # (B, ...): ∂L/∂U[t] goes here
            g = g_at(t, U[t], S[t])                          # ∂S̃[t]/∂U[t]  (5)
            if dS is not None:
                xp.multiply(dS[t], g, out=d)                 # spike path ∂L/∂S[t]·g[t]  (4)
            else:
                d[...] = 0
            if dU is not None:
                d += dU[t]
            if carry is not None:                            # temporal path from t + 1  (7)
                d += carry
            sink.add(t, d)
            prev = before(t)
            if prev is None:                                 # step 0 from rest: nothing before
                return None
            U_p, S_p = prev
            g_p = None if detach else g_at(t - 1, U_p, S_p, keep=True)
            J, dU_dbeta = membrane_grads(U_p, S_p, g_p, beta, thr, reset, detach)
            if learn_beta:
                dbeta[...] += (d * dU_dbeta).sum()
            return J * d
        return step_back, ({"beta": dbeta} if learn_beta else {})

    # ------------------------------------------------------------------ the fused kernels

    def _fused(self, xp, dtype):
        """The fused kernels for this layer (minisnn.fused: CUDA on CuPy, compiled C on NumPy),
        or None where the readable reference above runs instead: for a setting or dtype the
        kernels do not cover, and where they are off. They also run the segments of
        `recompute_every`: from a given state (U0, S0) and with the carry in and out."""
        if np.dtype(dtype).name not in ("float32", "float64"):
            return None
        from . import fused
        if backend_name(xp) == "cupy":
            return fused.kernels_for(self)
        return fused.kernels_for(self, on="cpu") if xp is np else None

    def forward(self, X, num_steps, state=None):
        kernels = self._fused(get_xp(X), X.dtype)
        if kernels is None:
            return super().forward(X, num_steps, state)
        num_steps = _check_current(X, num_steps)
        start = None if state is None else self._check_state(state, X)
        I = _as_bn(X)                                     # (B, N) static, or (T, B, N)
        U, S = kernels.forward(self, I[0] if X.shape[0] == 1 else I, num_steps,
                               None if start is None else tuple(_as_n(a) for a in start))
        shape = (num_steps,) + X.shape[1:]
        arrays = dict(X=X, U=U.reshape(shape), S=S.reshape(shape))
        rec = Record(**arrays) if start is None else Record(**arrays, start=start)
        return rec.S, rec

    def backward_segment(self, rec, d_out=None, dU=None, carry=None):
        kernels = self._fused(get_xp(rec.U), rec.U.dtype)
        if kernels is None:
            return super().backward_segment(rec, d_out, dU, carry)
        _check_grads(rec, d_out, dU)
        X = rec.X
        start = rec.start if "start" in rec else None
        I = _as_bn(X)[0] if X.shape[0] == 1 else _as_bn(X)
        flat = Record(X=I, U=_as_bn(rec.U), S=_as_bn(rec.S))
        grads = (None if dU is None else _as_bn(dU), None if d_out is None else _as_bn(d_out))
        if start is None and carry is None:               # a whole window: no carry either way
            return kernels.backward(self, flat, *grads).reshape(X.shape), None
        dI, carry_out = kernels.backward(self, flat, *grads,
                                         None if start is None else tuple(map(_as_n, start)),
                                         None if carry is None else _as_n(carry))
        return dI.reshape(X.shape), (None if carry_out is None else
                                     carry_out.reshape(rec.U.shape[1:]))


def _as_n(a):
    """(B, ...) as (B, N): one step of state, as the kernels take it."""
    return a.reshape(a.shape[0], -1)


def _as_bn(a):
    """(T, B, ...) as (T, B, N), the layout of the fused kernels (a view when contiguous)."""
    return a.reshape(a.shape[0], a.shape[1], -1)


# ----------------------------------------------------------------------------- checks

def _check_grads(rec, d_out, dU):
    for name, d in (("d_out", d_out), ("dU", dU)):
        if d is not None:
            check_array(d, name)
            if d.shape != rec.U.shape or d.dtype != rec.U.dtype:
                raise ValueError(f"{name} must have the shape and dtype of the records, "
                                 f"{tuple(rec.U.shape)} {rec.U.dtype}; got {tuple(d.shape)} "
                                 f"{d.dtype}")


def _check_current(X, num_steps):
    check_array(X, "X")
    num_steps = check_num_steps(num_steps)
    if X.ndim < 2 or X.shape[0] not in (1, num_steps):
        raise ValueError(f"the input current must have shape (T, B, ...) with T = num_steps = "
                         f"{num_steps}, or (1, B, ...) for a current that is the same at every "
                         f"step; got {tuple(X.shape)}")
    if X.dtype.kind != "f":
        raise TypeError(f"the input current must be a floating-point array, got {X.dtype}")
    return num_steps


def is_number(v):
    """A real number (Python or NumPy), not a bool."""
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)


def _check_threshold(threshold):
    if not is_number(threshold) or not float(threshold) > 0 or not math.isfinite(float(threshold)):
        raise ValueError(f"threshold must be a number > 0 and finite, got {threshold!r}")
    return float(threshold)


def _check_decay(name, value):
    if not is_number(value):
        raise TypeError(f"{name} must be a number in [0, 1], got {value!r}")
    if not 0.0 <= float(value) <= 1.0:
        raise ValueError(f"{name} must be in [0, 1], got {value}")
    return float(value)


def _check_flag(name, flag):
    if not isinstance(flag, bool):
        raise TypeError(f"{name} must be True or False, got {flag!r}")
    return flag


def _decay_param(value, learn):
    """A decay (β, α) and its gradient: a Python float and None, or, to learn it, a 0-d float64
    array on the default backend (used in the dtype of the layer's input) and its gradient."""
    if not learn:
        return value, None
    xp = get_backend()
    return xp.asarray(value, dtype="float64"), xp.zeros((), dtype="float64")

"""Spike encoders: turning input values into spike trains, with snnTorch's definitions.

    import minisnn as ms
    S = ms.spikegen.rate(x, num_steps=25, rng=0)       # (T, B, 784), Bernoulli spikes
    S = ms.spikegen.latency(x, num_steps=25)           # one spike per value: bright is early
    S = ms.spikegen.delta(frames, threshold=0.1)       # spikes where a signal changes

Each function gives the spike times snnTorch's `snntorch.spikegen` function of the same name
gives with the same arguments (`rate`: the same distribution; its random numbers come from a
different generator), returns them in the input's dtype (float32 or float64) on the input's
backend, and has no loop over elements. Outputs have a leading time axis, as the engine's
records do: feed them to `net(S, num_steps)`.

Values (NaN, the [0, 1] range of `latency`, its spike-time bound) are checked on NumPy arrays
only: on CuPy the check would stall the GPU (see minisnn.checks).
"""
import numpy as np

from .backend import get_xp, is_cupy_array
from .checks import check_array, check_num_steps

EPSILON = 1e-7  # snnTorch's `epsilon` in latency: keeps x − θ above 0 in the log code


def _check_x(x, name="x"):
    check_array(x, name)
    if x.dtype not in ("float32", "float64"):
        raise TypeError(f"{name} must be a float32 or float64 array, got dtype {x.dtype}; "
                        f"convert it first, e.g. {name}.astype('float32') / 255 for pixels")
    if not is_cupy_array(x) and not bool(get_xp(x).isfinite(x).all()):
        raise ValueError(f"{name} contains NaN or inf")
    return x


def _number(value, name, low=None, strict=False):
    """A real Python number, optionally > low (strict) or >= low; returned as a float."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not -float("inf") < float(value) < float("inf"):
        raise TypeError(f"{name} must be a finite number, got {value!r}")
    if low is not None and not (float(value) > low if strict else float(value) >= low):
        raise ValueError(f"{name} must be {'>' if strict else '>='} {low:g}, got {value!r}")
    return float(value)


def _flag(value, name):
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return value


def _generator(rng, xp):
    """The random generator for `rate`, on the backend `xp` of the input.

    None or an int seed makes a new `xp.random.default_rng(seed)` (NumPy's PCG64, or CuPy's
    cuRAND-based Generator on the GPU); a Generator is used as it is, and must belong to the
    input's backend: drawing on the host for a device input would copy every spike over the bus.
    """
    if rng is None or (isinstance(rng, (int, np.integer)) and not isinstance(rng, bool)):
        return xp.random.default_rng(rng)
    module = type(rng).__module__.split(".")[0]
    backend = xp.__name__.split(".")[0]
    if not callable(getattr(rng, "random", None)) or isinstance(rng, np.random.RandomState):
        raise TypeError(f"rng must be None, an int seed or a {backend}.random.Generator "
                        f"(e.g. {backend}.random.default_rng(0)), got {rng!r}")
    if module != backend:
        raise TypeError(f"rng is a {module} generator but x is a {backend} array: pass an int "
                        f"seed, or a {backend}.random.Generator ({backend}.random.default_rng(seed))")
    return rng


def rate(x, num_steps, gain=1.0, offset=0.0, rng=None):
    """Rate code: every value is the firing probability of an independent spike at each step.

        p = clip(gain·x + offset, 0, 1)
        S[t] = 1 if u[t] < p else 0,   u[t] uniform on [0, 1), drawn afresh for t = 0 … T−1

    so S[t] ~ Bernoulli(p): p = 0 never fires, p = 1 fires at every step, and the expected
    spike count of a value is T·p. x: any shape, e.g. (B, 784) pixels in [0, 1]; returns S with
    shape (T, *x.shape) in x's dtype, on x's backend.

    rng: None (fresh entropy), an int seed, or a Generator of x's backend: a
    `numpy.random.Generator` for NumPy arrays, a `cupy.random.Generator` for CuPy arrays. The
    same seed gives the same spikes on the same backend; NumPy and CuPy draw different numbers.

    snnTorch: `snntorch.spikegen.rate(x, num_steps, gain, offset)` samples the same distribution
    with torch's generator. Its `first_spike_time` and `time_var_input` are not here: for a
    time-varying input (T, B, ...) use `rate(x, 1, ...)[0]`, and zero S[:k] yourself to silence
    the first k steps.
    """
    _check_x(x)
    T = check_num_steps(num_steps)
    dt = x.dtype.type
    xp = get_xp(x)
    generator = _generator(rng, xp)
    p = x * dt(_number(gain, "gain")) + dt(_number(offset, "offset"))     # x.shape
    p = xp.clip(p, dt(0), dt(1), out=p)
    u = generator.random((T,) + x.shape, dtype=x.dtype)                   # (T, *x.shape)
    return (u < p).astype(x.dtype)


def latency(x, num_steps, threshold=0.01, tau=1.0, first_spike_time=0, clip=False,
            normalize=False, linear=False):
    """Latency code: each value x in [0, 1] fires exactly once, larger values earlier.

    The spike time t of each value (θ = threshold, τ = tau, t0 = first_spike_time):

      logarithmic (default), the time an RC circuit driven by x takes to charge up to θ:
          x' = max(x, θ + ε)                       (ε = 1e-7: values up to θ + ε saturate)
          t  = τ · ln(x' / (x' − θ)) + t0
          normalize=True:  t ← (t − t0)·(T − 1 − t0) / max(t − t0) + t0
      linear=True:
          t  = min(τ·(1 − x), τ·(1 − θ)) + t0      normalize=True sets τ = T − 1 − t0

    and the spike is at step k = round(t), rounding half to even: S[k] = 1, S elsewhere 0.
    Returns S with shape (T, *x.shape) in x's dtype, on x's backend.

    The quirks, all snnTorch's (`snntorch.spikegen.latency` with the same arguments gives the
    same spike steps, checked by tests/test_spikegen.py):
      * A value below θ is not dropped: it fires at the saturated time, the latest a value can
        have (log code: τ·ln((θ+ε)/ε) + t0, ≈ 11.5·τ for θ = 0.01, so *not* at the last step
        unless normalize=True; linear code: τ·(1 − θ) + t0). clip=True removes these spikes
        (values x < θ; a value equal to θ still fires).
      * normalize=True scales by the largest time in the whole array (every sample of the
        batch together), which is the saturated time as soon as one value is below θ.
      * A spike time that rounds past T − 1 is an error (lower tau, or normalize=True).
    Not here: snnTorch's bypass, interpolate, on_target/off_target (targets, not inputs).
    """
    _check_x(x)
    T = check_num_steps(num_steps)
    thr = _number(threshold, "threshold")
    if not 0 < thr < 1:
        raise ValueError(f"threshold must be in (0, 1), got {threshold!r}")
    tau = _number(tau, "tau", low=0, strict=True)
    if isinstance(first_spike_time, bool) or not isinstance(first_spike_time, (int, np.integer)) \
            or not 0 <= first_spike_time <= T - 1:
        raise ValueError(f"first_spike_time must be an integer in [0, num_steps − 1] = "
                         f"[0, {T - 1}], got {first_spike_time!r}")
    t0 = int(first_spike_time)
    clip, normalize, linear = (_flag(v, n) for v, n in
                               ((clip, "clip"), (normalize, "normalize"), (linear, "linear")))
    xp, dt, host = get_xp(x), x.dtype.type, not is_cupy_array(x)
    if host and x.size and (float(x.min()) < 0 or float(x.max()) > 1):
        raise ValueError(f"x must hold values in [0, 1] for the latency code, got values from "
                         f"{float(x.min()):g} to {float(x.max()):g}")

    # spike times, in x's dtype and in snnTorch's order of operations (so they round alike)
    if linear:
        tau_ = T - 1 - t0 if normalize else tau
        t = xp.minimum(dt(-tau_) * (x - dt(1)), dt(-tau_ * (thr - 1))) + dt(t0)
    else:
        xs = xp.maximum(x, dt(thr + EPSILON))
        t = dt(tau) * xp.log(xs / (xs - dt(thr)))
        if t0 > 0:
            t += dt(t0)
        if normalize:
            t = (t - dt(t0)) * dt(T - 1 - t0) / (t - dt(t0)).max() + dt(t0)
    k = xp.rint(t)                                                   # half to even, as torch.round
    if host and k.size and float(k.max()) > T - 1:
        raise ValueError(f"a spike time rounds to step {int(k.max())}, past the last step "
                         f"{T - 1} of num_steps={T}: lower tau (now {tau:g}), raise num_steps, "
                         f"or set normalize=True")
    if clip:
        k = xp.where(x < dt(thr), dt(-1), k)                         # a step that never comes
    steps = xp.arange(T, dtype=x.dtype).reshape((T,) + (1,) * x.ndim)
    return (steps == k).astype(x.dtype)                              # (T, *x.shape)


def delta(x, threshold=0.1, padding=False, off_spike=False):
    """Delta modulation: a spike where the input rose by at least θ since the previous step.

        ΔX[t] = X[t] − X[t−1],   with X[−1] = 0 (padding=False) or X[−1] = X[0] (padding=True)
        S[t]  = 1 if ΔX[t] ≥ θ,  else 0
        off_spike=True:  S[t] = 1 if ΔX[t] ≥ θ, −1 if ΔX[t] ≤ −θ, else 0

    x: time-major (T, ...), e.g. (T, B, N) or a signal (T,); returns S of x's shape and dtype,
    on x's backend. With padding=False the first step compares with zero, so a value ≥ θ at
    t = 0 fires. As in `snntorch.spikegen.delta`; θ must be ≥ 0 here.
    """
    _check_x(x)
    if x.ndim < 1 or x.shape[0] < 1:
        raise ValueError(f"x must be time-major with at least one step, (T, ...), got shape "
                         f"{tuple(x.shape)}")
    dt = x.dtype.type
    thr = dt(_number(threshold, "threshold", low=0))
    xp = get_xp(x)
    first = x[:1] if _flag(padding, "padding") else xp.zeros_like(x[:1])
    dX = x - xp.concatenate((first, x[:-1]))                         # (T, ...)
    S = (dX >= thr).astype(x.dtype)
    if _flag(off_spike, "off_spike"):
        S -= (dX <= -thr).astype(x.dtype)
    return S

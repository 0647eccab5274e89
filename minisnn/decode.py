"""Reading a class out of the output spikes: rate code, latency code, and accuracy.

The decoders are called `predict_*`: they turn output spikes (T, B, C) into class predictions
(B,). The names `rate` and `latency` belong to the encoders in `minisnn.spikegen` (as in
snnTorch); asking for `minisnn.rate` or `minisnn.latency` raises an error that says so.
"""
from .backend import get_xp
from .checks import check_record

_RENAMED = {"rate": "predict_rate", "latency": "predict_latency"}


def predict_rate(spk_rec):
    """Rate code: the class whose neuron fired most, argmax_i Σ_t S_i[t] (ties: the lowest
    index). (B,) — the prediction snnTorch's `accuracy_rate` scores."""
    check_record(spk_rec, "spk_rec")
    return spk_rec.sum(axis=0).argmax(axis=1)


def first_spike_time(spk_rec):
    """Step of each neuron's first spike, (B, C); T for a neuron that never fired.

    snnTorch's `accuracy_temporal` gives a silent neuron T − 1 instead, the step of a spike at
    the very end; get its times with `minimum(first_spike_time(spk), T − 1)`. (Not to be
    confused with the `first_spike_time` argument of the encoders: the earliest step allowed.)
    """
    check_record(spk_rec, "spk_rec")
    xp = get_xp(spk_rec)
    T = spk_rec.shape[0]
    fired = spk_rec > 0
    return xp.where(fired.any(axis=0), fired.argmax(axis=0), T)


def predict_latency(spk_rec):
    """Latency code: the class whose neuron fired first, argmin_i first_spike_time (ties: the
    lowest index). (B,)

    Differs from snnTorch's `accuracy_temporal` on purpose: a silent neuron counts as firing at
    T here, at T − 1 there, where it ties with a spike at the last step and, having a lower
    index, can win. snnTorch's prediction, if you need it:
        T = spk.shape[0];  xp.minimum(ms.first_spike_time(spk), T - 1).argmin(axis=1)
    """
    return first_spike_time(spk_rec).argmin(axis=1)


def accuracy(pred, y):
    """Fraction of predictions equal to the labels, as a Python float."""
    if pred.shape != y.shape:
        raise ValueError(f"pred and y must have the same shape, got {tuple(pred.shape)} and "
                         f"{tuple(y.shape)}")
    return float((pred == y).mean())


def renamed_error(module, name):
    """The AttributeError for `module.name`; for the old decoder names it says what replaced
    them (`minisnn.rate` was a decoder; in snnTorch, and now here, `rate` is an encoder)."""
    if name in _RENAMED:
        return AttributeError(
            f"module {module!r} has no attribute {name!r}: the decoder is now "
            f"minisnn.{_RENAMED[name]}(spk_rec); the spike encoder of that name (snnTorch's "
            f"spikegen.{name}) is minisnn.spikegen.{name}")
    return AttributeError(f"module {module!r} has no attribute {name!r}")


def __getattr__(name):          # minisnn.decode.rate / .latency: say where they went
    raise renamed_error(__name__, name)

"""Reading a class out of the output spikes: rate code, latency code, and accuracy."""
from .backend import get_xp
from .checks import check_record


def rate(spk_rec):
    """Rate code: the class whose neuron fired most, Σ_t S[t] (ties: the lowest index). (B,)"""
    check_record(spk_rec, "spk_rec")
    return spk_rec.sum(axis=0).argmax(axis=1)


def first_spike_time(spk_rec):
    """Step of each neuron's first spike, (B, C); T for a neuron that never fired."""
    check_record(spk_rec, "spk_rec")
    xp = get_xp(spk_rec)
    T = spk_rec.shape[0]
    fired = spk_rec > 0
    return xp.where(fired.any(axis=0), fired.argmax(axis=0), T)


def latency(spk_rec):
    """Latency code: the class whose neuron fired first (ties: the lowest index). (B,)"""
    return first_spike_time(spk_rec).argmin(axis=1)


def accuracy(pred, y):
    """Fraction of predictions equal to the labels, as a Python float."""
    if pred.shape != y.shape:
        raise ValueError(f"pred and y must have the same shape, got {tuple(pred.shape)} and "
                         f"{tuple(y.shape)}")
    return float((pred == y).mean())

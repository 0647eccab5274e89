"""Losses. Each returns (loss, gradient with respect to the recorded outputs it reads).

The spike losses carry snnTorch's names with snnTorch's definitions (`snntorch.functional`,
mean reduction, no population code or class weights): the same values and gradients in float64,
checked against snnTorch's autograd by tests/test_snntorch_names.py.
"""
import numbers

from .backend import get_xp
from .checks import check_labels, check_record


def _one_hot(y, C, dtype, xp):
    return (y[:, None] == xp.arange(C)[None, :]).astype(dtype)  # (B, C)


def _checked(rec, y, name):
    check_record(rec, name)
    T, B, C = rec.shape
    check_labels(y, B, C, rec)
    return T, B, C


def _cross_entropy(z, y, C):
    """Softmax cross-entropy of the logits z (..., B, C), summed over the leading axes and
    averaged over the batch B, and its gradient (softmax(z) − y)/B (a new array).

    log p = z − max − log Σ exp(z − max), with the class axis moved first (one copy): the
    maxima and sums over the C classes are then element-wise operations between C slices,
    where NumPy's reductions over a short last axis are slow (0.3 of this function's 0.4 ms
    for the seed's (25, 128, 10) on the machine of docs/benchmarks.md)."""
    xp = get_xp(z)
    B = z.shape[-2]
    logp = xp.moveaxis(z, -1, 0).copy()                   # (C, ..., B)
    logp -= logp.max(axis=0)
    logp -= xp.log(xp.exp(logp).sum(axis=0))
    onehot = _one_hot(y, C, z.dtype, xp).T.reshape((C,) + (1,) * (z.ndim - 2) + (B,))
    loss = -(logp * onehot).sum() / B
    dz = xp.exp(logp, out=logp)                           # softmax(z), in logp's memory
    dz -= onehot
    dz /= B
    return loss, xp.ascontiguousarray(xp.moveaxis(dz, 0, -1))    # (..., B, C)


def ce_membrane_loss(mem_rec, y):
    """The seed's loss: softmax cross-entropy on the output membrane at every step.

        p_i[t] = exp(U_i[t]) / Σ_j exp(U_j[t])                                 (8)
        L[t] = −Σ_i y_i log p_i[t],  averaged over the batch                   (9)
        L = Σ_t L[t]                                                           (10)

    mem_rec (T, B, C), y (B,) integer labels. Returns L (0-d array) and ∂L/∂U[t] = (p[t] − y)/B.
    (snnTorch tutorials write this as a loop of nn.CrossEntropyLoss over the steps.)
    """
    _, _, C = _checked(mem_rec, y, "mem_rec")
    return _cross_entropy(mem_rec, y, C)


def ce_rate_loss(spk_rec, y):
    """snnTorch's `ce_rate_loss`: the cross-entropy of the spikes at each step, averaged over
    the steps (the correct class should fire at every step, the others never).

        p_i[t] = exp(S_i[t]) / Σ_j exp(S_j[t])
        L = (1/T) Σ_t (1/B) Σ_b −log p_{y_b}[t]

    spk_rec (T, B, C), y (B,) integer labels. Returns L and ∂L/∂S[t] = (p[t] − y)/(B·T).
    For one softmax of the spike counts instead, use `ce_count_loss`.
    """
    T, _, C = _checked(spk_rec, y, "spk_rec")
    loss, d_spk = _cross_entropy(spk_rec, y, C)
    d_spk /= T
    return loss / T, d_spk


def ce_count_loss(spk_rec, y):
    """snnTorch's `ce_count_loss`: one softmax cross-entropy of the spike counts.

        c_i = Σ_t S_i[t],   p_i = exp(c_i) / Σ_j exp(c_j),   L = (1/B) Σ_b −log p_{y_b}

    spk_rec (T, B, C), y (B,). Returns L and ∂L/∂S[t] = (p − y)/B, the same at every step.
    """
    _, _, C = _checked(spk_rec, y, "spk_rec")
    xp = get_xp(spk_rec)
    loss, d_count = _cross_entropy(spk_rec.sum(axis=0), y, C)        # d_count (B, C)
    return loss, xp.broadcast_to(d_count, spk_rec.shape).copy()


def mse_count_loss(spk_rec, y, correct_rate=1.0, incorrect_rate=0.0):
    """snnTorch's `mse_count_loss`: squared error between spike counts and target counts,
    divided by the number of steps.

        c_i = Σ_t S_i[t]
        target_i = int(T·correct_rate) for the correct class, int(T·incorrect_rate) otherwise
        L = (1/T) · mean over batch and classes of (c_i − target_i)²

    (int truncates, as in snnTorch: T = 25, correct_rate = 0.9 asks for 22 spikes, not 22.5.)
    spk_rec (T, B, C), y (B,); rates in [0, 1]. Returns L and ∂L/∂S[t] = 2(c − target)/(B·C·T),
    the same at every step.
    """
    T, B, C = _checked(spk_rec, y, "spk_rec")
    for name, r in (("correct_rate", correct_rate), ("incorrect_rate", incorrect_rate)):
        if isinstance(r, bool) or not isinstance(r, numbers.Real) or not 0 <= r <= 1:
            raise ValueError(f"{name} must be a number in [0, 1], got {r!r}")
    on, off = int(T * correct_rate), int(T * incorrect_rate)    # target spike counts
    xp = get_xp(spk_rec)
    target = _one_hot(y, C, spk_rec.dtype, xp) * (on - off) + off  # (B, C)
    diff = spk_rec.sum(axis=0) - target                          # (B, C)
    loss = (diff * diff).sum() / (B * C * T)
    diff *= 2 / (B * C * T)
    return loss, xp.broadcast_to(diff, spk_rec.shape).copy()

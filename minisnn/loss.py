"""Losses. Each returns (loss, gradient with respect to the recorded outputs it reads)."""
from .backend import get_xp
from .checks import check_labels, check_record


def _log_softmax(z, axis=-1):
    """log p = z − max − log Σ exp(z − max), as a new array (z is not changed)."""
    xp = get_xp(z)
    z = z - z.max(axis=axis, keepdims=True)
    z -= xp.log(xp.exp(z).sum(axis=axis, keepdims=True))
    return z


def _one_hot(y, C, dtype, xp):
    return (y[:, None] == xp.arange(C)[None, :]).astype(dtype)  # (B, C)


def ce_membrane_loss(mem_rec, y):
    """The seed's loss: softmax cross-entropy on the output membrane at every step.

        p_i[t] = exp(U_i[t]) / Σ_j exp(U_j[t])                                 (8)
        L[t] = −Σ_i y_i log p_i[t],  averaged over the batch                   (9)
        L = Σ_t L[t]                                                           (10)

    mem_rec (T, B, C), y (B,) integer labels. Returns L (0-d array) and ∂L/∂U[t] = (p[t] − y)/B.
    """
    check_record(mem_rec, "mem_rec")
    T, B, C = mem_rec.shape
    check_labels(y, B, C, mem_rec)
    xp = get_xp(mem_rec)
    logp = _log_softmax(mem_rec)                          # (T, B, C)
    onehot = _one_hot(y, C, mem_rec.dtype, xp)            # (B, C)
    loss = -(logp * onehot).sum() / B
    d_mem = xp.exp(logp, out=logp)                        # p[t] (T, B, C), in logp's memory
    d_mem -= onehot
    d_mem /= B
    return loss, d_mem


def ce_rate_loss(spk_rec, y):
    """Cross-entropy on spike counts: softmax over c_i = Σ_t S_i[t], mean over the batch.
    Returns L and ∂L/∂S[t] = (softmax(c) − y)/B, the same at every step."""
    check_record(spk_rec, "spk_rec")
    T, B, C = spk_rec.shape
    check_labels(y, B, C, spk_rec)
    xp = get_xp(spk_rec)
    logp = _log_softmax(spk_rec.sum(axis=0))              # (B, C)
    onehot = _one_hot(y, C, spk_rec.dtype, xp)
    loss = -(logp * onehot).sum() / B
    d_count = (xp.exp(logp) - onehot) / B                 # (B, C)
    return loss, xp.broadcast_to(d_count, spk_rec.shape).copy()


def mse_count_loss(spk_rec, y, correct_rate=0.8, incorrect_rate=0.2):
    """Mean squared error between spike counts c_i = Σ_t S_i[t] and target counts: the correct
    class should fire on `correct_rate`·T steps, the others on `incorrect_rate`·T steps.
    L = mean over batch and classes of (c − target)²; ∂L/∂S[t] = 2(c − target)/(B·C) at every t."""
    check_record(spk_rec, "spk_rec")
    T, B, C = spk_rec.shape
    check_labels(y, B, C, spk_rec)
    for name, r in (("correct_rate", correct_rate), ("incorrect_rate", incorrect_rate)):
        if not 0 <= r <= 1:
            raise ValueError(f"{name} must be in [0, 1], got {r}")
    xp = get_xp(spk_rec)
    onehot = _one_hot(y, C, spk_rec.dtype, xp)
    target = T * (incorrect_rate + (correct_rate - incorrect_rate) * onehot)  # (B, C)
    diff = spk_rec.sum(axis=0) - target
    loss = (diff ** 2).mean()
    return loss, xp.broadcast_to(2 * diff / (B * C), spk_rec.shape).copy()

"""Checking the hand-written backward pass two independent ways.

1. Finite differences (`check_finite_differences`): on a smooth stand-in network (the spike is a
   sigmoid, the reset is not detached) the loss is a smooth function of every parameter, so
   central differences in float64 must agree with the backward pass, β terms included.
2. The literal equations (`literal_gradient`, `check_literal`): eq. (6) evaluated as the explicit
   double sum Σ_t Σ_{s≤t} ∂L[t]/∂W[s], each term the chain of eq. (7) multiplied out step by step
   with slow loops. It also returns the contribution of each step s to the loss at each step t.

Errors are reported as max|a − b| / max(max|a|, max|b|) per parameter array: relative to the
array's scale, so entries that are nearly zero do not blow up the ratio.
"""
import numpy as np

from .linear import Linear
from .loss import ce_membrane_loss
from .network import Sequential
from .neuron import Leaky


def rel_error(a, b):
    """max|a − b| / max(max|a|, max|b|), 0 when both are 0."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    scale = max(np.abs(a).max(), np.abs(b).max())
    return float(np.abs(a - b).max() / scale) if scale > 0 else 0.0


def numerical_gradient(f, x, h=1e-6):
    """Central differences (f(x+h) − f(x−h)) / 2h of the scalar f() for every entry of array x,
    which is changed in place and restored."""
    grad = np.zeros(x.shape, dtype=np.float64)
    flat, gflat = x.reshape(-1), grad.reshape(-1)
    for i in range(flat.size):
        old = flat[i].copy()
        flat[i] = old + h
        fp = float(f())
        flat[i] = old - h
        fm = float(f())
        flat[i] = old
        gflat[i] = (fp - fm) / (2 * h)
    return grad


def membrane_loss(y):
    """The seed's loss as a function of both records: returns (L, d_mem, d_spk)."""
    def loss_fn(spk_rec, mem_rec):
        L, d_mem = ce_membrane_loss(mem_rec, y)
        return L, d_mem, None
    return loss_fn


def analytic_gradients(net, x, num_steps, loss_fn):
    """Zero the gradients, run forward and backward once; returns {name: gradient copy}."""
    net.zero_grad()
    spk, mem = net(x, num_steps)
    L, d_mem, d_spk = loss_fn(spk, mem)
    net.backward(d_mem=d_mem, d_spk=d_spk)
    return {name: np.array(p.grad, dtype=np.float64) for name, p in net.named_parameters()}


def check_finite_differences(net, x, num_steps, loss_fn, h=1e-6):
    """Max relative error between the backward pass and central differences, per parameter.
    Use float64 and a smooth network (`smooth_stand_in`) for a meaningful answer."""
    analytic = analytic_gradients(net, x, num_steps, loss_fn)
    f = lambda: loss_fn(*net(x, num_steps))[0]
    return {name: rel_error(analytic[name], numerical_gradient(f, p.value, h))
            for name, p in net.named_parameters()}


def smooth_stand_in(sizes, beta=0.9, reset="subtract", learn_beta=True, seed=0, slope=4.0,
                    neuron="leaky", alpha=0.8):
    """A float64 network whose spikes are sigmoids and whose reset is not detached, so that its
    loss is differentiable everywhere: the test bed for finite differences. neuron: 'leaky',
    'synaptic' (α learned too when learn_beta) or 'rleaky' (its V and b_V always learned)."""
    from .rleaky import RLeaky
    from .surrogate import SmoothSigmoid
    from .synaptic import Synaptic
    rng = np.random.default_rng(seed)
    kw = dict(surrogate=SmoothSigmoid(slope), reset=reset, detach_reset=False,
              learn_beta=learn_beta)
    make = {"leaky": lambda n: Leaky(beta, **kw),
            "synaptic": lambda n: Synaptic(alpha, beta, learn_alpha=learn_beta, **kw),
            "rleaky": lambda n: RLeaky(n, beta, dtype="float64", rng=rng, **kw)}
    if neuron not in make:
        raise ValueError(f"neuron must be one of {sorted(make)}, got {neuron!r}")
    layers = []
    for n_in, n_out in zip(sizes, sizes[1:]):
        layers += [Linear(n_in, n_out, dtype="float64", rng=rng), make[neuron](n_out)]
    return Sequential(*layers)


def _dU_dUprev(leaky, U, S, g, k):
    """∂U[k]/∂U[k−1], read straight off eq. (1) U[k] = β·U[k−1] + I[k] − R[k−1]."""
    beta, thr = float(leaky.beta), leaky.threshold
    if leaky.reset == "subtract":    # R = θ·S[k−1]
        d = beta + 0 * U[k - 1]
        if not leaky.detach_reset:
            d = d - thr * g[k - 1]
    elif leaky.reset == "zero":      # R = β·S[k−1]·U[k−1]
        d = beta * (1 - S[k - 1])
        if not leaky.detach_reset:
            d = d - beta * U[k - 1] * g[k - 1]
    else:                            # no reset
        d = beta + 0 * U[k - 1]
    return d


def literal_gradient(linear, leaky, X, U, S, dU_direct=None, dS_direct=None):
    """Eq. (6) for one Linear + Leaky layer, as the literal double sum over t and s ≤ t.

    X: the layer's input, (1, B, F) or (B, F) static, or (T, B, F); U, S (T, B, N): its records;
    dU_direct[t], dS_direct[t]: ∂L[t]/∂U[t] and ∂L[t]/∂S[t], the loss at step t alone.
    Returns dW (N, F), db (N,), and contrib (T, T) with contrib[t, s] = ‖∂L[t]/∂W[s]‖ (Frobenius):
    how much using W at step s contributes to the gradient of the loss at step t (0 for s > t).
    Slow on purpose: every product of eq. (7) is multiplied out.
    """
    T = U.shape[0]
    zeros = np.zeros_like(U)
    dU_direct = zeros if dU_direct is None else dU_direct
    dS_direct = zeros if dS_direct is None else dS_direct
    g = leaky.surrogate.grad(U - leaky.threshold, S)                   # ∂S̃/∂U, eq. (5)
    dW, db = np.zeros_like(linear.W), np.zeros_like(linear.b)
    contrib = np.zeros((T, T))
    for t in range(T):
        dLt_dUt = dU_direct[t] + dS_direct[t] * g[t]                    # ∂L[t]/∂U[t]
        for s in range(t + 1):
            chain = dLt_dUt
            for k in range(t, s, -1):                                   # Π_{k=s+1..t} ∂U[k]/∂U[k−1]
                chain = chain * _dU_dUprev(leaky, U, S, g, k)
            X_s = X if X.ndim == 2 else X[0] if X.shape[0] == 1 else X[s]   # ∂I[s]/∂W[s] = X[s]
            term_W = chain.T @ X_s                                      # ∂L[t]/∂W[s]  (N, F)
            dW += term_W
            db += chain.sum(axis=0)
            contrib[t, s] = np.sqrt((term_W ** 2).sum())
    return dW, db, contrib


def check_literal(net, x, num_steps, loss_fn):
    """For a one-layer network (Linear, then a Leaky, Synaptic or RLeaky neuron): max relative
    error between the fast backward and the literal double sum of eq. (6), for W and b (and V,
    b_V of an RLeaky). Returns ({'W': err, 'b': err, ...}, contrib); contrib is the (t, s)
    contribution matrix of `literal_gradient` for a Leaky neuron, None for the others."""
    if len(net) != 2:
        raise ValueError("check_literal needs a one-layer network: Sequential(Linear, neuron)")
    linear, neuron = net[0], net[1]
    analytic = analytic_gradients(net, x, num_steps, loss_fn)
    rec = net.record[1]
    _, d_mem, d_spk = loss_fn(rec.S, rec.U)
    if type(neuron) is Leaky:
        dW, db, contrib = literal_gradient(linear, neuron, net.record[0].X, rec.U, rec.S, d_mem,
                                           d_spk)
        literal = {"W": dW, "b": db}
    else:
        from .literal import literal_gradients
        literal = literal_gradients(linear, neuron, net.record[0].X, rec.X, rec.U, rec.S, d_mem,
                                    d_spk)
        contrib = None
    names = {"W": "0.W", "b": "0.b", "V": "1.V", "b_V": "1.b_V"}
    return {k: rel_error(analytic[names[k]], v) for k, v in literal.items()}, contrib

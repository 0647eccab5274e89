"""Optimizers with PyTorch's update rules. Their state (moments, step count) is explicit,
in `state`, and travels with checkpoints.

Hyperparameters are checked as torch.optim checks them, and a little more: each must be a real
number (not a bool or a string) and finite; lr >= 0, momentum >= 0, weight_decay >= 0, betas in
[0, 1). Where minisnn is stricter than torch it says so: Adam's eps must be > 0 (torch allows
0, which gives 0/0 = NaN for every weight whose gradient is exactly zero).
"""
import math
import numbers

from .backend import array_module, get_xp, to_xp


def _hyper(name, value, least=0.0, strict=False, below=None):
    """A hyperparameter as a float, or ValueError/TypeError naming it and the expected range."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    value = float(value)
    low_ok = value > least if strict else value >= least
    if not (math.isfinite(value) and low_ok and (below is None or value < below)):
        want = (f"in [{least:g}, {below:g})" if below is not None else
                f"{'>' if strict else '>='} {least:g}")
        raise ValueError(f"{name} must be a finite number {want}, got {value!r}")
    return value


class Optimizer:
    def __init__(self, params, lr, weight_decay=0.0):
        self.params = list(params)
        if not self.params:
            raise ValueError("params is empty: pass net.parameters()")
        for i, p in enumerate(self.params):
            if not (hasattr(p, "value") and hasattr(p, "grad")):
                raise TypeError(f"params[{i}] must be a Param (from net.parameters()), got "
                                f"{type(p).__name__}")
        self.lr = _hyper("lr", lr)
        self.weight_decay = _hyper("weight_decay", weight_decay)
        self.state = {"step": 0}

    def zero_grad(self):
        for p in self.params:
            p.grad[...] = 0

    def state_arrays(self):
        """The per-parameter state arrays, by name, e.g. {'m': [...], 'v': [...]}."""
        return {k: v for k, v in self.state.items() if k != "step"}

    def to(self, backend):
        xp = array_module(backend)
        for k, arrays in self.state_arrays().items():
            self.state[k] = [to_xp(a, xp) for a in arrays]
        return self

    def _grad(self, p):
        """g, with weight decay as torch adds it: g + weight_decay·p (a new array then)."""
        if self.weight_decay:
            return p.grad + self.weight_decay * p.value
        return p.grad


class SGD(Optimizer):
    """p ← p − lr·buf,  buf ← momentum·buf + g  (buf = g on the first step), as torch.optim.SGD
    without dampening or Nesterov; weight_decay adds weight_decay·p to g first."""

    def __init__(self, params, lr=1e-2, momentum=0.0, weight_decay=0.0):
        super().__init__(params, lr, weight_decay)
        self.momentum = _hyper("momentum", momentum)
        self.state["buf"] = [get_xp(p.value).zeros_like(p.value) for p in self.params]

    def step(self):
        first = self.state["step"] == 0
        self.state["step"] += 1
        for p, buf in zip(self.params, self.state["buf"]):
            g = self._grad(p)
            if self.momentum:
                if first:
                    buf[...] = g
                else:
                    buf *= self.momentum
                    buf += g
                g = buf
            p.value -= self.lr * g


class Adam(Optimizer):
    """Adam as torch.optim.Adam (amsgrad off; weight_decay adds weight_decay·p to g first, as
    torch's Adam does; that is not AdamW's decoupled decay):
    m ← β1·m + (1−β1)·g;  v ← β2·v + (1−β2)·g²;
    p ← p − lr/(1−β1ᵗ) · m / (sqrt(v)/sqrt(1−β2ᵗ) + eps).

    On NumPy, where minisnn's CPU kernels are built (minisnn.cpu_kernels), each parameter's
    update runs as one pass (adam_kernel.c) with the same operations in the same order, so
    the same numbers bit for bit; `with minisnn.fused.disabled():` runs the code below."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        super().__init__(params, lr, weight_decay)
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise TypeError(f"betas must be a pair (beta1, beta2), got {betas!r}")
        self.betas = (_hyper("betas[0]", betas[0], below=1.0),
                      _hyper("betas[1]", betas[1], below=1.0))
        self.eps = _hyper("eps", eps, strict=True)
        self.state["m"] = [get_xp(p.value).zeros_like(p.value) for p in self.params]
        self.state["v"] = [get_xp(p.value).zeros_like(p.value) for p in self.params]

    def step(self):
        b1, b2 = self.betas
        self.state["step"] += 1
        t = self.state["step"]
        step_size = self.lr / (1 - b1 ** t)
        root_c2 = (1 - b2 ** t) ** 0.5
        for p, m, v in zip(self.params, self.state["m"], self.state["v"]):
            one_pass = _one_pass_adam(p, m, v)
            if one_pass is not None:
                real = p.value.dtype.type        # the constants rounded as NumPy rounds them
                one_pass(p.value, p.grad, m, v, *(real(c) for c in (
                    b1, 1 - b1, b2, 1 - b2, root_c2, self.eps, step_size, self.weight_decay)))
                continue
            g = self._grad(p)
            xp = get_xp(g)
            tmp = xp.empty_like(g)          # one scratch array per parameter, for every term below
            m *= b1                         # m ← β1·m + (1−β1)·g
            m += xp.multiply(g, 1 - b1, out=tmp)
            v *= b2                         # v ← β2·v + (1−β2)·g²
            xp.multiply(g, 1 - b2, out=tmp)
            tmp *= g
            v += tmp
            denom = xp.sqrt(v, out=tmp)     # sqrt(v)/sqrt(1−β2ᵗ) + eps
            denom /= root_c2
            denom += self.eps
            update = xp.divide(m, denom, out=tmp)
            update *= step_size             # lr/(1−β1ᵗ) · m / denom
            p.value -= update


def _one_pass_adam(p, m, v):
    """The CPU kernel for this parameter's update, or None: off the CPU, inside
    `fused.disabled()`, for other dtypes, non-contiguous or mixed arrays, or without kernels."""
    import numpy as np
    arrays = (p.value, p.grad, m, v)
    if not all(isinstance(a, np.ndarray) and a.flags.c_contiguous for a in arrays):
        return None
    if len({a.dtype for a in arrays}) != 1 or len({a.shape for a in arrays}) != 1 \
            or not all(a.flags.writeable for a in (p.value, m, v)):
        return None
    from . import cpu_kernels, fused
    return cpu_kernels.adam(p.value.dtype) if fused.enabled() else None

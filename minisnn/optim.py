"""Optimizers with PyTorch's update rules. Their state (moments, step count) is explicit,
in `state`, and travels with checkpoints."""
from .backend import array_module, get_xp, to_xp


class Optimizer:
    def __init__(self, params, lr):
        self.params = list(params)
        if not self.params:
            raise ValueError("params is empty: pass net.parameters()")
        if not lr > 0:
            raise ValueError(f"lr must be > 0, got {lr}")
        self.lr = lr
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


class SGD(Optimizer):
    """p ← p − lr·buf,  buf ← momentum·buf + g  (buf = g on the first step), as torch.optim.SGD."""

    def __init__(self, params, lr=1e-2, momentum=0.0):
        super().__init__(params, lr)
        if not 0 <= momentum < 1:
            raise ValueError(f"momentum must be in [0, 1), got {momentum}")
        self.momentum = momentum
        self.state["buf"] = [get_xp(p.value).zeros_like(p.value) for p in self.params]

    def step(self):
        first = self.state["step"] == 0
        self.state["step"] += 1
        for p, buf in zip(self.params, self.state["buf"]):
            g = p.grad
            if self.momentum:
                if first:
                    buf[...] = g
                else:
                    buf *= self.momentum
                    buf += g
                g = buf
            p.value -= self.lr * g


class Adam(Optimizer):
    """Adam as torch.optim.Adam (no weight decay):
    m ← β1·m + (1−β1)·g;  v ← β2·v + (1−β2)·g²;
    p ← p − lr/(1−β1ᵗ) · m / (sqrt(v)/sqrt(1−β2ᵗ) + eps)."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8):
        super().__init__(params, lr)
        b1, b2 = betas
        if not (0 <= b1 < 1 and 0 <= b2 < 1):
            raise ValueError(f"betas must both be in [0, 1), got {betas}")
        self.betas, self.eps = (b1, b2), eps
        self.state["m"] = [get_xp(p.value).zeros_like(p.value) for p in self.params]
        self.state["v"] = [get_xp(p.value).zeros_like(p.value) for p in self.params]

    def step(self):
        b1, b2 = self.betas
        self.state["step"] += 1
        t = self.state["step"]
        step_size = self.lr / (1 - b1 ** t)
        root_c2 = (1 - b2 ** t) ** 0.5
        for p, m, v in zip(self.params, self.state["m"], self.state["v"]):
            g = p.grad
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

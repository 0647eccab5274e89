"""Sequential: runs layers one after another, keeps the forward records, and runs BPTT back."""
from .backend import get_xp, to_xp, array_module
from .checks import check_array, check_float_input, check_num_steps
from .linear import Linear
from .neuron import Leaky


class Param:
    """A handle on one parameter array of a layer (`owner.W`) and its gradient (`owner.dW`).
    It reads the attributes each time, so a user may assign new arrays to the layer."""
    __slots__ = ("owner", "name")

    def __init__(self, owner, name):
        self.owner, self.name = owner, name

    value = property(lambda self: getattr(self.owner, self.name),
                     lambda self, v: setattr(self.owner, self.name, v))
    grad = property(lambda self: getattr(self.owner, "d" + self.name),
                    lambda self, v: setattr(self.owner, "d" + self.name, v))

    def __repr__(self):
        return f"Param({type(self.owner).__name__}.{self.name}, shape={tuple(self.value.shape)})"


class Sequential:
    """A feed-forward stack of Linear and Leaky layers, ending in a Leaky layer.

    `net(x, num_steps)` returns the spikes and membrane of the last layer (T, B, out) and keeps,
    for every layer i, `net.record[i]` with X, U, S. `net.backward(d_mem=..., d_spk=...)` reads
    those records and adds each parameter's gradient into `dW`, `db` (and `dbeta`).
    Because the stack is feed-forward, each layer runs over all T steps before the next one:
    Linear layers do one matmul for all steps, Leaky layers loop over time.
    """

    def __init__(self, *layers):
        if not layers:
            raise ValueError("Sequential needs at least one layer")
        for i, layer in enumerate(layers):
            if not isinstance(layer, (Linear, Leaky)):
                raise TypeError(f"layer {i} must be a minisnn Linear or Leaky, got {layer!r}")
        if not isinstance(layers[-1], Leaky):
            raise ValueError("the last layer must be a Leaky layer: the network returns its "
                             "spikes and membrane")
        linears = [l for l in layers if isinstance(l, Linear)]
        if not linears or not isinstance(layers[0], Linear):
            raise ValueError("the first layer must be a Linear layer: it turns the input into a current")
        for a, b in zip(linears, linears[1:]):
            if a.out_features != b.in_features:
                raise ValueError(f"layer sizes do not chain: {a!r} is followed by {b!r}")
        self.layers = list(layers)
        self.record = None

    def __getitem__(self, i):
        return self.layers[i]

    def __len__(self):
        return len(self.layers)

    def __repr__(self):
        return "Sequential(\n" + "".join(f"  ({i}) {l!r}\n" for i, l in enumerate(self.layers)) + ")"

    @property
    def dtype(self):
        return self.layers[0].W.dtype

    @property
    def xp(self):
        return get_xp(self.layers[0].W)

    def parameters(self):
        return [Param(layer, n) for layer in self.layers for n in layer.param_names()]

    def zero_grad(self):
        for p in self.parameters():
            p.grad[...] = 0

    def to(self, backend):
        """Move every parameter and gradient to 'numpy' or 'cupy' (explicit copies)."""
        xp = array_module(backend)
        for p in self.parameters():
            p.value, p.grad = to_xp(p.value, xp), to_xp(p.grad, xp)
        self.record = None
        return self

    def __call__(self, x, num_steps=None):
        return self.forward(x, num_steps)

    def forward(self, x, num_steps=None):
        """x: (B, F) static or (T, B, F) time-varying. Returns (spk_rec, mem_rec), each (T, B, out)."""
        check_array(x, "x")
        F = self.layers[0].in_features
        if x.ndim not in (2, 3) or x.shape[-1] != F:
            raise ValueError(f"x must have shape (B, {F}) for a static input or (T, B, {F}) for a "
                             f"time-varying one, got {tuple(x.shape)}")
        if x.ndim == 2:
            if num_steps is None:
                raise ValueError("num_steps is required when x is static (B, F)")
            num_steps = check_num_steps(num_steps)
        else:
            if num_steps is not None and check_num_steps(num_steps) != x.shape[0]:
                raise ValueError(f"num_steps={num_steps} does not match x's time axis of length "
                                 f"{x.shape[0]}")
            num_steps = x.shape[0]
        if get_xp(x) is not self.xp:
            raise TypeError("x and the network's parameters are on different backends; move x "
                            "explicitly (minisnn.backend.to_xp) or the network (net.to(...))")
        check_float_input(x, "x", self.dtype)
        self.record = None                # free the last pass's records before making new ones
        records, h = [], x
        for layer in self.layers:
            h, rec = layer.forward(h, num_steps)
            records.append(rec)
        self.record = records
        return records[-1].S, records[-1].U

    def backward(self, d_mem=None, d_spk=None):
        """BPTT through every layer, last to first. d_mem = ∂L/∂U and d_spk = ∂L/∂S of the output
        layer, (T, B, out); give one or both. Gradients are added into the layers' dW, db, dbeta."""
        if self.record is None:
            raise RuntimeError("backward() needs a forward pass first: call net(x, num_steps)")
        out = self.record[-1].U
        if d_mem is None and d_spk is None:
            raise ValueError("backward() needs d_mem, d_spk or both")
        for name, d in (("d_mem", d_mem), ("d_spk", d_spk)):
            if d is not None:
                check_array(d, name)
                if d.shape != out.shape or d.dtype != out.dtype:
                    raise ValueError(f"{name} must have shape {tuple(out.shape)} and dtype "
                                     f"{out.dtype} like the output records, got "
                                     f"{tuple(d.shape)} {d.dtype}")
        dU, dS = d_mem, d_spk
        for i in range(len(self.layers) - 1, -1, -1):
            layer, rec = self.layers[i], self.record[i]
            if isinstance(layer, Leaky):
                # The caller's d_spk stays as it was; a ∂L/∂S that a Linear layer made in this
                # loop is ours, and its memory can take ∂L/∂U.
                dI = layer.backward(rec, dU, dS, overwrite_dS=dS is not d_spk)
                dU, dS = None, None
            else:
                dS = layer.backward(rec, dI, need_dX=i > 0)

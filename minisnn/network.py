"""Sequential: runs layers one after another, keeps the forward records, and runs BPTT back.

The layer protocol — everything `Sequential` relies on, for built-in layers and a user's own:

    layer.forward(X, num_steps) -> (out, record)
        X and out carry a leading time axis: (T, B, ...), or (1, B, ...) for a value that is the
        same at every step (a static image, and what a stateless layer makes of it: computed
        once, not T times). A spiking layer turns a (1, B, ...) current into (T, B, ...) spikes.
        `record` is whatever backward needs (a `minisnn.record.Record`, as a rule).
    layer.backward(record, d_out) -> d_X
        d_out = ∂L/∂out, d_X = ∂L/∂X with X's shape (a static X's gradient is summed over time,
        eq. 6). It ADDS each parameter's gradient into the layer's `d<name>` (a value used twice
        gets both gradients: never overwrite). It may reuse d_out's memory: Sequential passes
        only arrays it owns.
    layer.param_names() -> tuple of names
        the layer's parameters, attributes `W`, `b`, ... each with its gradient in `dW`, `db`, ...
        (plain arrays: the optimizers, save/load and minisnn.gradcheck reach them through these).

Optional, for the layers that need them:
    sample_ndim      the first layer's number of dimensions of one sample (Linear: 1, a vector;
                     Conv2d: 3, (C, H, W)), so that `net(x, num_steps)` can take a static x
                     without its time axis.
    backward(..., need_dX=False)   the network's input needs no gradient: Sequential asks this of
                     its first layer, which may then skip computing it and return None.
    backward(..., dU=...)          ∂L/∂U on a spiking layer's membrane record, for losses on the
                     membrane (the seed's): Sequential passes `net.backward(d_mem=...)` this way
                     to its last layer, which must be a spiking layer (its record has U and S).
    layers           a layer that holds other layers (Residual) lists them here, for their
                     parameters.
    state_names      the names of the state a layer keeps from step to step (Leaky: ('U', 'S'));
                     () for a stateless layer.

Because the stack is feed-forward, each layer runs over all T steps before the next one: a Linear
layer does one matmul for all steps, a neuron loops over time.
"""
import inspect

from .backend import array_module, backend_name, get_xp, to_xp
from .checks import check_array, check_float_input, check_num_steps

PROTOCOL = ("forward", "backward", "param_names")


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


def check_layer(layer, where):
    """Raise a TypeError unless `layer` speaks the layer protocol (see the module docstring)."""
    missing = [m for m in PROTOCOL if not callable(getattr(layer, m, None))]
    if missing:
        raise TypeError(f"{where} ({type(layer).__name__}) has no {', '.join(missing)}: a layer "
                        f"needs forward(X, num_steps) -> (out, record), backward(record, d_out) "
                        f"-> d_X and param_names() (see minisnn.network)")
    return layer


def named_parameters(layers, prefix=""):
    """[(name, Param)] of every parameter of `layers`, named 'i.W' (and 'i.j.W' inside a layer
    that holds layers)."""
    out = []
    for i, layer in enumerate(layers):
        out += [(f"{prefix}{i}.{n}", Param(layer, n)) for n in layer.param_names()]
        if getattr(layer, "layers", None) is not None:
            out += named_parameters(layer.layers, f"{prefix}{i}.")
    return out


def forward_layers(layers, X, num_steps):
    """Run `layers` in order on X; returns the last output and the list of records."""
    records, h = [], X
    for layer in layers:
        h, rec = layer.forward(h, num_steps)
        records.append(rec)
    return h, records


def backward_layers(layers, records, d_out, need_dX=True):
    """BPTT through `layers`, last to first, from d_out = ∂L/∂(last output) (an array the caller
    owns: layers may reuse it). Returns ∂L/∂X of the first layer (None with need_dX=False)."""
    d = d_out
    for i in range(len(layers) - 1, -1, -1):
        d = backward_one(layers[i], records[i], d, need_dX=need_dX or i > 0)
    return d


def backward_one(layer, rec, d_out, need_dX=True, **extra):
    """One layer's backward, passing need_dX=False only to a layer that accepts it."""
    if not need_dX and _accepts(layer.backward, "need_dX"):
        extra["need_dX"] = False
    return layer.backward(rec, d_out, **extra)


def _accepts(fn, name):
    try:
        return name in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


class Sequential:
    """A feed-forward stack of layers ending in a spiking layer (see the protocol above).

    `net(x, num_steps)` returns the spikes and membrane of the last layer (T, B, out) and keeps,
    for every layer i, `net.record[i]` (X, and U, S for spiking layers). `net.backward(d_mem=...,
    d_spk=...)` reads those records and adds each parameter's gradient into `dW`, `db`, ...
    """

    def __init__(self, *layers):
        if not layers:
            raise ValueError("Sequential needs at least one layer")
        for i, layer in enumerate(layers):
            check_layer(layer, f"layer {i}")
        last = getattr(layers[-1], "state_names", ("U", "S"))
        if "U" not in last or "S" not in last:
            raise ValueError(f"the last layer must be a Leaky layer or another spiking layer "
                             f"(one that records U and S): the network returns its spikes and "
                             f"membrane; got {layers[-1]!r}")
        _check_sizes_chain(layers)
        self.layers = list(layers)
        _check_one_dtype(self.named_parameters())
        self.record = None

    def __getitem__(self, i):
        return self.layers[i]

    def __len__(self):
        return len(self.layers)

    def __repr__(self):
        return "Sequential(\n" + "".join(f"  ({i}) {l!r}\n" for i, l in enumerate(self.layers)) + ")"

    def named_parameters(self):
        return named_parameters(self.layers)

    def parameters(self):
        return [p for _, p in self.named_parameters()]

    @property
    def dtype(self):
        """The dtype of the weights (learned decays β, α are kept in float64 and used in the
        input's dtype); None for a network without weights."""
        weights = [p.value for p in self.parameters() if p.value.ndim > 0]
        return weights[0].dtype if weights else None

    @property
    def xp(self):
        params = self.parameters()
        return get_xp(params[0].value) if params else None

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
        """x: one static input (B, ...) for every step, or (T, B, ...) with one input per step
        (also (1, B, ...): static, with its time axis). Returns (spk_rec, mem_rec), (T, B, out)."""
        x, num_steps = self._time_axis(x, num_steps)
        self._check_backend(x)
        if self.dtype is not None:
            check_float_input(x, "x", self.dtype)
        self.record = None                # free the last pass's records before making new ones
        _, records = forward_layers(self.layers, x, num_steps)
        last = records[-1]
        if not ("U" in last and "S" in last):
            raise TypeError(f"the last layer ({type(self.layers[-1]).__name__}) must record U "
                            f"and S: end the network with a spiking layer")
        self.record = records
        return last.S, last.U

    def backward(self, d_mem=None, d_spk=None):
        """BPTT through every layer, last to first. d_mem = ∂L/∂U and d_spk = ∂L/∂S of the output
        layer, (T, B, out); give one or both. Gradients are added into the layers' dW, db, ...
        The caller's arrays are never changed."""
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
        last, rec = self.layers[-1], self.record[-1]
        if d_mem is not None and not _accepts(last.backward, "dU"):
            raise TypeError(f"the last layer ({type(last).__name__}) takes no dU= in its "
                            f"backward, so d_mem cannot reach it; give d_spk instead")
        d_S = None if d_spk is None else d_spk.copy()      # ours now: the layer may reuse it
        extra = {} if d_mem is None else {"dU": d_mem}
        d = backward_one(last, rec, d_S, need_dX=len(self.layers) > 1, **extra)
        backward_layers(self.layers[:-1], self.record[:-1], d, need_dX=False)

    # ------------------------------------------------------------------ input checks

    def _time_axis(self, x, num_steps):
        """x with its leading time axis, and the number of steps."""
        check_array(x, "x")
        first = self.layers[0]
        ndim = getattr(first, "sample_ndim", None)
        if ndim is not None:
            shape = _sample_shape(first)
            if x.ndim not in (ndim + 1, ndim + 2) or (shape and tuple(x.shape[-ndim:]) != shape):
                want = ", ".join(map(str, shape)) if shape else "..."
                raise ValueError(f"x must have shape (B, {want}) for a static input or "
                                 f"(T, B, {want}) for a time-varying one, got {tuple(x.shape)}")
            if x.ndim == ndim + 1:
                if num_steps is None:
                    raise ValueError("num_steps is required when x is static (no time axis)")
                return x[None], check_num_steps(num_steps)
        elif x.ndim < 2:
            raise ValueError(f"x must have shape (T, B, ...), got {tuple(x.shape)}")
        if num_steps is None:
            return x, x.shape[0]
        num_steps = check_num_steps(num_steps)
        if x.shape[0] not in (1, num_steps):
            raise ValueError(f"num_steps={num_steps} does not match x's time axis of length "
                             f"{x.shape[0]}")
        return x, num_steps

    def _check_backend(self, x):
        """Every parameter must live where x lives (a kernel fed a host pointer crashes)."""
        xp = get_xp(x)
        for name, p in self.named_parameters():
            if get_xp(p.value) is not xp:
                raise TypeError(f"x and parameter {name} of the network are on different "
                                f"backends ({backend_name(xp)} and "
                                f"{backend_name(get_xp(p.value))}); move x explicitly "
                                f"(minisnn.backend.to_xp) or the network (net.to(...))")


def _sample_shape(layer):
    """The shape of one input sample where the layer knows it (Linear: (in_features,))."""
    n = getattr(layer, "in_features", None)
    return (n,) if n is not None and getattr(layer, "sample_ndim", None) == 1 else ()


def _check_sizes_chain(layers):
    """Consecutive Linear-like layers (in_features/out_features), with only neurons between
    them (which keep the size), must fit."""
    prev = None
    for layer in layers:
        n_in, n_out = getattr(layer, "in_features", None), getattr(layer, "out_features", None)
        if n_in is not None and prev is not None and prev.out_features != n_in:
            raise ValueError(f"layer sizes do not chain: {prev!r} is followed by {layer!r}")
        if n_out is not None:
            prev = layer
        elif not getattr(layer, "state_names", ()):
            prev = None      # a layer of unknown output size: nothing to compare
        # a spiking layer keeps the size: prev stays


def _check_one_dtype(named):
    """All weights of one network in one dtype (float32 in, float64 out is a silent mix)."""
    dtypes = {}
    for name, p in named:
        if p.value.ndim > 0:
            dtypes.setdefault(str(p.value.dtype), name)
    if len(dtypes) > 1:
        which = ", ".join(f"{d} (e.g. {n})" for d, n in dtypes.items())
        raise TypeError(f"the layers of one Sequential must share one dtype; got {which}. "
                        f"Build every layer with the same dtype=...")

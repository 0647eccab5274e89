"""What the forward recorder keeps for one layer: named arrays, X (its input) for every layer,
and the state variables (U, S, and e.g. syn) for spiking layers."""


class Record:
    """The records of one layer for one forward pass: `Record(X=..., U=..., S=...)`.

    Arrays carry a leading time axis: X is (T, B, ...) or (1, B, ...) for an input that is the
    same at every step; a spiking layer's U and S are (T, B, ...), so `net.record[i].U[t]` is
    step t. Asking for a name the layer does not record raises an AttributeError that says what
    it does record. A record is written once, by the layer's forward, and only read afterwards.
    """

    def __init__(self, **arrays):
        object.__setattr__(self, "_arrays", arrays)

    def __getattr__(self, name):
        arrays = object.__getattribute__(self, "_arrays")
        if name in arrays:
            return arrays[name]
        if name.startswith("__"):
            raise AttributeError(name)
        raise AttributeError(self._missing(name))

    def _missing(self, name):
        """The message for a name this record does not hold."""
        have = ", ".join(self._arrays) or "nothing"
        hint = (" (only spiking layers record U and S; a Linear layer records only its input X)"
                if name in ("U", "S") else "")
        return f"this layer's record has no {name}: it holds {have}{hint}"

    def __setattr__(self, name, value):
        raise AttributeError("a Record is read-only: the layer's forward writes it once")

    def __contains__(self, name):
        return name in self._arrays

    @property
    def names(self):
        """The names this record holds, in the order the layer stored them."""
        return tuple(self._arrays)

    @property
    def static(self):
        """True when the layer's input is the same at every step (time axis of length 1)."""
        return self._arrays["X"].shape[0] == 1

    def __repr__(self):
        return f"{type(self).__name__}(" + ", ".join(
            f"{k}={_shape(v)}" for k, v in self._arrays.items()) + ")"


def _shape(a):
    if isinstance(a, tuple):
        return "(" + ", ".join(str(_shape(v)) for v in a) + ")"
    return tuple(a.shape) if hasattr(a, "shape") else type(a).__name__


class CompactRecord(Record):
    """`net.record[i]` after `net(x, num_steps, recompute_every=k)`, for a layer that ran segment
    by segment: its records of every step were not kept. The network kept only each layer's
    state at the start of every k-step segment (`net.record.checkpoints`) and recomputes each
    segment in the backward pass. It holds the last layer's U and S (T, B, out), the outputs the
    network returned, and nothing else; asking for anything else says so."""

    def __init__(self, layer, every, **arrays):
        super().__init__(**arrays)
        object.__setattr__(self, "_where", (layer, every))

    def _missing(self, name):
        layer, every = object.__getattribute__(self, "_where")
        have = ", ".join(self._arrays)
        return (f"net.record[{layer}] has no {name}: net(x, num_steps, recompute_every={every}) "
                f"keeps only each layer's state at the start of every {every}-step segment "
                f"(net.record.checkpoints){' and the outputs ' + have if have else ''}, and "
                f"recomputes the rest in the backward pass. For the full records of every step "
                f"(X, U, S, ...), run net(x, num_steps) without recompute_every")

    @property
    def static(self):
        raise AttributeError(self._missing("X"))


LayerRecord = Record   # the name of earlier versions

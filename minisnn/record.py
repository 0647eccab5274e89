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
        have = ", ".join(arrays) or "nothing"
        hint = (" (only spiking layers record U and S; a Linear layer records only its input X)"
                if name in ("U", "S") else "")
        raise AttributeError(f"this layer's record has no {name}: it holds {have}{hint}")

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
        def shape(a):
            return tuple(a.shape) if hasattr(a, "shape") else type(a).__name__
        return "Record(" + ", ".join(f"{k}={shape(v)}" for k, v in self._arrays.items()) + ")"


LayerRecord = Record   # the name of earlier versions

"""What the forward recorder keeps for one layer: X (its input), and for spiking layers U and S."""


class LayerRecord:
    """Records of one layer for one forward pass.

    X: the layer's input, (B, F) for a static input (the same at every step) or (T, B, F).
    U, S: membrane and spikes (T, B, N) of a spiking layer; `net.record[i].U[t]` is step t.
    A Linear layer has no membrane or spikes, and asking for them raises an error.
    """
    __slots__ = ("X", "_U", "_S")

    def __init__(self, X, U=None, S=None):
        self.X, self._U, self._S = X, U, S

    def _need(self, value, name):
        if value is None:
            raise AttributeError(f"this layer has no {name}: only spiking layers (Leaky) record "
                                 f"U and S; a Linear layer records only its input X")
        return value

    @property
    def U(self):
        return self._need(self._U, "U")

    @property
    def S(self):
        return self._need(self._S, "S")

    @property
    def static(self):
        return self.X.ndim == 2

    def __repr__(self):
        shape = lambda a: None if a is None else tuple(a.shape)
        return f"LayerRecord(X={shape(self.X)}, U={shape(self._U)}, S={shape(self._S)})"

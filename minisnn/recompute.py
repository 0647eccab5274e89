"""Memory flat in T: backprop through time segment by segment, recomputing each segment's forward.

BPTT needs, at every step t, the numbers step t's forward used: U[t], S[t] and the input of every
layer. Kept for the whole window that is T steps of records (1.5 MB per step for the seed's
hidden layer at batch 128), so memory grows with T until the run no longer fits.
`net(x, num_steps, recompute_every=k)` cuts the window into segments of k steps and runs the
whole stack one segment at a time, keeping only

  * each stateful layer's state before every segment, the checkpoints (the spikes as bits);
  * the last layer's spikes and membrane at every step: the network's outputs, for the loss;
  * the output of the layers before the first time-varying one (a static image's Linear runs
    once, as in the full path), and the last segment's full records.

`net.backward(...)` then takes the segments last to first: it recomputes the segment's forward
from its checkpoint (full records for k steps only), backprops through it with the carry from the
later segment (`layer.backward_segment`) and hands the carry at its start to the earlier one. The
gradient of the static prefix's output is summed over the segments; the prefix's backward runs
once at the end.

    memory ≈ (T/k)·(one state) + k·(one step of every record) + T·(the outputs)
    work   ≈ one more forward of the segmented layers (not of the last segment: it is kept)

so k ≈ sqrt(T·state/step) balances the two memory terms, and the extra work does not depend on k.
As in the full path, the backward pass uses the layers' parameters as they are then: change none
between the forward and the backward pass (here the segments' forward also runs again with them).
The gradients are those of the full path: a recomputed segment is the same arithmetic on the same
numbers, so its records are bit for bit those of the forward pass, and each step's backward is
the same; only the order in which a weight's gradient is summed over the segments differs.
"""
import math

import numpy as np

from . import network
from .backend import get_xp
from .record import CompactRecord


def check_every(every):
    """recompute_every: None (keep every record) or a positive integer (steps per segment)."""
    if every is None:
        return None
    if isinstance(every, bool) or not isinstance(every, (int, np.integer)):
        raise TypeError(f"recompute_every must be a positive integer (the steps per segment) or "
                        f"None (keep every record), got {every!r}")
    if every < 1:
        raise ValueError(f"recompute_every must be >= 1 (the steps per segment), got {every}")
    return int(every)


def check_layers(layers):
    """Every layer must say whether it carries state (`state_names`), and a stateful one must
    speak the segment protocol (see minisnn.network)."""
    for i, layer in enumerate(layers):
        where = f"layer {i} ({type(layer).__name__})"
        names = getattr(layer, "state_names", None)
        if names is None:
            raise TypeError(f"{where} does not declare state_names: recompute_every must know "
                            f"which layers carry state from one step to the next. Give the layer "
                            f"state_names = () if it is stateless, or run without "
                            f"recompute_every")
        inner = _stateful_inside(layer)
        if not names and inner:
            raise TypeError(f"{where} holds layers that keep state ({', '.join(inner)}) but "
                            f"does not take segments: recompute_every would start them from rest "
                            f"in every segment. Run this network without recompute_every")
        if names and not (network._accepts(layer.forward, "state")
                          and callable(getattr(layer, "backward_segment", None))):
            raise TypeError(f"{where} keeps state {tuple(names)} but does not support segments: "
                            f"recompute_every needs forward(X, num_steps, state=None) and "
                            f"backward_segment(record, d_out, carry=None) -> (d_X, carry) (see "
                            f"minisnn.network); run it without recompute_every")


def _stateful_inside(layer):
    """The layers inside a layer that holds layers (`layers`: Residual) that keep state."""
    found = []
    for inner in getattr(layer, "layers", None) or ():
        if getattr(inner, "state_names", None) != ():
            found.append(type(inner).__name__)
        found += _stateful_inside(inner)
    return found


class PackedState:
    """One layer's state at a segment boundary, kept exactly in as few bytes as possible: each
    variable the layer calls binary (`binary_state`: the spikes) as bits, `xp.packbits`, 1/32 of
    its float32 size; the others (U, syn) as they are."""

    def __init__(self, layer, state):
        binary = getattr(layer, "binary_state", ())
        self.parts = []
        for name, a in zip(layer.state_names, state):
            if name in binary:
                self.parts.append((get_xp(a).packbits(a.reshape(-1) != 0), a.shape, a.dtype))
            else:
                self.parts.append((a, None, None))

    def unpack(self):
        """The state as the layer's forward takes it: a tuple in state_names order."""
        out = []
        for a, shape, dtype in self.parts:
            if shape is not None:
                a = get_xp(a).unpackbits(a)[:math.prod(shape)].reshape(shape).astype(dtype)
            out.append(a)
        return tuple(out)

    @property
    def nbytes(self):
        return sum(a.nbytes for a, _, _ in self.parts)


class CompactRecords:
    """`net.record` after `net(x, num_steps, recompute_every=k)`: what the segmented forward kept.

    `net.record[i]` is layer i's record: the full `Record` for the layers of the static prefix
    (run once), a `CompactRecord` for the others (U, S of the last layer; nothing else).
    `starts`: the first step of every segment; `checkpoints[j][i]`: layer i's state before
    segment j (a `PackedState`; None for a stateless layer, and for every layer in segment 0,
    which starts at rest).
    `memory()`: the bytes held, by kind."""

    def __init__(self, layers, prefix, h, num_steps, every):
        self.layers, self.prefix, self.h = layers, prefix, h
        self.num_steps, self.every = num_steps, every
        self.starts = list(range(0, num_steps, every))
        self.checkpoints, self.kept, self.spk, self.mem = [], None, None, None

    @property
    def split(self):
        """The index of the first layer that runs segment by segment."""
        return len(self.prefix)

    def __len__(self):
        return len(self.layers)

    def __getitem__(self, i):
        i = range(len(self.layers))[i]
        if i < self.split:
            return self.prefix[i]
        out = dict(U=self.mem, S=self.spk) if i == len(self.layers) - 1 else {}
        return CompactRecord(i, self.every, **out)

    def segment(self, j):
        """(first step, number of steps) of segment j."""
        return self.starts[j], min(self.every, self.num_steps - self.starts[j])

    def memory(self):
        """Bytes held: checkpoints, outputs (T, B, out), the static prefix's records and output,
        and the last segment's records while they are kept (arrays counted once)."""
        seen = set()

        def count(arrays):
            total = 0
            for a in arrays:
                base = a if getattr(a, "base", None) is None else a.base
                if id(base) not in seen:
                    seen.add(id(base))
                    total += base.nbytes
            return total

        ckpt = sum(c.nbytes for seg in self.checkpoints for c in seg if c is not None)
        prefix = [a for rec in self.prefix for a in _arrays(rec)]
        static = [self.h] if self.h.shape[0] == 1 else []   # a time-varying input is the caller's
        kept = [a for rec in (self.kept or []) for a in _arrays(rec)]
        return {"checkpoints": ckpt, "outputs": count([self.spk, self.mem]),
                "static": count(prefix + static), "last segment": count(kept)}

    @property
    def nbytes(self):
        return sum(self.memory().values())

    def __repr__(self):
        return (f"CompactRecords({len(self.starts)} segments of {self.every} steps over "
                f"{self.num_steps}: checkpoints and outputs, {self.nbytes / 2**20:.1f} MB held)")


def _arrays(rec):
    return [getattr(rec, n) for n in rec.names if hasattr(getattr(rec, n), "nbytes")]


# ----------------------------------------------------------------------------- forward, backward

def forward(layers, x, num_steps, every):
    """Run `layers` on x (with its time axis) segment by segment. Returns the CompactRecords."""
    check_layers(layers)
    h, prefix = x, []
    while (len(prefix) < len(layers) - 1 and h.shape[0] == 1
           and not layers[len(prefix)].state_names):
        h, rec = layers[len(prefix)].forward(h, num_steps)     # static: computed once
        prefix.append(rec)
    out = CompactRecords(layers, prefix, h, num_steps, every)
    body = layers[out.split:]
    state = [None] * len(body)
    recs = None
    for j in range(len(out.starts)):
        s, n = out.segment(j)
        out.checkpoints.append([None] * out.split + [None if st is None else PackedState(layer, st)
                                                     for layer, st in zip(body, state)])
        recs = None                      # free a segment's records before making the next ones
        recs = run_segment(body, _input(h, s, n), n, state)
        state = [_end_state(out.split + i, layer, rec) if layer.state_names else None
                 for i, (layer, rec) in enumerate(zip(body, recs))]
        last = recs[-1]
        if out.spk is None:
            xp = get_xp(last.U)
            out.spk = xp.empty((num_steps,) + last.S.shape[1:], dtype=last.S.dtype)
            out.mem = xp.empty((num_steps,) + last.U.shape[1:], dtype=last.U.dtype)
        out.spk[s:s + n] = last.S
        out.mem[s:s + n] = last.U
    out.kept = recs
    return out


def backward(layers, out, d_mem, d_spk):
    """BPTT through the segments of `out` (CompactRecords), last to first; d_mem, d_spk (T, B,
    out) as for Sequential.backward. Adds every parameter's gradient, as the full path does."""
    body = layers[out.split:]
    last = len(body) - 1
    if d_mem is not None and not network._accepts(body[last].backward_segment, "dU"):
        raise TypeError(f"the last layer ({type(body[last]).__name__}) takes no dU= in its "
                        f"backward_segment, so d_mem cannot reach it; give d_spk instead")
    carries = [None] * len(body)
    need_dX = out.split > 0                     # the static prefix needs ∂L/∂(its output)
    d_h = None
    for j in range(len(out.starts) - 1, -1, -1):
        s, n = out.segment(j)
        recs, out.kept = out.kept, None         # the last segment's records, kept by forward
        if recs is None:                        # every other segment: recomputed
            recs = run_segment(body, _input(out.h, s, n), n,
                               [None if c is None else c.unpack()
                                for c in out.checkpoints[j][out.split:]])
        d = None if d_spk is None else d_spk[s:s + n].copy()    # ours: layers may reuse it
        for i in range(last, -1, -1):
            layer = body[i]
            extra = {"dU": d_mem[s:s + n]} if i == last and d_mem is not None else {}
            if layer.state_names:
                d, carries[i] = layer.backward_segment(recs[i], d, carry=carries[i], **extra)
            else:
                d = network.backward_one(layer, recs[i], d, need_dX=need_dX or i > 0, **extra)
        recs = None
        if need_dX:                             # static: ∂L/∂h summed over the segments
            if d_h is None:
                d_h = d
            else:
                d_h += d
    if out.split:
        network.backward_layers(layers[:out.split], out.prefix, d_h, need_dX=False)


def run_segment(body, X, num_steps, state):
    """The forward of the segmented layers over one segment, each stateful layer starting from
    its entry of `state` (None: at rest). Returns their records."""
    recs, h = [], X
    for layer, st in zip(body, state):
        h, rec = layer.forward(h, num_steps, state=st) if layer.state_names else \
            layer.forward(h, num_steps)
        recs.append(rec)
    return recs


def _input(h, s, n):
    """Steps s … s+n−1 of the segmented layers' input (all of it when static, (1, B, ...))."""
    return h if h.shape[0] == 1 else h[s:s + n]


def _end_state(i, layer, rec):
    """The state after a segment's last step (copies: the segment's records can then go)."""
    try:
        return tuple(getattr(rec, n)[-1].copy() for n in layer.state_names)
    except AttributeError:
        raise TypeError(f"layer {i} ({type(layer).__name__}) declares state_names "
                        f"{tuple(layer.state_names)} but its record does not hold them all: "
                        f"recompute_every reads the next segment's state from the record") from None


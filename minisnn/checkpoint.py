"""Saving and loading parameters (and optimizer state) as one .npz file, written atomically.

A checkpoint records its network as `repr(layer)` of every layer, e.g.
`Leaky(beta=0.95, threshold=1, surrogate=..., reset='subtract', ...)`. `load` compares that
record with the network it loads into and refuses any difference, listing for each layer
the `key=value` settings that differ (a setting that is also a parameter, such as a learned
β, is loaded, not compared). A layer whose repr is Python's default
`<module.Class object at 0x...>` (a user's layer without a __repr__) is compared by its class
name only.
"""
import contextlib
import json
import re
import zipfile
import zlib

import numpy as np

from .atomic import atomic_open
from .backend import get_xp, to_numpy, to_xp


class CheckpointError(ValueError):
    """A checkpoint that cannot be read, or that does not fit the network it is loaded into."""


# What a missing, truncated or damaged .npz raises while it is read.
_READ_ERRORS = (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, zlib.error)


def _architecture(net):
    return [repr(layer) for layer in net.layers]


def save(path, net, optimizer=None, **meta):
    """Write the parameters of `net` (and the optimizer's state) to `path` (.npz).

    The file is written to a temporary file in the same folder and then renamed over `path`, so
    an interrupted save never leaves a half-written checkpoint. `meta` holds JSON-able extras."""
    arrays = {f"param/{i}": to_numpy(p.value) for i, p in enumerate(net.parameters())}
    info = {"architecture": _architecture(net), "meta": meta}
    if optimizer is not None:
        info["optimizer"] = {"type": type(optimizer).__name__, "step": optimizer.state["step"]}
        for k, arrs in optimizer.state_arrays().items():
            arrays.update({f"opt/{k}/{i}": to_numpy(a) for i, a in enumerate(arrs)})
    arrays["info"] = np.array(json.dumps(info))
    with atomic_open(path) as f:
        np.savez(f, **arrays)
    return path


@contextlib.contextmanager
def _opened(path):
    """The checkpoint as an open NpzFile, and its info; CheckpointError for anything else."""
    try:
        z = np.load(path, allow_pickle=False)
    except _READ_ERRORS as e:
        raise CheckpointError(f"{path}: not a readable minisnn checkpoint ({e})") from e
    if not isinstance(z, np.lib.npyio.NpzFile):
        raise CheckpointError(f"{path}: holds a single NumPy array (a .npy file), not a minisnn "
                              f"checkpoint (the .npz file that minisnn train or ms.save writes)")
    with z:
        try:
            info = json.loads(str(z["info"]))
        except _READ_ERRORS as e:
            raise CheckpointError(f"{path}: not a minisnn checkpoint: it has no readable "
                                  f"'info' entry ({e})") from e
        _check_info(info, path)
        yield z, info


def _check_info(info, path):
    ok = (isinstance(info, dict) and isinstance(info.get("architecture"), list)
          and all(isinstance(a, str) for a in info["architecture"])
          and isinstance(info.get("meta"), dict))
    opt = info.get("optimizer") if ok else None
    if ok and opt is not None:
        ok = isinstance(opt, dict) and isinstance(opt.get("type"), str) \
            and isinstance(opt.get("step"), int)
    if not ok:
        raise CheckpointError(f"{path}: not a minisnn checkpoint: its 'info' entry does not "
                              f"hold an architecture, meta data and optimizer summary")


def read_info(path):
    """The architecture, meta data and optimizer summary stored in a checkpoint."""
    with _opened(path) as (_, info):
        return info


def load(path, net, optimizer=None):
    """Load parameters (and optimizer state) saved by `save` into `net`, in place, on the
    network's backend and dtype. The recorded architecture must be the network's (see the
    module docstring) and shapes must fit exactly. Returns the saved `meta` dict.
    The file is opened once: what is loaded is one version of it, whatever replaces it."""
    with _opened(path) as (z, info):
        learned = [set(getattr(layer, "param_names", tuple)()) for layer in net.layers]
        diffs = architecture_differences(info["architecture"], _architecture(net), learned)
        if diffs:
            raise CheckpointError(f"{path}: the checkpoint holds a different architecture than "
                                  f"this network: {'; '.join(diffs)}")
        try:
            saved, opt_state = _read_arrays(z, path, info, net, optimizer)
        except CheckpointError:
            raise
        except _READ_ERRORS as e:
            raise CheckpointError(f"{path}: damaged checkpoint ({e})") from e
    for s, p in zip(saved, net.parameters()):
        p.value[...] = to_xp(s, get_xp(p.value))
    if opt_state is not None:
        for k, arrs in opt_state.items():
            for dst, src in zip(optimizer.state[k], arrs):
                dst[...] = to_xp(src, get_xp(dst))
        optimizer.state["step"] = info["optimizer"]["step"]
    return info["meta"]


def _read_arrays(z, path, info, net, optimizer):
    params = net.parameters()
    saved = [z[f"param/{i}"] for i in range(sum(k.startswith("param/") for k in z.files))]
    if len(saved) != len(params) or any(s.shape != p.value.shape for s, p in zip(saved, params)):
        raise CheckpointError(
            f"{path}: checkpoint does not fit this network: saved "
            f"{[s.shape for s in saved]} for {info['architecture']}, the network has "
            f"{[tuple(p.value.shape) for p in params]}")
    for s, p in zip(saved, params):
        if s.dtype != p.value.dtype:
            raise CheckpointError(f"{path}: checkpoint holds {s.dtype} parameters but the "
                                  f"network is {p.value.dtype}; build it with that dtype")
    opt_state = None
    if optimizer is not None:
        if "optimizer" not in info or info["optimizer"]["type"] != type(optimizer).__name__:
            raise CheckpointError(f"{path}: holds no {type(optimizer).__name__} state to resume")
        opt_state = {k: [z[f"opt/{k}/{i}"] for i in range(len(params))]
                     for k in optimizer.state_arrays()}
        for k, arrs in opt_state.items():
            if any(a.shape != p.value.shape for a, p in zip(arrs, params)):
                raise CheckpointError(f"{path}: damaged checkpoint: the optimizer's {k!r} "
                                      f"arrays do not have the parameters' shapes")
    return saved, opt_state


# ----------------------------------------------------------------------------- architectures

_DEFAULT_REPR = re.compile(r"^<([\w.]+) object at 0x[0-9a-fA-F]+>$")
_CALL_REPR = re.compile(r"^(\w+)\((.*)\)$", re.S)


def layer_fields(text):
    """A layer's repr as (class name, {field: value text}), positional arguments keyed
    '#1', '#2', ...; fields is None for a default `<... object at 0x...>` repr, and {'': text}
    for a repr of another form."""
    m = _DEFAULT_REPR.match(text)
    if m:
        return m.group(1).rsplit(".", 1)[-1], None
    m = _CALL_REPR.match(text)
    if not m:
        return text, {"": text}
    fields, position = {}, 0
    for part in _split_top_level(m.group(2)):
        key, eq, value = part.partition("=")
        if eq and re.fullmatch(r"\w+", key.strip()):
            fields[key.strip()] = value.strip()
        else:
            position += 1
            fields[f"#{position}"] = part.strip()
    return m.group(1), fields


def _split_top_level(text):
    """Split at the commas that are not inside brackets or quotes."""
    parts, depth, quote, start = [], 0, None, 0
    for i, ch in enumerate(text):
        if quote:
            quote = None if ch == quote and text[i - 1] != "\\" else quote
        elif ch in "'\"":
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return [p for p in parts if p.strip()]


def architecture_differences(saved, built, learned=None):
    """How the recorded architecture `saved` (a list of layer reprs) differs from `built`,
    as readable lines ([] when they are the same). learned[i]: names of layer i's parameters
    (e.g. a learned beta), whose values are loaded rather than compared."""
    if len(saved) != len(built):
        names = lambda reprs: ", ".join(layer_fields(r)[0] for r in reprs)
        return [f"{len(saved)} layers in the checkpoint ({names(saved)}), {len(built)} in this "
                f"network ({names(built)})"]
    out = []
    for i, (a, b) in enumerate(zip(saved, built)):
        (name_a, fa), (name_b, fb) = layer_fields(a), layer_fields(b)
        if name_a != name_b:
            out.append(f"layer {i} is {a} in the checkpoint, {b} here")
        elif fa is not None and fb is not None and fa != fb:
            keys = list(fa) + [k for k in fb if k not in fa]
            show = lambda k, f: (f"no {k}" if k not in f else f[k] if not k else
                                 f"argument {k[1:]} {f[k]}" if k.startswith("#") else
                                 f"{k}={f[k]}")
            skip = learned[i] if learned else ()
            diffs = [f"{show(k, fa)} in the checkpoint, {show(k, fb)} here"
                     for k in keys if fa.get(k) != fb.get(k) and k not in skip]
            if not diffs:
                continue
            out.append(f"layer {i} {name_a}: " + ", ".join(diffs))
    return out

"""Saving and loading parameters (and optimizer state) as one .npz file, written atomically."""
import json
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


def read_info(path):
    """The architecture, meta data and optimizer summary stored in a checkpoint."""
    try:
        with np.load(path, allow_pickle=False) as z:
            return json.loads(str(z["info"]))
    except _READ_ERRORS as e:
        raise CheckpointError(f"{path}: not a readable minisnn checkpoint ({e})") from e


def load(path, net, optimizer=None):
    """Load parameters (and optimizer state) saved by `save` into `net`, in place, on the
    network's backend and dtype. Shapes must fit exactly. Returns the saved `meta` dict."""
    info = read_info(path)
    try:
        saved, opt_state = _read_arrays(path, info, net, optimizer)
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


def _read_arrays(path, info, net, optimizer):
    params = net.parameters()
    with np.load(path, allow_pickle=False) as z:
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
    return saved, opt_state

"""Saving and loading parameters (and optimizer state) as one .npz file, written atomically."""
import json
import os
import tempfile

import numpy as np

from .backend import get_xp, to_numpy, to_xp


class CheckpointError(ValueError):
    """A checkpoint that cannot be read, or that does not fit the network it is loaded into."""


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
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=".npz")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def read_info(path):
    """The architecture, meta data and optimizer summary stored in a checkpoint."""
    try:
        with np.load(path, allow_pickle=False) as z:
            return json.loads(str(z["info"]))
    except (OSError, ValueError, KeyError) as e:
        raise CheckpointError(f"{path}: not a minisnn checkpoint ({e})") from e


def load(path, net, optimizer=None):
    """Load parameters (and optimizer state) saved by `save` into `net`, in place, on the
    network's backend and dtype. Shapes must fit exactly. Returns the saved `meta` dict."""
    info = read_info(path)
    params = net.parameters()
    with np.load(path, allow_pickle=False) as z:
        saved = [z[f"param/{i}"] for i in range(sum(k.startswith("param/") for k in z.files))]
        if len(saved) != len(params) or any(s.shape != p.value.shape for s, p in zip(saved, params)):
            raise CheckpointError(
                f"{path}: checkpoint does not fit this network: saved "
                f"{[s.shape for s in saved]} for {info['architecture']}, the network has "
                f"{[tuple(p.value.shape) for p in params]}")
        opt_state = None
        if optimizer is not None:
            if "optimizer" not in info or info["optimizer"]["type"] != type(optimizer).__name__:
                raise CheckpointError(f"{path}: holds no {type(optimizer).__name__} state to resume")
            opt_state = {k: [z[f"opt/{k}/{i}"] for i in range(len(params))]
                         for k in optimizer.state_arrays()}
    for s, p in zip(saved, params):
        xp = get_xp(p.value)
        p.value[...] = to_xp(s.astype(p.value.dtype), xp)
    if opt_state is not None:
        for k, arrs in opt_state.items():
            for dst, src in zip(optimizer.state[k], arrs):
                dst[...] = to_xp(src.astype(dst.dtype), get_xp(dst))
        optimizer.state["step"] = info["optimizer"]["step"]
    return info["meta"]

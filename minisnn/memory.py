"""How much memory a training run needs, and whether the machine has it, before allocating.

BPTT keeps every step of every layer: the records U and S of a spiking layer are (T, B, N)
arrays, and its backward pass holds one more of that size (∂L/∂S, which becomes ∂L/∂U) plus,
at most, one temporary. So a run needs about

    records and gradients   4 × steps × batch × (hidden + outputs) × bytes per number
                            (+ 3 × steps × batch × outputs for the loss)
    parameters              5 × parameters × bytes (values, gradients, Adam's m and v, scratch)

(the final evaluation holds only the records of its batches). With `recompute_every` = k
(minisnn.recompute) the hidden layers hold k steps of records and one packed state per segment
instead of T steps (`record_steps`), the output layer still T steps. `estimate(cfg)` returns these
parts; `check_fits(cfg)` compares their sum with the memory available to this process (free
RAM, a cgroup limit, RLIMIT_AS / RLIMIT_DATA; free GPU memory on CuPy) and raises MemoryError
with the estimate when it does not fit. `tests/test_memory.py` checks the estimate against what
NumPy really allocates. Another architecture adds its own estimator to `ESTIMATORS`.
"""
from __future__ import annotations

import os
try:
    import resource
except ImportError:          # not on Windows
    resource = None
from pathlib import Path

import numpy as np

# (T, B, N) arrays alive at once per spiking layer in a training iteration (see above).
TRAIN_ARRAYS = 4
LOSS_ARRAYS = 3           # (T, B, outputs) arrays of the loss: log p, its product with y, ∂L/∂U
EVAL_ARRAYS = 2           # U and S of each layer, forward only
PARAM_COPIES = 5          # value, gradient, Adam m, v and its scratch array


def record_steps(cfg):
    """(steps, checkpoints): the steps of hidden-layer records an iteration holds at once, and
    the segment checkpoints beside them: all T steps and none, or with recompute_every = k a
    segment's k steps and one state (U as it is, S as bits) before every later segment."""
    k = cfg.recompute_every
    if k is None or k >= cfg.steps:
        return cfg.steps, 0
    return k, -(-cfg.steps // k) - 1


def _hidden_bytes(cfg, arrays, hidden, item):
    """Bytes per example of `arrays` record-sized arrays of the hidden layers, and checkpoints."""
    steps, checkpoints = record_steps(cfg)
    return arrays * steps * hidden * item + checkpoints * hidden * (item + 1 / 8)


def _steps_text(cfg):
    steps, checkpoints = record_steps(cfg)
    return f"{steps} steps" if steps == cfg.steps else \
        f"{steps} steps (segments of {cfg.recompute_every} of {cfg.steps})"


def mlp_parts(cfg):
    """The estimate for TrainConfig's 784-hidden-10 network, as [(what, bytes)]."""
    item = np.dtype(cfg.dtype).itemsize
    sizes = [cfg.num_inputs, cfg.hidden, cfg.num_outputs]
    params = sum(a * b + b for a, b in zip(sizes, sizes[1:]))
    neurons = sum(sizes[1:])
    out = cfg.steps * cfg.num_outputs * item                    # per example, output layer
    train = (cfg.batch_size * (_hidden_bytes(cfg, TRAIN_ARRAYS, cfg.hidden, item)
                               + (TRAIN_ARRAYS + LOSS_ARRAYS) * out + cfg.num_inputs * item)
             + _spike_input(cfg, cfg.hidden, cfg.batch_size))
    evaluate = (cfg.eval_batch_size * (_hidden_bytes(cfg, EVAL_ARRAYS, cfg.hidden, item)
                                       + EVAL_ARRAYS * out)
                + _spike_input(cfg, cfg.hidden, cfg.eval_batch_size, training=False))
    return [(f"records and gradients ({TRAIN_ARRAYS} × {_steps_text(cfg)} × batch "
             f"{cfg.batch_size} × {neurons} neurons × {item} bytes"
             + (", spike-coded input" if cfg.encoding != "static" else "") + ")"
             if train >= evaluate else
             f"evaluation records ({EVAL_ARRAYS} × {_steps_text(cfg)} × batch "
             f"{cfg.eval_batch_size} × {neurons} neurons × {item} bytes)", max(train, evaluate)),
            (f"parameters, gradients and Adam state ({PARAM_COPIES} × {params} × {item} bytes)",
             PARAM_COPIES * params * item)]


def _spike_input(cfg, first, batch, training=True):
    """A spike-coded input (encoding rate or latency): a (T, B, pixels) array, drawn through
    uniform numbers and a mask of the same size (2 × bytes + 1 per value while it is drawn);
    in training it also makes the first layer's current a (T, B, first) array (a static
    image's is computed once)."""
    if cfg.encoding == "static":
        return 0
    item = np.dtype(cfg.dtype).itemsize
    return batch * (cfg.steps * cfg.num_inputs * (2 * item + 1)
                    + training * record_steps(cfg)[0] * first * item)


def csnn_parts(cfg):
    """The estimate for snnTorch tutorial 6's CSNN (minisnn.models), as [(what, bytes)]: the
    spiking layers' records and gradients as for the mlp, plus the second convolution's
    currents before pooling, (T·B, 64, 8, 8), the largest temporary of the iteration."""
    item = np.dtype(cfg.dtype).itemsize
    neurons = 12 * 12 * 12 + 64 * 4 * 4 + cfg.num_outputs        # the three Leaky layers
    params = (12 * 25 + 12) + (64 * 12 * 25 + 64) + (64 * 16 * cfg.num_outputs + cfg.num_outputs)
    hidden, out = neurons - cfg.num_outputs, cfg.steps * cfg.num_outputs * item
    conv = 64 * 8 * 8 * record_steps(cfg)[0] * item              # per sample in a batch
    first = 12 * 24 * 24                                          # the first convolution's output
    train = ((_hidden_bytes(cfg, TRAIN_ARRAYS, hidden, item) + TRAIN_ARRAYS * out + conv)
             * cfg.batch_size + _spike_input(cfg, first, cfg.batch_size))
    evaluate = ((_hidden_bytes(cfg, EVAL_ARRAYS, hidden, item) + EVAL_ARRAYS * out + conv)
                * cfg.eval_batch_size
                + _spike_input(cfg, first, cfg.eval_batch_size, training=False))
    what = (f"records and gradients ({TRAIN_ARRAYS} × {_steps_text(cfg)} × batch "
            f"{cfg.batch_size} × {neurons} neurons × {item} bytes) and the second convolution's "
            f"currents" if train >= evaluate else
            f"evaluation records ({EVAL_ARRAYS} × {_steps_text(cfg)} × batch "
            f"{cfg.eval_batch_size} × {neurons} neurons × {item} bytes) and currents")
    return [(what, max(train, evaluate)),
            (f"parameters, gradients and Adam state ({PARAM_COPIES} × {params} × {item} bytes)",
             PARAM_COPIES * params * item)]


#: Estimators by architecture (TrainConfig.arch).
ESTIMATORS = {"mlp": mlp_parts, "csnn": csnn_parts}


def estimate(cfg):
    """[(what, bytes)] that a training run of `cfg` allocates beyond its data set."""
    return ESTIMATORS[cfg.arch](cfg)


def available_bytes(backend="numpy"):
    """Memory this process can still allocate, in bytes, or None where it cannot be told."""
    if backend == "cupy":
        import cupy
        free, _ = cupy.cuda.runtime.memGetInfo()
        return free + cupy.get_default_memory_pool().free_bytes()
    limits = [_meminfo_available(), _cgroup_room()]
    for which in ("RLIMIT_AS", "RLIMIT_DATA"):
        soft = resource.getrlimit(getattr(resource, which))[0] if hasattr(resource, which) else -1
        if soft != resource.RLIM_INFINITY and soft > 0:
            limits.append(max(0, soft - _own_size("VmSize" if which == "RLIMIT_AS" else "VmData")))
    known = [v for v in limits if v is not None]
    return min(known) if known else None


def _meminfo_available():
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def _cgroup_room():
    """What a cgroup v2 memory limit leaves (None without one)."""
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        used = Path("/sys/fs/cgroup/memory.current").read_text().strip()
    except OSError:
        return None
    return None if limit == "max" else max(0, int(limit) - int(used))


def _own_size(field):
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def human(n):
    """Bytes as a short figure: '512 B', '3.2 MB', '5.1 TB' (powers of 1000)."""
    for unit in ("B", "kB", "MB", "GB", "TB", "PB"):
        if abs(n) < 1000 or unit == "PB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000


def check_fits(cfg, available=None):
    """Raise MemoryError, with the estimate, if a run of `cfg` cannot fit in `available`
    bytes (default: available_bytes(cfg.backend)). Returns the estimated total."""
    parts = estimate(cfg)
    total = sum(b for _, b in parts)
    if available is None:
        available = available_bytes(cfg.backend)
    if available is not None and total > available:
        where = "GPU memory" if cfg.backend == "cupy" else "memory"
        detail = " + ".join(f"{human(b)} {what}" for what, b in parts)
        raise MemoryError(f"this run needs about {human(total)} of {where} ({detail}) but only "
                          f"{human(available)} is available; lower --steps, --batch-size or "
                          f"--hidden")
    return total

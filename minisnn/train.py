"""Training a spiking network on MNIST-style data, as the reference tutorial does, in small pieces.

The whole run, with the tutorial's settings (784-1000-10, 25 steps, β = 0.95, Adam 5e-4):

    import minisnn as ms
    from minisnn import train as T
    cfg = T.TrainConfig()                          # every default is the tutorial's
    data = T.load_data("data/mnist", cfg)          # (N, 784) uint8 pixels, on cfg's backend
    result = T.train(cfg, data)                    # prints a report every 50 iterations
    T.save_run("runs/latest", result, cfg, data.name)

Or the pieces one by one, for a loop of your own:

    net, opt = T.build_net(cfg), T.build_optimizer(net, cfg)
    for x, y in minisnn.data.iterate_batches(data.train_x, data.train_y, 128, seed=0, epoch=0,
                                             dtype=cfg.dtype):   # each batch scaled to [0, 1]
        loss, spk_rec = T.train_step(net, opt, x, y, num_steps=25)
    correct, total = T.evaluate(net, data.test_x, data.test_y, num_steps=25)

Every iteration records the training loss and the loss on one test minibatch (no backward),
cycling through a seeded, shuffled pass over the test set. Losses stay on the device as 0-d
arrays and become Python floats when they are brought to the host: every iteration on NumPy
(free), every `report_every` iterations and before every checkpoint on CuPy, so a GPU run does
not wait every step. A non-finite loss found then stops training with `Diverged`; parameters,
gradients and Adam state are checked before every checkpoint, so none holds NaN or inf.

`train(..., checkpoint=fn)` calls fn(RunState) at each epoch's end, every
cfg.checkpoint_every iterations and at least every cfg.checkpoint_minutes of wall time;
`train(..., stop=fn)` ends training after the iteration in which fn() becomes true (the CLI
does both: see minisnn.cli). Settings live in minisnn.config, run folders in
minisnn.runfolder; both are importable from here too.
"""
from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import data as data_mod
from .backend import array_module, backend_name, get_xp
from .checkpoint import CheckpointError, load, read_info
from .config import (BACKENDS, DTYPES, FIXED, RESUME, TRAIN_SURROGATES, ConfigError,  # noqa: F401
                     Progress, TrainConfig, refused_changes, resume_config, settings_of_kind)
from .decode import rate
from .linear import Linear
from .loss import ce_membrane_loss
from .network import Sequential
from .neuron import Leaky
from .optim import Adam
from .runfolder import (CHECKPOINT_NAME, CURVE_NAME, HISTORY_NAME, History,  # noqa: F401
                        plot_losses, read_history, run_meta, save_run, write_history)


class Diverged(ArithmeticError):
    """Training produced NaN or inf. `iteration`: the first iteration found bad; `what`: which
    value it was. The network is left as it is (bad); nothing has been saved from it."""

    def __init__(self, iteration, what, lr):
        self.iteration, self.what, self.lr = iteration, what, lr
        super().__init__(f"training diverged at iteration {iteration}: {what}; try a smaller "
                         f"learning rate than {lr:g}")


# ----------------------------------------------------------------------------- building blocks

def build_net(cfg: TrainConfig) -> Sequential:
    """The tutorial's network: Linear(784, hidden) → Leaky(β) → Linear(hidden, 10) → Leaky(β).
    Weights come from numpy.random.default_rng(cfg.seed), so a seed gives the same network;
    they are created on cfg.backend."""
    rng = np.random.default_rng(cfg.seed)
    net = Sequential(
        Linear(cfg.num_inputs, cfg.hidden, dtype=cfg.dtype, rng=rng),
        Leaky(beta=cfg.beta, surrogate=cfg.surrogate),
        Linear(cfg.hidden, cfg.num_outputs, dtype=cfg.dtype, rng=rng),
        Leaky(beta=cfg.beta, surrogate=cfg.surrogate),
    )
    return net.to(cfg.backend)


def build_optimizer(net: Sequential, cfg: TrainConfig) -> Adam:
    """Adam over every parameter of `net` with cfg's learning rate and betas."""
    return Adam(net.parameters(), lr=cfg.lr, betas=cfg.betas)


def load_data(folder, cfg: TrainConfig):
    """Load an MNIST-style folder onto cfg's backend (one copy, here). The images stay uint8
    pixels 0..255 (a quarter of float32's memory); each batch becomes cfg.dtype in [0, 1] as it
    is used. Label files must hold integers (DataError for an IDX file of floats)."""
    xp = None if cfg.backend == "numpy" else array_module(cfg.backend)
    try:
        dataset = data_mod.load_dataset(folder, dtype="uint8", xp=xp)
    except ValueError as e:
        if isinstance(e, data_mod.DataError):
            raise
        for split, name in (("train", data_mod.TRAIN_IMAGES), ("test", data_mod.TEST_IMAGES)):
            if len(data_mod.read_idx(Path(folder) / name)) == 0:   # data.py cannot reshape it
                raise ConfigError(f"the {split} set of {Path(folder).name} is empty "
                                  f"(0 images)") from e
        raise
    for name in (data_mod.TRAIN_LABELS, data_mod.TEST_LABELS):
        path = Path(folder) / name
        kind = data_mod.read_idx(path).dtype
        if kind.kind not in "iu":
            raise data_mod.DataError(f"{path}: holds {kind} labels; class labels must be "
                                     f"integers (minisnn does not round them)")
    return dataset


def check_data(cfg: TrainConfig, data, training=True):
    """Raise ConfigError if `data` cannot be used with `cfg` (sizes, dtype, backend, labels).
    training=False checks only what evaluating on the test set needs."""
    for split in ("train", "test") if training else ("test",):
        x = getattr(data, f"{split}_x")
        if x.ndim != 2 or x.shape[1] != cfg.num_inputs:
            raise ConfigError(f"the {split} images have shape {tuple(x.shape)}, but the network "
                              f"takes {cfg.num_inputs} inputs per image")
        if len(x) == 0:
            raise ConfigError(f"the {split} set of {data.name or 'the data set'} is empty "
                              f"(0 images)")
        if training and len(x) < cfg.batch_size:
            raise ConfigError(f"batch_size {cfg.batch_size} is larger than the {len(x)} "
                              f"{split} images of {data.name or 'the data set'}")
        if str(x.dtype) not in ("uint8", cfg.dtype):
            raise ConfigError(f"the {split} images are {x.dtype} but the run computes in "
                              f"{cfg.dtype}; load them with load_data(folder, cfg)")
        if backend_name(get_xp(x)) != cfg.backend:
            raise ConfigError(f"the {split} images are on {backend_name(get_xp(x))} but the run "
                              f"uses {cfg.backend}; load them with load_data(folder, cfg)")
        y = getattr(data, f"{split}_y")   # value checks once here, not at every step
        if y.dtype.kind not in "iu":
            raise ConfigError(f"the {split} labels are {y.dtype}; class labels must be integers")
        if len(y) != len(x):
            raise ConfigError(f"the {split} set has {len(x)} images but {len(y)} labels")
        if int(y.min()) < 0 or int(y.max()) >= cfg.num_outputs:
            raise ConfigError(f"the {split} labels must be in [0, {cfg.num_outputs}), got values "
                              f"from {int(y.min())} to {int(y.max())}")
        if x.dtype.kind == "f" and not bool(get_xp(x).isfinite(x).all()):
            raise ConfigError(f"the {split} images contain NaN or inf")


def train_step(net, opt, x, y, num_steps):
    """One iteration: forward over `num_steps`, membrane cross-entropy summed over the steps,
    BPTT, one Adam step. Returns (loss as a 0-d array, output spikes (T, B, C))."""
    opt.zero_grad()
    spk_rec, mem_rec = net(x, num_steps)
    loss, d_mem = ce_membrane_loss(mem_rec, y)
    net.backward(d_mem=d_mem)
    opt.step()
    return loss, spk_rec


def eval_batch(net, x, y, num_steps):
    """The loss and output spikes of one batch, without a backward pass or an update."""
    spk_rec, mem_rec = net(x, num_steps)
    loss, _ = ce_membrane_loss(mem_rec, y)
    return loss, spk_rec


def batch_accuracy(spk_rec, y):
    """Rate-decoded accuracy of one batch, as a Python float in [0, 1]."""
    return float((rate(spk_rec) == y).mean())


def evaluate(net, x, y, num_steps, batch_size=TrainConfig.eval_batch_size):
    """Rate-decoded accuracy over all of x (uint8 pixels or floats), in batches, forward only.
    Returns (correct, total) as Python ints. The records of a batch are (T, B, hidden) arrays:
    a moderate batch size keeps the peak memory low and costs no speed."""
    if len(y) == 0:
        raise ValueError("evaluate needs at least one example; x and y are empty")
    correct = 0
    for xb, yb in data_mod.iterate_batches(x, y, batch_size, shuffle=False, drop_last=False,
                                           dtype=net.dtype):
        spk_rec, _ = net(xb, num_steps)
        correct = correct + (rate(spk_rec) == yb).sum()   # stays on the device until the end
    net.record = None                                     # free the last batch's records
    return int(correct), len(y)


def cycle_test_batches(x, y, batch_size, seed=0, start=0, dtype=None):
    """Test minibatches for ever: pass k over the test set is shuffled with
    iterate_batches(seed=seed, epoch=k). `start` skips that many batches, so that the
    minibatch of global iteration i is the same whether or not the run was resumed."""
    per_pass = data_mod.num_batches(len(x), batch_size)
    if per_pass == 0:
        raise ValueError(f"the test set ({len(x)} images) holds no batch of {batch_size}")
    k, skip = divmod(start, per_pass)
    while True:
        for j, batch in enumerate(data_mod.iterate_batches(x, y, batch_size, seed=seed, epoch=k,
                                                           dtype=dtype)):
            if j >= skip:
                yield batch
        k, skip = k + 1, 0


def epoch_batches(x, y, batch_size, seed, epoch, start=0, dtype=None):
    """The training batches of one epoch from image `start` of its shuffled order on (the
    order of data.iterate_batches(seed=seed, epoch=epoch), asked from it), as many full
    batches as remain. With start = 0 these are exactly iterate_batches' batches."""
    n = len(x)
    index = get_xp(x).arange(n)                # on the data's device
    (order, _), = data_mod.iterate_batches(index, index, n, seed=seed, epoch=epoch)
    order = order[start:]
    for s in range(0, len(order) - batch_size + 1, batch_size):
        sel = order[s:s + batch_size]
        xb = x[sel]
        yield (xb if dtype is None else data_mod.pixels_to_float(xb, dtype)), y[sel]


# ----------------------------------------------------------------------------- the loop

@dataclass(frozen=True)
class RunState:
    """What a checkpoint saves: the network, the optimizer, the loss history so far and where
    training stands. Handed to train's `checkpoint` callback (all values finite)."""
    net: Sequential
    opt: Adam
    history: History
    progress: Progress


@dataclass(frozen=True)
class TrainResult:
    """What `train` returns. `test_accuracy` is over the whole test set, in [0, 1]; it,
    `correct` and `total` are None when training was stopped (`stopped` says why)."""
    net: Sequential
    opt: Adam
    history: History
    test_accuracy: float | None
    correct: int | None
    total: int | None
    sec_per_iter: float       # wall time of the training loop (checkpoints left out) / iterations
    sec_per_epoch: float      # sec_per_iter × iters_per_epoch
    eval_seconds: float       # the final full test-set evaluation
    iterations: int           # iterations run by this call
    iters_per_epoch: int      # training batches per epoch (drop_last)
    progress: Progress        # where training stands now (for save_run / resume)
    stopped: str | None = None     # 'stopped' when train's stop() asked for it, else None
    end_epoch: int = 0        # the epoch this call would have ended before (cfg.epochs from start)
    checkpoints: int = 0      # checkpoints written by this call
    checkpoint_seconds: float = 0.0


class _Schedule:
    """When the next checkpoint is due: every `every` iterations, every `seconds` of wall time."""

    def __init__(self, cfg, callback, iteration):
        self.callback, self.every = callback, cfg.checkpoint_every
        self.seconds = cfg.checkpoint_minutes * 60
        self.last, self.count, self.spent = time.monotonic(), 0, 0.0
        self.saved = iteration          # the iteration the newest checkpoint holds

    def due(self, it):
        return self.callback is not None and (
            (self.every is not None and it % self.every == 0)
            or (self.seconds > 0 and time.monotonic() - self.last >= self.seconds))

    def save(self, state):
        if self.callback is None or state.progress.iteration == self.saved:
            return
        t = time.monotonic()
        self.callback(state)
        self.saved = state.progress.iteration
        self.last = time.monotonic()
        self.count, self.spent = self.count + 1, self.spent + self.last - t


def train(cfg: TrainConfig, data, net=None, opt=None, start=Progress(), history=None,
          log=print, progress=None, checkpoint=None, stop=None) -> TrainResult:
    """Train for cfg.epochs epochs (or cfg.max_iters iterations) and evaluate on the test set.

    net, opt: a network and optimizer to continue (default: fresh ones from cfg). start: where
    a resumed run stands; the epoch it is in counts as the first of cfg.epochs. history: the
    rows so far, appended to. log: called with each line of the reports (None: silent).
    progress: show a tqdm bar on stderr (None: only when stderr is a terminal).
    checkpoint: called with a RunState when a checkpoint is due (see the module docstring).
    stop: called after every iteration; when it returns true, training ends there and the
    result has stopped='stopped' and no test accuracy. Raises Diverged on NaN or inf.
    """
    check_data(cfg, data)
    net = build_net(cfg) if net is None else net
    opt = build_optimizer(net, cfg) if opt is None else opt
    history = History() if history is None else history
    say = log or (lambda *a: None)
    n, B = len(data.train_x), cfg.batch_size
    per_epoch = n // B
    if progress is None:
        progress = log is not None and sys.stderr.isatty()
    if start.images + B > n:   # no full batch left in the checkpoint's epoch: the next one
        start = Progress(start.epoch + 1, 0, start.iteration)
    end_epoch = start.epoch + cfg.epochs
    host_every = 1 if backend_name(net.xp) == "numpy" else cfg.report_every
    limit = math.inf if cfg.max_iters is None else cfg.max_iters

    tests = cycle_test_batches(data.test_x, data.test_y, B, cfg.seed, start.iteration,
                               dtype=cfg.dtype)
    pending = []   # (iteration, epoch, train loss, test loss) with 0-d device arrays
    schedule = _Schedule(cfg, checkpoint, start.iteration)
    # where training stands; an epoch with no full batch left counts as done
    where = lambda: Progress(epoch + 1, 0, it) if images + B > n else Progress(epoch, images, it)
    save = lambda: schedule.save(_checked_state(net, opt, history, pending, cfg, where()))
    it, epoch, images, run, stopped = start.iteration, start.epoch, start.images, 0, None
    t0 = time.perf_counter()
    while epoch < end_epoch and run < limit and stopped is None:
        bar = _bar(progress, per_epoch, images // B, f"Epoch {epoch}")
        for x, y in epoch_batches(data.train_x, data.train_y, B, cfg.seed, epoch, images,
                                  cfg.dtype):
            if run >= limit:
                break
            loss, _ = train_step(net, opt, x, y, cfg.steps)
            tx, ty = next(tests)
            test_loss, test_spk = eval_batch(net, tx, ty, cfg.steps)
            pending.append((it, epoch, loss, test_loss))
            if it % cfg.report_every == 0:
                _flush(pending, history, cfg.lr)
                # as the reference tutorial: both minibatch accuracies after this update
                train_acc = batch_accuracy(eval_batch(net, x, y, cfg.steps)[1], y)
                lines = report_lines(epoch, images // B, history.train_loss[-1],
                                     history.test_loss[-1], train_acc,
                                     batch_accuracy(test_spk, ty))
                _write(bar, say, lines)
                if bar is not None:
                    bar.set_postfix(loss=f"{history.train_loss[-1]:.2f}", refresh=False)
            elif len(pending) >= host_every:
                _flush(pending, history, cfg.lr)
            it, run, images = it + 1, run + 1, images + B
            if bar is not None:
                bar.update(1)
            if stop is not None and stop():
                stopped = "stopped"
                break
            if schedule.due(it):
                save()
        else:
            epoch, images = epoch + 1, 0     # the epoch ran to its end
            if schedule.callback is not None:
                save()
        if bar is not None:
            bar.close()
    _flush(pending, history, cfg.lr)         # brings every loss to the host: the clock is fair
    _check_finite(net, opt, it, cfg.lr)
    train_seconds = time.perf_counter() - t0 - schedule.spent
    end = where()

    t1 = time.perf_counter()
    correct = total = None
    if stopped is None:
        correct, total = evaluate(net, data.test_x, data.test_y, cfg.steps, cfg.eval_batch_size)
    eval_seconds = time.perf_counter() - t1
    sec_per_iter = train_seconds / run if run else float("nan")
    result = TrainResult(net, opt, history, None if total is None else correct / total, correct,
                         total, sec_per_iter, sec_per_iter * per_epoch, eval_seconds, run,
                         per_epoch, end, stopped, end_epoch, schedule.count, schedule.spent)
    if stopped is None:
        for line in summary_lines(result):
            say(line)
    return result


def _flush(pending, history, lr):
    """Bring the pending losses to the host, into `history`; Diverged at the first NaN/inf."""
    rows = [(it, epoch, float(loss), float(test_loss)) for it, epoch, loss, test_loss in pending]
    pending.clear()
    for row in rows:
        history.append(*row)
    for it, _, loss, test_loss in rows:
        if not math.isfinite(loss):
            raise Diverged(it, f"the training loss is {loss}", lr)
        if not math.isfinite(test_loss):
            raise Diverged(it, f"the test-minibatch loss is {test_loss}", lr)


def _check_finite(net, opt, it, lr):
    """Diverged unless every parameter, gradient and optimizer state array is finite (one
    reduction per array: done before checkpoints, not every iteration)."""
    arrays = [(f"parameter {name}", p.value) for name, p in _named(net)]
    arrays += [(f"gradient of {name}", p.grad) for name, p in _named(net)]
    arrays += [(f"Adam's {k} of {name}", a) for k, arrs in opt.state_arrays().items()
               for (name, _), a in zip(_named(net), arrs)]
    for what, a in arrays:
        if not bool(get_xp(a).isfinite(a).all()):
            raise Diverged(max(it - 1, 0), f"{what} holds NaN or inf", lr)


def _named(net):
    named = getattr(net, "named_parameters", None)
    if named is not None:
        return named()
    return [(str(i), p) for i, p in enumerate(net.parameters())]


def _checked_state(net, opt, history, pending, cfg, progress):
    _flush(pending, history, cfg.lr)
    _check_finite(net, opt, progress.iteration, cfg.lr)
    return RunState(net, opt, history, progress)


def _bar(enabled, total, initial, desc):
    if not enabled:
        return None
    from tqdm import tqdm
    return tqdm(total=total, initial=initial, desc=desc, unit="it", leave=False,
                dynamic_ncols=True)


def _write(bar, say, lines):
    if bar is None:
        for line in lines:
            say(line)
        return
    with type(bar).external_write_mode():   # clear the bar, print, draw it again
        for line in lines:
            say(line)


def report_lines(epoch, iteration, train_loss, test_loss, train_acc, test_acc):
    """The tutorial's periodic report (iteration counts within the epoch)."""
    return [f"Epoch {epoch}, Iteration {iteration}",
            f"Train Set Loss: {train_loss:.2f}",
            f"Test Set Loss: {test_loss:.2f}",
            f"Train set accuracy for a single minibatch: {train_acc * 100:.2f}%",
            f"Test set accuracy for a single minibatch: {test_acc * 100:.2f}%",
            ""]


def accuracy_lines(correct, total):
    """Whole-test-set accuracy, as the tutorial prints it."""
    return [f"Total correctly classified test set images: {correct}/{total}",
            f"Test Set Accuracy: {100 * correct / total:.2f}%"]


def summary_lines(result: TrainResult):
    """The end-of-run summary: whole test set accuracy and timing."""
    return accuracy_lines(result.correct, result.total) + [
        f"Time: {result.sec_per_iter:.4f} s/iteration, {result.sec_per_epoch:.2f} s/epoch "
        f"({result.iters_per_epoch} iterations/epoch; {result.iterations} run here), "
        f"test-set evaluation {result.eval_seconds:.2f} s"]


# ----------------------------------------------------------------------------- checkpoints

_REQUIRED_META = ("hidden", "steps", "beta", "surrogate", "dtype")


def _saved_config(meta, path) -> TrainConfig:
    missing = [k for k in _REQUIRED_META if k not in meta]
    if missing:
        raise CheckpointError(f"{path}: holds no training settings ({', '.join(missing)} "
                              f"missing from its meta data); was it written by minisnn train?")
    try:
        return TrainConfig.from_meta(meta)
    except (ConfigError, TypeError) as e:
        raise CheckpointError(f"{path}: bad training settings in its meta data: {e}") from e


def config_from_checkpoint(path, **overrides) -> TrainConfig:
    """The TrainConfig a checkpoint written by a training run was trained with; `overrides`
    replace single settings, as config.RESUME allows (ConfigError for a fixed setting that
    differs). Raises CheckpointError for other files."""
    saved = _saved_config(read_info(path)["meta"], path)
    return resume_config(saved, overrides, keep_run=True)


def load_checkpoint(path, cfg: TrainConfig, with_optimizer=True):
    """Build cfg's network (and optimizer) and load `path` into them.

    The checkpoint must hold exactly this architecture (ms.load compares every layer's
    settings) and have been trained with cfg's fixed settings (config.RESUME: steps, seed...),
    else CheckpointError. Returns (net, opt or None, Progress, meta)."""
    net = build_net(cfg)
    opt = build_optimizer(net, cfg) if with_optimizer else None
    meta = load(path, net, optimizer=opt)
    saved = _saved_config(meta, path)
    refused = refused_changes(saved, {k: getattr(cfg, k) for k in settings_of_kind(FIXED)})
    if refused:
        listed = ", ".join(f"{k}={s} in the checkpoint, {v} here" for k, s, v in refused)
        raise CheckpointError(f"{path}: the checkpoint was trained with other settings: {listed}")
    return net, opt, Progress.from_meta(meta), meta

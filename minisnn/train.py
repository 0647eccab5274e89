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
minisnn.runfolder, building a run from them in minisnn.build; all are importable from here.
"""
from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass

from . import data as data_mod
from .backend import backend_name, get_xp
from .build import (build_net, build_optimizer, check_data, config_from_checkpoint, inputs_for,
                    load_checkpoint, load_data)
from .config import (BACKENDS, DTYPES, RESUME, TRAIN_SURROGATES, ConfigError, Progress,
                     TrainConfig, resume_config)
from .decode import predict_rate
from .encoding import EVALUATE, TEST_MINIBATCH, TRAIN
from .loss import ce_membrane_loss, ce_rate_loss
from .network import Sequential
from .optim import Adam
from .runfolder import (CHECKPOINT_NAME, CURVE_NAME, HISTORY_NAME, History, plot_losses,
                        read_history, run_meta, save_run, write_history)

__all__ = [  # this module's own names, and those of the pieces it is made of
    "Diverged", "RunState", "TrainResult", "train", "train_step", "eval_batch", "batch_accuracy",
    "evaluate", "cycle_test_batches", "epoch_batches", "report_lines", "accuracy_lines",
    "summary_lines",
    "build_net", "build_optimizer", "check_data", "config_from_checkpoint", "load_checkpoint",
    "load_data", "inputs_for", "loss_of",
    "BACKENDS", "DTYPES", "RESUME", "TRAIN_SURROGATES", "ConfigError", "Progress", "TrainConfig",
    "resume_config",
    "CHECKPOINT_NAME", "CURVE_NAME", "HISTORY_NAME", "History", "plot_losses", "read_history",
    "run_meta", "save_run", "write_history",
]


class Diverged(ArithmeticError):
    """Training produced NaN or inf. `iteration`: the first iteration found bad; `what`: which
    value it was. The network is left as it is (bad); nothing has been saved from it."""

    def __init__(self, iteration, what, lr):
        self.iteration, self.what, self.lr = iteration, what, lr
        super().__init__(f"training diverged at iteration {iteration}: {what}; try a smaller "
                         f"learning rate than {lr:g}")


# ----------------------------------------------------------------------------- one iteration

def loss_of(loss, spk_rec, mem_rec, y):
    """(L, gradient keywords for net.backward) of the run's loss: 'ce_membrane', the seed's
    cross-entropy of the membrane summed over steps (d_mem), or 'ce_rate', snnTorch's
    cross-entropy of the spikes at each step, averaged over steps (d_spk)."""
    if loss == "ce_rate":
        L, d_spk = ce_rate_loss(spk_rec, y)
        return L, {"d_spk": d_spk}
    L, d_mem = ce_membrane_loss(mem_rec, y)
    return L, {"d_mem": d_mem}


def train_step(net, opt, x, y, num_steps, loss="ce_membrane", recompute_every=None):
    """One iteration: forward over `num_steps`, the loss (membrane cross-entropy summed over the
    steps, by default), BPTT, one Adam step. Returns (loss as a 0-d array, output spikes).
    recompute_every: BPTT in segments of that many steps, memory flat in T (minisnn.recompute)."""
    opt.zero_grad()
    spk_rec, mem_rec = net(x, num_steps, recompute_every)
    L, grads = loss_of(loss, spk_rec, mem_rec, y)
    net.backward(**grads)
    opt.step()
    return L, spk_rec


def eval_batch(net, x, y, num_steps, loss="ce_membrane", recompute_every=None):
    """The loss and output spikes of one batch, without a backward pass or an update."""
    spk_rec, mem_rec = net(x, num_steps, recompute_every)
    return loss_of(loss, spk_rec, mem_rec, y)[0], spk_rec


def batch_accuracy(spk_rec, y):
    """Rate-decoded accuracy of one batch, as a Python float in [0, 1]."""
    return float((predict_rate(spk_rec) == y).mean())


def evaluate(net, x, y, num_steps, batch_size=TrainConfig.eval_batch_size, inputs=None,
             recompute_every=None):
    """Rate-decoded accuracy over all of x (uint8 pixels or floats), in batches, forward only,
    each batch shown as `inputs` says (minisnn.encoding.Inputs: the encoding and the image
    shape of the run; None: the flat pixels, static); recompute_every as for `train_step` (the
    forward then keeps only a segment's records).
    Returns (correct, total) as Python ints. The records of a batch are (T, B, hidden) arrays:
    a moderate batch size keeps the peak memory low and costs no speed."""
    if len(y) == 0:
        raise ValueError("evaluate needs at least one example; x and y are empty")
    correct = 0
    for j, (xb, yb) in enumerate(data_mod.iterate_batches(x, y, batch_size, shuffle=False,
                                                          drop_last=False, dtype=net.dtype)):
        xb = xb if inputs is None else inputs(xb, EVALUATE, j)
        spk_rec, _ = net(xb, num_steps, recompute_every)
        correct = correct + (predict_rate(spk_rec) == yb).sum()   # stays on the device until the end
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
    inputs = inputs_for(cfg)
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
            x = inputs(x, TRAIN, it)
            loss, _ = train_step(net, opt, x, y, cfg.steps, cfg.loss, cfg.recompute_every)
            tx, ty = next(tests)
            test_loss, test_spk = eval_batch(net, inputs(tx, TEST_MINIBATCH, it), ty, cfg.steps,
                                             cfg.loss, cfg.recompute_every)
            pending.append((it, epoch, loss, test_loss))
            if it % cfg.report_every == 0:
                _flush(pending, history, cfg.lr)
                # as the reference tutorial: both minibatch accuracies after this update
                train_acc = batch_accuracy(eval_batch(net, x, y, cfg.steps, cfg.loss,
                                                      cfg.recompute_every)[1], y)
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
        correct, total = evaluate(net, data.test_x, data.test_y, cfg.steps, cfg.eval_batch_size,
                                  inputs, cfg.recompute_every)
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

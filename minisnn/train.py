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
arrays and become Python floats only at report time, so a GPU run does not wait every step.
"""
from __future__ import annotations

import csv
import io
import math
import sys
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np

from . import data as data_mod
from .atomic import atomic_write
from .backend import array_module, backend_name, get_xp
from .checkpoint import CheckpointError, load, read_info, save
from .decode import predict_rate
from .linear import Linear
from .loss import ce_membrane_loss
from .network import Sequential
from .neuron import Leaky
from .optim import Adam
from .surrogate import SURROGATES

#: Surrogates a training run may use: every one but the gradient-checking stand-in, whose
#: forward pass is not a spike.
TRAIN_SURROGATES = tuple(name for name, cls in SURROGATES.items() if not cls.smooth)
DTYPES = ("float32", "float64")
BACKENDS = ("numpy", "cupy")

CHECKPOINT_NAME = "model.npz"
HISTORY_NAME = "loss_history.csv"
CURVE_NAME = "loss_curve.png"


class ConfigError(ValueError):
    """A training setting out of range (the message names the setting and the value)."""


# ----------------------------------------------------------------------------- settings

@dataclass(frozen=True)
class TrainConfig:
    """Every setting of a training run. The defaults are the reference tutorial's."""

    hidden: int = 1000               # neurons in the hidden layer: 784-1000-10
    steps: int = 25                  # time steps each image is shown for (num_steps)
    beta: float = 0.95               # membrane decay β of both Leaky layers
    surrogate: str = "atan"          # surrogate gradient (a name from TRAIN_SURROGATES)
    lr: float = 5e-4                 # Adam learning rate
    betas: tuple = (0.9, 0.999)      # Adam's β1, β2
    batch_size: int = 128            # training (and test-minibatch) batch size; drop_last
    epochs: int = 1                  # passes over the training set in this run
    seed: int = 0                    # weights, shuffling and test minibatches all follow it
    dtype: str = "float32"
    backend: str = "numpy"           # 'numpy' or 'cupy'
    max_iters: int | None = None     # stop after this many iterations (None: run all epochs)
    report_every: int = 50           # print the tutorial's report every this many iterations
    eval_batch_size: int = 128       # batch size of the final full test-set evaluation
    num_inputs: int = 784            # pixels per image
    num_outputs: int = 10            # classes

    def __post_init__(self):
        for name in ("hidden", "steps", "batch_size", "epochs", "report_every",
                     "eval_batch_size", "num_inputs", "num_outputs"):
            _check_int(name, getattr(self, name), 1)
        _check_int("seed", self.seed, 0)
        if self.max_iters is not None:
            _check_int("max_iters", self.max_iters, 1)
        if not _is_number(self.beta) or not 0.0 <= self.beta <= 1.0:
            raise ConfigError(f"beta must be a number in [0, 1], got {self.beta!r}")
        if not _is_number(self.lr) or not (self.lr > 0 and math.isfinite(self.lr)):
            raise ConfigError(f"lr must be a finite number > 0, got {self.lr!r}")
        betas = tuple(self.betas) if isinstance(self.betas, (tuple, list)) else None
        if betas is None or len(betas) != 2 or not all(_is_number(b) and 0 <= b < 1 for b in betas):
            raise ConfigError(f"betas must be two numbers in [0, 1), got {self.betas!r}")
        object.__setattr__(self, "betas", betas)
        for name, value, allowed in (("surrogate", self.surrogate, TRAIN_SURROGATES),
                                     ("dtype", self.dtype, DTYPES),
                                     ("backend", self.backend, BACKENDS)):
            if value not in allowed:
                raise ConfigError(f"{name} must be one of {', '.join(allowed)}; got {value!r}")

    def to_meta(self):
        """The settings as a JSON-able dict, for a checkpoint's meta data."""
        meta = asdict(self)
        meta["betas"] = list(self.betas)
        return meta

    @classmethod
    def from_meta(cls, meta, **overrides):
        """Settings read back from a checkpoint's meta data (unknown keys are ignored);
        `overrides` replace single values."""
        names = {f.name for f in fields(cls)}
        kwargs = {k: v for k, v in meta.items() if k in names}
        if "betas" in kwargs:
            kwargs["betas"] = tuple(kwargs["betas"])
        kwargs.update(overrides)
        return cls(**kwargs)


def _is_number(v):
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool) \
        and math.isfinite(v)


def _check_int(name, v, least):
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < least:
        raise ConfigError(f"{name} must be an integer >= {least}, got {v!r}")


@dataclass(frozen=True)
class Progress:
    """How far training has got: `epoch` epochs completed, `batch` batches into the next
    one, `iteration` optimizer steps in all. A resumed run starts from here."""
    epoch: int = 0
    batch: int = 0
    iteration: int = 0

    @classmethod
    def from_meta(cls, meta):
        return cls(int(meta.get("epoch", 0)), int(meta.get("batch", 0)),
                   int(meta.get("iteration", 0)))


@dataclass
class History:
    """One row per iteration: the global iteration number, its epoch, the training loss of its
    minibatch and the loss on one test minibatch. Plain lists of Python numbers."""
    iteration: list = field(default_factory=list)
    epoch: list = field(default_factory=list)
    train_loss: list = field(default_factory=list)
    test_loss: list = field(default_factory=list)

    COLUMNS = ("iteration", "epoch", "train_loss", "test_loss")

    def __len__(self):
        return len(self.iteration)

    def append(self, iteration, epoch, train_loss, test_loss):
        self.iteration.append(int(iteration))
        self.epoch.append(int(epoch))
        self.train_loss.append(float(train_loss))
        self.test_loss.append(float(test_loss))

    def rows(self):
        return list(zip(self.iteration, self.epoch, self.train_loss, self.test_loss))

    def upto(self, iteration):
        """The rows before global iteration `iteration`, as a new History."""
        h = History()
        for row in self.rows():
            if row[0] < iteration:
                h.append(*row)
        return h


@dataclass(frozen=True)
class TrainResult:
    """What `train` returns. `test_accuracy` is over the whole test set, in [0, 1]."""
    net: Sequential
    opt: Adam
    history: History
    test_accuracy: float
    correct: int
    total: int
    sec_per_iter: float       # wall time of the training loop / iterations run
    sec_per_epoch: float      # sec_per_iter × iters_per_epoch
    eval_seconds: float       # the final full test-set evaluation
    iterations: int           # iterations run by this call
    iters_per_epoch: int      # training batches per epoch (drop_last)
    progress: Progress        # where training stands now (for save_run / resume)


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
    is used."""
    xp = None if cfg.backend == "numpy" else array_module(cfg.backend)
    return data_mod.load_dataset(folder, dtype="uint8", xp=xp)


def check_data(cfg: TrainConfig, data, training=True):
    """Raise ConfigError if `data` cannot be used with `cfg` (sizes, dtype, backend).
    training=False checks only what evaluating on the test set needs."""
    for split in ("train", "test") if training else ("test",):
        x = getattr(data, f"{split}_x")
        if x.ndim != 2 or x.shape[1] != cfg.num_inputs:
            raise ConfigError(f"the {split} images have shape {tuple(x.shape)}, but the network "
                              f"takes {cfg.num_inputs} inputs per image")
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
        if len(y) and (int(y.min()) < 0 or int(y.max()) >= cfg.num_outputs):
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
    return float((predict_rate(spk_rec) == y).mean())


def evaluate(net, x, y, num_steps, batch_size=TrainConfig.eval_batch_size):
    """Rate-decoded accuracy over all of x (uint8 pixels or floats), in batches, forward only.
    Returns (correct, total) as Python ints. The records of a batch are (T, B, hidden) arrays:
    a moderate batch size keeps the peak memory low and costs no speed."""
    correct = 0
    for xb, yb in data_mod.iterate_batches(x, y, batch_size, shuffle=False, drop_last=False,
                                           dtype=net.dtype):
        spk_rec, _ = net(xb, num_steps)
        correct = correct + (predict_rate(spk_rec) == yb).sum()   # stays on the device until the end
    net.record = None                                     # free the last batch's records
    return int(correct), len(y)


def cycle_test_batches(x, y, batch_size, seed=0, start=0, dtype=None):
    """Test minibatches for ever: pass k over the test set is shuffled with
    iterate_batches(seed=seed, epoch=k). `start` skips that many batches, so that the
    minibatch of global iteration i is the same whether or not the run was resumed."""
    per_pass = data_mod.num_batches(len(x), batch_size)
    k, skip = divmod(start, per_pass)
    while True:
        for j, batch in enumerate(data_mod.iterate_batches(x, y, batch_size, seed=seed, epoch=k,
                                                           dtype=dtype)):
            if j >= skip:
                yield batch
        k, skip = k + 1, 0


# ----------------------------------------------------------------------------- the loop

def train(cfg: TrainConfig, data, net=None, opt=None, start=Progress(), history=None,
          log=print, progress=None) -> TrainResult:
    """Train for cfg.epochs epochs (or cfg.max_iters iterations) and evaluate on the test set.

    net, opt: a network and optimizer to continue (default: fresh ones from cfg). start: where
    a resumed run stands; the epoch it is in counts as the first of cfg.epochs. history: the
    rows so far, appended to. log: called with each line of the reports (None: silent).
    progress: show a tqdm bar on stderr (None: only when stderr is a terminal).
    """
    check_data(cfg, data)
    net = build_net(cfg) if net is None else net
    opt = build_optimizer(net, cfg) if opt is None else opt
    history = History() if history is None else history
    say = log or (lambda *a: None)
    per_epoch = data_mod.num_batches(len(data.train_x), cfg.batch_size)
    if progress is None:
        progress = log is not None and sys.stderr.isatty()
    if start.batch >= per_epoch:   # the checkpoint's batch size was smaller: next epoch
        start = Progress(start.epoch + 1, 0, start.iteration)

    tests = cycle_test_batches(data.test_x, data.test_y, cfg.batch_size, cfg.seed, start.iteration,
                               dtype=cfg.dtype)
    pending = []   # (iteration, epoch, train loss, test loss) with 0-d device arrays
    it, epoch, batch, run = start.iteration, start.epoch, start.batch, 0
    t0 = time.perf_counter()
    for epoch in range(start.epoch, start.epoch + cfg.epochs):
        first = start.batch if epoch == start.epoch else 0
        bar = _bar(progress, per_epoch, first, f"Epoch {epoch}")
        batches = data_mod.iterate_batches(data.train_x, data.train_y, cfg.batch_size,
                                           seed=cfg.seed, epoch=epoch, dtype=cfg.dtype)
        for batch, (x, y) in enumerate(batches):
            if batch < first:
                continue
            if cfg.max_iters is not None and run >= cfg.max_iters:
                break
            loss, _ = train_step(net, opt, x, y, cfg.steps)
            tx, ty = next(tests)
            test_loss, test_spk = eval_batch(net, tx, ty, cfg.steps)
            pending.append((it, epoch, loss, test_loss))
            if it % cfg.report_every == 0:
                _flush(pending, history)
                # as the reference tutorial: both minibatch accuracies after this update
                train_acc = batch_accuracy(eval_batch(net, x, y, cfg.steps)[1], y)
                lines = report_lines(epoch, batch, history.train_loss[-1], history.test_loss[-1],
                                     train_acc, batch_accuracy(test_spk, ty))
                _write(bar, say, lines)
                if bar is not None:
                    bar.set_postfix(loss=f"{history.train_loss[-1]:.2f}", refresh=False)
            if bar is not None:
                bar.update(1)
            it, run = it + 1, run + 1
        else:
            batch = per_epoch          # the epoch ran to its end
        if bar is not None:
            bar.close()
        if batch < per_epoch:          # stopped by max_iters inside this epoch
            break
    _flush(pending, history)           # brings every loss to the host: the clock is fair
    train_seconds = time.perf_counter() - t0
    if batch >= per_epoch:
        end = Progress(epoch + 1, 0, it)
    else:
        end = Progress(epoch, batch, it)

    t1 = time.perf_counter()
    correct, total = evaluate(net, data.test_x, data.test_y, cfg.steps, cfg.eval_batch_size)
    eval_seconds = time.perf_counter() - t1
    sec_per_iter = train_seconds / run if run else float("nan")
    result = TrainResult(net, opt, history, correct / total, correct, total, sec_per_iter,
                         sec_per_iter * per_epoch, eval_seconds, run, per_epoch, end)
    for line in summary_lines(result):
        say(line)
    return result


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


def _flush(pending, history):
    for it, epoch, loss, test_loss in pending:
        history.append(it, epoch, float(loss), float(test_loss))
    pending.clear()


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


# ----------------------------------------------------------------------------- files

def run_meta(cfg: TrainConfig, progress: Progress, data_name="", test_accuracy=None):
    """The meta data a checkpoint of this run carries: the settings and where training stands."""
    meta = cfg.to_meta()
    meta.update(epoch=progress.epoch, batch=progress.batch, iteration=progress.iteration,
                data=data_name)
    if test_accuracy is not None:
        meta["test_accuracy"] = test_accuracy
    return meta


def save_run(out, result: TrainResult, cfg: TrainConfig, data_name=""):
    """Write model.npz (parameters, Adam state, settings), loss_history.csv and loss_curve.png
    into the folder `out` (created if needed), each atomically. Returns the three paths."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = out / CHECKPOINT_NAME, out / HISTORY_NAME, out / CURVE_NAME
    meta = run_meta(cfg, result.progress, data_name, result.test_accuracy)
    save(paths[0], result.net, optimizer=result.opt, **meta)
    write_history(paths[1], result.history)
    plot_losses(result.history, paths[2])
    return paths


def write_history(path, history: History):
    """The loss history as CSV (floats written exactly, with repr), atomically."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(History.COLUMNS)
    for it, epoch, train_loss, test_loss in history.rows():
        w.writerow([it, epoch, repr(train_loss), repr(test_loss)])
    atomic_write(path, buf.getvalue().encode())


def read_history(path) -> History:
    """Read a loss_history.csv written by write_history."""
    h = History()
    with open(path, newline="") as f:
        rows = csv.reader(f)
        header = next(rows, None)
        if tuple(header or ()) != History.COLUMNS:
            raise ValueError(f"{path}: not a minisnn loss history (header {header})")
        for row in rows:
            h.append(int(row[0]), int(row[1]), float(row[2]), float(row[3]))
    return h


def plot_losses(history: History, path):
    """Draw the training and test loss against the iteration into a PNG, atomically.
    Uses matplotlib's Agg canvas directly: needs no display and leaves pyplot alone."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 5))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.plot(history.iteration, history.train_loss, label="Train loss")
    ax.plot(history.iteration, history.test_loss, label="Test loss (one minibatch)")
    ax.set_title("Loss curves")
    ax.set_xlabel("Iteration")
    ax.set_ylabel("Loss")
    ax.legend()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    atomic_write(path, buf.getvalue())


# ----------------------------------------------------------------------------- checkpoints

_REQUIRED_META = ("hidden", "steps", "beta", "surrogate", "dtype")
def _architecture(net):
    return [repr(layer) for layer in net.layers]


def config_from_checkpoint(path, **overrides) -> TrainConfig:
    """The TrainConfig a checkpoint written by `save_run` was trained with (`overrides`
    replace single settings). Raises CheckpointError for other files."""
    info = read_info(path)
    meta = info.get("meta", {})
    missing = [k for k in _REQUIRED_META if k not in meta]
    if missing:
        raise CheckpointError(f"{path}: holds no training settings ({', '.join(missing)} "
                              f"missing from its meta data); was it written by minisnn train?")
    try:
        return TrainConfig.from_meta(meta, **overrides)
    except (ConfigError, TypeError) as e:
        raise CheckpointError(f"{path}: bad training settings in its meta data: {e}") from e


def load_checkpoint(path, cfg: TrainConfig, with_optimizer=True):
    """Build cfg's network (and optimizer) and load `path` into them.

    The checkpoint must hold exactly this architecture (layer sizes, β, surrogate, dtype), else
    CheckpointError. Returns (net, opt or None, Progress, meta)."""
    info = read_info(path)
    net = build_net(cfg)
    saved, built = info.get("architecture") or [], _architecture(net)
    if saved != built:
        diff = [(i, a, b) for i, (a, b) in enumerate(zip(saved, built)) if a != b]
        if len(saved) != len(built) or not diff:
            what = f"{len(saved)} layers there, {len(built)} here"
        else:
            i, a, b = diff[0]
            what = f"layer {i} is {a} there but {b} here"
            what += f" ({len(diff) - 1} more layers differ)" if len(diff) > 1 else ""
        raise CheckpointError(f"{path}: checkpoint holds a different architecture than these "
                              f"settings build: {what}")
    opt = build_optimizer(net, cfg) if with_optimizer else None
    meta = load(path, net, optimizer=opt)
    return net, opt, Progress.from_meta(meta), meta

"""A training run's output folder: its files, always of one run and one iteration, and its lock.

A run folder holds `model.npz` (parameters, Adam state, settings, progress), `loss_history.csv`
(one row per iteration) and, once the run has finished, `loss_curve.png`. Every save builds
all of them in a hidden folder beside the target and then swaps it in (minisnn.atomic): a
reader sees the previous complete set or the new one, never a checkpoint beside another
iteration's history or another run's plot.

While a run writes a folder it holds its lock, `.NAME.lock` beside it, which names the
process. A second run into the same folder is refused; a lock left by a process that no longer
runs (killed, or its machine rebooted) is recognised and taken over.

A run writes only into a new or empty folder, or one that holds nothing but a run's files:
the swap replaces the whole folder, so anything else in it would be lost.
"""
from __future__ import annotations

import csv
import io
import os
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path

from .atomic import atomic_folder, atomic_write, remove_leftovers
from .checkpoint import save

CHECKPOINT_NAME = "model.npz"
HISTORY_NAME = "loss_history.csv"
CURVE_NAME = "loss_curve.png"
RUN_FILES = (CHECKPOINT_NAME, HISTORY_NAME, CURVE_NAME)


class RunFolderError(RuntimeError):
    """The output folder cannot be used: taken by a live run, or it holds other files."""


# ----------------------------------------------------------------------------- history

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


def previous_history(checkpoint, iteration):
    """The loss history beside `checkpoint`, up to `iteration` (where the checkpoint stands).
    Returns (History or None, a note to print or None)."""
    path = Path(checkpoint).parent / HISTORY_NAME
    if not path.is_file():
        return None, None
    try:
        h = read_history(path).upto(iteration)
    except (OSError, ValueError, IndexError):
        h = None
    if h is None or h.iteration != list(range(iteration)):
        return None, (f"{path} does not match the checkpoint; the new loss history starts at "
                      f"iteration {iteration}")
    return h, None


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


# ----------------------------------------------------------------------------- the lock

class RunLock:
    """`.NAME.lock` beside the folder `out`, held with flock while a run writes `out`. The
    kernel lets go of a flock when its process ends, however it ends, so a lock file that
    nobody holds is stale, whatever pid it names. The file holds pid, host and start time."""

    def __init__(self, out):
        self.out = Path(out)
        self.path = self.out.parent / f".{self.out.name}.lock"
        self.fd = None
        self.stale = None          # what a stale lock that was taken over said, if any

    def acquire(self):
        import fcntl
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.read(fd, 200).decode(errors="replace").split()
                os.close(fd)
                who = f"pid {holder[0]} on {holder[1]}" if len(holder) >= 2 else "another process"
                raise RunFolderError(f"--out {self.out} is in use by a "
                                     f"running minisnn ({who}; lock {self.path}); wait for it "
                                     f"to finish or choose another --out") from None
            try:   # the holder before us may have removed the file: lock the one at the path
                same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        old = os.read(fd, 200).decode(errors="replace").split()
        self.stale = old[:2] if old else None
        os.lseek(fd, 0, os.SEEK_SET)
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()} {socket.gethostname()} {time.time():.0f}\n".encode())
        self.fd = fd
        return self

    def release(self):
        if self.fd is not None:
            try:
                self.path.unlink()     # while still holding it (see acquire's inode check)
            except FileNotFoundError:
                pass
            os.close(self.fd)
            self.fd = None


# ----------------------------------------------------------------------------- the folder

def check_out_folder(out: Path):
    """Raise RunFolderError unless `out` can become a run folder (see the module docstring)."""
    if out.exists() and not out.is_dir():
        raise RunFolderError(f"--out {out} exists and is not a folder")
    here, there = Path(os.path.realpath(".")), Path(os.path.realpath(out))
    if there == here or there in here.parents or there.parent == there:
        raise RunFolderError(f"--out {out} is the current folder or holds it; a run replaces "
                             f"its whole folder, so give a folder of its own")
    if out.is_dir():
        other = sorted(p.name for p in out.iterdir() if p.name not in RUN_FILES)
        if other:
            shown = ", ".join(other[:5]) + (", ..." if len(other) > 5 else "")
            raise RunFolderError(f"--out {out} holds files that are not a training run's "
                                 f"({shown}); a run replaces its whole folder, so give a new or "
                                 f"empty folder, or an earlier run's")
    existing = out.parent
    while not existing.exists() and existing.parent != existing:
        existing = existing.parent
    if not (existing.is_dir() and os.access(existing, os.W_OK | os.X_OK)):
        raise RunFolderError(f"--out {out}: cannot write into {existing}")


def run_meta(cfg, progress, data_name="", test_accuracy=None, status="checkpoint"):
    """The meta data a checkpoint of this run carries: the settings, where training stands
    (`progress`, a config.Progress) and `status`: 'checkpoint' (written during training),
    'interrupted' or 'finished' (then with the whole test set's accuracy)."""
    meta = cfg.to_meta()
    meta.update(progress.to_meta(), data=data_name, status=status)
    if test_accuracy is not None:
        meta["test_accuracy"] = test_accuracy
    return meta


class RunFolder:
    """`with RunFolder(out) as run: ... run.commit(...)`: the lock of `out` is held inside the
    block (RunFolderError if a live run holds it); each commit replaces the folder's files as
    one. Parent folders created here are removed again on exit if they stayed empty."""

    def __init__(self, out):
        self.out = Path(os.path.realpath(out))   # one lock, whatever links lead to it
        self.lock = RunLock(self.out)
        self._made = []

    def __enter__(self):
        check_out_folder(self.out)
        parent = self.out.parent
        while not parent.exists():
            self._made.append(parent)
            parent = parent.parent
        self.out.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.lock.acquire()
            remove_leftovers(self.out)     # of a killed earlier run; we hold the lock
        except BaseException:
            self._remove_made()
            raise
        return self

    def __exit__(self, *exc):
        self.lock.release()
        self._remove_made()

    def _remove_made(self):
        for folder in self._made:          # deepest first
            try:
                folder.rmdir()
            except OSError:
                break

    def commit(self, net, opt, history, meta, plot=False):
        """Write model.npz and loss_history.csv (and loss_curve.png if `plot`) and swap them
        in as the folder's whole content. Returns the paths written."""
        names = RUN_FILES if plot else RUN_FILES[:2]
        with atomic_folder(self.out) as tmp:
            save(tmp / CHECKPOINT_NAME, net, optimizer=opt, **meta)
            write_history(tmp / HISTORY_NAME, history)
            if plot:
                plot_losses(history, tmp / CURVE_NAME)
        return [self.out / name for name in names]


def save_run(out, result, cfg, data_name=""):
    """Write model.npz (parameters, Adam state, settings), loss_history.csv and loss_curve.png
    of a finished `train` result into the folder `out`, all three as one (see the module
    docstring; RunFolderError if a live run holds `out`). Returns the three paths."""
    meta = run_meta(cfg, result.progress, data_name, result.test_accuracy,
                    status="finished" if result.test_accuracy is not None else "checkpoint")
    with RunFolder(out) as run:
        paths = run.commit(result.net, result.opt, result.history, meta,
                           plot=result.test_accuracy is not None)
    return [Path(out) / p.name for p in paths]

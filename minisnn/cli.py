"""The command line: `minisnn train | evaluate | download | bench` (or `python -m minisnn ...`).

This module only parses and checks arguments, then calls minisnn.train. Every expected failure
(bad flag value, missing or corrupt data, a checkpoint that does not fit, a run too big for the
memory, a full disk, a diverged run) ends with ONE line `minisnn: error: ...` on stderr and a
non-zero exit status. Nothing is written before training starts.

`train` checkpoints into --out during training (each epoch, every --checkpoint-minutes, and
every --checkpoint-every iterations if given), always as a whole folder (minisnn.runfolder),
and holds --out's lock meanwhile. Ctrl-C or SIGTERM stops it after the iteration in progress:
it saves that iteration, prints one line with what it saved and the `--resume` command that
continues the run, and exits 130 (SIGINT) or 143 (SIGTERM). A second signal stops at once
(the last checkpoint stays). A closed stdout (`minisnn train | head -1`) stops the output,
not the training.

`--resume` follows the table minisnn.config.RESUME (its rule is printed by `train --help`):
the network's and the run's path settings must match the checkpoint, --lr and --batch-size may
change, and --epochs, --max-iters, --backend and the intervals are this command's own.
"""
from __future__ import annotations

import argparse
import importlib
import io
import math
import os
import shlex
import sys
import zipfile
from pathlib import Path

import numpy as np

from . import __version__
from . import data as data_mod
from . import train as T
from .checkpoint import CheckpointError
from .config import CONTINUE, FIXED, RESUME, RUN, resume_config, settings_of_kind
from .interrupts import Interrupted, Interrupts, describe
from .malloc import keep_freed_memory, release_freed_memory
from .memory import check_fits
from .runfolder import CHECKPOINT_NAME, RunFolder, RunFolderError, previous_history, run_meta

D = T.TrainConfig()   # the defaults, for the help text


class CLIError(Exception):
    """A usage error: printed as one line, exit status 2."""


class Failure(Exception):
    """A run that could not go on (diverged, disk full): printed as one line, exit status 1."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise CLIError(message)


def _flag(name):
    return "--" + name.replace("_", "-")


# ----------------------------------------------------------------------------- output

class SafeStdout:
    """sys.stdout, for one command, that survives a closed pipe (`minisnn train | head -1`):
    once the reader has gone, output goes to /dev/null and the work goes on."""

    def __init__(self, stream):
        self.stream, self.gone = stream, False

    def write(self, text):
        return self._do(self.stream.write, text) or len(text)

    def flush(self):
        self._do(self.stream.flush)

    def _do(self, fn, *args):
        if not self.gone:
            try:
                return fn(*args)
            except (BrokenPipeError, ValueError):
                self.gone = True
                _stdout_to_devnull(self.stream)

    def __getattr__(self, name):
        return getattr(self.stream, name)


def _stdout_to_devnull(stream):
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, stream.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError, io.UnsupportedOperation):
        pass


def say(line=""):
    """Print a line of output now (a reader at the other end of a pipe sees it at once)."""
    print(line, flush=True)


def _err(line):
    try:
        print(line, file=sys.stderr, flush=True)
    except (OSError, ValueError):
        pass


# ----------------------------------------------------------------------------- value checks

def _int_at_least(least):
    def parse(text):
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be an integer >= {least}, got {text!r}")
        if v < least:
            raise argparse.ArgumentTypeError(f"must be an integer >= {least}, got {v}")
        return v
    return parse


def _float(text):
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {text!r}")
    if not math.isfinite(v):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
    return v


def _beta(text):
    v = _float(text)
    if not 0.0 <= v <= 1.0:
        raise argparse.ArgumentTypeError(f"must be in [0, 1], got {v:g}")
    return v


def _lr(text):
    v = _float(text)
    if not v > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {v:g}")
    return v


def _minutes(text):
    v = _float(text)
    if v < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {v:g}")
    return v


# ----------------------------------------------------------------------------- parser

def resume_help(flags):
    """The --resume rule in words, from config.RESUME (`flags`: the settings with a flag)."""
    show = lambda kind: ", ".join(_flag(n) if n in flags else n for n in settings_of_kind(kind))
    return (f"continue from a model.npz written by train. Taken from the checkpoint, and "
            f"refused if given otherwise: {show(FIXED)}. Taken from the checkpoint unless "
            f"given: {show(CONTINUE)} (progress counts images, so a new batch size goes on "
            f"from the next image of the same epoch). This command's own, never the "
            f"checkpoint's: {show(RUN)} (with --resume, the epoch in progress counts as the "
            f"first of --epochs)")


def build_parser():
    p = _Parser(prog="minisnn", description="A from-scratch spiking neural network: train on "
                "MNIST-style data, evaluate checkpoints, download MNIST, benchmark.")
    p.add_argument("--version", action="version", version=f"minisnn {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    data_help = ("folder with the four MNIST-style IDX files (default: $MINISNN_DATA, "
                 "else data/mnist)")
    t = sub.add_parser("train", help="train the tutorial's 784-1000-10 network",
                       description="Train a 784-HIDDEN-10 spiking network (defaults: the "
                       "reference tutorial's) and write model.npz and loss_history.csv to --out "
                       "as checkpoints during training, and loss_curve.png when it finishes. "
                       "Ctrl-C or SIGTERM saves the last iteration and prints the command that "
                       "resumes it.")
    t.add_argument("--data", metavar="DIR", help=data_help)
    t.add_argument("--download", action="store_true",
                   help="download MNIST into --data first if files are missing")
    t.add_argument("--epochs", type=_int_at_least(1),
                   help=f"epochs to run (default {D.epochs}); with --resume, the epoch in "
                   "progress counts as the first")
    t.add_argument("--batch-size", type=_int_at_least(1), help=f"default {D.batch_size}")
    t.add_argument("--hidden", type=_int_at_least(1), help=f"hidden neurons (default {D.hidden})")
    t.add_argument("--steps", type=_int_at_least(1), help=f"time steps (default {D.steps})")
    t.add_argument("--beta", type=_beta, help=f"membrane decay in [0, 1] (default {D.beta})")
    t.add_argument("--lr", type=_lr, help=f"Adam learning rate (default {D.lr:g})")
    t.add_argument("--surrogate", choices=T.TRAIN_SURROGATES,
                   help=f"surrogate gradient (default {D.surrogate})")
    t.add_argument("--seed", type=_int_at_least(0), help=f"random seed (default {D.seed})")
    t.add_argument("--backend", choices=T.BACKENDS, help=f"array library (default {D.backend})")
    t.add_argument("--dtype", choices=T.DTYPES, help=f"default {D.dtype}")
    t.add_argument("--max-iters", type=_int_at_least(1), metavar="N",
                   help="stop after N iterations")
    t.add_argument("--report-every", type=_int_at_least(1), metavar="N",
                   help=f"print the report every N iterations (default {D.report_every})")
    t.add_argument("--checkpoint-every", type=_int_at_least(1), metavar="N",
                   help="also checkpoint every N iterations (default: only each epoch and by "
                   "time)")
    t.add_argument("--checkpoint-minutes", type=_minutes, metavar="M",
                   help=f"checkpoint at least every M minutes of training (default "
                   f"{D.checkpoint_minutes:g}; 0: not by time); always at the end of each epoch")
    t.add_argument("--out", metavar="DIR", default="runs/latest",
                   help="output folder, new or an earlier run's (default runs/latest)")
    t.add_argument("--quiet", action="store_true",
                   help="no progress bar or periodic reports; only the final summary")
    flags = {a.dest for a in t._actions}
    t.add_argument("--resume", metavar="CHECKPOINT", help=resume_help(flags))
    t.set_defaults(func=cmd_train)

    e = sub.add_parser("evaluate", help="test-set accuracy of a checkpoint",
                       description="Rebuild the network a checkpoint was trained with and print "
                       "its accuracy on the whole test set.")
    e.add_argument("checkpoint", metavar="CHECKPOINT", help="a model.npz written by train")
    e.add_argument("--data", metavar="DIR", help=data_help)
    e.add_argument("--batch-size", type=_int_at_least(1), default=D.eval_batch_size,
                   help=f"evaluation batch size (default {D.eval_batch_size})")
    e.add_argument("--backend", choices=T.BACKENDS, default=D.backend,
                   help=f"array library (default {D.backend})")
    e.set_defaults(func=cmd_evaluate)

    d = sub.add_parser("download", help="download MNIST",
                       description="Download the four MNIST files (checked against their MD5).")
    d.add_argument("--data", metavar="DIR", help=data_help)
    d.add_argument("--quiet", action="store_true", help="no progress bars")
    d.set_defaults(func=cmd_download)

    sub.add_parser("bench", help="benchmarks (minisnn bench --help)", add_help=False)
    return p


# ----------------------------------------------------------------------------- commands

def _data_folder(args):
    return Path(args.data) if args.data else data_mod.default_data_dir()


def _use_backend(name):
    from .backend import set_backend
    try:
        set_backend(name)
    except (RuntimeError, ImportError) as e:
        raise CLIError(str(e)) from e


def _train_config(args):
    """The run's settings: the flags given, and with --resume the checkpoint's (RESUME)."""
    given = {n: getattr(args, n) for n in RESUME if getattr(args, n, None) is not None}
    if not args.resume:
        return T.TrainConfig(**given)
    saved = T.config_from_checkpoint(args.resume)
    try:
        return resume_config(saved, given, flag=_flag)
    except T.ConfigError as e:
        raise CLIError(f"--resume {args.resume}: {e}") from e


def cmd_train(args):
    cfg = _train_config(args)
    _use_backend(cfg.backend)
    with RunFolder(args.out) as run:
        if run.lock.stale:
            _err(f"minisnn: note: took over the stale lock {run.lock.path} (pid "
                 f"{run.lock.stale[0]}, which no longer holds it)")
        folder = _data_folder(args)
        if args.download and not all((folder / name).is_file() for name in data_mod.FILES):
            data_mod.download_mnist(folder, progress=not args.quiet)
        data = T.load_data(folder, cfg)
        T.check_data(cfg, data)
        check_fits(cfg)
        net = opt = history = None
        start = T.Progress()
        if args.resume:
            net, opt, start, _ = T.load_checkpoint(args.resume, cfg)
            history, note = previous_history(args.resume, start.iteration)
            if note:
                _err(f"minisnn: note: {note}")

        if not args.quiet:
            say(f"minisnn {__version__}: {cfg.num_inputs}-{cfg.hidden}-{cfg.num_outputs} "
                    f"network, {cfg.steps} steps, beta {cfg.beta:g}, {cfg.surrogate} surrogate, "
                    f"Adam lr {cfg.lr:g}, batch {cfg.batch_size}, {cfg.epochs} epoch(s), "
                    f"{cfg.backend} {cfg.dtype}, seed {cfg.seed}")
            print(f"Data: {folder} ({len(data.train_x)} training, {len(data.test_x)} test images)")
            if args.resume:
                say(f"Resuming {args.resume} at epoch {start.epoch}, image {start.images}, "
                        f"iteration {start.iteration}")
            say()
        return _train_and_save(args, cfg, data, run, net, opt, start, history)


def _train_and_save(args, cfg, data, run, net, opt, start, history):
    """Train with checkpoints into `run`, then save the finished run; signals are deferred."""
    interrupts = args.interrupts
    saved = {"progress": None, "out": args.out}   # what this command has saved in --out

    def checkpoint(state):
        _commit(run, cfg, data.name, state.net, state.opt, state.history, state.progress, saved)

    # NaN and inf are caught by train (Diverged), with one clear line: no NumPy warnings too
    with interrupts.deferred(), np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        try:
            result = T.train(cfg, data, net=net, opt=opt, start=start, history=history,
                             log=None if args.quiet else say,
                             progress=False if args.quiet else None,
                             checkpoint=checkpoint, stop=interrupts.pending)
            if result.stopped:
                if result.iterations:
                    _commit(run, cfg, data.name, result.net, result.opt, result.history,
                            result.progress, saved, status="interrupted")
                _err(f"minisnn: {describe(interrupts.received)} "
                     f"{_saved_line(args, run, cfg, result, saved)}")
                return interrupts.status
            if args.quiet:
                for line in T.summary_lines(result):
                    say(line)
            release_freed_memory()   # training is over: its memory goes back before plotting
            paths = _commit(run, cfg, data.name, result.net, result.opt, result.history,
                            result.progress, saved, status="finished",
                            test_accuracy=result.test_accuracy, plot=True)
        except T.Diverged as e:
            last = Path(args.out) / CHECKPOINT_NAME
            hint = (f"; continue from it with --resume {last} --lr {cfg.lr / 10:g}"
                    if last.is_file() else "")
            raise Failure(f"training diverged at iteration {e.iteration}: {e.what}; try a "
                          f"smaller --lr than {cfg.lr:g} (e.g. {cfg.lr / 10:g}); "
                          f"{_kept(saved)}{hint}") from e
        except Interrupted as e:      # a second signal: stop at once
            _err(f"minisnn: {describe(e.signum)} again: stopped at once; {_kept(saved)}")
            return e.status
    say(f"Saved {', '.join(p.name for p in paths)} in {args.out}")
    if interrupts.pending():           # arrived during the evaluation or the final save
        _err(f"minisnn: {describe(interrupts.received)} after the run had finished; "
             f"everything was saved")
        return interrupts.status
    return 0


def _commit(run, cfg, data_name, net, opt, history, progress, saved, status="checkpoint",
            test_accuracy=None, plot=False):
    meta = run_meta(cfg, progress, data_name, test_accuracy, status)
    try:
        paths = run.commit(net, opt, history, meta, plot=plot)
    except OSError as e:
        raise Failure(f"could not save iteration {progress.iteration} in {saved['out']} "
                      f"({e.strerror or e}); {_kept(saved)}") from e
    saved["progress"] = progress
    return paths


def _kept(saved):
    p, out = saved["progress"], saved["out"]
    if p is None:
        return f"this run saved nothing; {out} is as it was before"
    return f"{out} keeps the checkpoint of iteration {p.iteration}"


def _prog():
    """How this command was started: ['minisnn'] or ['python', '-m', 'minisnn']."""
    if Path(sys.argv[0]).name == "minisnn":
        return ["minisnn"]
    return [Path(sys.executable).name, "-m", "minisnn"]


def _saved_line(args, run, cfg, result, saved):
    """What an interrupted run saved, and the command that continues it."""
    p = result.progress
    if saved["progress"] is None:
        return "before its first iteration; nothing was saved"
    what = (f"after {p.iteration} iterations (epoch {p.epoch}, image {p.images}): saved "
            f"{CHECKPOINT_NAME} and {T.HISTORY_NAME} in {args.out}")
    epochs = result.end_epoch - p.epoch
    iters = None if cfg.max_iters is None else cfg.max_iters - result.iterations
    data = ["--data", args.data] if args.data else []
    if epochs <= 0 or iters == 0:
        cmd = [*_prog(), "evaluate", str(Path(args.out) / CHECKPOINT_NAME), *data]
        return f"{what}; training had finished; evaluate it with: {shlex.join(cmd)}"
    cmd = [*_prog(), "train", "--resume", str(Path(args.out) / CHECKPOINT_NAME),
           "--out", args.out, *data, "--epochs", str(epochs)]
    if iters is not None:
        cmd += ["--max-iters", str(iters)]
    for name in settings_of_kind(RUN):
        if name not in ("epochs", "max_iters") and getattr(args, name, None) is not None:
            cmd += [_flag(name), str(getattr(args, name))]
    cmd += ["--quiet"] if args.quiet else []
    return f"{what}; resume with: {shlex.join(cmd)}"


def cmd_evaluate(args):
    cfg = T.config_from_checkpoint(args.checkpoint, backend=args.backend,
                                   eval_batch_size=args.batch_size)
    _use_backend(cfg.backend)
    data = T.load_data(_data_folder(args), cfg)
    T.check_data(cfg, data, training=False)
    net, _, progress, meta = T.load_checkpoint(args.checkpoint, cfg, with_optimizer=False)
    correct, total = T.evaluate(net, data.test_x, data.test_y, cfg.steps, cfg.eval_batch_size)
    say(f"{args.checkpoint}: {cfg.num_inputs}-{cfg.hidden}-{cfg.num_outputs} network "
            f"trained {progress.iteration} iterations on {meta.get('data') or '?'}; evaluated "
            f"on {_data_folder(args)}")
    for line in T.accuracy_lines(correct, total):
        say(line)
    return 0


def cmd_download(args):
    folder = data_mod.download_mnist(_data_folder(args), progress=not args.quiet)
    print(f"MNIST is in {folder}")
    return 0


def cmd_bench(argv):
    """Hand everything after `bench` to minisnn.bench.main (imported only here)."""
    try:
        bench = importlib.import_module("minisnn.bench")
    except ImportError as e:
        if e.name in ("minisnn.bench", None):
            raise CLIError(f"benchmarks are not available in this installation ({e})") from e
        raise CLIError(f"benchmarks need {e.name}, which is not installed: "
                       f'pip install "minisnn[bench]"') from e
    return bench.main(argv)


# ----------------------------------------------------------------------------- entry point

def _one_line(message):
    return "; ".join(line.strip() for line in str(message).splitlines() if line.strip())


EXPECTED = (CLIError, Failure, T.ConfigError, CheckpointError, RunFolderError, data_mod.DataError,
            data_mod.DownloadError, zipfile.BadZipFile, OSError)


def main(argv=None):
    """Run the command line; returns the exit status (0 on success)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    stdout = sys.stdout = SafeStdout(sys.stdout)
    with Interrupts() as interrupts:
        try:
            keep_freed_memory()   # reuse freed arrays instead of page-faulting them in (malloc.py)
            if argv and argv[0] == "bench":
                status = cmd_bench(argv[1:])
                return 0 if status is None else status
            args = build_parser().parse_args(argv)
            if args.command is None:
                raise CLIError("choose a command: train, evaluate, download or bench "
                               "(see minisnn --help)")
            args.interrupts = interrupts
            return args.func(args)
        except SystemExit as e:   # --help, --version
            return e.code
        except KeyboardInterrupt as e:
            signum = getattr(e, "signum", 2)
            _err(f"minisnn: {describe(signum)}")
            return 128 + signum
        except MemoryError as e:
            _err(f"minisnn: error: {_one_line(e) or 'out of memory'}")
            return 1
        except EXPECTED as e:
            _err(f"minisnn: error: {_one_line(e)}")
            return 2 if isinstance(e, CLIError) else 1
        finally:
            stdout.flush()
            sys.stdout = stdout.stream

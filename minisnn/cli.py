"""The command line: `minisnn train | evaluate | download | bench` (or `python -m minisnn ...`).

This module only parses and checks arguments, then calls minisnn.train (the training command
runs through minisnn.trainrun). Every expected failure
(bad flag value, missing or corrupt data, a checkpoint that does not fit, a run too big for the
memory, a full disk, a diverged run) ends with ONE line `minisnn: error: ...` on stderr and a
non-zero exit status. Before training starts nothing is written but the lock beside --out.

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
import math
import sys
import textwrap
import zipfile
from pathlib import Path

import numpy as np

from . import __version__
from .config import LOSSES
from .encoding import ENCODINGS
from .models import ARCHS, RECIPES
from . import data as data_mod
from . import train as T
from .checkpoint import CheckpointError
from .config import CONTINUE, FIXED, RESUME, RUN, flag, resume_config, settings_of_kind
from .console import SafeStdout, err, one_line, say
from .interrupts import Interrupts, describe
from .malloc import keep_freed_memory
from .memory import check_fits
from .runfolder import RunFolder, RunFolderError, previous_history
from .trainrun import Failure, run_training

D = T.TrainConfig()   # the defaults, for the help text


class CLIError(Exception):
    """A usage error: printed as one line, exit status 2."""


def network_name(cfg):
    """784-1000-10 for the mlp, the layer string for the others."""
    if cfg.arch == "mlp":
        return f"{cfg.num_inputs}-{cfg.hidden}-{cfg.num_outputs}"
    return "12C5-MP2-64C5-MP2-FC10"


def _by_arch(name):
    """A setting's default per architecture, for --help: '0.95 (mlp), 0.5 (csnn)'."""
    return ", ".join(f"{getattr(r, name):g} ({a})" if isinstance(getattr(r, name), float)
                     else f"{getattr(r, name)} ({a})" for a, r in RECIPES.items())


class _Formatter(argparse.HelpFormatter):
    """Help text wrapped between words only: a flag such as --batch-size is never split."""

    def _split_lines(self, text, width):
        return textwrap.wrap(" ".join(text.split()), width, break_on_hyphens=False)

    def _fill_text(self, text, width, indent):
        return textwrap.fill(" ".join(text.split()), width, initial_indent=indent,
                             subsequent_indent=indent, break_on_hyphens=False)


class _Parser(argparse.ArgumentParser):
    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", _Formatter)
        super().__init__(*args, **kwargs)

    def error(self, message):
        raise CLIError(message)


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


def _number_above(least, strict=True):
    """A finite number > least (strict) or >= least."""
    def parse(text):
        v = _float(text)
        if not (v > least if strict else v >= least):
            raise argparse.ArgumentTypeError(f"must be {'>' if strict else '>='} {least:g}, "
                                             f"got {v:g}")
        return v
    return parse


# ----------------------------------------------------------------------------- parser

def resume_help(flags):
    """The --resume rule in words, from config.RESUME (`flags`: the settings with a flag)."""
    show = lambda kind: ", ".join(flag(n) if n in flags else n for n in settings_of_kind(kind))
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

    data_help = ("folder with the four MNIST-style IDX files, or mnist-sample (default: "
                 "$MINISNN_DATA, else data/mnist if it holds them, else the MNIST sample bundled "
                 "with minisnn)")
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
    t.add_argument("--arch", choices=ARCHS,
                   help="the network: mlp, the reference tutorial's 784-HIDDEN-10 (default), or "
                   "csnn, snnTorch tutorial 6's 12C5-MP2-64C5-MP2-FC10; --beta, --surrogate, "
                   "--lr and --loss default to its recipe")
    t.add_argument("--hidden", type=_int_at_least(1),
                   help=f"hidden neurons of the mlp (default {D.hidden})")
    t.add_argument("--steps", type=_int_at_least(1), help=f"time steps (default {D.steps})")
    t.add_argument("--beta", type=_beta,
                   help=f"membrane decay in [0, 1] (default {_by_arch('beta')})")
    t.add_argument("--lr", type=_number_above(0),
                   help=f"Adam learning rate (default {_by_arch('lr')})")
    t.add_argument("--surrogate", choices=T.TRAIN_SURROGATES,
                   help=f"surrogate gradient (default {_by_arch('surrogate')})")
    t.add_argument("--loss", choices=LOSSES,
                   help="ce_membrane: cross-entropy of the output membrane summed over the "
                   "steps (the reference tutorial's); ce_rate: snnTorch's ce_rate_loss, of the "
                   f"output spikes at each step (default {_by_arch('loss')})")
    t.add_argument("--seed", type=_int_at_least(0), help=f"random seed (default {D.seed})")
    t.add_argument("--encoding", choices=ENCODINGS,
                   help=f"how images become input: the pixels at every step (static), Bernoulli "
                   f"spike trains (rate) or first-spike times (latency) (default {D.encoding})")
    t.add_argument("--backend", choices=T.BACKENDS, help=f"array library (default {D.backend})")
    t.add_argument("--dtype", choices=T.DTYPES, help=f"default {D.dtype}")
    t.add_argument("--max-iters", type=_int_at_least(1), metavar="N",
                   help="stop after N iterations")
    t.add_argument("--report-every", type=_int_at_least(1), metavar="N",
                   help=f"print the report every N iterations (default {D.report_every})")
    t.add_argument("--checkpoint-every", type=_int_at_least(1), metavar="N",
                   help="also checkpoint every N iterations (default: only each epoch and by "
                   "time)")
    t.add_argument("--checkpoint-minutes", type=_number_above(0, strict=False), metavar="M",
                   help=f"checkpoint at least every M minutes of training (default "
                   f"{D.checkpoint_minutes:g}; 0: not by time); always at the end of each epoch")
    t.add_argument("--recompute-every", type=_int_at_least(1), metavar="K",
                   help="backprop through time in segments of K steps, recomputing each "
                   "segment's forward: memory nearly flat in --steps, the same gradients, about "
                   "one more forward's work (default: keep every step's records)")
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
                       description="Download the four MNIST files (checked against their MD5). "
                       "Files already there with the right MD5 are kept; other files of the same "
                       "names are never overwritten without --force.")
    d.add_argument("--data", metavar="DIR",
                   help="folder to download into (default: $MINISNN_DATA, else data/mnist)")
    d.add_argument("--force", action="store_true",
                   help="replace files in DIR that are not the official MNIST files")
    d.add_argument("--quiet", action="store_true", help="no progress bars")
    d.set_defaults(func=cmd_download)

    sub.add_parser("bench", help="benchmarks (minisnn bench --help)", add_help=False)
    return p


# ----------------------------------------------------------------------------- commands

def _data_choice(args):
    """The data to use: minisnn's one rule (minisnn.data.resolve_data)."""
    return data_mod.resolve_data(args.data)


def _download(folder, quiet, force=False):
    """Download MNIST into `folder`; 0, or 1 after printing why not (a few lines) on stderr."""
    if str(folder) in data_mod.BUNDLED:
        raise CLIError(f"--data {folder} is the bundled sample, not a folder to download into")
    try:
        data_mod.download_mnist(folder, progress=not quiet, force=force)
    except data_mod.DownloadError as e:
        if not getattr(e, "details", None):
            raise
        print(f"minisnn: error: {e.summary}", *e.details, sep="\n", file=sys.stderr)
        return 1
    return 0


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
        return resume_config(saved, given, flag=flag)
    except T.ConfigError as e:
        raise CLIError(f"--resume {args.resume}: {e}") from e


def cmd_train(args):
    cfg = _train_config(args)
    _use_backend(cfg.backend)
    with RunFolder(args.out) as run:
        if run.lock.stale:
            err(f"minisnn: note: took over the stale lock {run.lock.path} (pid "
                f"{run.lock.stale[0]}, which no longer holds it)")
        target = Path(args.data) if args.data else data_mod.default_data_dir()
        if args.download and not all((target / name).is_file() for name in data_mod.FILES):
            if _download(args.data or target, args.quiet):
                return 1
        choice = _data_choice(args)
        data = T.load_data(choice.source, cfg)
        T.check_data(cfg, data)
        check_fits(cfg)
        net = opt = history = None
        start = T.Progress()
        if args.resume:
            net, opt, start, _ = T.load_checkpoint(args.resume, cfg)
            history, note = previous_history(args.resume, start.iteration)
            if note:
                err(f"minisnn: note: {note}")

        if not args.quiet:
            say(f"minisnn {__version__}: {network_name(cfg)} network, {cfg.steps} steps, beta "
                f"{cfg.beta:g}, {cfg.surrogate} surrogate, "
                + ("" if cfg.loss == "ce_membrane" else f"{cfg.loss} loss, ")
                + f"Adam lr {cfg.lr:g}, batch {cfg.batch_size}, {cfg.epochs} epoch(s), "
                f"{cfg.backend} {cfg.dtype}, seed {cfg.seed}"
                + ("" if cfg.encoding == "static" else f", {cfg.encoding}-coded input")
                + ("" if cfg.recompute_every is None else
                   f", BPTT in segments of {cfg.recompute_every} steps"))
            print(choice.line(data))
            if args.resume:
                say(f"Resuming {args.resume} at epoch {start.epoch}, image {start.images}, "
                    f"iteration {start.iteration}")
            say()
        # NaN and inf stop training with one clear line (Diverged): no NumPy warnings as well
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            return run_training(args, cfg, data, run, net, opt, start, history)


def cmd_evaluate(args):
    cfg = T.config_from_checkpoint(args.checkpoint, backend=args.backend,
                                   eval_batch_size=args.batch_size)
    _use_backend(cfg.backend)
    choice = _data_choice(args)
    data = T.load_data(choice.source, cfg)
    T.check_data(cfg, data, training=False)
    net, _, progress, meta = T.load_checkpoint(args.checkpoint, cfg, with_optimizer=False)
    correct, total = T.evaluate(net, data.test_x, data.test_y, cfg.steps, cfg.eval_batch_size,
                                T.inputs_for(cfg))
    say(f"{args.checkpoint}: {network_name(cfg)} network trained "
        f"{progress.iteration} iterations on {meta.get('data') or '?'}; evaluated on "
        f"{choice.message}")
    for line in T.accuracy_lines(correct, total):
        say(line)
    return 0


def cmd_download(args):
    folder = args.data or data_mod.default_data_dir()
    status = _download(folder, args.quiet, args.force)
    if status == 0:
        print(f"MNIST is in {folder}")
    return status


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
            err(f"minisnn: {describe(signum)}")
            return 128 + signum
        except MemoryError as e:
            err(f"minisnn: error: {one_line(e) or 'out of memory'}")
            return 1
        except EXPECTED as e:
            err(f"minisnn: error: {one_line(e)}")
            return 2 if isinstance(e, CLIError) else 1
        finally:
            stdout.flush()
            sys.stdout = stdout.stream

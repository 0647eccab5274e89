"""The command line: `minisnn train | evaluate | download | bench` (or `python -m minisnn ...`).

This module only parses and checks arguments, then calls minisnn.train. Every expected failure
(bad flag value, missing or corrupt data, a checkpoint that does not fit) ends with ONE line
`minisnn: error: ...` on stderr and a non-zero exit status, and writes nothing: the output
folder is touched only after training has finished.
"""
from __future__ import annotations

import argparse
import importlib
import math
import os
import sys
import zipfile
from pathlib import Path

from . import __version__
from . import data as data_mod
from . import train as T
from .checkpoint import CheckpointError
from .malloc import keep_freed_memory, release_freed_memory

D = T.TrainConfig()   # the defaults, for the help text

# Settings a resumed run takes from its checkpoint unless the command line gives them.
FROM_CHECKPOINT = ("hidden", "steps", "beta", "surrogate", "lr", "batch_size", "seed", "dtype")


class CLIError(Exception):
    """A usage error: printed as one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
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


def _lr(text):
    v = _float(text)
    if not v > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {v:g}")
    return v


# ----------------------------------------------------------------------------- parser

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
                       "reference tutorial's) and write model.npz, loss_history.csv and "
                       "loss_curve.png to --out.")
    t.add_argument("--data", metavar="DIR", help=data_help)
    t.add_argument("--download", action="store_true",
                   help="download MNIST into --data first if files are missing")
    t.add_argument("--epochs", type=_int_at_least(1), default=D.epochs,
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
    t.add_argument("--backend", choices=T.BACKENDS, default=D.backend,
                   help=f"array library (default {D.backend})")
    t.add_argument("--dtype", choices=T.DTYPES, help=f"default {D.dtype}")
    t.add_argument("--max-iters", type=_int_at_least(1), metavar="N",
                   help="stop after N iterations")
    t.add_argument("--out", metavar="DIR", default="runs/latest",
                   help="output folder (default runs/latest)")
    t.add_argument("--resume", metavar="CHECKPOINT",
                   help="continue from a model.npz (its settings are the defaults)")
    t.add_argument("--quiet", action="store_true",
                   help="no progress bar or periodic reports; only the final summary")
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


def _check_out(out: Path):
    """Fail now, not after training, if the results could not be written to `out`."""
    if out.exists() and not out.is_dir():
        raise CLIError(f"--out {out} exists and is not a folder")
    existing = out
    while not existing.exists():
        existing = existing.parent if existing.parent != existing else Path(".")
        if existing == Path("."):
            break
    if existing.exists() and not (existing.is_dir() and os.access(existing, os.W_OK | os.X_OK)):
        raise CLIError(f"--out {out}: cannot write into {existing}")


def _previous_history(checkpoint, start: T.Progress):
    """The loss history next to a checkpoint, up to where it stands, if it fits; else None."""
    path = Path(checkpoint).parent / T.HISTORY_NAME
    if not path.is_file():
        return None
    try:
        h = T.read_history(path).upto(start.iteration)
    except (OSError, ValueError, IndexError):
        h = None
    if h is None or h.iteration != list(range(start.iteration)):
        print(f"minisnn: note: {path} does not match the checkpoint; the new loss history "
              f"starts at iteration {start.iteration}", file=sys.stderr)
        return None
    return h


def cmd_train(args):
    given = {k: getattr(args, k) for k in FROM_CHECKPOINT if getattr(args, k) is not None}
    run = dict(epochs=args.epochs, backend=args.backend, max_iters=args.max_iters)
    if args.resume:
        saved = T.config_from_checkpoint(args.resume).to_meta()
        cfg = T.TrainConfig.from_meta(saved, **run, **given)
    else:
        cfg = T.TrainConfig(**run, **given)
    out = Path(args.out)
    _check_out(out)
    _use_backend(cfg.backend)

    target = Path(args.data) if args.data else data_mod.default_data_dir()
    if args.download and not all((target / name).is_file() for name in data_mod.FILES):
        if _download(args.data or target, args.quiet):
            return 1
    choice = _data_choice(args)
    data = T.load_data(choice.source, cfg)
    T.check_data(cfg, data)
    net = opt = history = None
    start = T.Progress()
    if args.resume:
        net, opt, start, _ = T.load_checkpoint(args.resume, cfg)
        history = _previous_history(args.resume, start)

    if not args.quiet:
        print(f"minisnn {__version__}: {cfg.num_inputs}-{cfg.hidden}-{cfg.num_outputs} network, "
              f"{cfg.steps} steps, beta {cfg.beta:g}, {cfg.surrogate} surrogate, Adam lr "
              f"{cfg.lr:g}, batch {cfg.batch_size}, {cfg.epochs} epoch(s), {cfg.backend} "
              f"{cfg.dtype}, seed {cfg.seed}")
        print(choice.line(data))
        if args.resume:
            print(f"Resuming {args.resume} at epoch {start.epoch}, batch {start.batch}, "
                  f"iteration {start.iteration}")
        print()
    result = T.train(cfg, data, net=net, opt=opt, start=start, history=history,
                     log=None if args.quiet else print, progress=False if args.quiet else None)
    if args.quiet:
        for line in T.summary_lines(result):
            print(line)
    release_freed_memory()   # training is over: its arrays' memory goes back before plotting
    paths = T.save_run(out, result, cfg, data.name)
    print(f"Saved {', '.join(p.name for p in paths)} in {out}")
    return 0


def cmd_evaluate(args):
    cfg = T.config_from_checkpoint(args.checkpoint, backend=args.backend,
                                   eval_batch_size=args.batch_size)
    _use_backend(cfg.backend)
    choice = _data_choice(args)
    data = T.load_data(choice.source, cfg)
    T.check_data(cfg, data, training=False)
    net, _, progress, meta = T.load_checkpoint(args.checkpoint, cfg, with_optimizer=False)
    correct, total = T.evaluate(net, data.test_x, data.test_y, cfg.steps, cfg.eval_batch_size)
    print(f"{args.checkpoint}: {cfg.num_inputs}-{cfg.hidden}-{cfg.num_outputs} network trained "
          f"{progress.iteration} iterations on {meta.get('data') or '?'}; evaluated on "
          f"{choice.message}")
    for line in T.accuracy_lines(correct, total):
        print(line)
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

def _one_line(message):
    return "; ".join(line.strip() for line in str(message).splitlines() if line.strip())


def main(argv=None):
    """Run the command line; returns the exit status (0 on success)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    keep_freed_memory()   # reuse freed arrays instead of page-faulting them in (minisnn/malloc.py)
    expected = (CLIError, T.ConfigError, CheckpointError, data_mod.DataError,
                data_mod.DownloadError, zipfile.BadZipFile, OSError)
    try:
        if argv and argv[0] == "bench":
            status = cmd_bench(argv[1:])
            return 0 if status is None else status
        args = build_parser().parse_args(argv)
        if args.command is None:
            raise CLIError("choose a command: train, evaluate, download or bench "
                           "(see minisnn --help)")
        return args.func(args)
    except SystemExit as e:   # --help, --version
        return e.code
    except KeyboardInterrupt:
        print("minisnn: interrupted", file=sys.stderr)
        return 130
    except expected as e:
        print(f"minisnn: error: {_one_line(e)}", file=sys.stderr)
        return 2 if isinstance(e, CLIError) else 1

"""How `minisnn train` runs a training: checkpoints into its locked folder, signals deferred
until an iteration is whole, and one line saying what was saved when it stops early.

`run_training` is called by minisnn.cli once the settings, the data and the run folder are
ready; every early end comes out as a `Failure` (diverged, disk full) or an exit status.
"""
import shlex
import sys
from pathlib import Path

from . import train as T
from .config import RUN, Progress, flag, settings_of_kind
from .console import err, say
from .interrupts import Interrupted, describe
from .malloc import release_freed_memory
from .runfolder import CHECKPOINT_NAME, run_meta


class Failure(Exception):
    """A run that could not go on (diverged, disk full): printed as one line, exit status 1."""


def run_training(args, cfg, data, run, net=None, opt=None, start=Progress(), history=None):
    """Train with checkpoints into `run`, then save the finished run; signals are deferred.
    (The caller silences NumPy's overflow warnings: NaN and inf end the run as Diverged.)"""
    interrupts = args.interrupts
    saved = {"progress": None, "out": args.out}   # what this command has saved in --out

    def checkpoint(state):
        _commit(run, cfg, data.name, state.net, state.opt, state.history, state.progress, saved)

    with interrupts.deferred():
        try:
            result = T.train(cfg, data, net=net, opt=opt, start=start, history=history,
                             log=None if args.quiet else say,
                             progress=False if args.quiet else None,
                             checkpoint=checkpoint, stop=interrupts.pending)
            if result.stopped:
                if result.iterations:
                    _commit(run, cfg, data.name, result.net, result.opt, result.history,
                            result.progress, saved, status="interrupted")
                err(f"minisnn: {describe(interrupts.received)} "
                    f"{_saved_line(args, cfg, result, saved)}")
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
            err(f"minisnn: {describe(e.signum)} again: stopped at once; {_kept(saved)}")
            return e.status
    say(f"Saved {', '.join(p.name for p in paths)} in {args.out}")
    if interrupts.pending():           # arrived during the evaluation or the final save
        err(f"minisnn: {describe(interrupts.received)} after the run had finished; "
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


def _saved_line(args, cfg, result, saved):
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
            cmd += [flag(name), str(getattr(args, name))]
    cmd += ["--quiet"] if args.quiet else []
    return f"{what}; resume with: {shlex.join(cmd)}"

"""`python -m minisnn ...` and the `minisnn` console script: the command line of minisnn.cli.

`run` takes Ctrl-C and SIGTERM from its first moment: until the command line installs its own
handlers (minisnn.interrupts), a signal ends the start-up with one line and the shell's status
(130, 143). Nothing has been written by then.
"""
import signal
import sys


def _early(signum, frame):
    name = signal.Signals(signum).name
    what = "terminated" if signum == signal.SIGTERM else "interrupted"
    print(f"minisnn: {what} by {name} while starting", file=sys.stderr)
    raise SystemExit(128 + signum)


def run(argv=None):
    for s in (signal.SIGINT, signal.SIGTERM):
        signal.signal(s, _early)
    from .threads import settle_blas_threads
    settle_blas_threads()                  # before anything imports NumPy (minisnn/threads.py)
    from .cli import main
    return main(argv)


if __name__ == "__main__":
    raise SystemExit(run())

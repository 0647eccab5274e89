"""Ctrl-C (SIGINT) and SIGTERM for the command line: the same clean-up for both.

Inside `with Interrupts() as interrupts:` either signal raises `Interrupted`, a
KeyboardInterrupt, so every `finally` runs and no temporary file stays behind (by default
SIGTERM ends Python at once, skipping them). Inside `with interrupts.deferred():` the first
signal is only noted: `interrupts.pending()` turns true and the training loop stops after the
iteration it is in, so its state is whole and can be saved; a second signal raises at once.
Handlers are installed only in the main thread, and the previous ones come back on exit.
"""
import contextlib
import signal
import threading


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM arrived. `status` is the shell's exit status for it (130, 143)."""

    def __init__(self, signum):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def status(self):
        return 128 + self.signum


def describe(signum):
    """'interrupted by SIGINT' or 'terminated by SIGTERM'."""
    name = signal.Signals(signum).name
    return f"{'terminated' if signum == signal.SIGTERM else 'interrupted'} by {name}"


class Interrupts:
    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self):
        self.received = None        # the first signal's number
        self._defer = False
        self._old = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for s in self.SIGNALS:
                self._old[s] = signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc):
        for s, handler in self._old.items():
            signal.signal(s, handler)
        self._old.clear()

    def _handle(self, signum, frame):
        first = self.received is None
        if first:
            self.received = signum
        if not (self._defer and first):
            raise Interrupted(signum)

    @contextlib.contextmanager
    def deferred(self):
        """Note the first signal instead of raising it (see the module docstring)."""
        self._defer = True
        try:
            yield self
        finally:
            self._defer = False

    def pending(self):
        """True once a signal has arrived."""
        return self.received is not None

    @property
    def status(self):
        return 128 + self.received if self.received is not None else 0

"""What the command line prints: output that survives a closed pipe, and one-line errors."""
import io
import os
import sys


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


def err(line):
    """Print a line on stderr (a closed stderr is ignored)."""
    try:
        print(line, file=sys.stderr, flush=True)
    except (OSError, ValueError):
        pass


def one_line(message):
    """A message of several lines as one line, for `minisnn: error: ...`."""
    return "; ".join(line.strip() for line in str(message).splitlines() if line.strip())

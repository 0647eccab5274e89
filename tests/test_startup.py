"""Start-up: `import minisnn` is cheap (names are imported on first use), and the command line
takes Ctrl-C and SIGTERM from its first moment with one line and the shell's status."""
import os
import signal
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_import_minisnn_imports_neither_numpy_nor_matplotlib():
    code = ("import sys, minisnn; print('numpy' in sys.modules, 'matplotlib' in sys.modules); "
            "minisnn.Leaky; print('numpy' in sys.modules, 'matplotlib' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO,
                         check=True).stdout.split()
    assert out == ["False", "False", "True", "False"]


# The child sends itself the signal at the moment the command line first imports NumPy (while
# `python -m minisnn` is still importing minisnn.cli): deterministic, whatever the machine's load.
CHILD = """
import builtins, os, signal, sys
real_import = builtins.__import__
def importing(name, *args, **kwargs):
    if name == "numpy" and "numpy" not in sys.modules:
        os.kill(os.getpid(), signal.{sig})
    return real_import(name, *args, **kwargs)
builtins.__import__ = importing
from minisnn.__main__ import run
sys.exit(run(["train", "--out", {out!r}, "--quiet"]))
"""


@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM"])
def test_signal_while_starting_is_one_line(sig, tmp_path):
    code = CHILD.format(sig=sig, out=str(tmp_path / "run"))
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 128 + signal.Signals[sig], (proc.returncode, proc.stderr)
    assert proc.stderr.endswith(f"by {sig} while starting\n") and "Traceback" not in proc.stderr
    assert len(proc.stderr.splitlines()) == 1 and proc.stdout == ""
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("given, expected", [(None, "4"), ("12", "12")])
def test_the_command_lets_openblas_threads_sleep_before_numpy_loads(given, expected):
    """minisnn.threads: the `minisnn` command sets OPENBLAS_THREAD_TIMEOUT before NumPy (and so
    OpenBLAS) is imported, and keeps a value the user set."""
    code = ("import os, sys\nimport minisnn.__main__ as m\n"
            "try:\n    m.run(['--version'])\nexcept SystemExit:\n    pass\n"
            "from minisnn.threads import settle_blas_threads\n"
            "print(os.environ.get('OPENBLAS_THREAD_TIMEOUT'), 'numpy' in sys.modules)")
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_THREAD_TIMEOUT"}
    if given is not None:
        env["OPENBLAS_THREAD_TIMEOUT"] = given
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[-2] == expected

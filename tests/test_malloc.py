"""minisnn.malloc: the allocator tuning of the `minisnn` command is opt-out and never fails."""
import subprocess
import sys

import pytest

from minisnn.malloc import keep_freed_memory


def test_opt_out_changes_nothing(monkeypatch):
    monkeypatch.setenv("MINISNN_MALLOC", "default")
    assert keep_freed_memory() is False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt is Linux-only")
def test_sets_glibc_thresholds_in_a_fresh_process():
    # in a child process, so that this test run's own allocator stays as it was
    code = ("import os, platform; from minisnn.malloc import keep_freed_memory; "
            "print(keep_freed_memory(), platform.libc_ver()[0])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={"PATH": "/usr/bin:/bin"}, check=True).stdout.split()
    tuned, libc = out[0], (out[1] if len(out) > 1 else "")
    assert tuned == ("True" if libc == "glibc" else "False")


def test_release_is_opt_out_too(monkeypatch):
    monkeypatch.setenv("MINISNN_MALLOC", "default")
    assert keep_freed_memory() is False
    from minisnn.malloc import release_freed_memory
    assert release_freed_memory() is False

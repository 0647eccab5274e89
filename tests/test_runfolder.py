"""Run folders: swapped in whole, locked while a run writes them, and a full disk loses nothing."""
import os
import resource
import signal
import subprocess
import sys

import pytest

import minisnn as ms
from minisnn import atomic, cli
from minisnn.runfolder import RunFolder, RunFolderError, RunLock
from run_helpers import (ENV, TINY, checkpoint_arrays, folder_bytes, hidden_entries, minisnn,
                         same_arrays, write_mnist_like)


def fill(folder, **files):
    for name, text in files.items():
        (folder / name).write_text(text)


@pytest.mark.parametrize("exchange", [True, False], ids=["renameat2", "two-renames"])
def test_atomic_folder_replaces_the_whole_folder_or_nothing(exchange, tmp_path, monkeypatch):
    if not exchange:
        monkeypatch.setattr(atomic, "_exchange", lambda a, b: False)
    target = tmp_path / "run"
    with atomic.atomic_folder(target) as tmp:
        fill(tmp, a="1", b="1")
    with atomic.atomic_folder(target) as tmp:
        fill(tmp, a="2")                                 # b belongs to the old set: gone
    assert folder_bytes(target) == {"a": b"2"}
    for fault in (KeyboardInterrupt, OSError(28, "No space left on device")):
        with pytest.raises(type(fault) if isinstance(fault, Exception) else fault):
            with atomic.atomic_folder(target) as tmp:
                fill(tmp, a="3", b="3")
                raise fault
        assert folder_bytes(target) == {"a": b"2"}
    assert sorted(os.listdir(tmp_path)) == ["run"]      # no temporary folder left


def test_interrupt_between_the_two_renames_puts_the_old_folder_back(tmp_path, monkeypatch):
    monkeypatch.setattr(atomic, "_exchange", lambda a, b: False)
    target = tmp_path / "run"
    with atomic.atomic_folder(target) as tmp:
        fill(tmp, a="old")
    real, calls = os.rename, []

    def rename(a, b):
        calls.append(1)
        if len(calls) == 2:                              # the new folder's rename into place
            raise KeyboardInterrupt
        return real(a, b)

    monkeypatch.setattr(os, "rename", rename)
    with pytest.raises(KeyboardInterrupt):
        with atomic.atomic_folder(target) as tmp:
            fill(tmp, a="new")
    monkeypatch.undo()
    assert folder_bytes(target) == {"a": b"old"} and os.listdir(tmp_path) == ["run"]


def test_leftovers_of_a_killed_run_are_removed_by_the_next(tmp_path):
    (tmp_path / ".run.tmp-abc").mkdir()
    (tmp_path / ".run.tmp-abc" / "model.npz").write_bytes(b"half")
    (tmp_path / ".other.tmp-x").mkdir()                 # another folder's: not touched
    with RunFolder(tmp_path / "run"):
        pass
    assert sorted(os.listdir(tmp_path)) == [".other.tmp-x"]


def test_a_folder_with_other_files_is_refused(tmp_path, monkeypatch):
    out = tmp_path / "mine"
    out.mkdir()
    fill(out, **{"notes.txt": "keep", "model.npz": "x"})
    with pytest.raises(RunFolderError, match=r"holds files that are not a training run's "
                                             r"\(notes.txt\)"):
        RunFolder(out).__enter__()
    monkeypatch.chdir(out)
    (out / "notes.txt").unlink()
    for here in (".", ".."):
        with pytest.raises(RunFolderError, match="is the current folder or holds it"):
            RunFolder(here).__enter__()
    assert (out / "model.npz").read_text() == "x" and not (tmp_path / ".mine.lock").exists()


HOLD = ("import sys; from minisnn.runfolder import RunLock; l = RunLock(sys.argv[1]).acquire(); "
        "print('held', flush=True); sys.stdin.read()")


def test_lock_between_two_processes_and_a_stale_lock(tmp_path, capsys):
    data, out = write_mnist_like(tmp_path / "toy"), tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(out)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True, env=ENV)
    assert holder.stdout.readline() == "held\n"
    argv = ["train", "--data", data, "--out", out, "--max-iters", "2", "--quiet", *TINY]
    status = cli.main([str(a) for a in argv])           # this process is the second run
    err = capsys.readouterr().err
    assert status == 1 and err.strip() == (
        f"minisnn: error: --out {out} is in use by a running minisnn (pid {holder.pid} on "
        f"{os.uname().nodename}; lock {tmp_path / '.run.lock'}); wait for it to finish or choose "
        f"another --out")
    assert not out.exists()

    holder.kill()                                        # dies holding it: the lock is stale
    holder.wait()
    assert (tmp_path / ".run.lock").exists()
    assert cli.main([str(a) for a in argv]) == 0
    assert f"took over the stale lock {tmp_path / '.run.lock'} (pid {holder.pid}" in \
        capsys.readouterr().err
    assert hidden_entries(tmp_path) == []                # released on exit
    with RunFolder(out) as run:                          # and one process cannot take it twice
        with pytest.raises(RunFolderError, match=f"in use by a running minisnn .pid {os.getpid()}"):
            RunLock(out).acquire()
        assert run.lock.stale is None


def limit_file_size(n):
    def set_limit():
        resource.setrlimit(resource.RLIMIT_FSIZE, (n, n))
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)   # a write past the limit: EFBIG
    return set_limit


def test_disk_full_during_a_checkpoint_keeps_the_previous_one(tmp_path):
    data, out = write_mnist_like(tmp_path / "toy"), tmp_path / "run"
    assert minisnn("train", "--data", data, "--out", out, "--max-iters", 3, "--quiet",
                   *TINY).returncode == 0
    before = folder_bytes(out)
    size = (out / "model.npz").stat().st_size
    p = minisnn("train", "--resume", out / "model.npz", "--out", out, "--data", data,
                "--checkpoint-every", 1, "--quiet", preexec_fn=limit_file_size(size // 2))
    assert p.returncode == 1 and p.stdout == ""
    assert p.stderr.strip() == (f"minisnn: error: could not save iteration 4 in {out} (File too "
                                f"large); this run saved nothing; {out} is as it was before")
    assert folder_bytes(out) == before and hidden_entries(tmp_path) == []
    # with room again, the same command goes on from the same checkpoint
    p = minisnn("train", "--resume", out / "model.npz", "--out", out, "--data", data,
                "--max-iters", 2, "--quiet")
    assert p.returncode == 0, p.stderr
    assert ms.checkpoint.read_info(out / "model.npz")["optimizer"]["step"] == 5


@pytest.mark.filterwarnings("error::RuntimeWarning")     # and says so in one line, no warnings
def test_a_diverged_run_never_replaces_a_good_checkpoint(tmp_path, capsys):
    data, out = write_mnist_like(tmp_path / "toy"), tmp_path / "run"
    common = ["--data", str(data), "--out", str(out), "--quiet"]
    assert cli.main(["train", *common, "--max-iters", "3", *TINY]) == 0
    before, good = folder_bytes(out), checkpoint_arrays(out / "model.npz")
    capsys.readouterr()
    status = cli.main(["train", "--resume", str(out / "model.npz"), *common, "--lr", "1e37",
                       "--checkpoint-every", "1"])
    err = capsys.readouterr().err
    assert status == 1 and err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("minisnn: error: training diverged at iteration 3: the test-minibatch "
                          "loss is inf; try a smaller --lr than 1e+37 (e.g. 1e+36); this run "
                          f"saved nothing; {out} is as it was before; continue from it with "
                          f"--resume {out / 'model.npz'} --lr 1e+36"), err
    assert folder_bytes(out) == before and same_arrays(checkpoint_arrays(out / "model.npz"), good)
    fresh = tmp_path / "fresh"                           # a new run that diverges writes nothing
    assert cli.main(["train", "--data", str(data), "--out", str(fresh), "--quiet", "--lr",
                     "1e37", *TINY]) == 1
    assert "this run saved nothing" in capsys.readouterr().err and not fresh.exists()

"""Ctrl-C, SIGTERM and a closed stdout during `minisnn train`: nothing is lost.

Real processes get real signals mid-training; the checkpoint they leave is compared, array by
array, with a straight run of as many iterations, and resuming it with the printed command
gives the straight run again. The phases that are hard to hit with a timed signal (before
training, while a checkpoint is written, a second signal) are hit in-process with os.kill
from inside the command, at a chosen point.
"""
import os
import shlex
import signal
import sys

import pytest

import minisnn as ms
from minisnn import cli
from minisnn import runfolder
from minisnn import train as T
from run_helpers import (TINY, checkpoint_arrays, folder_bytes, hidden_entries, minisnn,
                         same_arrays, write_mnist_like)


@pytest.fixture
def toy(tmp_path):
    return write_mnist_like(tmp_path / "toy")


def run_until_reports(data, out, reports, sig, *extra):
    """Start an endless training run, send `sig` once it has printed `reports` reports."""
    p = minisnn("train", "--data", data, "--out", out, "--epochs", 100000, "--report-every", 1,
                *TINY, *extra, popen=True)
    seen = 0
    for line in p.stdout:
        seen += line.startswith("Epoch ")
        if seen == reports:
            break
    p.send_signal(sig)
    _, err = p.communicate(timeout=60)
    return p.returncode, err


@pytest.mark.parametrize("sig, word", [(signal.SIGINT, "interrupted by SIGINT"),
                                       (signal.SIGTERM, "terminated by SIGTERM")])
def test_signal_saves_the_last_iteration_and_resume_finishes_the_run(sig, word, toy, tmp_path):
    out = tmp_path / "run"
    status, err = run_until_reports(toy, out, 3, sig)
    assert status == 128 + sig
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"minisnn: {word} after "), err
    assert hidden_entries(tmp_path) == [] and sorted(os.listdir(out)) == ["loss_history.csv",
                                                                          "model.npz"]
    meta = ms.checkpoint.read_info(out / "model.npz")["meta"]
    k = meta["iteration"]
    assert k >= 3 and meta["status"] == "interrupted"
    assert (meta["epoch"], meta["images"]) == divmod(k * 32, 320)   # 320 images, batch 32

    # nothing lost: the checkpoint is exactly the straight run of k iterations
    straight = tmp_path / "straight"
    assert minisnn("train", "--data", toy, "--out", straight, "--epochs", 100000, "--max-iters",
                   k, "--quiet", *TINY).returncode == 0
    assert same_arrays(checkpoint_arrays(out / "model.npz"),
                       checkpoint_arrays(straight / "model.npz"))
    assert (out / "loss_history.csv").read_text() == (straight / "loss_history.csv").read_text()
    if sig != signal.SIGTERM:
        return
    # the printed command continues it: 4 more iterations give the straight run of k + 4
    cmd = shlex.split(lines[0].split("resume with: ", 1)[1])
    assert cmd[:3] == [os.path.basename(sys.executable), "-m", "minisnn"]
    assert cmd[3:] == ["train", "--resume", str(out / "model.npz"), "--out", str(out), "--data",
                       str(toy), "--epochs", str(100000 - meta["epoch"]), "--report-every", "1"]
    assert minisnn(*cmd[3:], "--max-iters", 4, "--quiet").returncode == 0
    assert minisnn("train", "--data", toy, "--out", straight, "--epochs", 100000, "--max-iters",
                   k + 4, "--quiet", *TINY).returncode == 0
    assert same_arrays(checkpoint_arrays(out / "model.npz"),
                       checkpoint_arrays(straight / "model.npz"))
    assert (out / "loss_history.csv").read_text() == (straight / "loss_history.csv").read_text()


def test_closed_stdout_stops_the_output_not_the_training(toy, tmp_path):
    out = tmp_path / "run"                 # as `minisnn train ... | head -1`
    p = minisnn("train", "--data", toy, "--out", out, "--max-iters", 30, "--epochs", 3,
                "--report-every", 1, *TINY, popen=True)
    assert p.stdout.readline().startswith("minisnn ")
    p.stdout.close()
    err = p.stderr.read()
    assert p.wait(timeout=60) == 0 and err == ""
    assert sorted(os.listdir(out)) == ["loss_curve.png", "loss_history.csv", "model.npz"]
    assert ms.checkpoint.read_info(out / "model.npz")["meta"]["iteration"] == 30
    assert len((out / "loss_history.csv").read_text().splitlines()) == 31


# ----------------------------------------------------------------------------- in-process

def kill_self(sig, times=1):
    for _ in range(times):
        os.kill(os.getpid(), sig)


def train_args(toy, out, *extra):
    return ["train", "--data", str(toy), "--out", str(out), "--quiet", *TINY, *map(str, extra)]


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_before_training_is_one_line_and_leaves_nothing(sig, toy, tmp_path, capsys,
                                                             monkeypatch):
    real = T.load_data
    monkeypatch.setattr(T, "load_data", lambda *a: (kill_self(sig), real(*a))[1])
    status = cli.main(train_args(toy, tmp_path / "nested" / "run"))
    out, err = capsys.readouterr()
    assert status == 128 + sig and out == ""
    assert err == f"minisnn: {'terminated' if sig == signal.SIGTERM else 'interrupted'} by " \
                  f"{signal.Signals(sig).name}\n"
    assert sorted(os.listdir(tmp_path)) == ["toy"]        # no run folder, lock or parent left
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler   # handlers restored


def test_signal_while_a_checkpoint_is_written_completes_it_then_stops(toy, tmp_path, capsys,
                                                                      monkeypatch):
    real, calls = runfolder.save, []

    def save_with_signal(*a, **kw):
        calls.append(1)
        if len(calls) == 2:
            kill_self(signal.SIGTERM)               # arrives in the middle of the 2nd commit
        return real(*a, **kw)

    monkeypatch.setattr(runfolder, "save", save_with_signal)
    out = tmp_path / "run"
    status = cli.main(train_args(toy, out, "--epochs", 5, "--checkpoint-every", 3))
    err = capsys.readouterr().err
    assert status == 143 and "terminated by SIGTERM after 7 iterations" in err, err
    meta = ms.checkpoint.read_info(out / "model.npz")["meta"]
    assert (meta["iteration"], meta["status"]) == (7, "interrupted")   # the 2nd one held 6
    assert len(T.read_history(out / "loss_history.csv")) == 7
    assert hidden_entries(tmp_path) == []


def test_second_signal_stops_at_once_and_keeps_the_last_checkpoint(toy, tmp_path, capsys,
                                                                  monkeypatch):
    real, calls = T.train_step, []

    def step(*a):
        calls.append(1)
        if len(calls) == 6:
            kill_self(signal.SIGINT, times=2)       # the second one raises inside this step
        return real(*a)

    monkeypatch.setattr(T, "train_step", step)
    out = tmp_path / "run"
    status = cli.main(train_args(toy, out, "--epochs", 5, "--checkpoint-every", 4))
    err = capsys.readouterr().err
    assert status == 130
    assert err.strip() == (f"minisnn: interrupted by SIGINT again: stopped at once; {out} keeps "
                           f"the checkpoint of iteration 4")
    before = folder_bytes(out)
    assert ms.checkpoint.read_info(out / "model.npz")["meta"]["iteration"] == 4
    assert len(T.read_history(out / "loss_history.csv")) == 4
    assert hidden_entries(tmp_path) == []
    assert folder_bytes(out) == before


def test_signal_during_the_final_evaluation_saves_the_finished_run(toy, tmp_path, capsys,
                                                                   monkeypatch):
    real = T.evaluate
    monkeypatch.setattr(T, "evaluate", lambda *a: (kill_self(signal.SIGINT), real(*a))[1])
    out = tmp_path / "run"
    status = cli.main(train_args(toy, out, "--max-iters", 3))
    stdout, err = capsys.readouterr()
    assert status == 130 and "Saved model.npz, loss_history.csv, loss_curve.png" in stdout
    assert err.strip() == "minisnn: interrupted by SIGINT after the run had finished; " \
                          "everything was saved"
    assert ms.checkpoint.read_info(out / "model.npz")["meta"]["status"] == "finished"


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_at_any_early_moment_leaves_no_file_behind(sig, toy, tmp_path):
    """Signals at moments spread over the first second (imports, data, training, saving):
    however far the run got, nothing hidden stays behind and the folder is whole or absent.
    (A signal before `minisnn.cli.main` runs, while Python imports NumPy, still ends Python
    the default way: with SIGINT's traceback, or SIGTERM's silent exit; nothing is written
    by then.)"""
    import time
    for i, delay in enumerate((0.05, 0.25, 0.45, 0.7)):
        out = tmp_path / f"run{i}"
        p = minisnn("train", "--data", toy, "--out", out, "--epochs", 1000, "--quiet", *TINY,
                    popen=True)
        time.sleep(delay)
        p.send_signal(sig)
        _, err = p.communicate(timeout=60)
        assert hidden_entries(tmp_path) == []
        if p.returncode == 128 + sig:               # main had started: one line, and a whole
            assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
            if out.exists():                        # folder if it saved
                assert sorted(os.listdir(out)) == ["loss_history.csv", "model.npz"]
        else:
            assert p.returncode in (-sig, 1), (p.returncode, err)
            assert not out.exists()

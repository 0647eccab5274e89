"""The command line: `minisnn train | evaluate | download | bench`, its files, and its errors.

Most runs use a tiny synthetic MNIST-style folder written into tmp_path (fast, needs nothing);
one runs on the shared mnist-5k. Runs go through `cli.main(argv)` in-process, a few through
`python -m minisnn` to see what a user sees.
"""
import os
import re
import shutil
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest

import minisnn as ms
from minisnn import cli
from minisnn import data as data_mod
from minisnn import train as T
from run_helpers import REPO, write_mnist_like
FAST = ["--hidden", "20", "--steps", "5", "--batch-size", "32"]


@pytest.fixture
def idx_folder(tmp_path):
    return write_mnist_like(tmp_path / "data" / "toy")


def run(argv, capsys):
    """cli.main in-process: (exit status, stdout, stderr)."""
    status = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


def assert_one_line_error(status, err, *fragments):
    assert status != 0
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("minisnn: error: "), err
    assert "Traceback" not in err
    for f in fragments:
        assert f in lines[0], lines[0]


def accuracy_line(out):
    m = re.search(r"Total correctly classified test set images: (\d+)/(\d+)", out)
    assert m, out
    return int(m.group(1)), int(m.group(2))


# ----------------------------------------------------------------------------- bad arguments

@pytest.mark.parametrize("args, fragment", [
    (["--epochs", "0"], "--epochs"),
    (["--epochs", "-1"], "--epochs"),
    (["--epochs", "two"], "--epochs"),
    (["--beta", "1.5"], "--beta"),
    (["--beta", "-0.1"], "--beta"),
    (["--beta", "nan"], "--beta"),
    (["--surrogate", "relu"], "--surrogate"),
    (["--steps", "0"], "--steps"),
    (["--batch-size", "0"], "--batch-size"),
    (["--lr", "0"], "--lr"),
    (["--lr", "-1e-3"], "--lr"),
    (["--lr", "inf"], "--lr"),
    (["--hidden", "0"], "--hidden"),
    (["--max-iters", "0"], "--max-iters"),
    (["--seed", "-1"], "--seed"),
    (["--dtype", "float16"], "--dtype"),
    (["--backend", "jax"], "--backend"),
    (["--no-such-flag"], "unrecognized arguments"),
])
def test_invalid_values_give_one_line_and_write_nothing(args, fragment, tmp_path, idx_folder,
                                                       capsys):
    out = tmp_path / "out"
    status, stdout, err = run(["train", "--data", idx_folder, "--out", out, *args], capsys)
    assert status == 2
    assert_one_line_error(status, err, fragment)
    assert not out.exists()


def test_no_command_and_unknown_command(capsys):
    status, _, err = run([], capsys)
    assert_one_line_error(status, err, "choose a command")
    status, _, err = run(["fly"], capsys)
    assert_one_line_error(status, err, "invalid choice")


def test_help_and_version(capsys):
    status, out, _ = run(["--help"], capsys)
    assert status == 0 and "train" in out and "evaluate" in out and "bench" in out
    status, out, _ = run(["train", "--help"], capsys)
    assert status == 0 and "--max-iters" in out and "--resume" in out
    status, out, _ = run(["--version"], capsys)
    assert status == 0 and ms.__version__ in out


def test_python_dash_m_reports_errors_in_one_line(tmp_path):
    out = tmp_path / "out"
    p = subprocess.run([sys.executable, "-m", "minisnn", "train", "--beta", "2", "--out", out],
                       capture_output=True, text=True, cwd=tmp_path,
                       env={**os.environ, "PYTHONPATH": str(REPO)})
    assert p.returncode == 2 and p.stdout == ""
    assert p.stderr.strip() == "minisnn: error: argument --beta: must be in [0, 1], got 2"
    assert not out.exists()


# ----------------------------------------------------------------------------- bad files

def test_missing_data_folder(tmp_path, capsys):
    out = tmp_path / "out"
    status, _, err = run(["train", "--data", tmp_path / "nowhere", "--out", out], capsys)
    assert_one_line_error(status, err, "nowhere", "train-images-idx3-ubyte.gz", "download")
    assert not out.exists()


@pytest.mark.parametrize("name", [data_mod.TRAIN_IMAGES, data_mod.TEST_LABELS])
def test_corrupt_data_file_is_named(name, tmp_path, idx_folder, capsys):
    path = idx_folder / name
    path.write_bytes(path.read_bytes()[:-40])              # a truncated gzip stream
    out = tmp_path / "out"
    status, _, err = run(["train", "--data", idx_folder, "--out", out, *FAST], capsys)
    assert_one_line_error(status, err, str(path))
    assert not out.exists()


def test_data_that_does_not_fit(tmp_path, capsys):
    folder = write_mnist_like(tmp_path / "small", n_train=20, n_test=20)
    status, _, err = run(["train", "--data", folder, "--out", tmp_path / "o", "--batch-size",
                          "32"], capsys)
    assert_one_line_error(status, err, "batch_size 32 is larger than the 20 train images")
    assert not (tmp_path / "o").exists()


def test_out_is_a_file(tmp_path, idx_folder, capsys):
    f = tmp_path / "file"
    f.write_text("keep me")
    status, _, err = run(["train", "--data", idx_folder, "--out", f, *FAST], capsys)
    assert_one_line_error(status, err, "is not a folder")
    assert f.read_text() == "keep me"


def test_cupy_missing_is_one_line(tmp_path, idx_folder, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", None)        # as if CuPy were not installed
    status, _, err = run(["train", "--backend", "cupy", "--data", idx_folder, "--out",
                          tmp_path / "o"], capsys)
    assert_one_line_error(status, err, "CuPy")
    assert not (tmp_path / "o").exists()


# ----------------------------------------------------------------------------- a training run

def test_train_writes_checkpoint_history_and_curve(tmp_path, idx_folder, capsys):
    out = tmp_path / "run"
    status, stdout, err = run(["train", "--data", idx_folder, "--out", out, "--max-iters", "5",
                               "--seed", "3", *FAST], capsys)
    assert status == 0, err
    for line in ("Epoch 0, Iteration 0", "Train Set Loss: ", "Test Set Loss: ",
                 "Train set accuracy for a single minibatch: ",
                 "Test set accuracy for a single minibatch: ", "Test Set Accuracy: ",
                 "s/iteration", "s/epoch", "Saved model.npz"):
        assert line in stdout
    correct, total = accuracy_line(stdout)
    assert total == 200

    assert sorted(os.listdir(out)) == ["loss_curve.png", "loss_history.csv", "model.npz"]
    info = ms.checkpoint.read_info(out / "model.npz")
    meta = info["meta"]
    assert (meta["hidden"], meta["steps"], meta["batch_size"], meta["seed"]) == (20, 5, 32, 3)
    assert (meta["beta"], meta["surrogate"], meta["dtype"], meta["lr"]) == (0.95, "atan",
                                                                           "float32", 5e-4)
    assert (meta["epoch"], meta["images"], meta["iteration"]) == (0, 5 * 32, 5)
    assert meta["data"] == "toy" and meta["test_accuracy"] == correct / total
    assert meta["status"] == "finished"
    assert info["optimizer"] == {"type": "Adam", "step": 5}
    net = T.build_net(T.config_from_checkpoint(out / "model.npz"))
    ms.load(out / "model.npz", net)                        # the checkpoint loads

    rows = (out / "loss_history.csv").read_text().splitlines()
    assert rows[0] == "iteration,epoch,train_loss,test_loss"
    assert [r.split(",")[:2] for r in rows[1:]] == [[str(i), "0"] for i in range(5)]
    assert all(float(v) > 0 for r in rows[1:] for v in r.split(",")[2:])
    assert (out / "loss_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_quiet_prints_only_the_summary(tmp_path, idx_folder, capsys):
    status, out, err = run(["train", "--data", idx_folder, "--out", tmp_path / "o",
                            "--max-iters", "2", "--quiet", *FAST], capsys)
    assert status == 0 and err == ""
    assert "Iteration" not in out and "Test Set Accuracy" in out


def test_same_seed_same_history(tmp_path, idx_folder, capsys):
    csv = []
    for name, seed in (("a", 7), ("b", 7), ("c", 8)):
        status, _, err = run(["train", "--data", idx_folder, "--out", tmp_path / name,
                              "--max-iters", "6", "--seed", seed, "--quiet", *FAST], capsys)
        assert status == 0, err
        csv.append((tmp_path / name / "loss_history.csv").read_text())
    assert csv[0] == csv[1]
    assert csv[0] != csv[2]


def test_resume_continues_where_training_stopped(tmp_path, idx_folder, capsys):
    # 320 training images, batch 32: 10 iterations per epoch. Straight: 14 iterations.
    common = ["--data", idx_folder, "--quiet", *FAST]
    assert run(["train", "--out", tmp_path / "straight", "--epochs", "2", "--max-iters", "14",
                *common], capsys)[0] == 0
    assert run(["train", "--out", tmp_path / "first", "--epochs", "2", "--max-iters", "7",
                *common], capsys)[0] == 0
    ckpt = tmp_path / "first" / "model.npz"
    before = ckpt.read_bytes()
    # the settings (hidden, steps, batch size...) come from the checkpoint
    status, out, err = run(["train", "--resume", ckpt, "--out", tmp_path / "second", "--epochs",
                            "2", "--max-iters", "7", "--data", idx_folder], capsys)
    assert status == 0, err
    assert "Resuming" in out and "iteration 7" in out and "Epoch 0, Iteration 7" not in out
    assert ckpt.read_bytes() == before                     # a new --out leaves it alone

    second, straight = tmp_path / "second", tmp_path / "straight"
    assert (second / "loss_history.csv").read_text() == \
        (straight / "loss_history.csv").read_text()        # 14 rows, the first 7 carried over
    a, b = ms.checkpoint.read_info(second / "model.npz"), \
        ms.checkpoint.read_info(straight / "model.npz")
    assert a["optimizer"]["step"] == b["optimizer"]["step"] == 14
    assert (a["meta"]["epoch"], a["meta"]["images"], a["meta"]["iteration"]) == (1, 4 * 32, 14)
    with np.load(second / "model.npz") as z1, np.load(straight / "model.npz") as z2:
        for k in z1.files:
            if k != "info":
                np.testing.assert_array_equal(z1[k], z2[k])


def test_resume_in_place_overwrites_only_on_success(tmp_path, idx_folder, capsys):
    out = tmp_path / "run"
    assert run(["train", "--data", idx_folder, "--out", out, "--max-iters", "3", "--quiet",
                *FAST], capsys)[0] == 0
    status, _, err = run(["train", "--resume", out / "model.npz", "--out", out, "--max-iters",
                          "2", "--data", idx_folder, "--quiet"], capsys)
    assert status == 0, err
    info = ms.checkpoint.read_info(out / "model.npz")
    assert info["optimizer"]["step"] == 5 and info["meta"]["iteration"] == 5
    assert len((out / "loss_history.csv").read_text().splitlines()) == 1 + 5


def test_resume_with_another_architecture_fails_and_keeps_the_checkpoint(tmp_path, idx_folder,
                                                                         capsys):
    out = tmp_path / "run"
    assert run(["train", "--data", idx_folder, "--out", out, "--max-iters", "2", "--quiet",
                *FAST], capsys)[0] == 0
    files = {p.name: p.read_bytes() for p in out.iterdir()}
    for flag in (["--hidden", "21"], ["--beta", "0.5"], ["--dtype", "float64"],
                 ["--steps", "6"], ["--seed", "1"], ["--surrogate", "sigmoid"]):
        status, _, err = run(["train", "--resume", out / "model.npz", "--out", out,
                              "--data", idx_folder, *flag], capsys)
        assert_one_line_error(status, err, "model.npz", f"cannot change {flag[0]} {flag[1]}")
        assert status == 2
        assert {p.name: p.read_bytes() for p in out.iterdir()} == files


def test_resume_from_a_bad_checkpoint(tmp_path, idx_folder, capsys):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"PK\x03\x04 not really a zip file")
    for path in (bad, tmp_path / "missing.npz"):
        status, _, err = run(["train", "--resume", path, "--data", idx_folder, "--out",
                              tmp_path / "o"], capsys)
        assert_one_line_error(status, err, path.name)
    assert not (tmp_path / "o").exists()
    assert bad.read_bytes() == b"PK\x03\x04 not really a zip file"


# ----------------------------------------------------------------------------- evaluate

def test_evaluate_prints_the_accuracy_training_printed(tmp_path, idx_folder, capsys):
    out = tmp_path / "run"
    status, train_out, err = run(["train", "--data", idx_folder, "--out", out, "--max-iters",
                                  "8", "--beta", "0.9", "--surrogate", "fast_sigmoid", *FAST],
                                 capsys)
    assert status == 0, err
    status, eval_out, err = run(["evaluate", out / "model.npz", "--data", idx_folder], capsys)
    assert status == 0, err
    assert accuracy_line(eval_out) == accuracy_line(train_out)
    assert re.search(r"Test Set Accuracy: \d+\.\d\d%", eval_out)


def test_evaluate_bad_checkpoints(tmp_path, idx_folder, capsys):
    bare = tmp_path / "bare.npz"                           # parameters but no training settings
    ms.save(bare, T.build_net(T.TrainConfig(hidden=20)))
    status, _, err = run(["evaluate", bare, "--data", idx_folder], capsys)
    assert_one_line_error(status, err, "no training settings")

    liar = tmp_path / "liar.npz"                           # settings say 30 hidden, it holds 20
    ms.save(liar, T.build_net(T.TrainConfig(hidden=20)), **T.TrainConfig(hidden=30).to_meta())
    status, _, err = run(["evaluate", liar, "--data", idx_folder], capsys)
    assert_one_line_error(status, err, "different architecture")

    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(os.urandom(300))
    status, _, err = run(["evaluate", garbage, "--data", idx_folder], capsys)
    assert_one_line_error(status, err, "garbage.npz")


# ----------------------------------------------------------------------------- download, bench

def test_download_flag_and_command(tmp_path, idx_folder, capsys, monkeypatch):
    calls = []

    def fake_download(folder, progress=True, **kw):
        calls.append(Path(folder))
        shutil.copytree(idx_folder, folder, dirs_exist_ok=True)
        return Path(folder)

    monkeypatch.setattr(data_mod, "download_mnist", fake_download)
    target = tmp_path / "fresh"
    status, _, err = run(["train", "--data", target, "--download", "--out", tmp_path / "o",
                          "--max-iters", "1", "--quiet", *FAST], capsys)
    assert status == 0, err
    assert calls == [target]
    status, _, _ = run(["train", "--data", target, "--download", "--out", tmp_path / "o",
                        "--max-iters", "1", "--quiet", *FAST], capsys)
    assert status == 0 and calls == [target]               # files there: no second download
    status, out, _ = run(["download", "--data", tmp_path / "d2", "--quiet"], capsys)
    assert status == 0 and calls[-1] == tmp_path / "d2" and "d2" in out


def test_download_failure_is_one_line(tmp_path, capsys, monkeypatch):
    def failing(folder, progress=True, **kw):
        raise data_mod.DownloadError("could not download x; every mirror failed:\n  a: 404\n  b: "
                                     "timed out")
    monkeypatch.setattr(data_mod, "download_mnist", failing)
    status, _, err = run(["download", "--data", tmp_path / "d"], capsys)
    assert_one_line_error(status, err, "every mirror failed", "404", "timed out")


def test_bench_gets_everything_after_it(capsys, monkeypatch):
    seen = []
    fake = types.ModuleType("minisnn.bench")
    fake.main = lambda argv: seen.append(argv) or 3
    monkeypatch.setitem(sys.modules, "minisnn.bench", fake)
    assert cli.main(["bench", "--help", "--steps", "5", "train"]) == 3
    assert seen == [["--help", "--steps", "5", "train"]]


def test_bench_missing_is_one_line(capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "minisnn.bench", None)   # as if the module were absent
    status, _, err = run(["bench"], capsys)
    assert_one_line_error(status, err, "benchmarks are not available")


# ----------------------------------------------------------------------------- real data

def test_tiny_run_on_real_mnist(mnist_dir, tmp_path, capsys):
    out = tmp_path / "run"
    status, train_out, err = run(["train", "--data", mnist_dir, "--out", out, "--max-iters", "5",
                                  "--hidden", "50"], capsys)
    assert status == 0, err
    assert "Epoch 0, Iteration 0" in train_out and "5000 training, 10000 test images" in train_out
    correct, total = accuracy_line(train_out)
    assert total == 10000 and correct > 1500               # 5 steps already beat chance
    assert len((out / "loss_history.csv").read_text().splitlines()) == 6
    status, eval_out, err = run(["evaluate", out / "model.npz", "--data", mnist_dir], capsys)
    assert status == 0, err
    assert accuracy_line(eval_out) == (correct, total)


# ----------------------------------------------------------------------------- more faults

def test_empty_test_set_is_one_line(tmp_path, capsys):
    folder = write_mnist_like(tmp_path / "empty", n_train=64, n_test=0)
    status, _, err = run(["train", "--data", folder, "--out", tmp_path / "o", *FAST], capsys)
    assert_one_line_error(status, err, "the test set of empty is empty (0 images)")
    out = tmp_path / "run"
    assert run(["train", "--data", write_mnist_like(tmp_path / "full", n_train=64, n_test=40),
                "--out", out, "--max-iters", 1, "--quiet", *FAST], capsys)[0] == 0
    status, _, err = run(["evaluate", out / "model.npz", "--data", folder], capsys)
    assert_one_line_error(status, err, "the test set of empty is empty (0 images)")
    assert not (tmp_path / "o").exists()


def test_npy_file_as_checkpoint(tmp_path, idx_folder, capsys):
    np.save(tmp_path / "weights.npy", np.zeros((20, 784), np.float32))
    for argv in (["train", "--resume", tmp_path / "weights.npy", "--data", idx_folder, "--out",
                  tmp_path / "o"], ["evaluate", tmp_path / "weights.npy", "--data", idx_folder]):
        status, _, err = run(argv, capsys)
        assert_one_line_error(status, err, "weights.npy: holds a single NumPy array (a .npy "
                                           "file), not a minisnn checkpoint")
    assert not (tmp_path / "o").exists()


def test_float_label_files_are_refused(tmp_path, capsys):
    folder = write_mnist_like(tmp_path / "floaty", n_train=64, n_test=40, label_dtype="float32")
    status, _, err = run(["train", "--data", folder, "--out", tmp_path / "o", *FAST], capsys)
    assert_one_line_error(status, err, "train-labels-idx1-ubyte.gz: holds float32 labels; class "
                                       "labels must be integers")


def test_out_with_other_files_is_refused(tmp_path, idx_folder, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    status, _, err = run(["train", "--data", idx_folder, "--out", out, *FAST], capsys)
    assert_one_line_error(status, err, f"--out {out} holds files that are not a training run's "
                                       f"(notes.txt)")
    assert os.listdir(out) == ["notes.txt"]


def test_resume_may_change_lr_and_batch_size_and_has_its_own_run_settings(tmp_path, idx_folder,
                                                                          capsys):
    out = tmp_path / "run"       # 320 images: 7 batches of 32 are 224 images
    assert run(["train", "--data", idx_folder, "--out", out, "--max-iters", 7, "--epochs", 3,
                "--report-every", 1, "--quiet", *FAST], capsys)[0] == 0
    status, stdout, err = run(["train", "--resume", out / "model.npz", "--out", out, "--data",
                               idx_folder, "--batch-size", 64, "--lr", "1e-3"], capsys)
    assert status == 0, err
    assert "Resuming" in stdout and "image 224, iteration 7" in stdout
    assert stdout.count("Epoch 0, Iteration") == 0        # report_every is 50 again, not 1
    meta = ms.checkpoint.read_info(out / "model.npz")["meta"]
    # epochs is this command's (1: the epoch in progress), max_iters too (none: to its end)
    assert (meta["epoch"], meta["images"], meta["iteration"]) == (1, 0, 8)   # 224 + 64 = 288
    assert (meta["batch_size"], meta["lr"], meta["max_iters"], meta["report_every"]) == \
        (64, 1e-3, None, 50)
    status, stdout, err = run(["train", "--resume", out / "model.npz", "--out", out, "--data",
                               idx_folder, "--max-iters", 2, "--quiet"], capsys)
    meta = ms.checkpoint.read_info(out / "model.npz")["meta"]
    assert status == 0 and (meta["epoch"], meta["images"], meta["iteration"]) == (1, 128, 10)
    assert meta["batch_size"] == 64                       # kept from the checkpoint
    assert T.read_history(out / "loss_history.csv").iteration == list(range(10))


def test_training_writes_checkpoints_during_the_run(tmp_path, idx_folder, capsys, monkeypatch):
    seen = []
    real = T.train_step

    def step(*a):                          # what the folder holds while training goes on
        path = tmp_path / "run" / "model.npz"
        if path.exists():
            meta = ms.checkpoint.read_info(path)["meta"]
            seen.append((meta["iteration"], meta["status"],
                         len(T.read_history(tmp_path / "run" / "loss_history.csv")),
                         (tmp_path / "run" / "loss_curve.png").exists()))
        return real(*a)

    monkeypatch.setattr(T, "train_step", step)
    assert run(["train", "--data", idx_folder, "--out", tmp_path / "run", "--epochs", 2,
                "--checkpoint-every", 4, "--quiet", *FAST], capsys)[0] == 0
    assert sorted(set(seen)) == [(4, "checkpoint", 4, False), (8, "checkpoint", 8, False),
                                 (10, "checkpoint", 10, False), (12, "checkpoint", 12, False),
                                 (16, "checkpoint", 16, False)]
    meta = ms.checkpoint.read_info(tmp_path / "run" / "model.npz")["meta"]
    assert (meta["iteration"], meta["status"]) == (20, "finished")

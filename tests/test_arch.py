"""`minisnn train --arch csnn`: snnTorch tutorial 6's convolutional SNN through the same training
loop, report, checkpoints and resume as the seed network; its recipe's defaults."""
import numpy as np
import pytest

import minisnn as ms
from minisnn import train as T

from run_helpers import minisnn, write_mnist_like


def test_recipe_defaults_and_refusals():
    mlp, csnn = T.TrainConfig(), T.TrainConfig(arch="csnn")
    assert (mlp.beta, mlp.surrogate, mlp.lr, mlp.loss, mlp.hidden) == (0.95, "atan", 5e-4,
                                                                      "ce_membrane", 1000)
    assert (csnn.beta, csnn.surrogate, csnn.lr, csnn.loss, csnn.hidden) == (0.5, "fast_sigmoid",
                                                                           1e-2, "ce_rate", None)
    assert T.TrainConfig(arch="csnn", beta=0.7, lr=2e-3).beta == 0.7
    with pytest.raises(T.ConfigError, match="hidden sets the mlp's hidden layer"):
        T.TrainConfig(arch="csnn", hidden=100)
    with pytest.raises(T.ConfigError, match="arch must be one of mlp, csnn"):
        T.TrainConfig(arch="resnet")
    net = T.build_net(csnn)
    assert [type(l).__name__ for l in net.layers] == [
        "Conv2d", "MaxPool2d", "Leaky", "Conv2d", "MaxPool2d", "Leaky", "Flatten", "Linear",
        "Leaky"]
    assert T.inputs_for(csnn)(np.zeros((3, 784), np.float32), 1, 0).shape == (3, 1, 28, 28)


def test_csnn_learns_with_snntorchs_loss(tmp_path):
    data = write_mnist_like(tmp_path / "toy")
    cfg = T.TrainConfig(arch="csnn", steps=5, batch_size=32, epochs=2, report_every=1000)
    result = T.train(cfg, T.load_data(data, cfg), log=None)
    assert result.test_accuracy > 0.5                 # 10 classes: chance is 0.1
    assert result.history.train_loss[-1] < result.history.train_loss[0]


def test_cli_trains_checkpoints_and_resumes_the_csnn(tmp_path):
    data = write_mnist_like(tmp_path / "toy")
    out = tmp_path / "run"
    run = minisnn("train", "--data", data, "--out", out, "--arch", "csnn", "--steps", 3,
                  "--batch-size", 32, "--max-iters", 2)
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith("minisnn ") and "12C5-MP2-64C5-MP2-FC10 network, 3 steps, " \
        "beta 0.5, fast_sigmoid surrogate, ce_rate loss, Adam lr 0.01" in run.stdout
    meta = ms.checkpoint.read_info(out / "model.npz")["meta"]
    assert (meta["arch"], meta["loss"], meta["iteration"]) == ("csnn", "ce_rate", 2)
    more = minisnn("train", "--data", data, "--resume", out / "model.npz", "--out", out,
                   "--max-iters", 1)
    assert more.returncode == 0, more.stderr
    assert ms.checkpoint.read_info(out / "model.npz")["meta"]["iteration"] == 3
    refused = minisnn("train", "--data", data, "--resume", out / "model.npz", "--out", out,
                      "--arch", "mlp", "--max-iters", 1)
    assert refused.returncode == 2 and "--arch" in refused.stderr, refused.stderr
    evaluated = minisnn("evaluate", out / "model.npz", "--data", data)
    assert evaluated.returncode == 0 and "12C5-MP2-64C5-MP2-FC10 network trained 3 " \
        "iterations" in evaluated.stdout, evaluated.stderr

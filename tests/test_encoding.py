"""`minisnn train --encoding`: images shown as the pixels, as rate-coded or as latency-coded spike
trains; seeded by the run, so a resumed run draws the spikes an uninterrupted one would have."""
import numpy as np
import pytest

import minisnn as ms
from minisnn import train as T
from minisnn.encoding import EVALUATE, TEST_MINIBATCH, TRAIN, encode

from run_helpers import TINY, minisnn, write_mnist_like


def test_encodings_by_hand():
    x = np.array([[0.0, 0.25, 1.0]], np.float32)
    assert encode(x, "static", 20, 0, TRAIN, 0) is x
    S = encode(x, "rate", 2000, 0, TRAIN, 0)
    assert S.shape == (2000, 1, 3) and S.dtype == np.float32
    assert S[:, 0, 0].sum() == 0 and S[:, 0, 2].sum() == 2000
    assert abs(S[:, 0, 1].mean() - 0.25) < 4 * np.sqrt(0.25 * 0.75 / 2000)
    np.testing.assert_array_equal(S, encode(x, "rate", 2000, 0, TRAIN, 0))      # seeded
    assert not np.array_equal(S, encode(x, "rate", 2000, 0, TRAIN, 1))          # per batch
    assert not np.array_equal(S, encode(x, "rate", 2000, 0, TEST_MINIBATCH, 0))  # per stream
    assert not np.array_equal(S, encode(x, "rate", 2000, 1, EVALUATE, 0))
    L = encode(x, "latency", 10, 0, TRAIN, 0)       # linear, normalised: brightest first
    assert L.sum(axis=0).tolist() == [[0, 1, 1]]
    assert L[:, 0, 2].argmax() == 0 and L[:, 0, 1].argmax() > 0
    with pytest.raises(ValueError, match="encoding must be one of static, rate, latency"):
        encode(x, "delta", 10, 0, TRAIN, 0)
    with pytest.raises(ms.train.ConfigError, match="encoding must be one of"):
        T.TrainConfig(encoding="poisson")


@pytest.mark.parametrize("encoding", ["rate", "latency"])
def test_training_on_encoded_input_learns_and_evaluates_the_same_way(tmp_path, encoding):
    data = write_mnist_like(tmp_path / "toy")
    cfg = T.TrainConfig(hidden=32, steps=8, batch_size=32, epochs=2, encoding=encoding,
                        report_every=1000, lr=5e-3)
    result = T.train(cfg, T.load_data(data, cfg), log=None)
    assert result.test_accuracy > 0.5                 # 10 classes: chance is 0.1
    d = T.load_data(data, cfg)
    assert T.evaluate(result.net, d.test_x, d.test_y, 8, 128, T.inputs_for(cfg)) == \
        (result.correct, result.total)                # the same draws: the same answer


def test_cli_encoding_is_part_of_the_checkpoint(tmp_path):
    data = write_mnist_like(tmp_path / "toy")
    out = tmp_path / "run"
    run = minisnn("train", "--data", data, "--out", out, "--encoding", "rate", "--max-iters", 3,
                  *TINY)
    assert run.returncode == 0, run.stderr
    assert "rate-coded input" in run.stdout
    meta = ms.checkpoint.read_info(out / "model.npz")["meta"]
    assert meta["encoding"] == "rate"
    refused = minisnn("train", "--data", data, "--resume", out / "model.npz", "--out", out,
                      "--encoding", "static", "--max-iters", 1)
    assert refused.returncode == 2 and "--encoding" in refused.stderr, refused.stderr

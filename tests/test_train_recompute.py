"""`minisnn train --recompute-every K` (TrainConfig.recompute_every): the training loop with BPTT
by segments trains the same network as the full records, in float64 to rounding, for the mlp
and the CSNN, and the flag is checked and reported."""
import numpy as np
import pytest

from minisnn import recompute
from minisnn import train as T
from minisnn.config import RESUME, RUN

from run_helpers import minisnn, write_mnist_like


def _trained(cfg, data):
    result = T.train(cfg, T.load_data(data, cfg), log=None)
    return result, [p.value.copy() for p in result.net.parameters()]


@pytest.mark.parametrize("kw", [dict(hidden=40, steps=12), dict(arch="csnn", steps=5),
                                dict(hidden=30, steps=9, encoding="rate")])
def test_segments_train_the_same_network_as_full_records(tmp_path, monkeypatch, kw):
    data = write_mnist_like(tmp_path / "toy")
    base = dict(kw, batch_size=32, max_iters=3, report_every=1, dtype="float64")
    full, full_params = _trained(T.TrainConfig(**base), data)
    calls, segmented = [], recompute.forward
    monkeypatch.setattr(recompute, "forward", lambda *a: calls.append(a[-1]) or segmented(*a))
    flat, flat_params = _trained(T.TrainConfig(**base, recompute_every=4), data)
    assert calls and set(calls) == {4}       # every forward of the run went by segments
    # the gradients differ only in the order of their sums over segments: rounding, not more
    for a, b in zip(full_params, flat_params):
        assert np.max(np.abs(a - b)) <= 1e-10 * max(1.0, np.max(np.abs(a)))
    assert np.allclose(full.history.train_loss, flat.history.train_loss, rtol=1e-12, atol=0)
    assert full.correct == flat.correct


def test_the_setting_is_checked_and_not_kept_on_resume():
    with pytest.raises(T.ConfigError, match="recompute_every must be an integer >= 1"):
        T.TrainConfig(recompute_every=0)
    assert RESUME["recompute_every"] == RUN       # memory of this run; the gradients are equal


def test_cli_flag_is_reported_and_refused_when_bad(tmp_path):
    data = write_mnist_like(tmp_path / "toy")
    run = minisnn("train", "--data", data, "--out", tmp_path / "run", "--hidden", 20,
                  "--steps", 6, "--batch-size", 32, "--max-iters", 1, "--recompute-every", 4)
    assert run.returncode == 0, run.stderr
    assert ", BPTT in segments of 4 steps" in run.stdout
    bad = minisnn("train", "--data", data, "--out", tmp_path / "bad", "--recompute-every", "0")
    assert bad.returncode == 2 and "--recompute-every" in bad.stderr, bad.stderr

"""minisnn.memory: the estimate of a run's memory against what NumPy allocates, and the refusal
of runs the machine cannot hold, before anything is allocated."""
import subprocess
import sys
import tracemalloc

import numpy as np
import pytest

from minisnn import cli, memory
from minisnn import train as T
from minisnn.data import pixels_to_float
from run_helpers import ENV, write_mnist_like


def traced_peak(cfg):
    """Peak bytes NumPy allocates (tracemalloc sees its arrays) for two training iterations,
    their test-minibatch passes and an evaluation of 3 batches, network and Adam included."""
    rng = np.random.default_rng(0)
    x = rng.integers(0, 255, (cfg.batch_size, cfg.num_inputs)).astype(np.uint8)
    y = rng.integers(0, cfg.num_outputs, cfg.batch_size)
    tracemalloc.start()
    try:
        net = T.build_net(cfg)
        opt = T.build_optimizer(net, cfg)
        inputs = T.inputs_for(cfg)
        for i in range(2):
            xb = inputs(pixels_to_float(x, cfg.dtype), 1, i)
            T.train_step(net, opt, xb, y, cfg.steps, cfg.loss, cfg.recompute_every)
            T.eval_batch(net, xb, y, cfg.steps, cfg.loss, cfg.recompute_every)
        T.evaluate(net, np.repeat(x, 3, 0), np.repeat(y, 3), cfg.steps, cfg.eval_batch_size,
                   inputs, cfg.recompute_every)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("kw", [dict(hidden=300, steps=25, batch_size=64),
                                dict(hidden=50, steps=60, batch_size=32, eval_batch_size=16),
                                dict(hidden=120, steps=8, batch_size=96, dtype="float64"),
                                dict(hidden=100, steps=20, batch_size=32, encoding="rate"),
                                dict(hidden=300, steps=200, batch_size=32, recompute_every=15),
                                dict(hidden=300, steps=200, batch_size=32, recompute_every=15,
                                     encoding="rate"),
                                dict(arch="csnn", steps=10, batch_size=64),
                                dict(arch="csnn", steps=4, batch_size=32, encoding="rate")])
def test_estimate_is_what_numpy_allocates_within_25_percent(kw):
    cfg = T.TrainConfig(**kw)
    estimate = sum(b for _, b in memory.estimate(cfg))
    assert 0.75 <= traced_peak(cfg) / estimate <= 1.25


def test_estimate_scales_as_steps_batch_hidden_bytes():
    base = memory.estimate(T.TrainConfig(hidden=1000, steps=25, batch_size=128))
    assert base[0][1] == (25 * 128 * (4 * 1010 + 3 * 10) + 128 * 784) * 4   # 4 (T,B,N) arrays
    assert base[1][1] == 5 * (784 * 1000 + 1000 + 1000 * 10 + 10) * 4
    big = memory.estimate(T.TrainConfig(hidden=1000, steps=250, batch_size=128, dtype="float64"))
    assert big[0][1] == pytest.approx(20 * base[0][1], rel=1e-2)


def test_check_fits_refuses_with_the_estimate():
    cfg = T.TrainConfig(hidden=1000, steps=25, batch_size=128)
    total = memory.check_fits(cfg, available=10 ** 9)
    assert 60e6 < total < 80e6
    with pytest.raises(MemoryError, match=r"^this run needs about 68\.4 MB of memory \(52\.5 MB "
                       r"records and gradients \(4 × 25 steps × batch 128 × 1010 neurons × 4 "
                       r"bytes\) \+ 15\.9 MB parameters.*\) but only 50\.0 MB is available; "
                       r"lower --steps, --batch-size or --hidden$"):
        memory.check_fits(cfg, available=50 * 10 ** 6)
    with pytest.raises(MemoryError, match="of GPU memory"):
        memory.check_fits(T.TrainConfig(backend="cupy"), available=1000)


def test_available_memory_follows_an_address_space_limit():
    code = ("import resource; from minisnn import memory; "
            "size = memory._own_size('VmSize'); "
            "resource.setrlimit(resource.RLIMIT_AS, (size + 300 * 10**6, resource.RLIM_INFINITY)); "
            "print(memory.available_bytes())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=ENV,
                         check=True).stdout
    assert 250e6 < int(out) <= 300e6


def test_cli_refuses_a_run_too_big_before_allocating(tmp_path, capsys):
    data = write_mnist_like(tmp_path / "toy")
    status = cli.main(["train", "--data", str(data), "--out", str(tmp_path / "run"),
                       "--steps", "10000000"])
    err = capsys.readouterr().err
    assert status == 1 and err.count("\n") == 1
    assert err.startswith("minisnn: error: this run needs about 20.8 TB of memory (20.8 TB "
                          "records and gradients (4 × 10000000 steps × batch 128 × 1010 "
                          "neurons"), err
    assert "is available; lower --steps, --batch-size or --hidden" in err
    assert not (tmp_path / "run").exists()

"""`minisnn bench --arch csnn` (snnTorch tutorial 6's CSNN) on tiny configurations: the points it
has (batch and steps, no hidden size), the options it refuses, the report beside snnTorch, and
that the peer computes what minisnn computes. CPU only; no timing assertions."""
import importlib.util
import json

import numpy as np
import pytest

from minisnn import bench, ce_rate_loss
from minisnn.bench import command, csnn, inputs, ours, snntorch_peer

TINY = ["--arch", "csnn", "--backend", "numpy", "--data", "random", "--repeats", "1",
        "--warmup", "0", "--batch", "4", "--steps", "3", "--threads", "1", "--no-plot"]
HAVE_PEER = all(importlib.util.find_spec(m) is not None for m in ("torch", "snntorch"))
needs_peer = pytest.mark.skipif(not HAVE_PEER, reason="torch and snntorch are not installed")


def run_main(tmp_path, *extra):
    out = tmp_path / "bench"
    assert bench.main(TINY + ["--out", str(out), *extra]) == 0
    return json.loads((out / "bench.json").read_text())


def test_csnn_points_are_batch_and_steps():
    args = bench.build_parser().parse_args(["--arch", "csnn", "--sweep-steps", "5,10"])
    seed, sweep = command.points(args)
    assert seed == {"batch": 128, "steps": 25}
    assert sweep == {"batch": bench.SWEEP["batch"], "steps": [5, 10]}
    keys = [bench.config_key(c) for c in bench.plan_configs(seed, sweep, quick=False)]
    assert keys[0] == (128, 25) and (128, 5) in keys and (1024, 25) in keys
    assert bench.repeats_for({"batch": 256, "steps": 50}, 20, 3, seed) == (5, 1)   # cost 4
    mlp_seed, _ = command.points(bench.build_parser().parse_args([]))
    assert mlp_seed == bench.SEED_CONFIG                     # the mlp keeps its hidden size


@pytest.mark.parametrize("option", [["--hidden", "8"], ["--sweep-hidden", "8,16"]])
def test_csnn_refuses_a_hidden_size(tmp_path, option):
    with pytest.raises(SystemExit, match=rf"{option[0]}: --arch csnn .* has no hidden setting; "
                                         r"it takes --batch and --steps"):
        bench.main(TINY + option + ["--out", str(tmp_path)])
    assert not (tmp_path / "bench.json").exists()            # refused before any worker ran


def test_csnn_quick_and_train_minisnn(tmp_path, capsys):
    report = run_main(tmp_path, "--quick", "--no-peer", "--train", "--max-iters", "2")
    assert report["seed_config"] == {"batch": 4, "steps": 3}
    assert report["settings"]["arch"] == "csnn"
    (run,) = report["runs"]
    (r,) = run["results"]
    assert bench.config_key(r) == (4, 3) and "hidden" not in r
    assert all(r[k] > 0 for k in ("forward_ms", "backward_ms", "step_ms", "total_ms",
                                  "peak_rss_mb"))
    (train,) = report["train"]
    assert train["run"]["iterations"] == 2 and 0 <= train["run"]["test_accuracy"] <= 1
    text = capsys.readouterr().out
    assert "CSNN (snnTorch tutorial 6) 12C5-MP2-64C5-MP2-1024FC10, batch 4, 3 steps" in text
    assert "Training run" in text


def test_csnn_sweep_of_batch_and_steps(tmp_path, capsys):
    out = tmp_path / "bench"
    argv = [a for a in TINY if a != "--no-plot"] + ["--no-peer", "--sweep-batch", "2,4",
                                                    "--sweep-steps", "2,3", "--out", str(out)]
    assert bench.main(argv) == 0
    report = json.loads((out / "bench.json").read_text())
    assert sorted(bench.config_key(c) for c in report["comparison"]) == [(2, 3), (4, 2), (4, 3)]
    assert (out / "bench.png").read_bytes()[:4] == b"\x89PNG"
    text = capsys.readouterr().out
    assert "  varied    batch   steps" in text and "  batch         2       3" in text


@needs_peer
def test_csnn_beside_snntorch(tmp_path, capsys):
    report = run_main(tmp_path, "--quick", "--peer", "snntorch")
    runs = {r["framework"]: r for r in report["runs"]}
    assert set(runs) == {"minisnn", "snntorch"} and report["skipped"] == []
    (c,) = report["comparison"]
    ms, peer = (runs[f]["results"][0] for f in ("minisnn", "snntorch"))
    assert c["speedup_vs_snntorch_numpy"] == pytest.approx(peer["total_ms"] / ms["total_ms"])
    assert c["peak_rss_vs_snntorch_numpy"] == pytest.approx(peer["peak_rss_mb"] / ms["peak_rss_mb"])
    text = capsys.readouterr().out
    assert (f"minisnn/numpy is {c['speedup_vs_snntorch_numpy']:.2f}x as fast as snnTorch/cpu, "
            f"with {1 / c['peak_rss_vs_snntorch_numpy']:.2f}x its peak RSS") in text


@needs_peer
def test_csnn_peer_train_run(monkeypatch):
    """The peer's --train run of the csnn, in this process (a worker would only add the
    start-up) and on 16 + 8 random images: tutorial 6's network on (B, 1, 28, 28) batches, then
    the test accuracy."""
    import torch
    small = lambda folder, seed=0: inputs.load_arrays(folder, seed, random_size=(16, 8))
    monkeypatch.setattr(snntorch_peer, "load_arrays", small)
    spec = {"framework": "snntorch", "backend": "numpy", "arch": "csnn", "data": None, "seed": 0,
            "threads": torch.get_num_threads(), "config": {"batch": 4, "steps": 3},
            "epochs": 1, "max_iters": 2, "warmup": 0}
    run = snntorch_peer.train(spec)
    assert run["iterations"] == 2 and run["data"] == "random"
    assert run["test_accuracy"] in [k / 8 for k in range(9)]          # all 8 test images
    assert run["total_ms"] > 0 and run["peak_rss_mb"] > 0


@needs_peer
@pytest.mark.parametrize("hoist", [False, True], ids=["tutorial", "hoisted"])
def test_csnn_peer_is_the_same_network(hoist):
    """Same initial weights and batch: tutorial 6's code gives minisnn's spikes, its ce_rate
    loss, gradients and the weights after one Adam step (lr 1e-2) to float32 rounding."""
    import torch

    config = {"batch": 4, "steps": 4}
    tnet, topt, loss_fn = snntorch_peer.setup(config, "cpu", 0, 1, hoist, csnn)
    net, opt = csnn.minisnn_net(config, "numpy", 0)
    with torch.no_grad():             # at its initial weights the output layer never spikes
        tnet.net[7].weight *= 10
    net[7].W *= 10
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4,) + csnn.INPUT_SHAPE, dtype=np.float32)
    y = rng.integers(0, 10, 4)
    tx, ty = torch.from_numpy(x), torch.from_numpy(y)
    spk, _ = net(x, config["steps"])
    with torch.no_grad():
        tspk, tmem = tnet(tx)
    assert np.array_equal(spk, tspk.numpy()) and 0 < spk.mean() < 1
    assert float(ce_rate_loss(spk, y)[0]) == pytest.approx(float(loss_fn(tspk, tmem, ty)), abs=1e-6)
    for phase in ours.phases(net, opt, [(x, y)], config["steps"], csnn.LOSS):
        phase()
    tphases = snntorch_peer.phases(tnet, topt, loss_fn, [(tx, ty)])
    tphases[0]()
    tphases[1]()
    W0 = {i: tnet.net[i].weight.detach().numpy().copy() for i in csnn.WEIGHTED}
    grads = {}
    for i in csnn.WEIGHTED:
        grads[i] = tnet.net[i].weight.grad.numpy().copy()
        assert np.abs(net[i].dW - grads[i]).max() <= 1e-4 * np.abs(grads[i]).max()
        assert np.abs(grads[i]).max() > 0
    tphases[2]()
    for i in csnn.WEIGHTED:   # Adam's first step: -lr·g/(|g| + eps), ±lr where |g| >> eps
        big = np.abs(grads[i]) > 1e-3 * np.abs(grads[i]).max()
        mine, theirs = net[i].W - W0[i], tnet.net[i].weight.detach().numpy() - W0[i]
        assert np.abs(mine - theirs)[big].max() < 1e-6
        assert np.abs(theirs[big]).max() == pytest.approx(csnn.LR, rel=1e-3)

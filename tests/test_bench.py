"""`minisnn bench` on tiny configurations: the code path, the JSON it writes and its arithmetic.
CPU only; no timing assertions (figures only have to be positive numbers)."""
import importlib.util
import json

import pytest

from minisnn import bench
from minisnn.bench import command, mlp, ours, plot, snntorch_peer

TINY = ["--backend", "numpy", "--data", "random", "--repeats", "1", "--warmup", "0",
        "--batch", "4", "--hidden", "8", "--steps", "3",
        "--sweep-batch", "2,4", "--sweep-hidden", "8,16", "--sweep-steps", "2,3"]
PHASES = ("forward_ms", "backward_ms", "step_ms", "total_ms")
HAVE_PEER = all(importlib.util.find_spec(m) is not None for m in ("torch", "snntorch"))


def run_main(tmp_path, *extra):
    out = tmp_path / "bench"
    assert bench.main(TINY + ["--out", str(out), *extra]) == 0
    report = json.loads((out / "bench.json").read_text())
    leftovers = [p.name for p in out.iterdir() if p.name not in ("bench.json", "bench.png")]
    assert leftovers == []                                  # atomic writes leave no temp files
    return out, report


def positive(x):
    return isinstance(x, (int, float)) and x > 0


def test_plan_puts_seed_first_and_merges_repeated_points():
    seed = {"batch": 4, "hidden": 8, "steps": 3}
    configs = bench.plan_configs(seed, {"batch": [2, 4], "hidden": [8, 16], "steps": [3]}, False)
    keys = [bench.config_key(c) for c in configs]
    assert keys[0] == (4, 8, 3) and len(keys) == len(set(keys)) == 3
    assert configs[0]["axes"] == ["seed", "batch", "hidden", "steps"]
    assert bench.plan_configs(seed, {"batch": [2]}, quick=True) == [dict(seed, axes=["seed"])]


def test_bigger_points_get_fewer_repeats():
    seed = bench.SEED_CONFIG
    assert bench.repeats_for(seed, 20, 3) == (20, 3)
    big = dict(seed, hidden=10000)
    repeats, warmup = bench.repeats_for(big, 20, 3)
    assert 1 <= repeats < 20 and warmup == 1


def test_ratios_are_peer_over_minisnn_and_numpy_over_cupy():
    row = {"batch": 1, "hidden": 2, "steps": 3, "axes": ["seed"]}
    runs = [{"framework": f, "backend": b, "results": [dict(row, total_ms=ms)]}
            for f, b, ms in (("minisnn", "numpy", 10.0), ("snntorch", "numpy", 35.0),
                             ("minisnn", "cupy", 2.0), ("snntorch", "cupy", 3.0))]
    (c,) = bench.compare(runs)
    assert c["speedup_vs_snntorch_numpy"] == pytest.approx(3.5)
    assert c["speedup_vs_snntorch_cupy"] == pytest.approx(1.5)
    assert c["cupy_speedup_over_numpy"] == pytest.approx(5.0)
    (only,) = bench.compare(runs[:1])
    assert "speedup_vs_snntorch_numpy" not in only and "cupy_speedup_over_numpy" not in only


def test_memory_ratios_are_peer_over_minisnn_for_points_with_their_own_peak():
    """A worker's peak RSS is its seed point's (its first): later points only get a ratio when
    each ran in a process of its own (--memory)."""
    seed = {"batch": 1, "hidden": 2, "steps": 3, "axes": ["seed"]}
    big = dict(seed, batch=4, axes=["batch"])
    runs = [{"framework": f, "backend": "numpy",
             "results": [dict(seed, total_ms=1.0, peak_rss_mb=mb),
                         dict(big, total_ms=2.0, peak_rss_mb=3 * mb)]}
            for f, mb in (("minisnn", 100.0), ("snntorch", 350.0))]
    first, later = bench.compare(runs)
    assert first["peak_rss_vs_snntorch_numpy"] == pytest.approx(3.5)
    assert "peak_rss_vs_snntorch_numpy" not in later
    assert bench.compare(runs, per_point_memory=True)[1]["peak_rss_vs_snntorch_numpy"] == \
        pytest.approx(3.5)


def test_train_ratios():
    def tr(fw, ms, epoch, rss):
        return {"framework": fw, "backend": "numpy",
                "run": {"total_ms": ms, "epoch_s": [epoch], "peak_rss_mb": rss}}
    (c,) = bench.compare_train([tr("minisnn", 10.0, 2.0, 100.0), tr("snntorch", 40.0, 7.0, 450.0)])
    assert c == {"peer": "snntorch", "backend": "numpy", "time_per_iteration": 4.0,
                 "epoch_time": 3.5, "peak_rss": 4.5}


def test_bench_numpy_sweep_writes_json_and_plot(tmp_path, capsys):
    out, report = run_main(tmp_path, "--no-peer")
    assert (out / "bench.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert report["settings"]["backends"] == ["numpy"] and report["skipped"] == []
    assert report["meta"]["threads"] >= 1 and report["meta"]["cpu"]
    (run,) = report["runs"]
    assert run["framework"] == "minisnn" and run["backend"] == "numpy"
    assert run["versions"]["numpy"] and run["versions"]["minisnn"]
    keys = sorted(bench.config_key(r) for r in run["results"])
    assert keys == [(2, 8, 3), (4, 8, 2), (4, 8, 3), (4, 16, 3)]
    for r in run["results"]:
        assert all(positive(r[k]) for k in PHASES) and r["repeats"] == 1
    seed = next(r for r in run["results"] if "seed" in r["axes"])
    assert positive(seed["peak_rss_mb"])                    # the seed point runs first: its peak
    assert {bench.config_key(c) for c in report["comparison"]} == set(keys)
    assert all(positive(c["minisnn_numpy_ms"]) for c in report["comparison"])
    text = capsys.readouterr().out
    assert "Seed network 784-8-10, batch 4, 3 steps" in text and "Sweep" in text


def test_bench_quick_memory_and_train(tmp_path, capsys):
    _, report = run_main(tmp_path, "--no-peer", "--quick", "--memory", "--train",
                         "--max-iters", "3", "--no-plot")
    (run,) = report["runs"]
    assert [bench.config_key(r) for r in run["results"]] == [(4, 8, 3)]
    (train,) = report["train"]
    r = train["run"]
    assert r["iterations"] == 3 and r["data"] == "random"
    assert all(positive(r[k]) for k in PHASES) and positive(r["peak_rss_mb"])
    assert all(positive(s) for s in r["epoch_s"]) and 0 <= r["test_accuracy"] <= 1
    assert report["train_comparison"] == []                  # no peer, no ratio
    assert "Training run" in capsys.readouterr().out


def test_bench_takes_recompute_every_for_minisnn(tmp_path, capsys):
    _, report = run_main(tmp_path, "--no-peer", "--quick", "--recompute-every", "2", "--no-plot")
    assert report["settings"]["recompute_every"] == 2
    (run,) = report["runs"]
    assert all(positive(run["results"][0][k]) for k in PHASES)
    assert "(minisnn: BPTT in segments of 2)" in capsys.readouterr().out


def test_peer_option():
    parse = lambda *a: bench.build_parser().parse_args(list(a)).peer
    assert parse() == ["snntorch"] and parse("--no-peer") == [] and parse("--peer", "none") == []
    assert parse("--peer", "snntorch-hoisted,snntorch") == ["snntorch-hoisted", "snntorch"]
    with pytest.raises(SystemExit):
        parse("--peer", "brian2")


def test_missing_cupy_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(command, "available_backends", lambda: ["numpy"])
    with pytest.raises(SystemExit, match="CuPy"):
        bench.main(TINY[2:] + ["--backend", "cupy", "--out", str(tmp_path)])


def test_failed_worker_is_reported_not_raised():
    out, reason = bench.spawn_worker({"framework": "nope", "backend": "numpy", "mode": "timing"}, 1)
    assert out is None and "worker failed" in reason


@pytest.mark.skipif(not HAVE_PEER, reason="torch and snntorch are not installed")
def test_bench_with_snntorch_peers(tmp_path):
    _, report = run_main(tmp_path, "--quick", "--no-plot", "--peer", "snntorch,snntorch-hoisted",
                         "--train", "--max-iters", "2")
    runs = {r["framework"]: r for r in report["runs"]}
    assert set(runs) == {"minisnn", "snntorch", "snntorch-hoisted"}
    assert runs["snntorch"]["threads"]["torch_threads"] == report["meta"]["threads"]
    assert runs["snntorch"]["versions"]["torch"] and runs["snntorch"]["versions"]["snntorch"]
    (c,) = report["comparison"]
    for peer in ("snntorch", "snntorch-hoisted"):
        assert c[f"speedup_vs_{peer}_numpy"] == pytest.approx(c[f"{peer}_numpy_ms"] / c["minisnn_numpy_ms"])
    assert {(t["peer"], t["backend"]) for t in report["train_comparison"]} == \
        {("snntorch", "numpy"), ("snntorch-hoisted", "numpy")}
    for t in report["train"]:
        assert t["run"]["iterations"] == 2 and positive(t["run"]["peak_with_eval_rss_mb"])


@pytest.mark.skipif(not HAVE_PEER, reason="torch and snntorch are not installed")
@pytest.mark.parametrize("hoist", [False, True], ids=["tutorial", "hoisted"])
def test_snntorch_peer_is_the_same_network(hoist):
    """Same initial weights and batch: the peer's loss, membrane and gradients are minisnn's to
    float32 rounding, so the benchmark compares the same computation."""
    import numpy as np
    import torch

    config = {"batch": 8, "hidden": 20, "steps": 6}
    tnet, topt, loss_fn = snntorch_peer.setup(config, "cpu", 0, 1, hoist)
    net, opt = mlp.minisnn_net(config, "numpy", 0)
    rng = np.random.default_rng(0)
    x = rng.random((8, mlp.NUM_INPUTS), dtype=np.float32) * 3
    y = rng.integers(0, mlp.NUM_OUTPUTS, 8)
    run = ours.phases(net, opt, [(x, y)], config["steps"])
    run[0]()
    run[1]()
    tphases = snntorch_peer.phases(tnet, topt, loss_fn,
                                   [(torch.from_numpy(x), torch.from_numpy(y))])
    tphases[0]()
    tphases[1]()
    assert np.abs(net.record[3].U - tnet(torch.from_numpy(x))[1].detach().numpy()).max() < 1e-5
    for mine, theirs in ((net[0].dW, tnet.fc1.weight.grad), (net[0].db, tnet.fc1.bias.grad),
                         (net[2].dW, tnet.fc2.weight.grad), (net[2].db, tnet.fc2.bias.grad)):
        theirs = theirs.numpy()
        assert np.abs(mine - theirs).max() <= 1e-5 * np.abs(theirs).max()
    assert np.abs(net[0].dW).max() > 0


def test_quick_plot_is_a_bar_per_framework_split_by_phase(tmp_path):
    """--quick has no sweep axis: the plot is the seed point's phases, stacked, one bar per run."""
    from matplotlib.figure import Figure
    row = {"batch": 4, "hidden": 8, "steps": 3, "axes": ["seed"], "forward_ms": 1.0,
           "backward_ms": 2.0, "step_ms": 0.5, "total_ms": 3.5}
    report = {"runs": [{"framework": f, "backend": "numpy", "results": [row]}
                       for f in ("minisnn", "snntorch")],
              "comparison": [], "seed_config": {"batch": 4, "hidden": 8, "steps": 3},
              "meta": {"cpu": "test"}}
    fig = Figure()
    plot._seed_bars(fig, report)
    (ax,) = fig.axes
    bars = ax.patches
    assert len(bars) == 2 * 3                                   # two runs x three phases
    assert sorted({round(b.get_width(), 3) for b in bars}) == [0.5, 1.0, 2.0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["minisnn/numpy", "snnTorch/cpu"]
    plot.plot(report, tmp_path / "quick.png")
    assert (tmp_path / "quick.png").read_bytes()[:4] == b"\x89PNG"


def test_benchmark_function_is_what_the_command_does(tmp_path, capsys):
    heard = []
    report, written = bench.benchmark(TINY + ["--no-peer", "--quick", "--out", str(tmp_path)],
                                      progress=heard.append)
    assert heard == ["timed minisnn/numpy"]
    assert [p.name for p in written] == ["bench.json", "bench.png"]
    assert json.loads((tmp_path / "bench.json").read_text())["seed_config"] == report["seed_config"]
    assert capsys.readouterr() == ("", "")                      # quiet: the caller prints
    with pytest.raises(SystemExit):
        bench.benchmark(["--arch", "resnet"])


def test_package_pieces_stay_small():
    """bench is a package of pieces a reader can hold: none past ~300 lines."""
    from pathlib import Path
    sizes = {p.name: len(p.read_text().splitlines())
             for p in Path(bench.__file__).parent.glob("*.py")}
    assert {"plan.py", "worker.py", "snntorch_peer.py", "report.py", "plot.py"} <= set(sizes)
    assert max(sizes.values()) <= 300, sizes

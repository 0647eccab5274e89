"""Tutorials 07 (spike encoding) and 08 (neurons with more state) run end to end in fast mode
and print the numbers they promise.

The harness of tests/test_tutorials.py, imported from there (its `run` fixture and helpers):
each tutorial runs once as a script and once as a notebook (jupytext + nbclient, in a real
kernel; skipped, with one reason, without the [notebook] extra), in fast mode with its figures
in a temporary folder; the tests parse its `label: number` lines, check them against bounds
that a wrong engine or a wrong tutorial would break, and check that its figures were written.
"""
import importlib.util
import re
import subprocess
import sys

from test_tutorials import (REPO, TUTORIALS, assert_data_line, assert_figures, tutorial_env,
                            value)
from test_tutorials import run  # noqa: F401  (the fixture: each tutorial once per mode)


def search(pattern, out):
    found = re.search(pattern, out, re.MULTILINE)
    assert found, f"no line matching {pattern!r} in the output:\n{out}"
    return found.groups()


# ----------------------------------------------------------------------------- 07

def test_07_encoders_match_their_formulas(run):
    out, figs = run("07_spike_encoding")
    assert_data_line(out)
    # rate: the mean count is T·x, the variance T·x·(1 − x); gain scales p
    assert abs(value(out, "rate: T * x") - 15.0) < 1e-3
    mean = value(out, "rate: mean spike count of a pixel with x = 0.6000, 4000 draws")
    assert abs(mean - 15.0) < 0.3                       # 4000 draws: std of the mean ≈ 0.04
    assert abs(value(out, "rate: variance of the count") - 6.0) < 0.6
    assert abs(value(out, "rate: mean spike count with gain = 0.5") - 7.5) < 0.3
    total, expected = search(r"^rate: spikes of the digit in 25 steps: (\d+); expected "
                             r"T \* sum\(x\) = ([0-9.]+)", out)
    assert abs(int(total) - float(expected)) < 0.05 * float(expected)
    # latency: the log code by hand, one pixel of the linear code by hand, one spike per pixel
    hand, engine = search(r"^latency \(log\): steps by hand (\[.*?\]), engine (\[.*?\])", out)
    assert hand == engine == "[3, 1, 0, 0]"
    assert value(out, "latency (linear): by hand step") == value(out, "latency (linear): engine step")
    spikes, pixels = search(r"at most 1; (\d+) spikes for (\d+) pixels above threshold", out)
    assert spikes == pixels and int(spikes) > 50
    # delta: the spikes of one step counted by hand; padding silences step 0
    assert search(r"^delta: step 3 by hand: (\d+) on, (\d+) off", out) == \
        search(r"^delta: step 3 engine: (\d+) on, (\d+) off", out)
    fired, above, padded = search(r"^delta: step 0 fires (\d+) pixels \(those >= 0.1: (\d+)\); "
                                  r"with padding=True: (\d+)", out)
    assert fired == above and int(fired) > 50 and padded == "0"
    assert_figures(figs, "07_rate", "07_latency", "07_delta")
    gif = figs / "07_rate.gif"
    assert gif.is_file() and gif.read_bytes()[:4] == b"GIF8" and gif.stat().st_size > 2000


def test_07_rate_coded_training_against_static(run):
    out, figs = run("07_spike_encoding")
    assert search(r"^same initial weights: max \|W1 difference\| = (\S+)$", out) == ("0.0",)
    for name in ("static", "rate-coded"):
        before, after = map(float, search(rf"^{name} input: loss ([0-9.]+) -> ([0-9.]+)", out))
        assert 50 < before < 75 and after < before - 5, (name, before, after)
    static = value(out, "static input: test accuracy")
    rate = value(out, "rate-coded input: test accuracy")
    assert static > 0.5 and rate > 0.5        # fast mode: 5 batches; about 0.67 here
    assert abs(value(out, "rate-coded minus static") - (rate - static)) < 1e-3
    assert abs(rate - static) < 0.1
    assert value(out, "static-trained network on rate-coded test digits") > 0.4
    assert value(out, "rate-trained network on static test digits") > 0.4
    assert_figures(figs, "07_rate_vs_static")


# ----------------------------------------------------------------------------- 08

def test_08_traces_and_factors_by_hand(run):
    out, figs = run("08_neurons_with_state")
    assert value(out, "synaptic trace vs hand max abs error") < 1e-12
    assert "synaptic spikes: [0, 1, 0, 0, 0], Leaky spikes: [0, 0, 0, 0, 0]" in out
    assert value(out, "rleaky trace vs hand max abs error") < 1e-12
    assert "rleaky spikes, neuron 0: [1, 1, 1, 1, 1, 1], neuron 1: [0, 0, 0, 1, 0, 0]" in out
    assert value(out, "synaptic kernel: hand vs engine max abs error") < 1e-12
    assert value(out, "synaptic Jacobian: hand vs minisnn.literal max abs error") < 1e-12
    assert value(out, "rleaky Jacobian: hand vs minisnn.literal max abs error") < 1e-12
    assert value(out, "rleaky chain: hand vs engine max abs error") < 1e-12
    assert_figures(figs, "08_traces")


def test_08_gradient_checks(run):
    out, _ = run("08_neurons_with_state")
    params = dict(re.findall(r"^\[(\w+)\] finite differences, parameters (\[.*\])$", out, re.M))
    assert "'1.alpha'" in params["synaptic"] and "'1.beta'" in params["synaptic"]
    assert "'1.V'" in params["rleaky"] and "'1.b_V'" in params["rleaky"]
    for kind in ("synaptic", "rleaky"):
        assert value(out, f"[{kind}] finite differences vs engine max rel error") <= 1e-6
        assert value(out, f"[{kind}] literal vs engine max rel error") <= 1e-10
    # a backward that drops a path must fail the check by far
    assert value(out, "[synaptic, alpha forgotten] literal vs engine max rel error") > 1e-3
    assert value(out, "[rleaky, recurrence cut] literal vs engine max rel error") > 1e-3
    available = search(r"^snntorch available: (yes|no)$", out)[0]
    installed = all(importlib.util.find_spec(m) is not None for m in ("torch", "snntorch"))
    assert available == ("yes" if installed else "no")
    if installed:
        for kind in ("synaptic", "rleaky"):
            err, same = search(rf"^\[{kind}\] snnTorch autograd vs engine max rel error: (\S+) "
                               rf"\(spikes identical: (\w+)\)", out)
            assert float(err) <= 1e-12 and same == "True"


def test_08_memory_task_needs_the_extra_state(run):
    out, figs = run("08_neurons_with_state")
    acc = {(k, int(s)): float(a) for k, s, a in
           re.findall(r"^memory task \[(\w+)\] seed (\d+): test accuracy ([0-9.]+)$", out, re.M)}
    seeds = sorted({s for _, s in acc})
    assert len(seeds) >= 3 and len(acc) == 3 * len(seeds)
    for seed in seeds:
        assert abs(acc["leaky", seed] - 0.5) <= 0.1, acc       # chance: the pulse is forgotten
        assert acc["synaptic", seed] >= 0.8, acc
        assert acc["rleaky", seed] >= 0.8, acc
    for kind in ("synaptic", "rleaky"):
        assert value(out, f"memory task [{kind}] mean test accuracy") >= 0.9
    assert abs(value(out, "memory task [leaky] mean test accuracy") - 0.5) <= 0.05
    assert_figures(figs, "08_memory_task")


def test_07_a_data_folder_without_mnist_stops_it_clearly(tmp_path):
    """As tutorials 04 and 05: an explicit $MINISNN_DATA is never silently replaced."""
    env = tutorial_env(tmp_path / "out", MPLBACKEND="Agg", MINISNN_DATA=str(tmp_path / "none"))
    proc = subprocess.run([sys.executable, str(TUTORIALS / "07_spike_encoding.py")], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0
    assert "could not load its data" in proc.stderr and str(tmp_path / "none") in proc.stderr
    assert "unset MINISNN_DATA" in proc.stderr and "Traceback" not in proc.stderr

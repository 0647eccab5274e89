"""The tutorials run end to end (fast mode) and print the numbers they promise.

Each tutorial in tutorials/ runs once, as a reader would run it (`python tutorials/NN_name.py`),
in a subprocess with MPLBACKEND=Agg, MINISNN_FAST=1 and its figures going to a temporary folder.
The tests then read the machine-parseable lines it printed (`label: number`) and check them
against bounds, and check that its figures were written.
"""
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
TUTORIALS = REPO / "tutorials"
NAMES = sorted(p.stem for p in TUTORIALS.glob("[0-9][0-9]_*.py"))

_cache = {}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """run(name, **env) -> (stdout, figure folder): run the tutorial once per module."""
    def _run(name, **env):
        if name not in _cache:
            out = tmp_path_factory.mktemp(name)
            full_env = {**os.environ, "MPLBACKEND": "Agg", "MINISNN_FAST": "1",
                        "MINISNN_TUTORIAL_OUT": str(out),
                        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO),
                                                                    os.environ.get("PYTHONPATH")])),
                        **env}
            proc = subprocess.run([sys.executable, str(TUTORIALS / f"{name}.py")], cwd=REPO,
                                  env=full_env, capture_output=True, text=True, timeout=600)
            assert proc.returncode == 0, (f"{name} failed (exit {proc.returncode})\n--- stdout\n"
                                          f"{proc.stdout[-4000:]}\n--- stderr\n{proc.stderr[-4000:]}")
            _cache[name] = (proc.stdout, out)
        return _cache[name]
    return _run


def value(stdout, label):
    """The number printed after `label:` at the start of a line (the last such line)."""
    found = re.findall(rf"^{re.escape(label)}:\s*([-+]?[0-9.]+(?:[eE][-+]?[0-9]+)?)", stdout,
                       flags=re.MULTILINE)
    assert found, f"no line starting with {label!r}: in the output:\n{stdout}"
    return float(found[-1])


def assert_figures(out, *names):
    for name in names:
        path = out / f"{name}.png"
        assert path.is_file(), f"{path} was not written; found {sorted(p.name for p in out.iterdir())}"
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert path.stat().st_size > 5000, f"{path} is suspiciously small"


# ----------------------------------------------------------------------------- format

def test_tutorials_exist_in_order():
    assert NAMES == ["01_lif_neuron", "02_surrogate_gradients", "03_bptt_by_hand",
                     "04_loss_and_decoding", "05_train_mnist", "06_numpy_and_cupy"]


@pytest.mark.parametrize("name", NAMES)
def test_percent_cell_format(name):
    """Opens as a notebook: `# %%` code cells and `# %% [markdown]` cells whose every line is a
    comment; the first cell is Markdown with a title; no code before the first cell."""
    text = (TUTORIALS / f"{name}.py").read_text(encoding="utf-8")
    lines = text.splitlines()
    starts = [i for i, l in enumerate(lines) if l.startswith("# %%")]
    assert starts, "no cells"
    before = [l for l in lines[:starts[0]] if l.strip()]
    assert all(l.startswith("#") for l in before), "code before the first cell"
    cells = [(lines[a], lines[a + 1:b]) for a, b in zip(starts, starts[1:] + [len(lines)])]
    kinds = [("markdown" if head.strip() == "# %% [markdown]" else "code") for head, _ in cells]
    assert kinds[0] == "markdown" and cells[0][1][0].startswith("# # "), "first cell: a title"
    assert kinds.count("markdown") >= 4 and kinds.count("code") >= 3
    for (head, body), kind in zip(cells, kinds):
        assert head.strip() in ("# %%", "# %% [markdown]"), head
        if kind == "markdown":
            bad = [l for l in body if l.strip() and not l.startswith("#")]
            assert not bad, f"non-comment line in a Markdown cell: {bad[:2]}"
    compile(text, name, "exec")


def test_readme_lists_every_tutorial_and_out_is_ignored():
    readme = (TUTORIALS / "README.md").read_text(encoding="utf-8")
    for name in NAMES:
        assert f"{name}.py" in readme
    assert "out/" in (TUTORIALS / ".gitignore").read_text().split()


# ----------------------------------------------------------------------------- 01

def test_01_lif_neuron(run):
    out, figs = run("01_lif_neuron")
    assert value(out, "leaky_step vs hand max abs error") < 1e-12
    assert value(out, "Leaky layer vs hand max abs error") < 1e-12
    assert re.search(r"^spike steps: \[2, 6\]$", out, re.MULTILINE)
    # the weakest current that fires lies just above theta*(1 - beta)
    for beta, onset in re.findall(r"beta=\s*([0-9.]+): weakest current that fires ([0-9.]+)", out):
        assert float(beta) == 1.0 or 0 < float(onset) - (1 - float(beta)) < 0.05
    assert_figures(figs, "01_step_input", "01_beta_threshold", "01_reset")


# ----------------------------------------------------------------------------- 02

def test_02_surrogate_gradients(run):
    out, figs = run("02_surrogate_gradients")
    assert value(out, "[true derivative] hidden-layer gradient norm") == 0
    assert value(out, "[true derivative] largest change of a hidden weight") == 0
    assert value(out, "[atan] hidden-layer gradient norm") > 1
    assert value(out, "[atan] largest change of a hidden weight") > 0
    after = re.findall(r"^\[(.*?)\] loss before: ([0-9.]+)  after \d+ steps: ([0-9.]+)", out,
                       re.MULTILINE)
    losses = {label: (float(a), float(b)) for label, a, b in after}
    assert losses["atan"][1] < losses["atan"][0] and losses["atan"][1] < losses["true derivative"][1]
    # the 1/pi misprint, found numerically
    assert value(out, "ATan.grad vs numerical derivative max abs error") < 1e-7
    assert value(out, "printed eq. (5) vs numerical derivative max abs error") > 0.6
    ratio = re.search(r"numerical / printed ratio: min ([0-9.]+) max ([0-9.]+)", out)
    assert ratio and all(abs(float(r) - np.pi) < 1e-4 for r in ratio.groups())
    for err in re.findall(r"alpha=[0-9.]+: ATan.grad vs numerical derivative max abs error: (\S+)", out):
        assert float(err) < 1e-6
    assert_figures(figs, "02_surrogates", "02_dead_neurons", "02_atan_misprint")


# ----------------------------------------------------------------------------- 03

def test_03_bptt_by_hand(run):
    out, figs = run("03_bptt_by_hand")
    assert value(out, "hand eq. (7) vs literal_gradient contrib max abs error") < 1e-12
    assert value(out, "hand double sum vs engine abs error") < 1e-12
    assert value(out, "one neuron: literal vs engine max rel error") < 1e-10
    assert value(out, "4-neuron layer: literal vs engine max rel error") < 1e-10
    assert value(out, "finite differences vs engine max rel error") < 1e-6
    assert value(out, "reset attached: literal vs engine max rel error") < 1e-10
    assert re.search(r"finite differences on the spiking neuron: dW = 0\.0 ", out)
    assert_figures(figs, "03_contributions", "03_reset_detached_vs_attached")


# ----------------------------------------------------------------------------- 04

def test_04_loss_and_decoding(run):
    out, figs = run("04_loss_and_decoding")
    assert value(out, "loss engine vs direct formula abs error") < 1e-12
    assert value(out, "d_mem vs finite differences max abs error") < 1e-8
    assert value(out, "d_mem vs (p - y)/B max abs error") < 1e-12
    assert 50 < value(out, "untrained seed network loss on 128 MNIST training images"
                      if "MNIST training images" in out
                      else "untrained seed network loss on 128 synthetic images") < 75
    assert "rate code predicts class 2, latency code predicts class 0" in out
    assert value(out, "test accuracy, rate code") > 0.5
    assert value(out, "test accuracy, latency code") > 0.3
    assert_figures(figs, "04_output_membrane_and_spikes")


# ----------------------------------------------------------------------------- 05

def test_05_train_mnist(run, mnist_dir):
    out, figs = run("05_train_mnist", MINISNN_DATA=str(mnist_dir))
    before = value(out, "loss before one iteration")
    after = value(out, "loss after one iteration")
    assert 50 < before < 75, "an untrained network starts near 25 log 10"
    assert after < before, "one iteration lowers the loss on its batch"
    assert value(out, "test accuracy") > 0.6
    assert "Train Set Loss:" in out and "Test Set Accuracy:" in out   # the periodic report
    assert_figures(figs, "05_loss_curves", "05_raster_and_membrane")


def test_05_says_clearly_when_mnist_is_missing(tmp_path):
    env = {**os.environ, "MPLBACKEND": "Agg", "MINISNN_FAST": "1",
           "MINISNN_TUTORIAL_OUT": str(tmp_path / "out"), "MINISNN_DATA": str(tmp_path / "none")}
    proc = subprocess.run([sys.executable, str(TUTORIALS / "05_train_mnist.py")], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0
    assert "needs MNIST" in proc.stderr and "minisnn download" in proc.stderr
    assert "Traceback" not in proc.stderr


# ----------------------------------------------------------------------------- 06

def test_06_numpy_and_cupy(run):
    out, figs = run("06_numpy_and_cupy")
    assert "get_xp of a NumPy array: numpy" in out
    cupy = re.search(r"^cupy available: (yes|no)", out, re.MULTILINE)
    assert cupy, out
    if cupy.group(1) == "no":
        assert re.search(r"^asking for cupy raised RuntimeError: .*CuPy", out, re.MULTILINE)
    else:
        assert value(out, "numpy vs cupy gradient max rel error") < 1e-4
    assert value(out, "bench minisnn/numpy total ms per iteration") > 0   # the bench command ran
    assert (figs / "bench" / "bench.json").is_file()
    assert_figures(figs, "06_backend_timing")

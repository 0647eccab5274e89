"""The tutorials run end to end (fast mode) and print the numbers they promise.

Each tutorial in tutorials/ runs twice, in fast mode (MINISNN_FAST=1) with its figures going to
a temporary folder:
  * as a script, as a reader would run it (`python tutorials/NN_name.py`, MPLBACKEND=Agg);
  * as a notebook: converted by jupytext and executed cell by cell by nbclient in a real
    IPython kernel started in tutorials/, as Jupyter would run it. These need the `[notebook]`
    extra and skip, all with one reason, without it. A notebook must not show a stray value
    (an `Out[...]` of a cell whose last line returns something) nor write to stderr.
The tests then read the machine-parseable lines it printed (`label: number`) and check them
against bounds, and check that its figures were written. The same checks, both ways.

Tutorials 04 and 05 choose their data by minisnn's rule; here, with no $MINISNN_DATA, that is
the bundled MNIST sample (or the repository's data/mnist, where a developer downloaded it).
"""
import importlib.util
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

NOTEBOOK_PACKAGES = ("jupytext", "nbclient", "ipykernel")

_cache = {}


def tutorial_env(out, **env):
    """The environment a tutorial runs in: fast mode, figures into `out`, this checkout first
    on the path, and no data variable unless a test gives one."""
    full = {k: v for k, v in os.environ.items() if k != "MINISNN_DATA"}
    full.update({"MINISNN_FAST": "1", "MINISNN_TUTORIAL_OUT": str(out),
                 "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO),
                                                             os.environ.get("PYTHONPATH")]))})
    full.update(env)
    return full


def run_script(name, out):
    proc = subprocess.run([sys.executable, str(TUTORIALS / f"{name}.py")], cwd=REPO,
                          env=tutorial_env(out, MPLBACKEND="Agg"), capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, (f"{name} failed (exit {proc.returncode})\n--- stdout\n"
                                  f"{proc.stdout[-4000:]}\n--- stderr\n{proc.stderr[-4000:]}")
    return proc.stdout


def run_notebook(name, out):
    """Execute the tutorial as a notebook; return what its cells printed (stdout)."""
    import jupytext
    import nbclient
    nb = jupytext.read(TUTORIALS / f"{name}.py")
    env = tutorial_env(out)
    env.pop("MPLBACKEND", None)          # the kernel's inline backend, as in Jupyter
    client = nbclient.NotebookClient(nb, timeout=600, kernel_name="python3",
                                     resources={"metadata": {"path": str(TUTORIALS)}})
    try:
        client.execute(env=env)
    except nbclient.exceptions.CellExecutionError as e:
        pytest.fail(f"{name} failed as a notebook:\n{str(e)[-4000:]}")
    stdout, problems = [], []
    for i, cell in enumerate(c for c in nb.cells if c.cell_type == "code"):
        for o in cell.get("outputs", []):
            if o.output_type == "stream" and o.name == "stdout":
                stdout.append(o.text)
            elif o.output_type == "stream":
                problems.append(f"code cell {i} wrote to stderr: {o.text[:300]!r}")
            elif o.output_type == "execute_result":
                problems.append(f"code cell {i} shows a stray value: "
                                f"{o.get('data', {}).get('text/plain', '')[:200]!r}")
    assert not problems, "\n".join(problems)
    return "".join(stdout)


@pytest.fixture(scope="module", params=["script", "notebook"])
def run(request, tmp_path_factory):
    """run(name) -> (stdout, figure folder): run the tutorial once per module and mode."""
    mode = request.param
    if mode == "notebook":
        missing = [m for m in NOTEBOOK_PACKAGES if importlib.util.find_spec(m) is None]
        if missing:
            pytest.skip('running the tutorials as notebooks needs the [notebook] extra '
                        '(pip install -e ".[notebook]"): jupytext, nbclient, ipykernel')

    def _run(name):
        if (mode, name) not in _cache:
            out = tmp_path_factory.mktemp(f"{name}-{mode}")
            stdout = (run_script if mode == "script" else run_notebook)(name, out)
            _cache[mode, name] = (stdout, out)
        return _cache[mode, name]
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
    assert NAMES[:8] == ["01_lif_neuron", "02_surrogate_gradients", "03_bptt_by_hand",
                         "04_loss_and_decoding", "05_train_mnist", "06_numpy_and_cupy",
                         "07_spike_encoding", "08_neurons_with_state"]
    assert [n[:2] for n in NAMES] == [f"{i:02d}" for i in range(1, len(NAMES) + 1)]


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


def test_readme_lists_every_tutorial_and_generated_files_are_ignored():
    readme = (TUTORIALS / "README.md").read_text(encoding="utf-8")
    for name in NAMES:
        assert f"{name}.py" in readme
    ignored = (TUTORIALS / ".gitignore").read_text().split()
    assert "out/" in ignored and "*.ipynb" in ignored
    assert "jupytext --to notebook tutorials/0*.py" in readme   # the one documented command


def test_no_tutorial_names_the_developers_data_folder():
    for path in sorted(TUTORIALS.iterdir()):
        if path.suffix in (".py", ".md"):
            text = path.read_text(encoding="utf-8")
            assert "shared/data" not in text and "../shared" not in text and "mnist-5k" not in text, path


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
    assert value(out, "hand terms vs literal_gradient, reset attached, max abs error") < 1e-12
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
    assert_data_line(out)
    assert 50 < value(out, "untrained seed network loss on 128 MNIST training images") < 75
    assert "rate code predicts class 2, latency code predicts class 0" in out
    assert value(out, "test accuracy, rate code") > 0.5
    assert value(out, "test accuracy, latency code") > 0.3
    assert_figures(figs, "04_output_membrane_and_spikes")


# ----------------------------------------------------------------------------- 05

def assert_data_line(out):
    """The tutorial said which data it used; with no data/mnist here, the bundled sample."""
    lines = [line for line in out.splitlines() if line.startswith("Data: ")]
    assert len(lines) == 1, out
    if not all((REPO / "data" / "mnist" / f).is_file() for f in data_files()):
        assert lines[0].startswith("Data: the bundled MNIST sample"), lines[0]
        assert "python -m minisnn download" in lines[0]


def data_files():
    from minisnn.data import FILES
    return FILES


def test_05_train_mnist(run):
    out, figs = run("05_train_mnist")
    assert_data_line(out)
    before = value(out, "loss before one iteration")
    after = value(out, "loss after one iteration")
    assert 50 < before < 75, "an untrained network starts near 25 log 10"
    assert after < before, "one iteration lowers the loss on its batch"
    assert value(out, "test accuracy") > 0.6
    assert "Train Set Loss:" in out and "Test Set Accuracy:" in out   # the periodic report
    assert_figures(figs, "05_loss_curves", "05_raster_and_membrane")


@pytest.mark.parametrize("name", ["04_loss_and_decoding", "05_train_mnist"])
def test_a_data_folder_without_mnist_stops_the_tutorial_clearly(name, tmp_path):
    """An explicit $MINISNN_DATA is never silently replaced (not by the sample, not by random
    images): the tutorial stops, says why and how to go on, without a traceback."""
    env = tutorial_env(tmp_path / "out", MPLBACKEND="Agg", MINISNN_DATA=str(tmp_path / "none"))
    proc = subprocess.run([sys.executable, str(TUTORIALS / f"{name}.py")], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0
    assert "could not load its data" in proc.stderr and str(tmp_path / "none") in proc.stderr
    assert "unset MINISNN_DATA" in proc.stderr and "minisnn download" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert "synthetic" not in proc.stdout and "random images" not in proc.stdout


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

"""README.md runs as written: every Python snippet, the Quick start's first command (and its
sample output), and the gradient-checking example's printed numbers.

The snippets are found by parsing the file (every ```python block), so a new one is tested
without touching this file. They run in order, each in a fresh interpreter after the snippets
before it, as a reader who pastes them one after another would run them: a snippet may use what
an earlier one defined (the GPU snippet uses the `net` and `x` of "The engine in twelve lines"),
and the first one must stand on its own. Snippets that use CuPy are marked `gpu`.
"""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:e-?\d+)?")
FENCE = re.compile(r"^```(\w*)\n(.*?)^```\s*$", re.MULTILINE | re.DOTALL)


def blocks(text=None):
    """Every fenced block of the README: [(language, code, heading it sits under)]."""
    text = README.read_text(encoding="utf-8") if text is None else text
    found = []
    for m in FENCE.finditer(text):
        headings = re.findall(r"^#+ (.*)$", text[:m.start()], re.MULTILINE)
        found.append((m.group(1), m.group(2), headings[-1] if headings else ""))
    return found


PYTHON = [(code, heading) for lang, code, heading in blocks() if lang == "python"]


def python_env():
    env = {k: v for k, v in os.environ.items() if k != "MINISNN_DATA"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    env["MPLBACKEND"] = "Agg"
    return env


def test_the_parser_finds_every_block():
    text = README.read_text(encoding="utf-8")
    assert len(blocks()) == text.count("\n```") // 2          # every fence opens or closes one
    assert len(PYTHON) >= 3 and PYTHON[0][1] == "The engine in twelve lines"


@pytest.mark.parametrize("index", [
    pytest.param(i, id=f"{i}-{re.sub(r'[^a-z0-9]+', '-', h.lower()).strip('-')}",
                 marks=[pytest.mark.gpu] if "cupy" in code else [])
    for i, (code, h) in enumerate(PYTHON)])
def test_python_snippet_runs(index, tmp_path):
    earlier = [code for code, _ in PYTHON[:index] if "cupy" not in code]
    program = "\n".join([*earlier, PYTHON[index][0]])
    run = subprocess.run([sys.executable, "-c", program], cwd=tmp_path, env=python_env(),
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, f"snippet {index} ({PYTHON[index][1]}) failed:\n{run.stderr}"


def test_the_engine_snippet_defines_its_own_data():
    code = PYTHON[0][0]
    assert 'load_dataset("mnist-sample")' in code
    assert re.search(r"^x, y = ", code, re.MULTILINE)


# ----------------------------------------------------------------------------- Quick start

def quick_start():
    """(first command, the sample output shown for it) from the Quick start section."""
    section = README.read_text(encoding="utf-8").split("## Quick start", 1)[1].split("\n## ", 1)[0]
    bash = [code for lang, code, _ in blocks(section) if lang == "bash"][0]
    commands = [line for line in bash.splitlines() if line.strip() and not line.startswith("#")]
    shown = [code for lang, code, _ in blocks(section) if lang == "text"][0]
    return commands, shown


def test_quick_start_has_two_commands_then_download():
    commands, _ = quick_start()
    assert commands[0] == "pip install -e . && python -m minisnn train"
    assert commands[1] == "python -m minisnn train --download"
    assert commands[2].startswith('pip install -e ".[test') and "python -m pytest -q -ra" in commands[2]
    assert "--download" not in commands[0]


def accuracy(text):
    m = re.search(r"^Test Set Accuracy: ([0-9.]+)%$", text, re.MULTILINE)
    assert m, text
    return float(m.group(1))


def test_first_command_trains_offline_and_prints_what_the_readme_shows(tmp_path):
    """The first command after its `pip install` part, on a fresh folder with no data variable
    (so: the bundled sample), against the output shown in the README: the same lines, words and
    structure; the timings may differ; the accuracy within a point of the README's and >= 80%.
    (No network: nothing here downloads.)"""
    commands, shown = quick_start()
    install, command = (part.strip() for part in commands[0].split("&&"))
    assert install == "pip install -e ."
    argv = command.split()
    assert argv[:3] == ["python", "-m", "minisnn"]
    run = subprocess.run([sys.executable, *argv[1:]], cwd=tmp_path, env=python_env(),
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    got, want = run.stdout.strip().splitlines(), shown.strip().splitlines()
    assert len(got) == len(want), run.stdout
    for g, w in zip(got, want):
        assert NUMBER.sub("#", g) == NUMBER.sub("#", w), (g, w)
    assert accuracy(run.stdout) >= 80.0 and accuracy(shown) >= 80.0
    assert abs(accuracy(run.stdout) - accuracy(shown)) <= 1.0, (run.stdout, shown)
    assert (tmp_path / "runs" / "latest" / "model.npz").is_file()


def test_no_readme_text_names_the_developers_data_folder():
    text = README.read_text(encoding="utf-8")
    assert "../shared" not in text and "shared/data" not in text


# ----------------------------------------------------------------------------- gradient check

def example_and_output(heading):
    """The first ```python block under `heading` and the ```text block right after it."""
    section = README.read_text(encoding="utf-8").split(heading, 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    shown = section.split("```text\n", 1)[1].split("```", 1)[0]
    return code, shown


def test_gradient_check_example_matches_its_printed_output():
    code, shown = example_and_output("## Checking every gradient")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    got, want = run.stdout.strip().splitlines(), shown.strip().splitlines()
    assert len(got) == len(want), run.stdout
    for g, w in zip(got, want):
        assert NUMBER.sub("#", g) == NUMBER.sub("#", w), (g, w)        # same words
        for a, b in zip(NUMBER.findall(g), NUMBER.findall(w)):
            if abs(float(b)) >= 1e-6:                                    # same numbers
                assert float(a) == pytest.approx(float(b), rel=1e-3), (g, w)
    # The error figures themselves are rounding noise, whose last digits depend on the machine's
    # BLAS: they must stay within the bounds the README states.
    errors = [float(line.rsplit(" ", 1)[1]) for line in got if "max rel error" in line]
    assert len(errors) == 2 and errors[0] <= 1e-6 and errors[1] <= 1e-10

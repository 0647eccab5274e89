"""The README's gradient-checking example runs, and prints what the README says it prints."""
import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:e-?\d+)?")


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

"""Tutorial 10 (what BPTT must remember) runs end to end in fast mode and prints what it promises.

It runs as the other tutorials do (tests/test_tutorials.py: a subprocess with MINISNN_FAST=1,
figures to a temporary folder); the numbers it prints are checked against bounds that follow from
the network's sizes: the full records grow by the hidden layer's U and S per step, bits are 1/32
of float32, the checkpointed path's gradients equal the full path's, and its memory grows by a
small fraction of the full path's. Times are printed, never asserted (the machine may be busy).
"""
import re

from test_tutorials import TUTORIALS, assert_figures, run, value  # noqa: F401  (run: a fixture)
from test_tutorials import test_percent_cell_format as check_cells

NAME = "10_bptt_memory"
B, HIDDEN, MB = 32, 1000, 2 ** 20          # the tutorial's fast-mode batch and hidden layer


def test_10_is_a_percent_cell_notebook():
    check_cells(NAME)
    assert f"{NAME}.py" in (TUTORIALS / "README.md").read_text(encoding="utf-8")


def test_10_bptt_memory(run):
    out, figs = run(NAME)
    U_and_S = 2 * B * HIDDEN * 4 / MB
    assert abs(value(out, "U and S of the hidden layer, MB per step") - U_and_S) < 1e-3
    full = value(out, "full record MB per step")
    assert U_and_S <= full <= U_and_S * 1.05                 # plus the small output layer
    assert value(out, "full peak MB per step") >= 1.4 * U_and_S   # and ∂L/∂S while backward runs
    assert value(out, "packbits round trip mismatches") == 0
    assert abs(value(out, "bit-packed record MB per step") - (full - U_and_S / 2 * 31 / 32)) < 1e-3
    assert value(out, "checkpointed vs full max rel error (float64)") <= 1e-12
    assert value(out, "float32 spike mismatches") == 0
    assert value(out, "checkpointed peak MB per step") < full / 5
    assert value(out, "peak ratio full / checkpointed at T = 200") > 4
    assert value(out, "recompute time ratio") > 0
    best = value(out, "best k at T = 200")
    assert 2 <= best <= 32
    assert re.search(r"^net\.record\[1\]\.U -> AttributeError: .*recompute_every=15.*without "
                     r"recompute_every$", out, re.MULTILINE)
    assert_figures(figs, "10_memory_vs_T", "10_memory_vs_k")

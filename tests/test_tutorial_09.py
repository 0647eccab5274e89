"""Tutorial 09 (convolutions, pooling, skip connections) runs end to end in fast mode, as a
script and as a notebook, and prints the numbers it promises (tests/test_tutorials.py's
harness)."""
import subprocess
import sys

from test_tutorials import (REPO, TUTORIALS, assert_data_line, assert_figures, run,  # noqa: F401
                            tutorial_env, value)

NAME = "09_conv_and_skip"


def test_09_convolution_by_hand(run):
    out, _ = run(NAME)
    assert value(out, "conv forward vs loops max abs error") < 1e-12
    assert value(out, "dW vs loops max abs error") < 1e-12
    assert value(out, "dX vs loops max abs error") < 1e-12
    assert value(out, "dW vs finite differences max rel error") < 1e-6
    assert value(out, "dX vs finite differences max rel error") < 1e-6
    assert value(out, "conv as one matrix product vs the layer max abs error") < 1e-12


def test_09_pool_routing(run):
    out, figs = run(NAME)
    assert "gradient routed back:\n [[ 0. 10.  0. 20.]\n [ 0.  0.  0.  0.]\n [30.  0.  0.  0.]\n" \
           " [ 0.  0.  0. 40.]]" in out
    assert value(out, "bottom-left window (all zeros) sends its gradient to offset") == 0
    assert_figures(figs, "09_pool_routing")


def test_09_csnn_trains(run):
    out, figs = run(NAME)
    assert_data_line(out)
    assert value(out, "first conv computed for time steps") == 1
    assert value(out, "training iterations") == 15
    assert value(out, "csnn test accuracy") > 0.5      # 15 iterations: about 0.7
    assert_figures(figs, "09_csnn_loss")


def test_09_skip_connection_keeps_the_gradient(run):
    out, figs = run(NAME)
    assert value(out, "plain last/first block gradient ratio") > 1e3     # vanishes
    assert value(out, "residual last/first block gradient ratio") < 10    # stays
    assert_figures(figs, "09_skip_gradients")


def test_09_stops_clearly_when_its_data_folder_has_no_mnist(tmp_path):
    env = tutorial_env(tmp_path / "out", MPLBACKEND="Agg", MINISNN_DATA=str(tmp_path / "none"))
    proc = subprocess.run([sys.executable, str(TUTORIALS / f"{NAME}.py")], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0
    assert "could not load its data" in proc.stderr and str(tmp_path / "none") in proc.stderr
    assert "unset MINISNN_DATA" in proc.stderr and "Traceback" not in proc.stderr
    assert "random images" not in proc.stdout

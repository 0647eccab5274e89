"""Tutorial 09 (convolutions, pooling, skip connections) runs end to end in fast mode and prints
the numbers it promises (the same harness as tests/test_tutorials.py)."""
import os
import subprocess
import sys

import pytest

from test_tutorials import REPO, TUTORIALS, assert_figures, run, value  # noqa: F401 (fixture)

NAME = "09_conv_and_skip"


@pytest.fixture
def tutorial(run, mnist_dir):
    return run(NAME, MINISNN_DATA=str(mnist_dir))       # once per module (run caches it)


def test_09_convolution_by_hand(tutorial):
    out, _ = tutorial
    assert value(out, "conv forward vs loops max abs error") < 1e-12
    assert value(out, "dW vs loops max abs error") < 1e-12
    assert value(out, "dX vs loops max abs error") < 1e-12
    assert value(out, "dW vs finite differences max rel error") < 1e-6
    assert value(out, "dX vs finite differences max rel error") < 1e-6
    assert value(out, "conv as one matrix product vs the layer max abs error") < 1e-12


def test_09_pool_routing(tutorial):
    out, figs = tutorial
    assert "gradient routed back:\n [[ 0. 10.  0. 20.]\n [ 0.  0.  0.  0.]\n [30.  0.  0.  0.]\n" \
           " [ 0.  0.  0. 40.]]" in out
    assert value(out, "bottom-left window (all zeros) sends its gradient to offset") == 0
    assert_figures(figs, "09_pool_routing")


def test_09_csnn_trains(tutorial):
    out, figs = tutorial
    assert value(out, "first conv computed for time steps") == 1
    assert value(out, "training iterations") == 25
    assert value(out, "csnn test accuracy") > 0.6
    assert_figures(figs, "09_csnn_loss")


def test_09_skip_connection_keeps_the_gradient(tutorial):
    out, figs = tutorial
    assert value(out, "plain last/first block gradient ratio") > 1e3     # vanishes
    assert value(out, "residual last/first block gradient ratio") < 10    # stays
    assert_figures(figs, "09_skip_gradients")


def test_09_says_clearly_when_mnist_is_missing(tmp_path):
    env = {**os.environ, "MPLBACKEND": "Agg", "MINISNN_FAST": "1",
           "MINISNN_TUTORIAL_OUT": str(tmp_path / "out"), "MINISNN_DATA": str(tmp_path / "none")}
    proc = subprocess.run([sys.executable, str(TUTORIALS / f"{NAME}.py")], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0
    assert "needs MNIST" in proc.stderr and "minisnn download" in proc.stderr
    assert "Traceback" not in proc.stderr

"""Small helpers shared by the tutorials: fast mode, the output folder, saving figures, data.

Not a tutorial itself. Every tutorial imports it first (`from tutorial_utils import ...`), which
works when the tutorial runs as a script (`python tutorials/01_lif_neuron.py`) and when it is
opened as a notebook from this folder (Jupyter and VS Code start notebooks in the file's folder).

    MINISNN_FAST=1            run small versions that finish in well under a minute on a laptop CPU
    MINISNN_TUTORIAL_OUT=DIR  where figures go (default: tutorials/out/)
    MINISNN_DATA=DIR          an MNIST-style folder for tutorials 04 and 05 (default: the repository's
                              data/mnist if it holds the four files, else the MNIST sample bundled
                              with minisnn: the same rule as `python -m minisnn train`)
"""
import os
from pathlib import Path

import matplotlib

HERE = Path(__file__).resolve().parent


def in_ipython():
    """True inside IPython or Jupyter, where figures should also be shown inline."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    return get_ipython() is not None


INTERACTIVE = in_ipython()
if not INTERACTIVE:
    matplotlib.use("Agg")  # headless: only save the figures, never open a window

import matplotlib.pyplot as plt  # noqa: E402  (after choosing the backend)

FAST = os.environ.get("MINISNN_FAST", "").strip() not in ("", "0")
OUT = Path(os.environ.get("MINISNN_TUTORIAL_OUT") or HERE / "out")


def savefig(fig, name):
    """Save `fig` as OUT/name.png; show it inline in a notebook, close it otherwise. Returns
    nothing, so that a cell ending with it shows no stray value."""
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"{name}.png"
    fig.savefig(path, dpi=110, bbox_inches="tight")
    print(f"saved figure: {path}")
    if INTERACTIVE:
        plt.show()
    else:
        plt.close(fig)


def mnist_source():
    """Where the MNIST tutorials read their data: minisnn's one data rule
    (`minisnn.data.resolve_data`), with data/mnist looked for in the repository: $MINISNN_DATA
    if set, else data/mnist if it holds the four files, else the MNIST sample bundled with
    minisnn. Prints one line saying which; returns what `load_dataset` and `load_data` take."""
    from minisnn.data import resolve_data
    choice = resolve_data(root=HERE.parent)
    print(choice.line())
    return choice.source


def data_error_message(error):
    """What to tell a reader whose explicitly chosen data could not be loaded (words that make
    sense in a notebook as in a shell)."""
    return (f"This tutorial could not load its data: {error}\n"
            f"Either unset MINISNN_DATA, and the tutorial uses the MNIST sample bundled with "
            f"minisnn, or point it at a folder that holds the four MNIST files "
            f"(`python -m minisnn download --data DIR` fetches full MNIST).")


def synthetic_patterns(n, num_inputs=100, num_classes=10, noise=0.15, seed=0):
    """A tiny stand-in for MNIST that needs no download: each class is a fixed random pattern of
    pixel intensities in [0, 1] (the same patterns for every call); an example is its class's
    pattern plus noise, clipped to [0, 1]. Different seeds give different examples (use one seed
    for training, another for testing). Returns x (n, num_inputs) float32 and y (n,) int64."""
    import numpy as np
    prototypes = np.random.default_rng(12345).random((num_classes, num_inputs)) ** 2
    rng = np.random.default_rng(seed)
    y = rng.integers(0, num_classes, n)
    x = np.clip(prototypes[y] + noise * rng.standard_normal((n, num_inputs)), 0, 1)
    return x.astype("float32"), y.astype("int64")

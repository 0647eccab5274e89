"""End-to-end accuracy of the tutorial's network on real data (CPU, about half a minute in all).

The MNIST run uses the sample bundled with minisnn, loaded by name, so it runs on every machine
(CI included); the Fashion-MNIST run needs the developers' data folder ($MINISNN_SHARED_DATA)
and is skipped, with the reason, without it. Marked `slow` for information only: these run in
CI with everything else. They go through
minisnn.train.train in-process and report the accuracy and the time both on stdout and in the
assertion message, so a failure shows the figures without `-s`.
"""
import time

import pytest

from minisnn import train as T


def run_tutorial(folder, **settings):
    cfg = T.TrainConfig(**settings)              # everything else: the tutorial's defaults
    data = T.load_data(folder, cfg)
    t0 = time.perf_counter()
    result = T.train(cfg, data, log=None)
    wall = time.perf_counter() - t0
    figures = (f"{data.name}: {result.correct}/{result.total} = "
               f"{100 * result.test_accuracy:.2f}% after {cfg.epochs} epoch(s), "
               f"{result.iterations} iterations; {wall:.1f} s in all, "
               f"{1000 * result.sec_per_iter:.1f} ms/iteration, "
               f"test-set evaluation {result.eval_seconds:.1f} s")
    print(figures)
    return result, figures


@pytest.mark.slow
def test_mnist_sample_five_epochs():
    """The bundled sample: 5,000 training images (sorted by label: shuffling matters), the
    official 10,000 test images; 5 epochs = 195 iterations."""
    result, figures = run_tutorial("mnist-sample", epochs=5)
    assert result.total == 10000 and result.iterations == 5 * 39, figures
    assert result.test_accuracy >= 0.85, figures


@pytest.mark.slow
def test_fashion_mnist_one_epoch(fashion_dir):
    """Full Fashion-MNIST, 1 epoch = 468 iterations."""
    result, figures = run_tutorial(fashion_dir, epochs=1)
    assert result.total == 10000 and result.iterations == 468, figures
    assert result.test_accuracy >= 0.76, figures

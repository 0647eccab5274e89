"""Let OpenBLAS's threads sleep soon after each matrix product (the `minisnn` command only).

After a product, OpenBLAS keeps its worker threads spinning on their cores for about 2^28 CPU
cycles (a tenth of a second), waiting for the next one. In a training iteration the next thing
is usually not a product but a LIF kernel or an element-wise pass, whose own threads then share
the cores with the spinning ones: on a 2-core machine the seed iteration ran about 1.2× slower so
(docs/benchmarks.md). OPENBLAS_THREAD_TIMEOUT=4, the smallest value OpenBLAS takes, lets them
sleep after 2^4 cycles instead; waking them for the next product costs microseconds.

OpenBLAS reads the variable once, when NumPy loads it, so it must be set before NumPy is
imported: the `minisnn` command does it first thing (`minisnn.__main__`), and its benchmark
workers inherit it. A value the user set is kept. The engine never calls this; a script that
imports NumPy itself can set the variable in its environment.
"""
import os
import sys

VARIABLE, VALUE = "OPENBLAS_THREAD_TIMEOUT", "4"


def settle_blas_threads():
    """Set OPENBLAS_THREAD_TIMEOUT unless it is set. Returns whether it can still take effect
    (NumPy not yet imported by this process)."""
    os.environ.setdefault(VARIABLE, VALUE)
    return "numpy" not in sys.modules

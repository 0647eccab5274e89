"""`minisnn bench`: how fast minisnn trains, per backend, and beside snnTorch when it is installed.

    python -m minisnn bench                  # seed network + sweep, every available backend
    python -m minisnn bench --quick          # the seed network only (under a minute)
    python -m minisnn bench --train          # + a side-by-side training run (epoch time, peak RSS)
    python -m minisnn bench --memory         # + peak memory of every sweep point
    python -m minisnn bench --arch csnn --quick   # snnTorch tutorial 6's CSNN (batch, steps only)

What is timed: one training iteration of the tutorial's network (784-H-10, two Leaky layers,
β = 0.95, atan surrogate, membrane cross-entropy summed over the steps, Adam 5e-4), split into
  forward   the network over all steps, and the loss (with its gradient ∂L/∂U, for minisnn)
  backward  zero_grad and backprop through time (for snnTorch: loss.backward())
  step      one Adam step
--arch csnn times snnTorch tutorial 6's network instead (12C5-MP2-64C5-MP2-1024FC10, three
Leaky layers, β = 0.5, fast sigmoid of slope 25, ce_rate loss on the output spikes, Adam 1e-2;
snnTorch: the tutorial's nn.Sequential called at every step, SF.ce_rate_loss). Its sizes are
fixed: the seed point and the sweep have a batch and a number of steps, and --hidden is refused.
Each figure is the median over `repeats` iterations after `warmup` iterations. On the GPU every
phase is timed with CUDA events and one synchronisation at the end of each iteration. Every
framework and backend runs in a fresh subprocess of its own; peak memory is that process's peak
resident set size (getrusage ru_maxrss), and on the GPU the peak of the framework's memory pool.
Results go to --out (default runs/bench): bench.json and bench.png, each written atomically.

The pieces, each a file of this package:
  plan.py           the seed point, the sweep, repeats per point, the architectures (--arch)
  mlp.py, csnn.py   the architectures (the seed's and tutorial 6's), built for minisnn and for
                    snnTorch from the same initial weights, with each framework's loss
  frameworks.py     the frameworks by name: ours.py (minisnn) and snntorch_peer.py (the peer)
  inputs.py, timing.py, memory.py   images, clocks and timing loops, peak memory
  worker.py         one fresh process per framework and backend
  compare.py, report.py, plot.py    ratios (time, peak memory), the text report, bench.png
  command.py        the options and the run: `benchmark(argv)` is what the command does
  kernels.py        the fused GPU kernels alone: time and memory bandwidth per hidden size
  gpu_summary.py    the GPU section of docs/benchmarks.md from one benchmarks/gpu_check.sh run
"""
from .command import available_backends, benchmark, build_parser, main, run
from .compare import compare, compare_train
from .plan import SEED_CONFIG, SWEEP, config_key, plan_configs, repeats_for
from .report import format_report
from .worker import spawn_worker

__all__ = ["available_backends", "benchmark", "build_parser", "compare", "compare_train",
           "config_key", "format_report", "main", "plan_configs", "repeats_for", "run",
           "spawn_worker", "SEED_CONFIG", "SWEEP"]

"""`minisnn bench`: how fast minisnn trains, per backend, and beside snnTorch when it is installed.

    python -m minisnn bench                  # seed network + sweep, every available backend
    python -m minisnn bench --quick          # the seed network only (under a minute)
    python -m minisnn bench --train          # + a side-by-side training run (epoch time, peak RSS)
    python -m minisnn bench --memory         # + peak memory of every sweep point

What is timed: one training iteration of the tutorial's network (784-H-10, two Leaky layers,
β = 0.95, atan surrogate, membrane cross-entropy summed over the steps, Adam 5e-4), split into
  forward   the network over all steps, and the loss (with its gradient ∂L/∂U, for minisnn)
  backward  zero_grad and backprop through time (for snnTorch: loss.backward())
  step      one Adam step
Each figure is the median over `repeats` iterations after `warmup` iterations. On the GPU every
phase is timed with CUDA events and one synchronisation at the end of each iteration.

Every framework and backend runs in a fresh subprocess of its own (`--worker`), with the same
thread count for NumPy's BLAS and for torch (default: the machine's cores), so that their thread
pools and their memory do not mix. Peak memory is that process's peak resident set size
(getrusage ru_maxrss); on the GPU, the peak of the framework's memory pool.

The snnTorch peer is the reference tutorial's network written out below (`_snntorch_net`):
snn.Leaky(beta=0.95) with its default atan surrogate, nn.Linear, fc1 applied at every step as
the tutorial does, nn.CrossEntropyLoss on the membrane summed over the steps, torch.optim.Adam.
`--peer snntorch-hoisted` adds the same network with fc1(x) computed once before the time loop
(the input is static), which is what minisnn's Linear layer does: the fairer yardstick for the
engine itself, though not the tutorial's code.
torch and snntorch are optional (`pip install "minisnn[bench]"`), never engine dependencies.

Results go to --out (default runs/bench): bench.json and bench.png, each written atomically.
"""
import argparse
import datetime
import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

from .atomic import atomic_open, atomic_write
from .malloc import keep_freed_memory

SEED_CONFIG = {"batch": 128, "hidden": 1000, "steps": 25}
SWEEP = {"batch": [32, 64, 128, 256, 512, 1024],
         "hidden": [100, 300, 1000, 3000, 10000],
         "steps": [10, 25, 50, 100]}
NUM_INPUTS, NUM_OUTPUTS, BETA, LR, BETAS = 784, 10, 0.95, 5e-4, (0.9, 0.999)
PEER_DEVICE = {"numpy": "cpu", "cupy": "cuda"}
PEERS = ("snntorch", "snntorch-hoisted")
FRAMEWORK_LABEL = {"minisnn": "minisnn", "snntorch": "snnTorch",
                   "snntorch-hoisted": "snnTorch-hoisted"}
RESULT_MARK = "MINISNN-BENCH-RESULT "
WORKER_TIMEOUT_S = 3600
CONTENTION_WARN_PCT = 5
EVAL_BATCH = 128    # test-set batch of the --train runs (minisnn train's default)


# ----------------------------------------------------------------------------- planning

def repeats_for(config, repeats, warmup, seed=SEED_CONFIG):
    """Fewer timed and warm-up iterations for configurations that cost more than the seed's
    (cost ~ batch·hidden·steps), so that the sweep stays affordable on a small CPU."""
    cost = (config["batch"] * config["hidden"] * config["steps"]) / \
           (seed["batch"] * seed["hidden"] * seed["steps"])
    if cost <= 1:
        return repeats, warmup
    return max(min(3, repeats), round(repeats / cost)), min(warmup, 1 if cost >= 4 else warmup)


def plan_configs(seed, sweep, quick):
    """The seed configuration first, then each sweep axis varied alone from it (no repeats)."""
    configs = [dict(seed, axes=["seed"])]
    if not quick:
        for axis, values in sweep.items():
            for v in values:
                c = dict(seed, **{axis: v})
                same = next((d for d in configs if all(d[k] == c[k] for k in seed)), None)
                if same is None:
                    configs.append(dict(c, axes=[axis]))
                else:
                    same["axes"].append(axis)
    return configs


# ----------------------------------------------------------------------------- timing

class WallClock:
    """Host timing: perf_counter marks; nothing to synchronise on the CPU."""

    def mark(self):
        return time.perf_counter()

    def elapsed_ms(self, marks):
        return [(b - a) * 1e3 for a, b in zip(marks, marks[1:])]

    def sync(self):
        pass


class CudaClock:
    """GPU timing with CUDA events recorded on the current stream between the phases; one
    synchronisation on the last event per iteration. `event` makes a timing-enabled event,
    `elapsed(a, b)` returns milliseconds, `sync()` waits for the device."""

    def __init__(self, event, elapsed, sync):
        self._event, self._elapsed, self.sync = event, elapsed, sync

    def mark(self):
        e = self._event()
        e.record()
        return e

    def elapsed_ms(self, marks):
        marks[-1].synchronize()
        return [self._elapsed(a, b) for a, b in zip(marks, marks[1:])]


def cupy_clock():
    import cupy
    return CudaClock(cupy.cuda.Event, cupy.cuda.get_elapsed_time,
                     lambda: cupy.cuda.Device().synchronize())


def torch_cuda_clock():
    import torch
    return CudaClock(lambda: torch.cuda.Event(enable_timing=True),
                     lambda a, b: a.elapsed_time(b), torch.cuda.synchronize)


def time_phases(phases, clock, warmup, repeats):
    """Run `phases` (forward, backward, step: callables) warmup + repeats times; return the
    median milliseconds of each phase and of the whole iteration over the timed repeats."""
    for _ in range(warmup):
        for phase in phases:
            phase()
    clock.sync()
    rows = []
    for _ in range(repeats):
        marks = [clock.mark()]
        for phase in phases:
            phase()
            marks.append(clock.mark())
        rows.append(clock.elapsed_ms(marks))
    names = ("forward_ms", "backward_ms", "step_ms")
    out = {n: statistics.median(r[i] for r in rows) for i, n in enumerate(names)}
    out["total_ms"] = statistics.median(sum(r) for r in rows)
    out["repeats"], out["warmup"] = repeats, warmup
    return out


# ----------------------------------------------------------------------------- data

def find_data(explicit=None):
    """The data folder to use: --data, else $MINISNN_SHARED_DATA/mnist-5k, else minisnn's default
    data folder ($MINISNN_DATA or data/mnist); None (random images) when none holds the files."""
    from . import data as data_mod
    if explicit:
        return None if explicit == "random" else str(explicit)
    candidates = []
    if os.environ.get("MINISNN_SHARED_DATA"):
        candidates.append(Path(os.environ["MINISNN_SHARED_DATA"]) / "mnist-5k")
    candidates.append(data_mod.default_data_dir())
    for folder in candidates:
        if all((folder / name).is_file() for name in data_mod.FILES):
            return str(folder)
    return None


def load_arrays(folder, seed=0, random_size=(5000, 1000)):
    """Train and test images (N, 784) as uint8 pixels 0..255 and int64 labels, as NumPy arrays:
    the IDX files in `folder`, or uniform random pixels with random labels when it is None
    (timing barely depends on the pixels). Both frameworks hold the pixels so, as `minisnn
    train` and torchvision's MNIST do, and scale each batch to float32 in [0, 1] as it is used."""
    import numpy as np
    if folder is not None:
        from .data import load_dataset
        d = load_dataset(folder, dtype="uint8")
        return d.train_x, d.train_y, d.test_x, d.test_y, d.name
    rng = np.random.default_rng(seed)
    arrays = []
    for n in random_size:
        arrays += [rng.integers(0, 256, (n, NUM_INPUTS), dtype=np.uint8),
                   rng.integers(0, NUM_OUTPUTS, n).astype(np.int64)]
    return (*arrays, "random")


def timing_batches(train_x, train_y, batch, count=4):
    """A few (x, y) batches for timing, x float32 in [0, 1]: consecutive rows, repeated when the
    set is small."""
    import numpy as np
    from .data import pixels_to_float
    reps = -(-batch * count // len(train_x))
    x = np.concatenate([train_x] * reps) if reps > 1 else train_x
    y = np.concatenate([train_y] * reps) if reps > 1 else train_y
    return [(pixels_to_float(x[i * batch:(i + 1) * batch], "float32"), y[i * batch:(i + 1) * batch])
            for i in range(count)]


# ----------------------------------------------------------------------------- minisnn side

def _minisnn_setup(config, backend, seed):
    from . import train as T
    cfg = T.TrainConfig(hidden=config["hidden"], steps=config["steps"],
                        batch_size=config["batch"], seed=seed, backend=backend,
                        lr=LR, betas=BETAS, beta=BETA)
    net = T.build_net(cfg)
    return cfg, net, T.build_optimizer(net, cfg)


def minisnn_phases(net, opt, batches, steps):
    """forward (+ loss), backward, step of one minisnn training iteration, cycling `batches`."""
    from .loss import ce_membrane_loss
    state = {"i": 0}

    def forward():
        x, y = batches[state["i"] % len(batches)]
        state["i"] += 1
        _, mem_rec = net(x, steps)
        state["loss"], state["d_mem"] = ce_membrane_loss(mem_rec, y)

    def backward():
        opt.zero_grad()
        net.backward(d_mem=state["d_mem"])

    return forward, backward, opt.step


def _minisnn_worker_setup(backend):
    """How to move arrays onto the backend, and the clock that times it."""
    if backend == "cupy":
        import cupy
        return cupy.asarray, cupy_clock()
    import numpy as np
    return np.asarray, WallClock()


def minisnn_timing(spec):
    move, clock = _minisnn_worker_setup(spec["backend"])
    train_x, train_y, *_ = load_arrays(spec["data"], spec["seed"])
    base = baseline_memory()
    results = []
    for config in spec["configs"]:
        _, net, opt = _minisnn_setup(config, spec["backend"], spec["seed"])
        batches = [(move(x), move(y)) for x, y in timing_batches(train_x, train_y, config["batch"])]
        row = time_phases(minisnn_phases(net, opt, batches, config["steps"]), clock,
                          config["warmup"], config["repeats"])
        results.append(dict(config, **row, **base, **peak_memory(spec["backend"], "minisnn")))
        del net, opt, batches
    return results


def minisnn_train(spec):
    """One training run as the tutorial's loop does it: shuffled batches (drop_last), every
    iteration timed by phase, then the rate-decoded accuracy on the whole test set."""
    from . import data as data_mod, train as T
    move, clock = _minisnn_worker_setup(spec["backend"])
    train_x, train_y, test_x, test_y, name = load_arrays(spec["data"], spec["seed"])
    train_x, train_y, test_x, test_y = map(move, (train_x, train_y, test_x, test_y))
    base = baseline_memory()
    cfg, net, opt = _minisnn_setup(spec["config"], spec["backend"], spec["seed"])
    batches = lambda epoch: data_mod.iterate_batches(train_x, train_y, cfg.batch_size,
                                                     seed=spec["seed"], epoch=epoch,
                                                     dtype=cfg.dtype)
    run = training_loop(lambda b: minisnn_phases(net, opt, [b], cfg.steps), batches, clock,
                        spec["epochs"], spec["max_iters"], spec["warmup"])
    trained = peak_memory(spec["backend"], "minisnn")
    correct, total = T.evaluate(net, test_x, test_y, cfg.steps, batch_size=EVAL_BATCH)
    return dict(run, data=name, test_accuracy=correct / total, **base, **trained,
                **with_eval(peak_memory(spec["backend"], "minisnn")))


def training_loop(phases_for, batches, clock, epochs, max_iters, warmup):
    """Time every iteration of `epochs` passes (phases_for(batch) -> the three phases); the
    per-iteration figures are medians over the iterations after the first `warmup`."""
    iters, epoch_s = [], []
    for epoch in range(epochs):
        start = time.perf_counter()
        for batch in batches(epoch):
            if max_iters is not None and len(iters) >= max_iters:
                break
            marks = [clock.mark()]
            for phase in phases_for(batch):
                phase()
                marks.append(clock.mark())
            iters.append(clock.elapsed_ms(marks))
        clock.sync()
        epoch_s.append(time.perf_counter() - start)
    timed = iters[warmup:] or iters
    out = {n: statistics.median(r[i] for r in timed)
           for i, n in enumerate(("forward_ms", "backward_ms", "step_ms"))}
    out.update(total_ms=statistics.median(sum(r) for r in timed), iterations=len(iters),
               warmup=len(iters) - len(timed), epoch_s=epoch_s)
    return out


# ----------------------------------------------------------------------------- snnTorch peer

def _snntorch_net(hidden, steps, beta=BETA, hoist_fc1=False):
    """The reference tutorial's network, as its training section writes it; with hoist_fc1,
    the input current fc1(x) of the static input is computed once instead of at every step."""
    import snntorch as snn
    from torch import nn
    import torch

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1 = nn.Linear(NUM_INPUTS, hidden)
            self.lif1 = snn.Leaky(beta=beta)
            self.fc2 = nn.Linear(hidden, NUM_OUTPUTS)
            self.lif2 = snn.Leaky(beta=beta)

        def forward(self, x):
            mem1 = self.lif1.init_leaky()
            mem2 = self.lif2.init_leaky()
            spk2_rec, mem2_rec = [], []
            cur1 = self.fc1(x) if hoist_fc1 else None
            for _ in range(steps):
                if not hoist_fc1:
                    cur1 = self.fc1(x)
                spk1, mem1 = self.lif1(cur1, mem1)
                cur2 = self.fc2(spk1)
                spk2, mem2 = self.lif2(cur2, mem2)
                spk2_rec.append(spk2)
                mem2_rec.append(mem2)
            return torch.stack(spk2_rec, dim=0), torch.stack(mem2_rec, dim=0)

    return Net()


def _snntorch_setup(config, device, seed, threads, hoist_fc1):
    """The peer network with minisnn's initial weights for the same seed (so both start from
    the same point), its Adam and its loss."""
    import torch
    from torch import nn
    from . import train as T
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    net = _snntorch_net(config["hidden"], config["steps"], hoist_fc1=hoist_fc1)
    ref = T.build_net(T.TrainConfig(hidden=config["hidden"], seed=seed))
    with torch.no_grad():
        for fc, lin in ((net.fc1, ref[0]), (net.fc2, ref[2])):
            fc.weight.copy_(torch.from_numpy(lin.W))
            fc.bias.copy_(torch.from_numpy(lin.b))
    net = net.to(device)
    opt = torch.optim.Adam(net.parameters(), lr=LR, betas=BETAS)
    return net, opt, nn.CrossEntropyLoss()


def snntorch_phases(net, opt, loss_fn, batches, steps, device):
    """forward (+ loss), backward, step of one iteration of the tutorial's training loop."""
    import torch
    state = {"i": 0}

    def forward():
        x, y = batches[state["i"] % len(batches)]
        state["i"] += 1
        _, mem_rec = net(x)
        loss_val = torch.zeros((1), dtype=torch.float32, device=device)
        for step in range(steps):
            loss_val += loss_fn(mem_rec[step], y)
        state["loss"] = loss_val

    def backward():
        opt.zero_grad()
        state["loss"].backward()

    return forward, backward, opt.step


def _snntorch_worker_setup(backend):
    import snntorch  # noqa: F401  (imported here so that the baseline memory includes it)
    import torch
    device = PEER_DEVICE[backend]
    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("torch has no usable CUDA device (a CPU-only torch build?)")
    clock = torch_cuda_clock() if device == "cuda" else WallClock()
    return torch, device, clock


def snntorch_timing(spec):
    torch, device, clock = _snntorch_worker_setup(spec["backend"])
    train_x, train_y, *_ = load_arrays(spec["data"], spec["seed"])
    base = baseline_memory()
    results = []
    for config in spec["configs"]:
        net, opt, loss_fn = _snntorch_setup(config, device, spec["seed"], spec["threads"],
                                            spec["framework"] == "snntorch-hoisted")
        batches = [(torch.from_numpy(x).to(device), torch.from_numpy(y).to(device))
                   for x, y in timing_batches(train_x, train_y, config["batch"])]
        row = time_phases(snntorch_phases(net, opt, loss_fn, batches, config["steps"], device),
                          clock, config["warmup"], config["repeats"])
        results.append(dict(config, **row, **base, **peak_memory(spec["backend"], "snntorch")))
        del net, opt, batches
    return results


def snntorch_train(spec):
    from . import data as data_mod
    torch, device, clock = _snntorch_worker_setup(spec["backend"])
    train_x, train_y, test_x, test_y, name = load_arrays(spec["data"], spec["seed"])
    config = spec["config"]
    base = baseline_memory()
    net, opt, loss_fn = _snntorch_setup(config, device, spec["seed"], spec["threads"],
                                        spec["framework"] == "snntorch-hoisted")
    tx, ty = torch.from_numpy(train_x).to(device), torch.from_numpy(train_y).to(device)
    batches = lambda epoch: ((xb.float().div_(255), yb) for xb, yb in data_mod.iterate_batches(
        tx, ty, config["batch"], seed=spec["seed"], epoch=epoch))
    run = training_loop(lambda b: snntorch_phases(net, opt, loss_fn, [b], config["steps"], device),
                        batches, clock, spec["epochs"], spec["max_iters"], spec["warmup"])
    trained = peak_memory(spec["backend"], "snntorch")
    correct = 0
    with torch.no_grad():
        for i in range(0, len(test_x), EVAL_BATCH):
            xb = data_mod.pixels_to_float(test_x[i:i + EVAL_BATCH], "float32")
            spk_rec, _ = net(torch.from_numpy(xb).to(device))
            pred = spk_rec.sum(dim=0).argmax(dim=1).cpu()
            correct += int((pred == torch.from_numpy(test_y[i:i + EVAL_BATCH])).sum())
    return dict(run, data=name, test_accuracy=correct / len(test_y), **base, **trained,
                **with_eval(peak_memory(spec["backend"], "snntorch")))


# ----------------------------------------------------------------------------- worker process

def _max_rss_mb():
    """This process's peak resident set size in MB: getrusage on Unix (KB on Linux, bytes on
    macOS), psutil's peak working set on Windows; None where neither is available."""
    try:
        import resource
    except ImportError:
        try:
            import psutil
            return psutil.Process().memory_info().peak_wset / 2 ** 20
        except Exception:
            return None
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (1024 * 1024 if sys.platform == "darwin" else 1024)


def with_eval(peaks):
    """The peaks again, measured after the test-set evaluation, under names of their own."""
    return {k.replace("peak_", "peak_with_eval_"): v for k, v in peaks.items()}


def baseline_memory():
    """The process's peak RSS once its framework is imported and the data loaded, before any
    network exists: what the process costs before training starts."""
    return {"base_rss_mb": _max_rss_mb()}


def peak_memory(backend, framework):
    """This process's peak resident set size so far (MB), and on the GPU the peak of the
    framework's memory pool (MB): CuPy's pool never gives blocks back by itself, so its total is
    its peak; torch reports max_memory_reserved."""
    out = {"peak_rss_mb": _max_rss_mb()}
    if backend == "cupy":
        if framework == "minisnn":
            import cupy
            out["peak_device_mb"] = cupy.get_default_memory_pool().total_bytes() / 2 ** 20
        else:
            import torch
            out["peak_device_mb"] = torch.cuda.max_memory_reserved() / 2 ** 20
    return out


def versions(framework, backend):
    import numpy as np
    from . import __version__
    v = {"python": platform.python_version(), "numpy": np.__version__, "minisnn": __version__}
    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        v["numpy_blas"] = f"{blas.get('name')} {blas.get('version')}"
    except Exception:  # older NumPy: no dict form
        pass
    if framework in PEERS:
        import snntorch
        import torch
        v.update(torch=torch.__version__, snntorch=snntorch.__version__)
        if backend == "cupy":
            v["torch_cuda"] = torch.version.cuda
    elif backend == "cupy":
        import cupy
        v["cupy"] = cupy.__version__
    return v


def thread_info(framework):
    info = {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                                           "MKL_NUM_THREADS")}
    try:
        from threadpoolctl import threadpool_info
        info["blas_threads"] = max(p["num_threads"] for p in threadpool_info()
                                   if p.get("user_api") == "blas")
    except Exception:  # threadpoolctl is optional; the environment variables above then rule
        pass
    if framework in PEERS:
        import torch
        info["torch_threads"] = torch.get_num_threads()
    return info


WORKERS = {("minisnn", "timing"): minisnn_timing, ("minisnn", "train"): minisnn_train,
           **{(peer, "timing"): snntorch_timing for peer in PEERS},
           **{(peer, "train"): snntorch_train for peer in PEERS}}


def run_worker(spec):
    """The body of a `--worker` process: run the spec, return a JSON-able dict."""
    result = WORKERS[spec["framework"], spec["mode"]](spec)
    return {"framework": spec["framework"], "backend": spec["backend"], "mode": spec["mode"],
            "device": describe_device(spec["backend"]), "versions": versions(spec["framework"],
            spec["backend"]), "threads": thread_info(spec["framework"]),
            ("results" if spec["mode"] == "timing" else "run"): result}


def describe_device(backend):
    if backend == "cupy":
        import cupy
        props = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.Device().id)
        name = props["name"]
        return name.decode() if isinstance(name, bytes) else str(name)
    return cpu_model()


def cpu_model():
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _busy_jiffies():
    """CPU time (in clock ticks) the whole machine has spent busy, from /proc/stat; None where
    there is no /proc (then no contention figure is reported)."""
    try:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return None
    # user nice system idle iowait irq softirq steal (guest time is already inside user, nice)
    return sum(fields[:8]) - fields[3] - fields[4]


def _children_cpu_s():
    try:
        import resource
    except ImportError:  # Windows: no contention figure
        return None
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def spawn_worker(spec, threads):
    """Run one worker in a fresh Python process with `threads` threads for every pool; returns
    (result dict, None) or (None, reason). The result's `others_cpu_pct` is how busy the rest of
    the machine kept its cores meanwhile (Linux): more than a few percent inflates the timings."""
    busy0, child0, wall0 = _busy_jiffies(), _children_cpu_s(), time.perf_counter()
    out, reason = _spawn(spec, threads)
    if out is not None and busy0 is not None and child0 is not None:
        others = (_busy_jiffies() - busy0) / os.sysconf("SC_CLK_TCK") - (_children_cpu_s() - child0)
        out["contention"] = {"others_cpu_s": max(0.0, others),
                             "wall_s": time.perf_counter() - wall0, "cores": os.cpu_count() or 1}
        out["others_cpu_pct"] = others_cpu_pct([out["contention"]])
    return out, reason


def others_cpu_pct(contention):
    """CPU time the rest of the machine used during these workers, in % of their wall time
    times the cores."""
    wall = sum(c["wall_s"] * c["cores"] for c in contention)
    return 100 * sum(c["others_cpu_s"] for c in contention) / wall if wall else 0.0


def _spawn(spec, threads):
    env = dict(os.environ)
    for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[k] = str(threads)
    root = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join([root] + [p for p in [env.get("PYTHONPATH")] if p])
    cmd = [sys.executable, "-m", "minisnn.bench", "--worker", json.dumps(spec)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env,
                              timeout=WORKER_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return None, f"timed out after {WORKER_TIMEOUT_S} s"
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(RESULT_MARK):
            return json.loads(line[len(RESULT_MARK):]), None
    tail = [l for l in (proc.stderr or proc.stdout).strip().splitlines() if l.strip()]
    return None, f"worker failed (exit {proc.returncode}): {tail[-1] if tail else 'no output'}"


# ----------------------------------------------------------------------------- comparisons

def config_key(row):
    return row["batch"], row["hidden"], row["steps"]


def compare(runs):
    """One row per configuration: each (framework, backend)'s total ms, minisnn's speed-up over
    snnTorch on each backend (snnTorch ms / minisnn ms) and CuPy's over NumPy for minisnn."""
    table = {}
    for run in runs:
        for r in run["results"]:
            row = table.setdefault(config_key(r), {"batch": r["batch"], "hidden": r["hidden"],
                                                   "steps": r["steps"], "axes": r["axes"]})
            row[f"{run['framework']}_{run['backend']}_ms"] = r["total_ms"]
    for row in table.values():
        for peer in PEERS:
            for backend in ("numpy", "cupy"):
                ours, theirs = row.get(f"minisnn_{backend}_ms"), row.get(f"{peer}_{backend}_ms")
                if ours and theirs:
                    row[f"speedup_vs_{peer}_{backend}"] = theirs / ours
        if row.get("minisnn_numpy_ms") and row.get("minisnn_cupy_ms"):
            row["cupy_speedup_over_numpy"] = row["minisnn_numpy_ms"] / row["minisnn_cupy_ms"]
    return list(table.values())


def _ratio(a, b):
    return a / b if a and b else None


def compare_train(train_runs):
    """peer / minisnn ratios of the training runs, per peer and backend: time per iteration,
    epoch time, peak memory at the end of training (> 1: minisnn is faster / smaller)."""
    out = []
    find = lambda fw, backend: next((r for r in train_runs if r["framework"] == fw
                                     and r["backend"] == backend), None)
    for peer_name in PEERS:
        for backend in ("numpy", "cupy"):
            ours, peer = find("minisnn", backend), find(peer_name, backend)
            if not (ours and peer):
                continue
            a, b = ours["run"], peer["run"]
            row = {"peer": peer_name, "backend": backend,
                   "time_per_iteration": b["total_ms"] / a["total_ms"],
                   "epoch_time": sum(b["epoch_s"]) / sum(a["epoch_s"]),
                   "peak_rss": _ratio(b["peak_rss_mb"], a["peak_rss_mb"])}
            if "peak_device_mb" in a and "peak_device_mb" in b:
                row["peak_device_memory"] = b["peak_device_mb"] / a["peak_device_mb"]
            out.append(row)
    return out


# ----------------------------------------------------------------------------- output

def _fmt(v, nd=2):
    if v is None:
        return "—"
    return f"{v:.{nd}f}" if v < 1000 else f"{v:.0f}"


def _series(runs):
    return [(run["framework"], run["backend"]) for run in runs]


def _label(framework, backend):
    where = PEER_DEVICE[backend] if framework in PEERS else backend
    return f"{FRAMEWORK_LABEL[framework]}/{where}"


def format_report(report):
    lines = []
    m, s = report["meta"], report["settings"]
    lines.append(f"minisnn bench  {m['date']}  {m['cpu']} ({m['cpu_count']} cores), "
                 f"{s['threads']} threads for NumPy's BLAS and torch; data: {s['data'] or 'random images'}")
    busy = [(_label(r["framework"], r["backend"]), r.get("others_cpu_pct"))
            for r in report["runs"] + report.get("train", [])]
    busy = [(name, pct) for name, pct in busy if pct is not None and pct > CONTENTION_WARN_PCT]
    if busy:
        lines.append("  WARNING: other processes kept the CPU busy during " + ", ".join(
            f"{name} ({pct:.0f}%)" for name, pct in busy) + ": those timings are inflated; "
            "rerun on an idle machine")
    for sk in report["skipped"]:
        lines.append(f"  (no {_label(sk['framework'], sk['backend'])}: {sk['reason']})")
    runs = report["runs"]
    seed = report["seed_config"]
    lines.append("")
    lines.append(f"Seed network {NUM_INPUTS}-{seed['hidden']}-{NUM_OUTPUTS}, batch {seed['batch']}, "
                 f"{seed['steps']} steps: ms per training iteration (median of "
                 f"{s['repeats']} after {s['warmup']} warm-up)")
    lines.append(f"  {'':18s} {'forward':>8s} {'backward':>9s} {'step':>7s} {'total':>8s} "
                 f"{'peak RSS MB':>12s} {'start RSS MB':>13s} {'peak GPU MB':>12s}")
    for run in runs:
        r = next((r for r in run["results"] if "seed" in r["axes"]), None)
        if r is None:
            continue
        lines.append(f"  {_label(run['framework'], run['backend']):18s} {_fmt(r['forward_ms']):>8s} "
                     f"{_fmt(r['backward_ms']):>9s} {_fmt(r['step_ms']):>7s} {_fmt(r['total_ms']):>8s} "
                     f"{_fmt(r.get('peak_rss_mb'), 0):>12s} {_fmt(r.get('base_rss_mb'), 0):>13s} "
                     f"{_fmt(r.get('peak_device_mb'), 0):>12s}")
    lines.append("  (peak RSS: the worker process after the seed point, its first; start RSS: after "
                 "importing the framework and loading the data)")
    seed_row = next((r for r in report["comparison"] if "seed" in r["axes"]), {})
    for peer in PEERS:
        for backend in ("numpy", "cupy"):
            x = seed_row.get(f"speedup_vs_{peer}_{backend}")
            if x:
                lines.append(f"  minisnn/{backend} is {x:.2f}x as fast as {_label(peer, backend)}")
    if seed_row.get("cupy_speedup_over_numpy"):
        lines.append(f"  minisnn cupy/numpy speed ratio: {seed_row['cupy_speedup_over_numpy']:.2f}x")
    sweep_rows = [r for r in report["comparison"] if r["axes"] != ["seed"]]
    if sweep_rows:
        series = _series(runs)
        lines.append("")
        lines.append("Sweep (one setting varied from the seed's): total ms per training iteration")
        head = f"  {'varied':7s} {'batch':>6s} {'hidden':>7s} {'steps':>6s}" + "".join(
            f" {_label(f, b):>15s}" for f, b in series)
        names = {f"speedup_vs_{p}_{b}": f"vs {_label(p, b)}" for p in PEERS for b in PEER_DEVICE}
        names["cupy_speedup_over_numpy"] = "cupy/numpy"
        extra = [k for k in names if any(k in r for r in report["comparison"])]
        head += "".join(f" {names[k]:>22s}" for k in extra)
        lines.append(head)
        for axis in list(SWEEP):
            for r in sorted((r for r in report["comparison"] if axis in r["axes"]),
                            key=lambda r: r[axis]):
                line = f"  {axis:7s} {r['batch']:>6d} {r['hidden']:>7d} {r['steps']:>6d}" + "".join(
                    f" {_fmt(r.get(f'{f}_{b}_ms')):>15s}" for f, b in series)
                line += "".join(f" {_fmt(r.get(k)) + 'x' if r.get(k) else '—':>22s}" for k in extra)
                lines.append(line)
        if s.get("memory"):
            lines.append("")
            lines.append("Peak RSS MB, a fresh process per point (batch, hidden, steps):")
            for run in runs:
                lines.append(f"  {_label(run['framework'], run['backend']):18s} " + "  ".join(
                    f"{'/'.join(map(str, config_key(r)))}: {_fmt(r.get('peak_rss_mb'), 0)}"
                    for r in sorted(run["results"], key=config_key)))
    if report.get("train"):
        lines.append("")
        t0 = report["train"][0]["run"]
        lines.append(f"Training run, each framework in a fresh process: data {t0['data']}, "
                     f"{len(t0['epoch_s'])} epoch(s), {t0['iterations']} iterations of batch "
                     f"{seed['batch']}, {seed['steps']} steps")
        lines.append(f"  {'':18s} {'ms/iter':>8s} {'fwd':>7s} {'bwd':>7s} {'step':>6s} {'epoch s':>8s} "
                     f"{'peak RSS MB':>12s} {'start RSS MB':>13s} {'peak GPU MB':>12s} {'test acc':>9s} "
                     f"{'RSS w/ eval':>12s}")
        for tr in report["train"]:
            r = tr["run"]
            lines.append(f"  {_label(tr['framework'], tr['backend']):18s} {_fmt(r['total_ms']):>8s} "
                         f"{_fmt(r['forward_ms']):>7s} {_fmt(r['backward_ms']):>7s} {_fmt(r['step_ms']):>6s} "
                         f"{_fmt(sum(r['epoch_s'])):>8s} {_fmt(r['peak_rss_mb'], 0):>12s} "
                         f"{_fmt(r.get('base_rss_mb'), 0):>13s} "
                         f"{_fmt(r.get('peak_device_mb'), 0):>12s} {100 * r['test_accuracy']:>8.2f}% "
                         f"{_fmt(r.get('peak_with_eval_rss_mb'), 0):>12s}")
        lines.append(f"  (peak RSS: at the end of training; RSS w/ eval: after the test-set evaluation "
                     f"too, in batches of {EVAL_BATCH}; start RSS: after imports and data loading)")
        for c in report.get("train_comparison", []):
            lines.append(f"  {_label(c['peer'], c['backend'])} / minisnn/{c['backend']}: time per iteration "
                         f"{c['time_per_iteration']:.2f}x, epoch time {c['epoch_time']:.2f}x, "
                         f"peak RSS {_fmt(c['peak_rss'])}x" + (
                             f", peak GPU memory {c['peak_device_memory']:.2f}x"
                             if "peak_device_memory" in c else ""))
    return "\n".join(lines)


def write_json(report, path):
    atomic_write(path, json.dumps(report, indent=1))


def plot(report, path):
    """Total ms per iteration against each sweep axis, log-log, one line per framework/backend."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    axes_names = [a for a in SWEEP if any(a in r["axes"] for r in report["comparison"])]
    fig = Figure(figsize=(4.2 * max(1, len(axes_names)), 3.6))
    FigureCanvasAgg(fig)
    for i, axis in enumerate(axes_names or ["seed"]):
        ax = fig.add_subplot(1, max(1, len(axes_names)), i + 1)
        for run in report["runs"]:
            pts = sorted((r[axis if axis != "seed" else "batch"], r["total_ms"])
                         for r in run["results"] if axis in r["axes"])
            if pts:
                ax.plot(*zip(*pts), marker="o", label=_label(run["framework"], run["backend"]))
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(axis)
        ax.set_ylabel("ms per training iteration")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"minisnn bench — {report['meta']['cpu']}", fontsize=10)
    fig.tight_layout()
    with atomic_open(path) as f:
        fig.savefig(f, format="png", dpi=110)


# ----------------------------------------------------------------------------- driver

def available_backends():
    return ["numpy"] + (["cupy"] if importlib.util.find_spec("cupy") is not None else [])


def peer_available():
    missing = [m for m in ("torch", "snntorch") if importlib.util.find_spec(m) is None]
    return None if not missing else f"{' and '.join(missing)} not installed (pip install \"minisnn[bench]\")"


def _int_list(text):
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}")
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return values


def _peer_list(text):
    names = [v.strip() for v in text.split(",") if v.strip()]
    if names == ["none"]:
        return []
    bad = [n for n in names if n not in PEERS]
    if bad or not names:
        raise argparse.ArgumentTypeError(f"peers must come from {', '.join(PEERS)} (or none), "
                                         f"got {text!r}")
    return list(dict.fromkeys(names))


def _positive(text):
    v = int(text)
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text}")
    return v


def _non_negative(text):
    v = int(text)
    if v < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text}")
    return v


def build_parser():
    p = argparse.ArgumentParser(
        prog="minisnn bench",
        description="Time training iterations of the seed network (and a sweep of sizes) on "
                    "every available backend, beside snnTorch when torch and snntorch are installed.")
    p.add_argument("--backend", choices=["numpy", "cupy", "all"], default="all",
                   help="backend(s) to time (default: all available)")
    p.add_argument("--quick", action="store_true", help="the seed configuration only")
    p.add_argument("--peer", type=_peer_list, default=["snntorch"], metavar="LIST",
                   help="peers timed beside minisnn on the same device, comma-separated from "
                        f"{', '.join(PEERS)}, or none (default: snntorch, when torch and "
                        "snntorch are importable)")
    p.add_argument("--no-peer", dest="peer", action="store_const", const=[],
                   help="time minisnn only")
    p.add_argument("--train", action="store_true",
                   help="also a side-by-side training run on the data, each framework in a "
                        "fresh process: time per iteration, epoch time, peak memory, test accuracy")
    p.add_argument("--memory", action="store_true",
                   help="run every sweep point in a fresh process of its own, to report its peak memory")
    p.add_argument("--data", default=None,
                   help="MNIST-style folder (IDX files), or 'random' (default: "
                        "$MINISNN_SHARED_DATA/mnist-5k, else data/mnist, else random images)")
    p.add_argument("--epochs", type=_positive, default=1, help="epochs of the --train run")
    p.add_argument("--max-iters", type=_positive, default=None,
                   help="stop the --train run after this many iterations")
    p.add_argument("--repeats", type=_positive, default=20,
                   help="timed iterations per point (fewer for points bigger than the seed's)")
    p.add_argument("--warmup", type=_non_negative, default=3, help="untimed iterations first")
    p.add_argument("--threads", type=_positive, default=None,
                   help="threads for NumPy's BLAS and torch (default: the machine's cores)")
    p.add_argument("--batch", type=_positive, default=SEED_CONFIG["batch"], help="seed batch size")
    p.add_argument("--hidden", type=_positive, default=SEED_CONFIG["hidden"], help="seed hidden size")
    p.add_argument("--steps", type=_positive, default=SEED_CONFIG["steps"], help="seed time steps")
    p.add_argument("--sweep-batch", type=_int_list, default=SWEEP["batch"], metavar="LIST")
    p.add_argument("--sweep-hidden", type=_int_list, default=SWEEP["hidden"], metavar="LIST")
    p.add_argument("--sweep-steps", type=_int_list, default=SWEEP["steps"], metavar="LIST")
    p.add_argument("--seed", type=_non_negative, default=0, help="weights and data order")
    p.add_argument("--out", default="runs/bench", help="folder for bench.json and bench.png")
    p.add_argument("--no-plot", action="store_true", help="skip bench.png")
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    return p


def machine_cores():
    """The cores this process may run on (its CPU affinity where the OS reports one)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def machine_meta(threads, argv):
    return {"date": datetime.date.today().isoformat(), "cpu": cpu_model(),
            "cpu_count": os.cpu_count(), "threads": threads, "platform": platform.platform(),
            "command": " ".join(["minisnn", "bench"] + list(argv))}


def run(args, argv=()):
    """Plan, spawn the workers and compare: returns the report dict (main prints and writes it)."""
    threads = args.threads or machine_cores()
    backends = available_backends() if args.backend == "all" else [args.backend]
    if args.backend == "cupy" and "cupy" not in available_backends():
        raise SystemExit("minisnn bench: --backend cupy needs CuPy: pip install \"minisnn[cuda]\"")
    seed = {"batch": args.batch, "hidden": args.hidden, "steps": args.steps}
    sweep = {"batch": args.sweep_batch, "hidden": args.sweep_hidden, "steps": args.sweep_steps}
    configs = plan_configs(seed, sweep, args.quick)
    for c in configs:
        c["repeats"], c["warmup"] = repeats_for(c, args.repeats, args.warmup, seed)
    data = find_data(args.data)
    frameworks = ["minisnn"]
    skipped = []
    if args.peer:
        reason = peer_available()
        if reason is None:
            frameworks += args.peer
        else:
            skipped += [{"framework": p, "backend": b, "reason": reason}
                        for p in args.peer for b in backends]
    base = {"data": data, "seed": args.seed, "threads": threads}

    runs = []
    for backend in backends:
        for fw in frameworks:
            groups = [[c] for c in configs] if args.memory else [configs]
            results, busy, info = [], [], None
            for group in groups:
                out, reason = spawn_worker(dict(base, framework=fw, backend=backend,
                                                mode="timing", configs=group), threads)
                if out is None:
                    break
                results += out["results"]
                busy.append(out.get("contention"))
                info = out
            if out is None:
                skipped.append({"framework": fw, "backend": backend, "reason": reason})
                continue
            info["results"] = results
            if None not in busy:
                info["contention"] = busy
                info["others_cpu_pct"] = others_cpu_pct(busy)
            runs.append(info)
            print(f"  timed {_label(fw, backend)}", file=sys.stderr)

    train_runs = []
    if args.train:
        for backend in backends:
            for fw in frameworks:
                if any(s["framework"] == fw and s["backend"] == backend for s in skipped):
                    continue
                out, reason = spawn_worker(dict(base, framework=fw, backend=backend, mode="train",
                                                config=seed, epochs=args.epochs,
                                                max_iters=args.max_iters, warmup=args.warmup),
                                           threads)
                if out is None:
                    skipped.append({"framework": fw, "backend": backend, "reason": f"--train: {reason}"})
                else:
                    train_runs.append(out)
                    print(f"  trained {_label(fw, backend)}", file=sys.stderr)

    report = {"meta": machine_meta(threads, argv),
              "settings": {"backends": backends, "peer": args.peer, "quick": args.quick,
                           "memory": args.memory, "repeats": args.repeats, "warmup": args.warmup,
                           "threads": threads, "data": data, "seed": args.seed},
              "seed_config": seed, "sweep_values": {} if args.quick else sweep,
              "runs": runs, "skipped": skipped, "comparison": compare(runs),
              "train": train_runs, "train_comparison": compare_train(train_runs)}
    return report


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    if args.worker is not None:
        # every framework under the same allocator settings as `minisnn train` (minisnn/malloc.py)
        tuned = keep_freed_memory()
        result = dict(run_worker(json.loads(args.worker)), malloc_tuned=tuned)
        print(RESULT_MARK + json.dumps(result), flush=True)
        return 0
    report = run(args, argv)
    print(format_report(report))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_json(report, out / "bench.json")
    written = [out / "bench.json"]
    if not args.no_plot and report["runs"]:
        plot(report, out / "bench.png")
        written.append(out / "bench.png")
    print("\nwrote " + ", ".join(str(p) for p in written))
    return 0 if report["runs"] else 1


if __name__ == "__main__":
    sys.exit(main())

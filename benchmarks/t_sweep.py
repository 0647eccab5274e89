"""The time-steps sweep: time per training iteration and peak memory against T, minisnn (default
and memory-flat) beside snnTorch (the tutorial's code and with fc1 hoisted), SpikingJelly and Norse
where they are installed.

    python benchmarks/t_sweep.py                      # T = 25, 100, 500, 1000, 2000, every peer
    python benchmarks/t_sweep.py --steps 25,100 --modes minisnn,minisnn-flat --data DIR

The seed network (784-1000-10, batch 128, float32, Adam lr 5e-4, betas (0.9, 0.999)), the same
initial weights and the same batches (MNIST from --data, else uniform random images) for every
framework. Each framework and mode runs in a process of its own with 2 threads (--threads; torch,
OpenBLAS, OpenMP), under minisnn's allocator tuning (minisnn.malloc, as `minisnn bench` runs its
workers, and with its OPENBLAS_THREAD_TIMEOUT, minisnn.threads; --malloc default to leave both
alone). A point is `--warmup` untimed iterations then up to
`--iters` timed ones (fewer past `--budget` seconds); its time is the median, its memory the
process's peak resident set (ru_maxrss), and the growth beyond the process's size before the
first iteration. A point whose memory, extrapolated from the mode's smaller T, would not fit in
the memory available now is skipped with the reason.

The same equations everywhere, as far as each framework allows: β = 0.95, threshold 1,
subtractive reset with the spike detached, arctan surrogate (α = 2), cross-entropy of the output
membrane summed over the steps.
  snntorch           the reference tutorial's loop: fc1(x) at every step, snn.Leaky(beta=0.95).
  snntorch-hoisted   the same with cur1 = fc1(x) computed once before the loop.
  spikingjelly       LIFNode(tau=20, decay_input=False, v_reset=None, detach_reset=True, ATan),
                     multi-step: H[t] = 0.95·V[t−1] + X[t]. It subtracts θ in the step that fires
                     (V[t] = H[t] − θ·S[t], then decays), so its reset reaches the next step as
                     0.95·θ where snnTorch's is θ; the loss reads V after that reset (v_seq).
  norse              LIFBoxCell (a LIF without synaptic current), dt·τ_mem⁻¹ = 0.05 so that
                     v[t] = 0.95·v[t−1] + 0.05·i[t], with fc1 and fc2 scaled by 20 to give the
                     same current; reset by subtraction with the spike detached (a reset_method
                     of ours), in the step that fires like SpikingJelly; Norse has no arctan
                     surrogate: SuperSpike (its 'super'). The loss reads v after the reset.
  minisnn            net(x, T); minisnn-flat: net(x, T, recompute_every=k), k = ceil(sqrt(T)) by
                     default (--every K for a fixed k).
"""
import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

STEPS = (25, 100, 500, 1000, 2000)
MODES = ("minisnn", "minisnn-flat", "snntorch", "snntorch-hoisted", "spikingjelly", "norse")
NEEDS = {"snntorch": ("torch", "snntorch"), "snntorch-hoisted": ("torch", "snntorch"),
         "spikingjelly": ("torch", "spikingjelly"), "norse": ("torch", "norse")}
BATCH, INPUTS, HIDDEN, OUTPUTS = 128, 784, 1000, 10
BETA, LR, BETAS, THREADS = 0.95, 5e-4, (0.9, 0.999), 2
MARK = "T-SWEEP-RESULT "


def every_for(T, rule="sqrt"):
    """The memory-flat mode's segment length: an integer, or 'sqrt' for ceil(sqrt(T))."""
    return math.ceil(math.sqrt(T)) if rule == "sqrt" else int(rule)


# ----------------------------------------------------------------------------- the workers

def rss_mb():
    """This process's resident set now (MB), from /proc."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_rss_mb():
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def minisnn_iteration(spec, w):
    import minisnn as ms
    net = ms.Sequential(ms.Linear(INPUTS, HIDDEN), ms.Leaky(BETA),
                        ms.Linear(HIDDEN, OUTPUTS), ms.Leaky(BETA))
    net[0].W[...], net[0].b[...], net[2].W[...], net[2].b[...] = w["W1"], w["b1"], w["W2"], w["b2"]
    opt = ms.Adam(net.parameters(), lr=LR, betas=BETAS)
    T, every = spec["T"], spec.get("every")

    def step(x, y):
        opt.zero_grad()
        _, mem = net(x, T, recompute_every=every)
        loss, d_mem = ms.ce_membrane_loss(mem, y)
        net.backward(d_mem=d_mem)
        opt.step()
        return float(loss)
    return step, lambda a: a, lambda a: a


def torch_iteration(spec, w):
    import torch
    torch.set_num_threads(spec["threads"])
    mode, T = spec["mode"], spec["T"]
    gain = 20.0 if mode == "norse" else 1.0          # Norse scales its input by dt/τ = 0.05
    fc1, fc2 = torch.nn.Linear(INPUTS, HIDDEN), torch.nn.Linear(HIDDEN, OUTPUTS)
    with torch.no_grad():
        for fc, W, b in ((fc1, "W1", "b1"), (fc2, "W2", "b2")):
            fc.weight.copy_(torch.from_numpy(w[W]) * gain)
            fc.bias.copy_(torch.from_numpy(w[b]) * gain)
    forward, modules = PEERS[mode](torch, fc1, fc2, T)
    params = [p for m in [fc1, fc2] + modules for p in m.parameters()]
    opt = torch.optim.Adam(params, lr=LR, betas=BETAS)
    ce = torch.nn.functional.cross_entropy

    def step(x, y):
        opt.zero_grad()
        mem = forward(x)                                          # (T, B, out)
        loss = sum(ce(mem[t], y) for t in range(T))              # eq. (10): summed over steps
        loss.backward()
        opt.step()
        return float(loss)
    return step, torch.from_numpy, torch.from_numpy


def snntorch_forward(torch, fc1, fc2, T, hoisted=False):
    import snntorch as snn
    from snntorch import surrogate
    lif1 = snn.Leaky(beta=BETA, spike_grad=surrogate.atan())
    lif2 = snn.Leaky(beta=BETA, spike_grad=surrogate.atan())

    def forward(x):
        mem1, mem2 = lif1.init_leaky(), lif2.init_leaky()
        cur1 = fc1(x) if hoisted else None
        mems = []
        for _ in range(T):
            spk1, mem1 = lif1(cur1 if hoisted else fc1(x), mem1)
            _, mem2 = lif2(fc2(spk1), mem2)
            mems.append(mem2)
        return torch.stack(mems)
    return forward, [lif1, lif2]


def spikingjelly_forward(torch, fc1, fc2, T):
    from spikingjelly.activation_based import functional, neuron, surrogate
    kw = dict(tau=1 / (1 - BETA), decay_input=False, v_threshold=1.0, v_reset=None,
              detach_reset=True, surrogate_function=surrogate.ATan(alpha=2.0), step_mode="m")
    lif1, lif2 = neuron.LIFNode(**kw), neuron.LIFNode(store_v_seq=True, **kw)

    def forward(x):
        functional.reset_net(lif1)
        functional.reset_net(lif2)
        spk1 = lif1(fc1(x).unsqueeze(0).expand(T, -1, -1))     # (T, B, hidden)
        lif2(fc2(spk1))                                         # multi-step: one matmul
        return lif2.v_seq
    return forward, [lif1, lif2]


def norse_forward(torch, fc1, fc2, T):
    from norse.torch import LIFBoxCell
    from norse.torch.functional.lif_box import LIFBoxParameters

    def detached_subtract(z, v, reset, th):
        return v - z.detach() * th
    p = LIFBoxParameters(tau_mem_inv=torch.tensor(50.0), v_th=torch.tensor(1.0),
                         v_reset=torch.tensor(0.0), method="super", reset_method=detached_subtract)
    cell1, cell2 = LIFBoxCell(p), LIFBoxCell(p)

    def forward(x):
        cur1, s1, s2, mems = fc1(x), None, None, []
        for _ in range(T):
            z1, s1 = cell1(cur1, s1)
            _, s2 = cell2(fc2(z1), s2)
            mems.append(s2.v)
        return torch.stack(mems)
    return forward, [cell1, cell2]


PEERS = {"snntorch": snntorch_forward,
         "snntorch-hoisted": lambda *a: snntorch_forward(*a, hoisted=True),
         "spikingjelly": spikingjelly_forward, "norse": norse_forward}


def worker(spec):
    """Time one mode at one T; print the result as one JSON line."""
    import numpy as np
    if spec["malloc"] != "default":
        sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
        from minisnn import malloc
        malloc.keep_freed_memory()
    w = dict(np.load(spec["arrays"]))
    make = minisnn_iteration if spec["mode"].startswith("minisnn") else torch_iteration
    step, as_x, as_y = make(spec, w)
    batches = [(as_x(x), as_y(y)) for x, y in zip(w["x"], w["y"])]
    base = rss_mb()
    losses, times, cpu, start = [], [], [], time.perf_counter()
    for i in range(spec["warmup"] + spec["iters"]):
        t0, c0 = time.perf_counter(), time.process_time()
        losses.append(step(*batches[i % len(batches)]))
        if i >= spec["warmup"]:
            times.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
            if time.perf_counter() - start > spec["budget"]:
                break
    print(MARK + json.dumps(dict(spec, ms=1e3 * float(np.median(times)), timed=len(times),
                                 cpu_ms=1e3 * float(np.median(cpu)), first_loss=losses[0],
                                 base_mb=base, peak_mb=peak_rss_mb())), flush=True)


# ----------------------------------------------------------------------------- the driver

def available_mb():
    with open("/proc/meminfo") as f:
        info = dict(line.split(":", 1) for line in f)
    return int(info["MemAvailable"].split()[0]) / 1024


def installed(mode):
    import importlib.util
    return all(importlib.util.find_spec(m) is not None for m in NEEDS.get(mode, ()))


def write_arrays(path, data, seed=0, n_batches=2):
    """The initial weights (PyTorch's init, from minisnn.Linear) and the batches, for everyone."""
    import numpy as np
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import minisnn as ms
    rng = np.random.default_rng(seed)
    l1, l2 = ms.Linear(INPUTS, HIDDEN, rng=rng), ms.Linear(HIDDEN, OUTPUTS, rng=rng)
    n = BATCH * n_batches
    if data:
        from minisnn.data import load_dataset
        d = load_dataset(data)
        pick = rng.permutation(len(d.train_x))[:n]
        x, y = d.train_x[pick], d.train_y[pick]
    else:
        x, y = rng.random((n, INPUTS)).astype("float32"), rng.integers(0, OUTPUTS, n)
    np.savez(path, W1=l1.W, b1=l1.b, W2=l2.W, b2=l2.b, x=x.reshape(n_batches, BATCH, INPUTS),
             y=y.reshape(n_batches, BATCH).astype("int64"))


def predicted_mb(done, mode, T):
    """Peak memory at T extrapolated from this mode's points so far (linear in T), or None."""
    pts = sorted((r["T"], r["peak_mb"]) for r in done if r["mode"] == mode)
    if not pts:
        return None
    if len(pts) == 1:
        return pts[0][1] * T / pts[0][0]
    (t0, m0), (t1, m1) = pts[-2:]
    return m1 + (T - t1) * max(0.0, (m1 - m0) / (t1 - t0))


def run_point(spec, timeout):
    n = str(spec["threads"])
    env = dict(os.environ, OMP_NUM_THREADS=n, OPENBLAS_NUM_THREADS=n, MKL_NUM_THREADS=n,
               PYTHONPATH=os.pathsep.join(
                   [str(Path(__file__).resolve().parents[1]), os.environ.get("PYTHONPATH", "")]))
    if spec["malloc"] != "default":       # the `minisnn` command's tuning (minisnn/threads.py)
        from minisnn.threads import VALUE, VARIABLE
        env.setdefault(VARIABLE, VALUE)
    try:
        proc = subprocess.run([sys.executable, __file__, "--worker", json.dumps(spec)], env=env,
                              capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None, f"took over {timeout} s"
    for line in proc.stdout.splitlines():
        if line.startswith(MARK):
            return json.loads(line[len(MARK):]), None
    return None, f"failed (exit {proc.returncode}): {proc.stderr.strip()[-300:]}"


def lead(times):
    """The fastest peer's time ÷ minisnn's within one round ({mode: ms}), or None."""
    peers = [t for m, t in times.items() if not m.startswith("minisnn")]
    return min(peers) / times["minisnn"] if peers and "minisnn" in times else None


def table(results, steps, modes):
    by = {(r["mode"], r["T"]): r for r in results}
    ref = "minisnn-flat" if "minisnn-flat" in modes else modes[0]
    lines = []
    for title, key, fmt in (("time per iteration, ms", "ms", "{:9.1f}"),
                            ("CPU time per iteration (all threads), ms", "cpu_ms", "{:9.1f}"),
                            ("peak memory (whole process), MB", "peak_mb", "{:9.0f}"),
                            ("growth during training (peak minus size before it), MB",
                             "grow_mb", "{:9.0f}")):
        lines.append(f"\n{title}  (in brackets: the mode's figure ÷ {ref}'s)")
        lines.append("    T | " + " | ".join(f"{m:>17}" for m in modes))
        for T in steps:
            cells = []
            for m in modes:
                r, base = by.get((m, T)), by.get((ref, T))
                if r is None:
                    cells.append(f"{'—':>17}")
                    continue
                v = r["peak_mb"] - r["base_mb"] if key == "grow_mb" else r[key]
                b = None if base is None else (base["peak_mb"] - base["base_mb"]
                                               if key == "grow_mb" else base[key])
                ratio = f"({v / b:5.2f}x)" if b and m != ref else " " * 8
                cells.append(fmt.format(v) + ratio)
            lines.append(f"{T:5d} | " + " | ".join(cells))
    lines.append("\ngrowth per step between consecutive T (MB/step): " + "; ".join(
        f"{m}: " + ", ".join(f"{(by[(m, b)]['peak_mb'] - by[(m, a)]['peak_mb']) / (b - a):.3f}"
                             for a, b in zip(steps, steps[1:]) if (m, a) in by and (m, b) in by)
        for m in modes if len([T for T in steps if (m, T) in by]) > 1))
    lines.append("first-iteration loss (same weights and batch): " + ", ".join(
        f"{m} {by[(m, steps[0])]['first_loss']:.4f}" for m in modes if (m, steps[0]) in by))
    return "\n".join(lines)


def measure(m, T, arrays, args, done):
    """One point in a process of its own, or None (skipped or failed, with the reason printed)."""
    need, free = predicted_mb(done, m, T), available_mb()
    if need is not None and need > 0.8 * free:
        print(f"  T={T:5d} {m:17s} skipped: needs about {need:.0f} MB (extrapolated from "
              f"smaller T), {free:.0f} MB available")
        return None
    spec = dict(mode=m, T=T, arrays=arrays, warmup=args.warmup, iters=args.iters,
                budget=args.budget, malloc=args.malloc, threads=args.threads,
                every=every_for(T, args.every) if m == "minisnn-flat" else None)
    r, why = run_point(spec, args.timeout)
    if r is None:
        print(f"  T={T:5d} {m:17s} {why}")
        return None
    k = f" k={r['every']}" if r["every"] else ""
    print(f"  T={T:5d} {m:17s} {r['ms']:9.1f} ms (CPU {r['cpu_ms']:.1f} ms)  peak "
          f"{r['peak_mb']:7.0f} MB  (before training {r['base_mb']:.0f} MB; {r['timed']} "
          f"timed){k}", flush=True)
    return r


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", default=",".join(map(str, STEPS)), help="T values, e.g. 25,100")
    ap.add_argument("--modes", default=",".join(MODES), help=f"any of {', '.join(MODES)}")
    ap.add_argument("--every", default="sqrt",
                    help="minisnn-flat's recompute_every: an integer, or sqrt for ceil(sqrt(T)) "
                         "(the default)")
    ap.add_argument("--threads", type=int, default=THREADS,
                    help=f"threads per process (default {THREADS})")
    ap.add_argument("--data", default=None, help="an MNIST folder (default: random images)")
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--iters", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=1,
                    help="measure every point this many times, the modes in turn (the order "
                         "reversed each round), and keep each mode's fastest: fairer on a machine "
                         "whose load changes")
    ap.add_argument("--budget", type=float, default=30.0,
                    help="stop timing a point after this many seconds (at least one iteration)")
    ap.add_argument("--timeout", type=float, default=900.0, help="seconds per point")
    ap.add_argument("--malloc", choices=("tuned", "default"), default="tuned")
    ap.add_argument("--json", default=None, help="also write the results here")
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        return worker(json.loads(args.worker))
    steps = [int(s) for s in args.steps.split(",")]
    modes = [m for m in args.modes.split(",") if m]
    unknown = [m for m in modes if m not in MODES]
    if args.every != "sqrt" and not (args.every.isdigit() and int(args.every) >= 1):
        ap.error(f"--every must be sqrt or an integer >= 1, got {args.every!r}")
    if unknown or any(T < 1 for T in steps) or min(args.threads, args.rounds) < 1:
        ap.error(f"unknown modes {unknown}" if unknown else "T, --threads, --rounds must be >= 1")
    for m in [m for m in modes if not installed(m)]:
        print(f"skipping {m}: {' and '.join(NEEDS[m])} not installed")
        modes.remove(m)
    print(f"seed network {INPUTS}-{HIDDEN}-{OUTPUTS}, batch {BATCH}, float32, {args.threads} "
          f"threads; data: {args.data or 'random images (pass --data for MNIST)'}; malloc {args.malloc}")
    results, load0 = [], os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        arrays = os.path.join(tmp, "arrays.npz")
        write_arrays(arrays, args.data)
        leads = {}
        for T in steps:
            best = {}
            for r_i in range(args.rounds):          # rounds in turn, the order reversed each time
                this_round = {}
                for m in (modes if r_i % 2 == 0 else modes[::-1]):
                    r = measure(m, T, arrays, args, results)
                    if r is not None:
                        this_round[m] = r["ms"]
                    if r is not None and (m not in best or r["ms"] < best[m]["ms"]):
                        best[m] = dict(r, peak_mb=max(r["peak_mb"], best.get(m, r)["peak_mb"]))
                leads.setdefault(T, []).append(lead(this_round))
            results += [best[m] for m in modes if m in best]
    print(table(results, steps, modes))
    for T, ratios in leads.items():
        ratios = [x for x in ratios if x is not None]
        if ratios:
            print(f"T={T}: the fastest peer's time ÷ minisnn's, round by round (both measured in "
                  f"the same round): {', '.join(f'{x:.2f}x' for x in ratios)}; median "
                  f"{statistics.median(ratios):.2f}x")
    print(f"load average (1 min) at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores "
          f"(started at {load0:.1f}); more than the {args.threads} threads of one point means "
          f"other work shared the cores and the wall times are inflated")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()

"""The `minisnn bench` command: its options, the plan of worker processes, the report."""
import argparse
import datetime
import importlib.util
import json
import os
import platform
import sys
from pathlib import Path

from ..atomic import atomic_write
from ..malloc import keep_freed_memory
from .compare import compare, compare_train
from .frameworks import FRAMEWORKS, PEERS, label
from .plan import ARCHITECTURES, SEED_CONFIG, SWEEP, architecture, plan_configs, repeats_for
from .inputs import find_data
from .plot import plot
from .report import format_report
from .worker import RESULT_MARK, cpu_model, others_cpu_pct, run_worker, spawn_worker


def available_backends():
    return ["numpy"] + (["cupy"] if importlib.util.find_spec("cupy") is not None else [])


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


def _at_least(low):
    def parse(text):
        v = int(text)
        if v < low:
            raise argparse.ArgumentTypeError(f"expected an integer >= {low}, got {text}")
        return v
    return parse


def build_parser():
    p = argparse.ArgumentParser(
        prog="minisnn bench",
        description="Time training iterations of the seed network (or snnTorch tutorial 6's "
                    "CSNN) and a sweep of sizes on every available backend, beside snnTorch when "
                    "torch and snntorch are installed.")
    p.add_argument("--backend", choices=["numpy", "cupy", "all"], default="all",
                   help="backend(s) to time (default: all available)")
    p.add_argument("--arch", choices=sorted(ARCHITECTURES), default="mlp",
                   help="the network (default: mlp, the tutorial's 784-H-10; csnn: snnTorch "
                        "tutorial 6's 12C5-MP2-64C5-MP2-1024FC10, no hidden size: only batch and "
                        "steps)")
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
                   help="MNIST-style folder (IDX files), 'mnist-sample', or 'random' (default: "
                        "$MINISNN_DATA, else data/mnist, else the bundled MNIST sample)")
    p.add_argument("--epochs", type=_at_least(1), default=1, help="epochs of the --train run")
    p.add_argument("--max-iters", type=_at_least(1), default=None,
                   help="stop the --train run after this many iterations")
    p.add_argument("--repeats", type=_at_least(1), default=20,
                   help="timed iterations per point (fewer for points bigger than the seed's)")
    p.add_argument("--warmup", type=_at_least(0), default=3, help="untimed iterations first")
    p.add_argument("--threads", type=_at_least(1), default=None,
                   help="threads for NumPy's BLAS and torch (default: the machine's cores)")
    for name, value in SEED_CONFIG.items():   # None: the default, so that --arch can refuse one
        p.add_argument(f"--{name}", type=_at_least(1), default=None,
                       help=f"seed {name} (default {value})")
    for name, values in SWEEP.items():
        p.add_argument(f"--sweep-{name}", type=_int_list, default=None, metavar="LIST",
                       help=f"default {','.join(map(str, values))}")
    p.add_argument("--recompute-every", type=_at_least(1), default=None, metavar="K",
                   help="minisnn's BPTT in segments of K steps (memory flat in T; the peers keep "
                   "every step, as they can only)")
    p.add_argument("--seed", type=_at_least(0), default=0, help="weights and data order")
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


def _timed(base, fw, backend, configs, memory, threads):
    """One (framework, backend)'s timing run: a worker for all points, or one per point."""
    groups = [[c] for c in configs] if memory else [configs]
    results, busy, info = [], [], None
    for group in groups:
        out, reason = spawn_worker(dict(base, framework=fw, backend=backend, mode="timing",
                                        configs=group), threads)
        if out is None:
            return None, reason
        results += out["results"]
        busy.append(out.get("contention"))
        info = out
    info["results"] = results
    if None not in busy:
        info["contention"], info["others_cpu_pct"] = busy, others_cpu_pct(busy)
    return info, None


def points(args):
    """The seed point and the sweep for args.arch: the settings it has (arch.AXES), each from
    its option or the default. An option the architecture has no use for is refused."""
    arch = architecture(args.arch)
    for name in SEED_CONFIG:
        given = [f"--{o}" for o in (name, f"sweep-{name}")
                 if getattr(args, o.replace("-", "_")) is not None]
        if name not in arch.AXES and given:
            raise SystemExit(f"minisnn bench: {' and '.join(given)}: --arch {args.arch} "
                             f"({arch.describe(SEED_CONFIG)}) has no {name} setting; it "
                             "takes " + " and ".join(f"--{a}" for a in arch.AXES))
    pick = lambda value, default: default if value is None else value
    seed = {a: pick(getattr(args, a), SEED_CONFIG[a]) for a in arch.AXES}
    sweep = {a: pick(getattr(args, f"sweep_{a}"), SWEEP[a]) for a in arch.AXES}
    return seed, sweep


def run(args, argv=(), progress=None):
    """Plan, spawn the workers and compare: returns the report dict. progress(text) hears of
    each worker done (default: a line on stderr; pass a no-op to keep quiet)."""
    progress = progress or (lambda text: print(f"  {text}", file=sys.stderr))
    threads = args.threads or machine_cores()
    backends = available_backends() if args.backend == "all" else [args.backend]
    if args.backend == "cupy" and "cupy" not in available_backends():
        raise SystemExit("minisnn bench: --backend cupy needs CuPy: pip install \"minisnn[cuda]\"")
    seed, sweep = points(args)
    configs = plan_configs(seed, sweep, args.quick)
    for c in configs:
        c["repeats"], c["warmup"] = repeats_for(c, args.repeats, args.warmup, seed)
    data = find_data(args.data)
    frameworks, skipped = ["minisnn"], []
    for peer in args.peer:
        reason = FRAMEWORKS[peer].missing()
        if reason is None:
            frameworks.append(peer)
        else:
            skipped += [{"framework": peer, "backend": b, "reason": reason} for b in backends]
    base = {"data": data, "seed": args.seed, "threads": threads, "arch": args.arch,
            "recompute_every": args.recompute_every}

    runs = []
    for backend in backends:
        for fw in frameworks:
            info, reason = _timed(base, fw, backend, configs, args.memory, threads)
            if info is None:
                skipped.append({"framework": fw, "backend": backend, "reason": reason})
            else:
                runs.append(info)
                progress(f"timed {label(fw, backend)}")

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
                    progress(f"trained {label(fw, backend)}")

    return {"meta": machine_meta(threads, argv),
            "settings": {"backends": backends, "peer": args.peer, "quick": args.quick,
                         "memory": args.memory, "repeats": args.repeats, "warmup": args.warmup,
                         "threads": threads, "data": data, "seed": args.seed, "arch": args.arch,
                         "recompute_every": args.recompute_every},
            "seed_config": seed, "sweep_values": {} if args.quick else sweep,
            "runs": runs, "skipped": skipped, "comparison": compare(runs, args.memory),
            "train": train_runs, "train_comparison": compare_train(train_runs)}


def benchmark(argv, progress=None):
    """What `minisnn bench ARGS` does, as a function: run the benchmark, write bench.json (and
    bench.png) into --out; returns (report, the files written). Prints nothing itself."""
    argv = list(argv)
    args = build_parser().parse_args(argv)
    report = run(args, argv, progress)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write(out / "bench.json", json.dumps(report, indent=1))
    written = [out / "bench.json"]
    if not args.no_plot and report["runs"]:
        plot(report, out / "bench.png")
        written.append(out / "bench.png")
    return report, written


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    if args.worker is not None:
        # every framework under the same allocator settings as `minisnn train` (minisnn/malloc.py)
        tuned = keep_freed_memory()
        result = dict(run_worker(json.loads(args.worker)), malloc_tuned=tuned)
        print(RESULT_MARK + json.dumps(result), flush=True)
        return 0
    report, written = benchmark(argv)
    print(format_report(report))
    print("\nwrote " + ", ".join(str(p) for p in written))
    return 0 if report["runs"] else 1

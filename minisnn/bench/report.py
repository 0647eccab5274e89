"""The text report of `minisnn bench`: machine and settings, the seed point by phase, the ratios,
the sweep, peak memory and the training runs."""
from .frameworks import BACKENDS, PEERS, label
from .plan import AXES, SWEEP, EVAL_BATCH, architecture, config_key

CONTENTION_WARN_PCT = 5


def fmt(v, nd=2):
    if v is None:
        return "—"
    return f"{v:.{nd}f}" if v < 1000 else f"{v:.0f}"


def _header(report):
    m, s = report["meta"], report["settings"]
    lines = [f"minisnn bench  {m['date']}  {m['cpu']} ({m['cpu_count']} cores), {s['threads']} "
             f"threads for NumPy's BLAS and torch; data: {s['data'] or 'random images'}"]
    busy = [(label(r["framework"], r["backend"]), r.get("others_cpu_pct"))
            for r in report["runs"] + report.get("train", [])]
    busy = [(name, pct) for name, pct in busy if pct is not None and pct > CONTENTION_WARN_PCT]
    if busy:
        lines.append("  WARNING: other processes kept the CPU busy during " + ", ".join(
            f"{name} ({pct:.0f}%)" for name, pct in busy) + ": those timings are inflated; "
            "rerun on an idle machine")
    for sk in report["skipped"]:
        lines.append(f"  (no {label(sk['framework'], sk['backend'])}: {sk['reason']})")
    return lines


def _seed(report):
    s, seed = report["settings"], report["seed_config"]
    arch = architecture(s.get("arch", "mlp"))
    every = s.get("recompute_every")
    lines = ["", f"{arch.TITLE} {arch.describe(seed)}, batch {seed['batch']}, {seed['steps']} "
                 f"steps" + ("" if every is None else f" (minisnn: BPTT in segments of {every})")
                 + f": ms per training iteration (median of {s['repeats']} after "
                 f"{s['warmup']} warm-up)",
             f"  {'':18s} {'forward':>8s} {'backward':>9s} {'step':>7s} {'total':>8s} "
             f"{'peak RSS MB':>12s} {'start RSS MB':>13s} {'peak GPU MB':>12s}"]
    for run in report["runs"]:
        r = next((r for r in run["results"] if "seed" in r["axes"]), None)
        if r is not None:
            lines.append(f"  {label(run['framework'], run['backend']):18s} "
                         f"{fmt(r['forward_ms']):>8s} {fmt(r['backward_ms']):>9s} "
                         f"{fmt(r['step_ms']):>7s} {fmt(r['total_ms']):>8s} "
                         f"{fmt(r.get('peak_rss_mb'), 0):>12s} {fmt(r.get('base_rss_mb'), 0):>13s} "
                         f"{fmt(r.get('peak_device_mb'), 0):>12s}")
    lines.append("  (peak RSS: the worker process after the seed point, its first; start RSS: after "
                 "importing the framework and loading the data)")
    row = next((r for r in report["comparison"] if "seed" in r["axes"]), {})
    for peer in PEERS:
        for backend in BACKENDS:
            x = row.get(f"speedup_vs_{peer}_{backend}")
            if x:
                lines.append(f"  minisnn/{backend} is {x:.2f}x as fast as {label(peer, backend)}"
                             + _memory_ratios(row, peer, backend))
    if row.get("cupy_speedup_over_numpy"):
        lines.append(f"  minisnn cupy/numpy speed ratio: {row['cupy_speedup_over_numpy']:.2f}x")
    return lines


def _memory_ratios(row, peer, backend):
    """', with 0.35x its peak RSS': minisnn's peak over the peer's (the row has peer/minisnn)."""
    parts = [f"{1 / row[key]:.2f}x its {what}" for what, key in
             (("peak RSS", f"peak_rss_vs_{peer}_{backend}"),
              ("peak GPU memory", f"peak_device_vs_{peer}_{backend}")) if row.get(key)]
    return f", with {' and '.join(parts)}" if parts else ""


def _sweep(report):
    rows = [r for r in report["comparison"] if r["axes"] != ["seed"]]
    if not rows:
        return []
    series = [(run["framework"], run["backend"]) for run in report["runs"]]
    names = {f"speedup_vs_{p}_{b}": f"vs {label(p, b)}" for p in PEERS for b in BACKENDS}
    names["cupy_speedup_over_numpy"] = "cupy/numpy"
    extra = [k for k in names if any(k in r for r in report["comparison"])]
    axes = [a for a in AXES if a in report["seed_config"]]
    lines = ["", "Sweep (one setting varied from the seed's): total ms per training iteration",
             f"  {'varied':7s}" + "".join(f" {a:>7s}" for a in axes)
             + "".join(f" {label(f, b):>15s}" for f, b in series)
             + "".join(f" {names[k]:>22s}" for k in extra)]
    for axis in SWEEP:
        for r in sorted((r for r in report["comparison"] if axis in r["axes"]), key=lambda r: r[axis]):
            lines.append(f"  {axis:7s}" + "".join(f" {r[a]:>7d}" for a in axes)
                         + "".join(f" {fmt(r.get(f'{f}_{b}_ms')):>15s}" for f, b in series)
                         + "".join(f" {fmt(r.get(k)) + 'x' if r.get(k) else '—':>22s}"
                                   for k in extra))
    if report["settings"].get("memory"):
        lines += ["", f"Peak RSS MB, a fresh process per point ({', '.join(axes)}):"]
        for run in report["runs"]:
            lines.append(f"  {label(run['framework'], run['backend']):18s} " + "  ".join(
                f"{'/'.join(map(str, config_key(r)))}: {fmt(r.get('peak_rss_mb'), 0)}"
                for r in sorted(run["results"], key=config_key)))
    return lines


def _train(report):
    if not report.get("train"):
        return []
    seed, t0 = report["seed_config"], report["train"][0]["run"]
    lines = ["", f"Training run, each framework in a fresh process: data {t0['data']}, "
                 f"{len(t0['epoch_s'])} epoch(s), {t0['iterations']} iterations of batch "
                 f"{seed['batch']}, {seed['steps']} steps",
             f"  {'':18s} {'ms/iter':>8s} {'fwd':>7s} {'bwd':>7s} {'step':>6s} {'epoch s':>8s} "
             f"{'peak RSS MB':>12s} {'start RSS MB':>13s} {'peak GPU MB':>12s} {'test acc':>9s} "
             f"{'RSS w/ eval':>12s}"]
    for tr in report["train"]:
        r = tr["run"]
        lines.append(f"  {label(tr['framework'], tr['backend']):18s} {fmt(r['total_ms']):>8s} "
                     f"{fmt(r['forward_ms']):>7s} {fmt(r['backward_ms']):>7s} {fmt(r['step_ms']):>6s} "
                     f"{fmt(sum(r['epoch_s'])):>8s} {fmt(r['peak_rss_mb'], 0):>12s} "
                     f"{fmt(r.get('base_rss_mb'), 0):>13s} "
                     f"{fmt(r.get('peak_device_mb'), 0):>12s} {100 * r['test_accuracy']:>8.2f}% "
                     f"{fmt(r.get('peak_with_eval_rss_mb'), 0):>12s}")
    lines.append(f"  (peak RSS: at the end of training; RSS w/ eval: after the test-set evaluation "
                 f"too, in batches of {EVAL_BATCH}; start RSS: after imports and data loading)")
    for c in report.get("train_comparison", []):
        lines.append(f"  {label(c['peer'], c['backend'])} / minisnn/{c['backend']}: time per "
                     f"iteration {c['time_per_iteration']:.2f}x, epoch time {c['epoch_time']:.2f}x, "
                     f"peak RSS {fmt(c['peak_rss'])}x" + (
                         f", peak GPU memory {c['peak_device_memory']:.2f}x"
                         if "peak_device_memory" in c else ""))
    return lines


def format_report(report):
    return "\n".join(_header(report) + _seed(report) + _sweep(report) + _train(report))

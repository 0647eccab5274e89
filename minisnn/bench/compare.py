"""Ratios between the timed runs: minisnn against each peer on the same device, CuPy against
NumPy, and the same for the training runs (> 1: minisnn is faster or smaller)."""
from .frameworks import BACKENDS, PEERS
from .plan import AXES, config_key

MEMORY = (("peak_rss_mb", "peak_rss"), ("peak_device_mb", "peak_device"))


def compare(runs, per_point_memory=False):
    """One row per configuration: each (framework, backend)'s total ms, minisnn's speed-up over
    each peer on each backend (peer ms / minisnn ms) and CuPy's over NumPy for minisnn; and the
    peer's peak memory over minisnn's (peak_rss_vs_…, peak_device_vs_…), for the seed point
    (each worker's first, so its peak is its own) or, with per_point_memory (--memory: a
    process per point), for every point."""
    table = {}
    for run in runs:
        for r in run["results"]:
            row = table.setdefault(config_key(r), dict({a: r[a] for a in AXES if a in r},
                                                       axes=r["axes"]))
            fw = f"{run['framework']}_{run['backend']}"
            row[f"{fw}_ms"] = r["total_ms"]
            if per_point_memory or "seed" in r["axes"]:
                row.update({f"{fw}_{k}": r[k] for k, _ in MEMORY if r.get(k)})
    for row in table.values():
        for peer in PEERS:
            for backend in BACKENDS:
                ours, theirs = row.get(f"minisnn_{backend}_ms"), row.get(f"{peer}_{backend}_ms")
                if ours and theirs:
                    row[f"speedup_vs_{peer}_{backend}"] = theirs / ours
                for k, name in MEMORY:
                    ours, theirs = (row.get(f"{fw}_{backend}_{k}") for fw in ("minisnn", peer))
                    if ours and theirs:
                        row[f"{name}_vs_{peer}_{backend}"] = theirs / ours
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
        for backend in BACKENDS:
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

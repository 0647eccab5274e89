"""Worker processes: every framework and backend is timed in a fresh Python process of its own
(`python -m minisnn.bench --worker SPEC`), with the same thread count for NumPy's BLAS and for
torch, so that their thread pools and their memory do not mix. The result comes back as one
JSON line on stdout, with what the machine was doing meanwhile."""
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

from .frameworks import FRAMEWORKS

RESULT_MARK = "MINISNN-BENCH-RESULT "
WORKER_TIMEOUT_S = 3600


def versions(framework, backend):
    import numpy as np
    from .. import __version__
    v = {"python": platform.python_version(), "numpy": np.__version__, "minisnn": __version__}
    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        v["numpy_blas"] = f"{blas.get('name')} {blas.get('version')}"
    except Exception:  # older NumPy: no dict form
        pass
    v.update(FRAMEWORKS[framework].versions(backend))
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
    info.update(FRAMEWORKS[framework].thread_info())
    return info


def run_worker(spec):
    """The body of a `--worker` process: run the spec, return a JSON-able dict."""
    module = FRAMEWORKS[spec["framework"]]
    result = (module.timing if spec["mode"] == "timing" else module.train)(spec)
    return {"framework": spec["framework"], "backend": spec["backend"], "mode": spec["mode"],
            "device": describe_device(spec["backend"]),
            "versions": versions(spec["framework"], spec["backend"]),
            "threads": thread_info(spec["framework"]),
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


def others_cpu_pct(contention):
    """CPU time the rest of the machine used during these workers, in % of their wall time
    times the cores."""
    wall = sum(c["wall_s"] * c["cores"] for c in contention)
    return 100 * sum(c["others_cpu_s"] for c in contention) / wall if wall else 0.0


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


def _spawn(spec, threads):
    env = dict(os.environ)
    for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[k] = str(threads)
    root = str(Path(__file__).resolve().parents[2])
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

"""The GPU section of docs/benchmarks.md, written from one run of benchmarks/gpu_check.sh:

    python -m minisnn.bench.gpu_summary OUT_DIR [--cpu-reference-ms 17.1] [--write FILE]

It reads OUT_DIR/seed/bench.json (the seed point, every backend and peer), sweep/bench.json (the
hidden sizes on the GPU), kernels/kernels.json (the fused kernels' bandwidth) and the pytest
summary line in gpu_check.log, and asks the machine (nvidia-smi, CuPy) for the GPU, driver and
CUDA versions. Every figure in it comes from those files: what a run did not measure shows as —.
"""
import argparse
import json
import re
import subprocess
import sys
from pathlib import Path

from .frameworks import label
from .report import fmt


def _load(path):
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def machine():
    """GPU name and memory, driver, CUDA runtime and driver versions, where they can be read."""
    info = {}
    try:
        row = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total,driver_version",
                              "--format=csv,noheader"], capture_output=True, text=True,
                             timeout=30).stdout.strip().splitlines()[0]
        info["gpu"], info["memory"], info["driver"] = [v.strip() for v in row.split(",")]
    except Exception:
        pass
    try:
        import cupy
        rt = cupy.cuda.runtime
        info["cuda_runtime"], info["cuda_driver"] = rt.runtimeGetVersion(), rt.driverGetVersion()
        info["cupy"] = cupy.__version__
    except Exception:
        pass
    return info


def _cuda(v):
    return f"{v // 1000}.{v % 1000 // 10}" if isinstance(v, int) and v > 0 else "—"


def _versions(*reports):
    out = {}
    for report in reports:
        for run in (report or {}).get("runs", []):
            out.update(run.get("versions", {}))
    return out


def _seed_table(seed, cpu_reference_ms):
    lines = ["| framework/device | forward | backward | step | **total** | peak GPU MB |",
             "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for run in seed.get("runs", []):
        r = next((r for r in run["results"] if "seed" in r["axes"]), None)
        if r:
            lines.append(f"| {label(run['framework'], run['backend'])} | {fmt(r['forward_ms'])} | "
                         f"{fmt(r['backward_ms'])} | {fmt(r['step_ms'])} | **{fmt(r['total_ms'])}** "
                         f"| {fmt(r.get('peak_device_mb'), 0)} |")
    row = next((r for r in seed.get("comparison", []) if "seed" in r["axes"]), {})
    lines.append("")
    cupy_ms = row.get("minisnn_cupy_ms")
    if row.get("cupy_speedup_over_numpy"):
        lines.append(f"* minisnn on CuPy is **{row['cupy_speedup_over_numpy']:.1f}×** as fast as "
                     f"minisnn on NumPy on this machine's CPU ({seed['settings']['threads']} threads).")
    if cupy_ms and cpu_reference_ms:
        lines.append(f"* … and **{cpu_reference_ms / cupy_ms:.1f}×** as fast as NumPy on the 2-core "
                     f"CPU above ({cpu_reference_ms} ms; target ≥ 30×).")
    for peer in ("snntorch", "snntorch-hoisted"):
        x = row.get(f"speedup_vs_{peer}_cupy")
        if x:
            lines.append(f"* minisnn/cupy is **{x:.2f}×** as fast as {label(peer, 'cupy')}"
                         + (" (target ≥ 2×)." if peer == "snntorch" else "."))
    return lines


def _sweep_table(sweep):
    rows = sorted((r for r in sweep.get("comparison", []) if "hidden" in r["axes"]),
                  key=lambda r: r["hidden"])
    if not rows:
        return ["(no hidden-size sweep in this run)"]
    series = [(run["framework"], run["backend"]) for run in sweep["runs"]]
    lines = ["| hidden | " + " | ".join(label(f, b) for f, b in series) + " | minisnn speed-up |",
             "| ---: |" + " ---: |" * (len(series) + 1)]
    for r in rows:
        x = r.get("speedup_vs_snntorch_cupy") or r.get("speedup_vs_snntorch_numpy")
        lines.append(f"| {r['hidden']} | " + " | ".join(fmt(r.get(f"{f}_{b}_ms")) for f, b in series)
                     + f" | {fmt(x) + '×' if x else '—'} |")
    return lines


def _kernel_table(kernels):
    if not kernels:
        return ["(no kernel timings in this run)"]
    p = kernels["peaks"]
    theo = f"{p['theoretical_GBps']:.0f} GB/s" if p.get("theoretical_GBps") else "—"
    lines = [f"Device copy {p['copy_GBps']:.0f} GB/s (bytes read + written), datasheet {theo}. "
             f"Per kernel: the bytes it must move over its time "
             f"({'CUDA events' if kernels['backend'] == 'cupy' else 'wall clock'}, "
             f"`{kernels['command']}`).", "",
             "| hidden | phase | kernel ms | layer ms | MB moved | GB/s | % of copy | % of datasheet |",
             "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in kernels["rows"]:
        pt = r.get("pct_of_theoretical")
        lines.append(f"| {r['hidden']} | {r['phase']} | {r['kernel_ms']:.4f} | {r['layer_ms']:.4f} "
                     f"| {r['bytes'] / 1e6:.1f} | {r['GBps']:.0f} | {r['pct_of_copy']:.0f}% | "
                     f"{f'{pt:.0f}%' if pt else '—'} |")
    return lines


def _point(report, varied=None):
    """'784-1000-10, batch 128, 25 steps' for a report's seed point (without the varied one)."""
    if not report:
        return "—"
    from .plan import architecture
    c = report["seed_config"]
    arch = architecture(report["settings"].get("arch", "mlp"))
    parts = ([] if varied == "hidden" else [arch.describe(c)]) + [f"batch {c['batch']}",
                                                                  f"{c['steps']} steps"]
    return ", ".join(parts)


def _pytest_line(log):
    try:
        text = Path(log).read_text(errors="replace")
    except OSError:
        return "—"
    found = re.findall(r"^=*\s*(\d+ (?:passed|failed|skipped|error).*?)\s*=*$", text, re.M)
    return found[-1] if found else "—"


def summary(out_dir, cpu_reference_ms=None):
    out = Path(out_dir)
    seed, sweep = _load(out / "seed" / "bench.json"), _load(out / "sweep" / "bench.json")
    kernels = _load(out / "kernels" / "kernels.json")
    m, v = machine(), _versions(seed, sweep)
    date = (seed or sweep or {}).get("meta", {}).get("date") or (kernels or {}).get("date", "—")
    cpu = (seed or {}).get("meta", {})
    lines = ["## GPU", "",
             f"**Machine.** {m.get('gpu', '—')} ({m.get('memory', '—')}), driver "
             f"{m.get('driver', '—')}, CUDA runtime {_cuda(m.get('cuda_runtime'))} (driver API "
             f"{_cuda(m.get('cuda_driver'))}), CuPy {m.get('cupy') or v.get('cupy', '—')}, "
             f"torch {v.get('torch', '—')} (CUDA {v.get('torch_cuda', '—')}), snnTorch "
             f"{v.get('snntorch', '—')}, NumPy {v.get('numpy', '—')}, Python {v.get('python', '—')}; "
             f"host CPU {cpu.get('cpu', '—')} ({cpu.get('cpu_count', '—')} cores). Measured {date} "
             f"with `benchmarks/gpu_check.sh OUT_DIR` (one run: the commands are in its log).", "",
             f"**GPU tests** (`pytest -m gpu`): {_pytest_line(out / 'gpu_check.log')}.", "",
             f"**Seed network** ({_point(seed)}), ms per training iteration, median:", ""]
    lines += _seed_table(seed, cpu_reference_ms) if seed else ["(no seed run)"]
    lines += ["", f"**Hidden size** ({_point(sweep, 'hidden')}): total ms per training "
                  f"iteration", ""]
    lines += _sweep_table(sweep) if sweep else ["(no sweep run)"]
    r0 = (kernels or {}).get("rows", [{}])[0]
    lines += ["", f"**Fused Leaky kernels alone** (the hidden layer: batch {r0.get('batch', '—')}, "
                  f"{r0.get('steps', '—')} steps, {r0.get('dtype', '—')}, static input; target: "
                  f"each ≥ 60% of the memory bandwidth at hidden 10,000, batch 128, 25 steps)", ""]
    lines += _kernel_table(kernels)
    return "\n".join(lines) + "\n"


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m minisnn.bench.gpu_summary",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("out_dir")
    p.add_argument("--cpu-reference-ms", type=float, default=None,
                   help="minisnn/numpy's seed-point ms on the reference CPU, for the ratio")
    p.add_argument("--write", default=None, help="also write it to this file (atomically)")
    args = p.parse_args(argv)
    text = summary(args.out_dir, args.cpu_reference_ms)
    if args.write:
        from ..atomic import atomic_write
        atomic_write(args.write, text)
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

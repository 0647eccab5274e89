"""benchmarks/gpu_check.sh, the one prepared GPU check, kept from rotting without a GPU: its
--dry-run runs every step on the CPU with NumPy at tiny sizes; the fused-kernel timing
(minisnn.bench.kernels) also runs its CuPy branch on the CPU emulator of CuPy; and the GPU
section it writes (minisnn.bench.gpu_summary) is checked on made-up GPU figures."""
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from minisnn.bench import gpu_summary, kernels

import fused_cpu_harness as harness

REPO = Path(__file__).resolve().parents[1]
STEPS = ("install", "environment", "sanity", "seed", "kernels", "sweep", "tests", "summary")
FILES = ("gpu_check.log", "summary.md", "seed/bench.json", "seed/bench.png",
         "kernels/kernels.json", "kernels/kernels.png", "sweep/bench.json", "sweep/bench.png")


@pytest.mark.skipif(shutil.which("bash") is None or shutil.which("timeout") is None,
                    reason="needs bash and timeout")
def test_dry_run_runs_every_step(tmp_path):
    out = tmp_path / "out"
    env = dict(os.environ, PYTHON=sys.executable)
    done = subprocess.run(["bash", str(REPO / "benchmarks" / "gpu_check.sh"), "--dry-run", str(out)],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    log = (out / "gpu_check.log").read_text()
    for step in STEPS:
        assert f"=== {step}: exit 0" in log, step
    assert "every step passed" in log
    written = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert written == sorted(FILES)                # what the device tool brings back: 8 files
    seed = json.loads((out / "seed" / "bench.json").read_text())
    assert seed["settings"]["quick"] and seed["runs"][0]["framework"] == "minisnn"
    sweep = json.loads((out / "sweep" / "bench.json").read_text())
    assert sorted(r["hidden"] for r in sweep["comparison"]) == [16, 32, 64]
    k = json.loads((out / "kernels" / "kernels.json").read_text())
    assert [(r["hidden"], r["phase"]) for r in k["rows"]] == [
        (16, "forward"), (16, "backward"), (64, "forward"), (64, "backward")]
    assert all(r["kernel_ms"] > 0 and r["GBps"] > 0 for r in k["rows"])
    summary = (out / "summary.md").read_text()
    assert summary.startswith("## GPU") and "| minisnn/numpy |" in summary
    assert "| 64 | backward |" in summary


def test_bytes_each_kernel_must_move():
    # B·N = 2·3: forward reads I (6) and writes U, S (2·4·6); backward reads U, ∂L/∂S, writes ∂L/∂I
    assert kernels.bytes_moved(3, 2, 4, 4) == {"forward": (6 + 48) * 4, "backward": (48 + 6) * 4}
    assert kernels.bytes_moved(10000, 128, 25, 4)["forward"] == (1280000 + 64000000) * 4


@pytest.mark.skipif(importlib.util.find_spec("cupy") is not None, reason="a real CuPy is here")
@pytest.mark.skipif(not harness.compilers_available(), reason="needs gcc and g++")
def test_kernel_timing_on_the_cupy_emulator(tmp_path):
    """The CuPy branch of minisnn.bench.kernels (kernel-only launches with pre-packed arguments,
    CUDA-event clock, device attributes), run on the CPU emulator of CuPy."""
    folder = harness.write_cupy_emulator(tmp_path / "emulator")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(folder), str(REPO)] + [p for p in [os.environ.get("PYTHONPATH")] if p]))
    done = subprocess.run([sys.executable, "-m", "minisnn.bench.kernels", "--backend", "cupy",
                           "--hidden", "8,16", "--batch", "4", "--steps", "3", "--launches", "2",
                           "--samples", "2", "--copy-mb", "1", "--out", str(tmp_path / "k")],
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    result = json.loads((tmp_path / "k" / "kernels.json").read_text())
    assert result["device"] == "CPU emulator (minisnn tests)" and len(result["rows"]) == 4
    assert result["peaks"]["theoretical_GBps"] is None      # the emulator has no memory clock
    assert "% copy" in done.stdout


def fake_report(rows, threads=16):
    runs = {}
    for fw, backend, hidden, ms in rows:
        runs.setdefault((fw, backend), []).append(
            {"batch": 128, "hidden": hidden, "steps": 25, "axes": ["seed"] if hidden == 1000
             else ["hidden"], "forward_ms": ms / 2, "backward_ms": ms / 3, "step_ms": ms / 6,
             "total_ms": ms})
    from minisnn.bench import compare
    runs = [{"framework": f, "backend": b, "results": r, "versions": {"torch": "2.11.0"}}
            for (f, b), r in runs.items()]
    return {"runs": runs, "comparison": compare(runs), "seed_config":
            {"batch": 128, "hidden": 1000, "steps": 25}, "settings": {"threads": threads},
            "meta": {"date": "2099-01-01", "cpu": "test CPU", "cpu_count": 16}}


def test_gpu_summary_on_made_up_figures(tmp_path, monkeypatch):
    monkeypatch.setattr(gpu_summary, "machine", lambda: {"gpu": "Test GPU", "driver": "1.0",
                                                         "memory": "1 MiB", "cupy": "14.2.0"})
    (tmp_path / "seed").mkdir()
    (tmp_path / "sweep").mkdir()
    (tmp_path / "kernels").mkdir()
    seed = fake_report([("minisnn", "numpy", 1000, 10.0), ("minisnn", "cupy", 1000, 0.5),
                        ("snntorch", "cupy", 1000, 2.0)])
    (tmp_path / "seed" / "bench.json").write_text(json.dumps(seed))
    sweep = fake_report([("minisnn", "cupy", h, h / 1000) for h in (100, 1000, 10000)]
                        + [("snntorch", "cupy", h, 1 + h / 500) for h in (100, 1000, 10000)])
    (tmp_path / "sweep" / "bench.json").write_text(json.dumps(sweep))
    row = {"hidden": 10000, "batch": 128, "steps": 25, "dtype": "float32", "phase": "forward",
           "kernel_ms": 0.1, "layer_ms": 0.12, "bytes": 261e6, "GBps": 2610.0, "pct_of_copy": 65.0,
           "pct_of_theoretical": 54.0}
    (tmp_path / "kernels" / "kernels.json").write_text(json.dumps(
        {"backend": "cupy", "command": "python -m minisnn.bench.kernels", "rows": [row],
         "peaks": {"copy_GBps": 4000.0, "theoretical_GBps": 4800.0}}))
    (tmp_path / "gpu_check.log").write_text("...\n===== 150 passed, 2 skipped in 40.1s =====\n")
    text = gpu_summary.summary(tmp_path, cpu_reference_ms=17.1)
    assert "Test GPU (1 MiB), driver 1.0" in text and "CuPy 14.2.0" in text
    assert "150 passed, 2 skipped in 40.1s" in text
    assert "**20.0×** as fast as minisnn on NumPy" in text          # 10 / 0.5
    assert "**34.2×** as fast as NumPy on the 2-core" in text        # 17.1 / 0.5
    assert "**4.00×** as fast as snnTorch/cuda (target ≥ 2×)" in text
    assert "| 10000 | 10.00 | 21.00 | 2.10× |" in text
    assert "| 10000 | forward | 0.1000 | 0.1200 | 261.0 | 2610 | 65% | 54% |" in text


@pytest.mark.skipif(importlib.util.find_spec("cupy") is not None, reason="a real CuPy is here")
@pytest.mark.skipif(not harness.compilers_available(), reason="needs gcc and g++")
def test_bench_cupy_worker_on_the_cupy_emulator(tmp_path):
    """`minisnn bench --backend cupy`'s worker (CuPy clock, device name, memory pool, fused
    kernels through CuPy's RawModule) run on the CPU emulator of CuPy."""
    folder = harness.write_cupy_emulator(tmp_path / "emulator")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(folder), str(REPO)] + [p for p in [os.environ.get("PYTHONPATH")] if p]))
    done = subprocess.run([sys.executable, "-m", "minisnn", "bench", "--backend", "all", "--quick",
                           "--no-peer", "--data", "random", "--batch", "4", "--hidden", "8",
                           "--steps", "3", "--repeats", "2", "--warmup", "1",
                           "--out", str(tmp_path / "b")],
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    report = json.loads((tmp_path / "b" / "bench.json").read_text())
    runs = {r["backend"]: r for r in report["runs"]}
    assert set(runs) == {"numpy", "cupy"} and report["skipped"] == []
    assert runs["cupy"]["device"] == "CPU emulator (minisnn tests)"
    assert runs["cupy"]["versions"]["cupy"] == "0.0+cpu-emulator"
    assert runs["cupy"]["results"][0]["peak_device_mb"] == 0
    assert report["comparison"][0]["cupy_speedup_over_numpy"] > 0
    assert "minisnn cupy/numpy speed ratio" in done.stdout

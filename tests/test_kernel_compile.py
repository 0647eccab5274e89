"""Every specialisation of the fused CUDA kernels, compiled by NVRTC for sm_80 and sm_90 with the
options CuPy 14 uses, on a machine without a GPU (tests/nvrtc_build.py says how).

Checked: each of the 2 dtypes x 3 resets x detached or not x 6 surrogates = 72 sources, and the
backend's probe kernel, compiles for both architectures with no error and no warning (NVRTC's log
must be empty); float32 kernels do no float64 arithmetic (their PTX touches float64 only in the
load of a learned β and its conversion to float); `--fmad=false` keeps every multiply-add apart
(no `fma` in the PTX of kernels that call no library function: the sigmoid surrogate's expf
has fma inside it by design).

Needs the NVRTC and cuda-bindings wheels (CI installs them: .ci/run); skipped with the install
command where they are missing, or failed instead when MINISNN_REQUIRE_NVRTC=1 (set by CI, so
that the test cannot silently stop running there).
"""
import os
from concurrent.futures import ThreadPoolExecutor

import pytest

from minisnn import backend, fused

import fused_cpu_harness as harness
import nvrtc_build

ARCHS = (80, 90)


@pytest.fixture(scope="module")
def nvrtc():
    try:
        module, version = nvrtc_build.load_nvrtc()
    except Exception as e:   # ImportError without the wheels; RuntimeError if libnvrtc won't load
        reason = (f"NVRTC and cuda-bindings are needed to compile the CUDA kernels on the CPU "
                  f"({type(e).__name__}: {e}); {nvrtc_build.INSTALL}")
        if os.environ.get("MINISNN_REQUIRE_NVRTC") == "1":
            pytest.fail(reason + " [MINISNN_REQUIRE_NVRTC=1]")
        pytest.skip(reason)
    return module, version


def build_all(nvrtc, jobs):
    """Compile (label, source, options) jobs in parallel; returns {label: (ok, log, ptx)}."""
    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 1)) as pool:
        results = pool.map(lambda job: nvrtc_build.compile_source(nvrtc, job[1], job[2]), jobs)
        return {job[0]: result for job, result in zip(jobs, results)}


@pytest.fixture(scope="module")
def built(nvrtc):
    module, _ = nvrtc
    jobs = [((key, arch), fused.kernel_source(*key, target="cuda"), nvrtc_build.cupy_options(arch))
            for key in harness.all_keys() for arch in ARCHS]
    jobs += [(("probe", arch), backend.PROBE_SOURCE, nvrtc_build.cupy_options(arch, ("--fmad=false",)))
             for arch in ARCHS]
    return build_all(module, jobs)


def test_every_specialisation_compiles_without_a_warning(nvrtc, built):
    keys = {key for key, _ in built if key != "probe"}
    assert len(keys) == 72 and len(built) == 2 * 73
    failed = {label: log for label, (ok, log, _) in built.items() if not ok}
    warned = {label: log for label, (ok, log, _) in built.items() if ok and log}
    print(f"\nNVRTC {nvrtc[1][0]}.{nvrtc[1][1]}: {len(built)} compiles ({len(keys)} kernel "
          f"sources + the probe, sm_{' and sm_'.join(map(str, ARCHS))}), "
          f"{len(failed)} failed, {len(warned)} with warnings")
    assert not failed, failed
    assert not warned, warned


def test_float32_kernels_do_no_float64_arithmetic(built):
    f64 = {label: nvrtc_build.float64_arithmetic(ptx) for label, (_, _, ptx) in built.items()}
    float32 = [label for label in built if label[0] != "probe" and label[0][0] == "float32"]
    found = {label: ops for label in float32 if (ops := f64[label])}
    allowed = sum(bool(nvrtc_build.F64_ALLOWED.match(op)) for label in float32
                  for op in nvrtc_build.ptx_instructions(built[label][2]))
    print(f"\nfloat32 PTX of {len(float32)} compiles: {sum(map(len, found.values()))} float64 "
          f"instructions besides the learned-β load and conversion ({allowed} of those)")
    assert not found, found
    assert not f64[("probe", 90)]
    # the check sees float64 where there is some: every float64 kernel is full of it
    assert all(len(f64[label]) > 20 for label in built
               if label[0] != "probe" and label[0][0] == "float64")


def test_the_float64_check_catches_a_double_literal(nvrtc):
    """A deliberate slip: `1.0` (a double) in the float32 atan surrogate promotes its arithmetic."""
    source = fused.kernel_source("float32", "subtract", True, "atan", target="cuda")
    slipped = source.replace("return p0 / (1 + kv * kv);", "return p0 / (1.0 + kv * kv);")
    assert slipped != source
    ok, log, ptx = nvrtc_build.compile_source(nvrtc[0], slipped, nvrtc_build.cupy_options(90))
    assert ok and {"add.rn.f64", "div.rn.f64"} <= set(nvrtc_build.float64_arithmetic(ptx))


def test_fmad_false_keeps_multiply_and_add_apart(nvrtc, built):
    no_library = [label for label in built if label[0] == "probe" or label[0][3] != "sigmoid"]
    fused_ops = {label: [op for op in nvrtc_build.ptx_instructions(built[label][2])
                         if op.startswith("fma")] for label in no_library}
    assert not any(fused_ops.values()), {k: v[:3] for k, v in fused_ops.items() if v}
    # without the option NVRTC does contract them, so the check above can fail
    key = ("float32", "zero", False, "atan")
    options = tuple(o for o in nvrtc_build.cupy_options(90) if o != "--fmad=false")
    ok, _, ptx = nvrtc_build.compile_source(nvrtc[0], fused.kernel_source(*key), options)
    assert ok and any(op.startswith("fma") for op in nvrtc_build.ptx_instructions(ptx))


def test_a_warning_is_seen(nvrtc):
    """The warning check reads NVRTC's log: an unused variable shows up there."""
    source = backend.PROBE_SOURCE.replace("const int i =", "int unused = 0; const int i =")
    ok, log, _ = nvrtc_build.compile_source(nvrtc[0], source, nvrtc_build.cupy_options(90))
    assert ok and "warning" in log and "unused" in log

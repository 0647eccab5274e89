"""NVRTC without a GPU: compile minisnn's kernel sources as CuPy 14 compiles them.

NVRTC is a library that compiles CUDA C++ to PTX and to machine code (cubin) for a named GPU
architecture; it needs no GPU and no driver. The NVIDIA wheels `nvidia-cuda-nvrtc` (the library)
and `cuda-bindings` (its Python bindings) bring it to a CPU-only machine:

    pip install "nvidia-cuda-nvrtc==13.*" "cuda-bindings==13.*"

`cupy_options(arch)` is the option list CuPy 14.2 hands NVRTC for `cupy.RawModule(code,
options=fused.NVRTC_OPTIONS)` on a GPU of compute capability `arch`, read from CuPy's source:
  cupy/_core/core.pyx  assemble_cupy_compiler_options: the bundled CCCL include folders first,
                       then the caller's options, '--std=c++14' when none is given, CuPy's own
                       include folder and the CUDA toolkit's include folder;
  cupy/cuda/compiler.py  _compile_with_cache_cuda: '-ftz=true';
                       _compile_using_nvrtc_no_warning: '-arch=sm_XX' (straight to cubin, for
                       every architecture NVRTC knows) and '--device-as-default-execution-space'.
The include folders are left out here: the kernels include no header when compiled for CUDA.
(tests/test_gpu.py checks on a GPU that CuPy really passes these options.)
"""
import re

INSTALL = 'pip install "nvidia-cuda-nvrtc==13.*" "cuda-bindings==13.*"'


def cupy_options(arch, own=None):
    """What CuPy 14.2 passes to NVRTC for a RawModule with options `own` (default: the fused
    kernels' NVRTC_OPTIONS), include folders left out."""
    if own is None:
        from minisnn.fused import NVRTC_OPTIONS as own
    std = () if any("-std=" in o for o in own) else ("--std=c++14",)
    return tuple(own) + std + ("-ftz=true", f"-arch=sm_{arch}",
                               "--device-as-default-execution-space")


def load_nvrtc():
    """(the cuda.bindings.nvrtc module, (major, minor)); raises ImportError or RuntimeError with
    the reason when the wheels are missing or the library does not load."""
    from cuda.bindings import nvrtc
    err, major, minor = nvrtc.nvrtcVersion()
    if err != nvrtc.nvrtcResult.NVRTC_SUCCESS:
        raise RuntimeError(f"nvrtcVersion failed: {err}")
    return nvrtc, (major, minor)


def compile_source(nvrtc, source, options, name="minisnn_kernels.cu"):
    """Compile `source`; returns (ok, log, ptx). The log holds every error and warning (empty when
    there are none); ptx is '' when the compile failed."""
    def text(call, prog):
        err, size = call[0](prog)
        buf = b" " * size
        call[1](prog, buf)
        return buf.rstrip(b"\x00").decode(errors="replace")

    err, prog = nvrtc.nvrtcCreateProgram(source.encode(), name.encode(), 0, [], [])
    if err != nvrtc.nvrtcResult.NVRTC_SUCCESS:
        raise RuntimeError(f"nvrtcCreateProgram failed: {err}")
    try:
        (result,) = nvrtc.nvrtcCompileProgram(prog, len(options), [o.encode() for o in options])
        ok = result == nvrtc.nvrtcResult.NVRTC_SUCCESS
        log = text((nvrtc.nvrtcGetProgramLogSize, nvrtc.nvrtcGetProgramLog), prog).strip()
        ptx = text((nvrtc.nvrtcGetPTXSize, nvrtc.nvrtcGetPTX), prog) if ok else ""
        if ok and "-arch=sm_" in " ".join(options):
            err, size = nvrtc.nvrtcGetCUBINSize(prog)
            ok = err == nvrtc.nvrtcResult.NVRTC_SUCCESS and size > 0
    finally:
        nvrtc.nvrtcDestroyProgram(prog)
    return ok, log, ptx


_INSTRUCTION = re.compile(r"^\s*(?:@!?%p\d+\s+)?([a-z][\w.]*)\s")


def ptx_instructions(ptx):
    """The opcodes of the PTX instructions, in order (declarations, labels, braces skipped)."""
    out = []
    for line in ptx.splitlines():
        line = line.split("//", 1)[0]
        m = _INSTRUCTION.match(line)
        if m and not line.lstrip().startswith("."):
            out.append(m.group(1))
    return out


# A float32 kernel may touch float64 only where it loads a learned β (a float64 parameter) and
# converts it to float, once per thread: that load and that conversion.
F64_ALLOWED = re.compile(r"^(ld\.global(\.nc)?\.f64|cvt\.rn(\.ftz)?\.f32\.f64)$")


def float64_arithmetic(ptx):
    """The instructions of `ptx` that work on float64, except the β load and its conversion."""
    return [op for op in ptx_instructions(ptx) if "f64" in op and not F64_ALLOWED.match(op)]

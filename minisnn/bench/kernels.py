"""The fused Leaky kernels alone: time and achieved memory bandwidth per hidden size.

    python -m minisnn.bench.kernels --hidden 100,300,1000,3000,10000 --out runs/kernels

The seed network's hidden layer (batch 128, 25 steps, float32, β = 0.95, atan, subtractive reset,
static input current fc1(x)) at each hidden size N. Its forward kernel must read I (B·N) and
write U and S (2·T·B·N); its backward must read U and ∂L/∂S (2·T·B·N) and write ∂L/∂I (B·N). Those
bytes over the kernel's time (CUDA events around `launches` back-to-back launches, median of
`samples`) are its achieved bandwidth, set against the device's: a device-to-device copy measured
the same way (bytes read + written), and the datasheet figure from the memory clock and bus width.
`layer_ms` is the same step through `Leaky.forward` / `Leaky.backward`, host overhead included.

On NumPy (`--backend numpy`, the dry run) the same code times the reference path with the wall
clock: the figures then say nothing about the GPU, only that the script works.
Writes kernels.json and kernels.png into --out; prints a table.
"""
import argparse
import datetime
import json
import statistics
import sys
from pathlib import Path

from ..atomic import atomic_open, atomic_write


def _clock(backend):
    from .timing import WallClock, cupy_clock
    return cupy_clock() if backend == "cupy" else WallClock()


def time_ms(fn, clock, launches, samples, warmup=3):
    """Median over `samples` of the time of `launches` calls of fn in a row, per call (ms)."""
    for _ in range(warmup):
        fn()
    clock.sync()
    per_call = []
    for _ in range(samples):
        marks = [clock.mark()]
        for _ in range(launches):
            fn()
        marks.append(clock.mark())
        per_call.append(clock.elapsed_ms(marks)[0] / launches)
    return statistics.median(per_call)


def device_peaks(xp, backend, clock, copy_mb):
    """{'copy_GBps': measured device copy, 'theoretical_GBps': memory clock x bus (or None)}."""
    n = int(copy_mb * 2 ** 20) // 4
    src, dst = xp.ones(n, dtype="float32"), xp.empty(n, dtype="float32")
    ms = time_ms(lambda: xp.copyto(dst, src), clock, launches=5, samples=5)
    peaks = {"copy_GBps": 2 * src.nbytes / ms / 1e6, "copy_MB": copy_mb, "theoretical_GBps": None}
    if backend == "cupy":
        try:   # cudaDevAttrMemoryClockRate (kHz) = 36, cudaDevAttrGlobalMemoryBusWidth (bits) = 37
            rt, dev = xp.cuda.runtime, xp.cuda.Device().id
            clock_khz, bus_bits = rt.deviceGetAttribute(36, dev), rt.deviceGetAttribute(37, dev)
            peaks["theoretical_GBps"] = 2 * clock_khz * 1e3 * bus_bits / 8 / 1e9
        except Exception:
            pass
    return peaks


def _layer_calls(layer, I, dS, steps):
    """Forward and backward through the Leaky layer itself: I is the static input current (B, N)
    (given as (1, B, N) where the layer wants a time axis), dS is ∂L/∂S (T, B, N)."""
    import inspect
    try:
        _, rec = layer.forward(I, steps)
    except (TypeError, ValueError):
        I = I[None]
        _, rec = layer.forward(I, steps)
    if "dS_out" in inspect.signature(layer.backward).parameters:
        backward = lambda: layer.backward(rec, dS_out=dS)
    else:                                         # backward(record, d_out): d_out is ∂L/∂S
        backward = lambda: layer.backward(rec, dS)
    return rec, (lambda: layer.forward(I, steps), backward)


def _steps(xp, backend, hidden, batch, steps, dtype, seed=0):
    """(forward, backward) callables through the layer, and kernel-only where there are kernels."""
    import numpy
    from .. import fused
    from ..backend import to_xp
    from ..neuron import Leaky
    rng = numpy.random.default_rng(seed)
    I = to_xp((rng.random((batch, hidden), dtype="float32") * 0.3).astype(dtype), xp)
    dS = to_xp((rng.random((steps, batch, hidden), dtype="float32") - 0.5).astype(dtype), xp)
    layer = Leaky(0.95)
    rec, through_layer = _layer_calls(layer, I, dS, steps)
    kernels = fused.kernels_for(layer) if backend == "cupy" else None
    if kernels is None:
        return through_layer, through_layer
    forward, backward = kernels.launchers(fused.kernel_key(layer, I.dtype))
    BN, U, S = batch * hidden, xp.empty_like(rec.U), xp.empty_like(rec.S)
    p0, p1 = fused.surrogate_params(layer.surrogate)
    fargs = fused._pack("forward", dict(I=I, beta_ptr=None, U=U, S=S, beta=layer.beta,
                                        thr=layer.threshold, T=steps, BN=BN, flags=fused.STATIC),
                        I.dtype, kernels.target)
    bargs = fused._pack("backward", dict(U=rec.U, dU_out=None, dS_out=dS, beta_ptr=None,
                                         dI=xp.empty_like(I), dbeta_part=None, beta=layer.beta,
                                         thr=layer.threshold, p0=p0, p1=p1, T=steps, BN=BN,
                                         flags=fused.STATIC | fused.HAS_DS), I.dtype, kernels.target)
    return through_layer, (lambda: forward(BN, fargs), lambda: backward(BN, bargs))


def bytes_moved(hidden, batch, steps, itemsize):
    """The fewest bytes each kernel must read and write (static input, ∂L/∂S given)."""
    BN, TBN = batch * hidden, steps * batch * hidden
    return {"forward": (BN + 2 * TBN) * itemsize, "backward": (2 * TBN + BN) * itemsize}


def sweep(backend, hidden_sizes, batch, steps, dtype, launches, samples, copy_mb):
    from ..backend import array_module
    xp = array_module(backend)
    clock = _clock(backend)
    peaks = device_peaks(xp, backend, clock, copy_mb)
    rows = []
    for hidden in hidden_sizes:
        layer_steps, kernel_steps = _steps(xp, backend, hidden, batch, steps, dtype)
        moved = bytes_moved(hidden, batch, steps, 8 if dtype == "float64" else 4)
        for phase, i in (("forward", 0), ("backward", 1)):
            kernel_ms = time_ms(kernel_steps[i], clock, launches, samples)
            layer_ms = time_ms(layer_steps[i], clock, max(1, launches // 2), samples)
            gbps = moved[phase] / kernel_ms / 1e6
            rows.append({"hidden": hidden, "batch": batch, "steps": steps, "dtype": dtype,
                         "phase": phase, "kernel_ms": kernel_ms, "layer_ms": layer_ms,
                         "bytes": moved[phase], "GBps": gbps,
                         "pct_of_copy": 100 * gbps / peaks["copy_GBps"],
                         "pct_of_theoretical": (100 * gbps / peaks["theoretical_GBps"]
                                                if peaks["theoretical_GBps"] else None)})
        del layer_steps, kernel_steps
    return peaks, rows


def _device(backend):
    from .worker import cpu_model, describe_device
    return describe_device(backend) if backend == "cupy" else cpu_model()


def format_table(result):
    p = result["peaks"]
    theo = f"{p['theoretical_GBps']:.0f} GB/s" if p["theoretical_GBps"] else "not known"
    lines = [f"Fused Leaky kernels on {result['device']} ({result['backend']}): device copy "
             f"{p['copy_GBps']:.0f} GB/s (read + write), datasheet {theo}",
             f"  {'hidden':>7s} {'phase':>9s} {'kernel ms':>10s} {'layer ms':>9s} {'MB':>8s} "
             f"{'GB/s':>8s} {'% copy':>7s} {'% datasheet':>12s}"]
    for r in result["rows"]:
        theo = f"{r['pct_of_theoretical']:.0f}%" if r["pct_of_theoretical"] else "—"
        lines.append(f"  {r['hidden']:>7d} {r['phase']:>9s} {r['kernel_ms']:>10.4f} "
                     f"{r['layer_ms']:>9.4f} {r['bytes'] / 1e6:>8.1f} {r['GBps']:>8.1f} "
                     f"{r['pct_of_copy']:>6.0f}% {theo:>12s}")
    return "\n".join(lines)


def plot(result, path):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    fig = Figure(figsize=(6.4, 4.0))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    for phase in ("forward", "backward"):
        pts = [(r["hidden"], r["GBps"]) for r in result["rows"] if r["phase"] == phase]
        ax.plot(*zip(*pts), marker="o", label=f"{phase} kernel")
    p = result["peaks"]
    ax.axhline(p["copy_GBps"], color="gray", ls="--", label="device copy")
    if p["theoretical_GBps"]:
        ax.axhline(p["theoretical_GBps"], color="black", ls=":", label="datasheet")
    r0 = result["rows"][0]
    ax.set(xscale="log", xlabel="hidden size N", ylabel="achieved GB/s (bytes it must move / time)",
           title=f"fused Leaky kernels, batch {r0['batch']}, {r0['steps']} steps, {r0['dtype']}: "
                 f"{result['device']}")
    ax.title.set_fontsize(8)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_open(path) as f:
        fig.savefig(f, format="png", dpi=110)


def build_parser():
    from .command import _at_least, _int_list
    p = argparse.ArgumentParser(prog="python -m minisnn.bench.kernels", description=__doc__.split("\n\n")[0])
    p.add_argument("--backend", choices=["cupy", "numpy"], default="cupy")
    p.add_argument("--hidden", type=_int_list, default=[100, 300, 1000, 3000, 10000], metavar="LIST")
    p.add_argument("--batch", type=_at_least(1), default=128)
    p.add_argument("--steps", type=_at_least(1), default=25)
    p.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    p.add_argument("--launches", type=_at_least(1), default=20, help="launches per timed sample")
    p.add_argument("--samples", type=_at_least(1), default=10, help="timed samples (median)")
    p.add_argument("--copy-mb", type=float, default=1024.0, help="size of the copy that measures the device")
    p.add_argument("--out", default="runs/kernels")
    return p


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    peaks, rows = sweep(args.backend, args.hidden, args.batch, args.steps, args.dtype,
                        args.launches, args.samples, args.copy_mb)
    from .worker import versions
    result = {"date": datetime.date.today().isoformat(), "backend": args.backend,
              "device": _device(args.backend), "versions": versions("minisnn", args.backend),
              "command": " ".join(["python -m minisnn.bench.kernels"] + argv),
              "peaks": peaks, "rows": rows}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write(out / "kernels.json", json.dumps(result, indent=1))
    plot(result, out / "kernels.png")
    print(format_table(result))
    print(f"\nwrote {out / 'kernels.json'}, {out / 'kernels.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

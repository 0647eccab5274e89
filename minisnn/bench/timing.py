"""Clocks and timing loops: host wall time on the CPU, CUDA events on the GPU."""
import statistics
import time

PHASES = ("forward_ms", "backward_ms", "step_ms")


class WallClock:
    """Host timing: perf_counter marks; nothing to synchronise on the CPU."""

    def mark(self):
        return time.perf_counter()

    def elapsed_ms(self, marks):
        return [(b - a) * 1e3 for a, b in zip(marks, marks[1:])]

    def sync(self):
        pass


class CudaClock:
    """GPU timing with CUDA events recorded on the current stream between the phases; one
    synchronisation on the last event per iteration. `event` makes a timing-enabled event,
    `elapsed(a, b)` returns milliseconds, `sync()` waits for the device."""

    def __init__(self, event, elapsed, sync):
        self._event, self._elapsed, self.sync = event, elapsed, sync

    def mark(self):
        e = self._event()
        e.record()
        return e

    def elapsed_ms(self, marks):
        marks[-1].synchronize()
        return [self._elapsed(a, b) for a, b in zip(marks, marks[1:])]


def cupy_clock():
    import cupy
    return CudaClock(cupy.cuda.Event, cupy.cuda.get_elapsed_time,
                     lambda: cupy.cuda.Device().synchronize())


def torch_cuda_clock():
    import torch
    return CudaClock(lambda: torch.cuda.Event(enable_timing=True),
                     lambda a, b: a.elapsed_time(b), torch.cuda.synchronize)


def _medians(rows):
    out = {n: statistics.median(r[i] for r in rows) for i, n in enumerate(PHASES)}
    out["total_ms"] = statistics.median(sum(r) for r in rows)
    return out


def time_phases(phases, clock, warmup, repeats):
    """Run `phases` (forward, backward, step: callables) warmup + repeats times; return the
    median milliseconds of each phase and of the whole iteration over the timed repeats."""
    for _ in range(warmup):
        for phase in phases:
            phase()
    clock.sync()
    rows = []
    for _ in range(repeats):
        marks = [clock.mark()]
        for phase in phases:
            phase()
            marks.append(clock.mark())
        rows.append(clock.elapsed_ms(marks))
    return dict(_medians(rows), repeats=repeats, warmup=warmup)


def training_loop(phases_for, batches, clock, epochs, max_iters, warmup):
    """Time every iteration of `epochs` passes (phases_for(batch) -> the three phases); the
    per-iteration figures are medians over the iterations after the first `warmup`."""
    iters, epoch_s = [], []
    for epoch in range(epochs):
        start = time.perf_counter()
        for batch in batches(epoch):
            if max_iters is not None and len(iters) >= max_iters:
                break
            marks = [clock.mark()]
            for phase in phases_for(batch):
                phase()
                marks.append(clock.mark())
            iters.append(clock.elapsed_ms(marks))
        clock.sync()
        epoch_s.append(time.perf_counter() - start)
    timed = iters[warmup:] or iters
    return dict(_medians(timed), iterations=len(iters), warmup=len(iters) - len(timed),
                epoch_s=epoch_s)

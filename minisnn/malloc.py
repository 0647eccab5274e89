"""Keep the memory of freed arrays for the next iteration (glibc's malloc, Linux only).

A training iteration of the seed network makes and frees the same (T, B, N) arrays of floats
every time (the records U and S, ∂L/∂S that becomes ∂L/∂U), 12.8 MB each at batch 128. glibc
may hand arrays that large straight back to the kernel when they are freed (its thresholds adapt,
but not always), and then the next iteration page-faults the same memory in again, zero-filled:
on a 2-core VM the seed point runs about 1.2× slower so (a third of the iteration, back when the
backward pass also made an array of surrogate values; see docs/benchmarks.md). Raising two
allocator thresholds keeps the freed memory in the heap, where the next iteration's arrays of the
same size reuse it. Peak memory barely moves: the process holds what it used at its peak anyway.

`release_freed_memory()` hands what is free back to the kernel, for when a run moves on to other
work (the CLI calls it after training, before it draws the loss curve with matplotlib).

This is process-wide tuning for the `minisnn` command (train, evaluate and the benchmark's
workers, snnTorch's included, so both run under the same allocator). The engine never calls it.
Set MINISNN_MALLOC=default to leave glibc's defaults alone.
"""
import ctypes
import os
import sys

M_TRIM_THRESHOLD = -1     # free memory at the top of the heap above this goes back to the kernel
M_MMAP_THRESHOLD = -3     # allocations above this get their own mmap, unmapped when freed
MMAP_THRESHOLD_MAX = 32 * 2 ** 20   # glibc's ceiling for M_MMAP_THRESHOLD on 64-bit systems


def _mallopt_libc():
    """glibc as a ctypes library, or None (another OS or C library, or MINISNN_MALLOC=default)."""
    if os.environ.get("MINISNN_MALLOC", "") == "default" or not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None)           # this process's own symbols, the C library's included
        libc.mallopt, libc.malloc_trim     # glibc has both; musl has neither
    except (OSError, AttributeError):
        return None
    libc.mallopt.argtypes, libc.mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    libc.malloc_trim.argtypes, libc.malloc_trim.restype = (ctypes.c_size_t,), ctypes.c_int
    return libc


def keep_freed_memory(trim_threshold=1 << 30, mmap_threshold=MMAP_THRESHOLD_MAX):
    """Set glibc's trim and mmap thresholds (bytes). Returns True if both were set; False, and
    changes nothing, on other platforms or C libraries, or when MINISNN_MALLOC=default."""
    libc = _mallopt_libc()
    if libc is None:
        return False
    ok = libc.mallopt(M_MMAP_THRESHOLD, int(min(mmap_threshold, MMAP_THRESHOLD_MAX)))
    return bool(ok and libc.mallopt(M_TRIM_THRESHOLD, int(min(trim_threshold, 2 ** 31 - 1))))


def release_freed_memory():
    """Give the free memory of the heap back to the kernel (glibc's malloc_trim). Returns True
    if glibc released some, False otherwise (also where keep_freed_memory does nothing)."""
    libc = _mallopt_libc()
    return bool(libc is not None and libc.malloc_trim(0))

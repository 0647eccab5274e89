"""Peak memory of a worker process: its resident set size (and, on the GPU, each framework adds
the peak of its memory pool)."""
import sys


def max_rss_mb():
    """This process's peak resident set size in MB: getrusage on Unix (KB on Linux, bytes on
    macOS), psutil's peak working set on Windows; None where neither is available."""
    try:
        import resource
    except ImportError:
        try:
            import psutil
            return psutil.Process().memory_info().peak_wset / 2 ** 20
        except Exception:
            return None
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (1024 * 1024 if sys.platform == "darwin" else 1024)


def baseline_memory():
    """The process's peak RSS once its framework is imported and the data loaded, before any
    network exists: what the process costs before training starts."""
    return {"base_rss_mb": max_rss_mb()}


def peak_memory(device_mb=None):
    """The peak RSS so far, and the framework's device memory peak (MB) when it is on a GPU."""
    out = {"peak_rss_mb": max_rss_mb()}
    if device_mb is not None:
        out["peak_device_mb"] = device_mb
    return out


def with_eval(peaks):
    """The peaks again, measured after the test-set evaluation, under names of their own."""
    return {k.replace("peak_", "peak_with_eval_"): v for k, v in peaks.items()}

"""Where minisnn's training iteration of snnTorch tutorial 6's CSNN goes: the CPU time of every
layer's forward and backward, and of the convolutions' matrix products with their GFLOP/s,
against this machine's plain NumPy float32 matmul.

    python benchmarks/bench_csnn.py --data data/mnist --threads 1      # batch 128, 25 steps
    python benchmarks/bench_csnn.py --data random --iters 3            # random images

The side-by-side timing and peak memory against snnTorch's tutorial-6 code are `minisnn bench
--arch csnn` (minisnn/bench/csnn.py); this script profiles the same iteration (the network,
loss, Adam and batches of `minisnn bench --arch csnn`), minisnn only, in this process, with
--threads threads for NumPy's BLAS. Times are the process's CPU time (all its threads), which
other work on the machine disturbs less than the wall clock; the wrappers add a little.
"""
import argparse
import os
import time


class Profile:
    """Times every layer's forward and backward, and the matrix products of each Conv2d (they
    all go through minisnn.conv.matmul), by wrapping them; counts the products' FLOPs."""

    def __init__(self, net):
        from minisnn import conv
        self.current = None
        self.reset()
        for i, layer in enumerate(net.layers):
            for method in ("forward", "backward"):
                setattr(layer, method, self._wrap_layer(getattr(layer, method),
                                                        f"{i} {type(layer).__name__}", method))
        real = conv.matmul

        def matmul(a, b, out=None):
            t = time.process_time()
            r = real(a, b, out=out)
            key = self.current
            self.mm[key] = self.mm.get(key, 0) + time.process_time() - t
            self.flops[key] = self.flops.get(key, 0) + 2 * a.shape[0] * a.shape[1] * b.shape[1]
            return r
        conv.matmul = matmul

    def reset(self):
        self.times, self.mm, self.flops = {}, {}, {}

    def _wrap_layer(self, fn, name, method):
        def wrapped(*args, **kwargs):
            self.current = (name, method)
            t = time.process_time()
            r = fn(*args, **kwargs)
            self.times[name, method] = self.times.get((name, method), 0) + time.process_time() - t
            self.current = None
            return r
        return wrapped

    def report(self, n_iters):
        per = {f"{k[0]} {k[1]}": v / n_iters * 1e3 for k, v in self.times.items()}
        mm = {f"{k[0]} {k[1]}": (v / n_iters * 1e3, self.flops[k] / n_iters / 1e9)
              for k, v in self.mm.items()}
        return {"layers_ms": per, "matmul_ms_gflop": mm}


def plain_matmul_gflops(reps=20):
    """This machine's speed for a plain float32 matmul of the second conv's forward chunk
    (minisnn.conv.CHUNK_BYTES of 12·5·5 = 300-wide patches times a (300, 64) kernel)."""
    import numpy as np
    from minisnn import conv
    m = max(1, conv.CHUNK_BYTES // (64 * 300 * 4))
    a = np.random.default_rng(0).random((m * 64, 300), dtype=np.float32)
    b = np.random.default_rng(1).random((300, 64), dtype=np.float32)
    t = time.process_time()
    for _ in range(reps):
        a @ b
    return 2 * a.shape[0] * 300 * 64 * reps / (time.process_time() - t) / 1e9, (a.shape[0], 300, 64)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default=None, help="an MNIST-style folder, or 'random' (default: "
                                                "minisnn's data rule, as for minisnn bench)")
    p.add_argument("--steps", type=int, default=25)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--iters", type=int, default=10, help="profiled iterations")
    p.add_argument("--warmup", type=int, default=3, help="unprofiled iterations first")
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[k] = str(args.threads)          # before NumPy is imported, below
    from minisnn.bench import csnn, ours
    from minisnn.bench.inputs import find_data, load_arrays, timing_batches
    from minisnn.malloc import keep_freed_memory
    keep_freed_memory()                           # as in every `minisnn bench` worker

    data = find_data(args.data)
    train_x, train_y, *_ = load_arrays(data, args.seed)
    net, opt = csnn.minisnn_net({"batch": args.batch, "steps": args.steps}, "numpy", args.seed)
    batches = timing_batches(train_x, train_y, args.batch, shape=csnn.INPUT_SHAPE)
    phases = ours.phases(net, opt, batches, args.steps, csnn.LOSS)
    profile = Profile(net)
    load0 = os.getloadavg()[0]
    for i in range(args.warmup + args.iters):
        if i == args.warmup:
            profile.reset()
            wall, cpu = time.perf_counter(), time.process_time()
        for phase in phases:
            phase()
    wall_ms = (time.perf_counter() - wall) / args.iters * 1e3
    total = (time.process_time() - cpu) / args.iters * 1e3
    load1 = os.getloadavg()[0]
    prof = profile.report(args.iters)
    plain, shape = plain_matmul_gflops()

    print(f"minisnn CSNN {csnn.describe({})}, batch {args.batch}, {args.steps} steps, "
          f"{args.threads} threads, {args.iters} profiled iterations after {args.warmup}; data: "
          f"{data or 'random images'}; load average {load0:.2f} / {load1:.2f} on "
          f"{os.cpu_count()} cores")
    print(f"per iteration: {wall_ms:.1f} ms wall, {total:.1f} ms CPU (with the wrappers)")
    print("CPU ms per iteration, share of the iteration's CPU time:")
    for name, ms in sorted(prof["layers_ms"].items(), key=lambda kv: int(kv[0].split()[0])):
        print(f"  {name:<24} {ms:8.1f}  {ms / total:6.1%}")
    print("matrix products of the convolutions (minisnn.conv.matmul):")
    for name, (ms, gflop) in sorted(prof["matmul_ms_gflop"].items()):
        print(f"  {name:<24} {ms:8.1f} ms  {ms / total:6.1%} of the iteration  "
              f"{gflop:6.2f} GFLOP  {gflop / ms * 1e3:6.1f} GFLOP/s per CPU second")
    print(f"plain NumPy float32 matmul {shape}: {plain:.1f} GFLOP/s per CPU second")


if __name__ == "__main__":
    main()

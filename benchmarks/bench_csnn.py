"""Time one training iteration of snnTorch tutorial 6's CSNN in minisnn and in snnTorch, side by
side on this machine, and print ms/iteration, peak memory and the ratios.

    python benchmarks/bench_csnn.py --data data/mnist            # 25 steps, batch 128
    python benchmarks/bench_csnn.py --data data/mnist --profile  # + where minisnn's time goes
    python benchmarks/bench_csnn.py --random --iters 3           # random images, no data folder
    python benchmarks/bench_csnn.py --data data/mnist --train    # train both, compare accuracy

The network (12C5-MP2-64C5-MP2-FC10, three Leaky layers, β 0.5, fast sigmoid slope 25), the loss
(snnTorch's ce_rate_loss), Adam lr 1e-2 and the batches are the same for both; so are the
initial weights (minisnn's, copied into torch). snnTorch runs the tutorial's code: the
nn.Sequential called once per step (its first convolution too, on the same image, every step),
loss.backward(), optimizer.step(). An iteration is forward + loss + backward + Adam step.

Each framework runs in a fresh process of its own, with the same number of threads for NumPy's
BLAS and for torch (--threads, default: the machine's cores) and the same allocator settings
(minisnn.malloc.keep_freed_memory). Time: the median over --iters iterations after --warmup
ones (wall clock, and the process's CPU time beside it). Memory: the process's peak resident set
size (getrusage), at its start (interpreter, framework and data loaded) and over the whole run.
The load average is printed before and after: other work on the machine slows both sides, and
numbers taken under load are not comparable with quiet ones.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

MARK = "BENCH-CSNN-RESULT "
BETA, SLOPE, LR = 0.5, 25, 1e-2


# ----------------------------------------------------------------------------- shared by workers

def batches(spec):
    """warmup + iters batches (x (B, 1, 28, 28) float32 in [0, 1], y (B,) int64), NumPy."""
    import numpy as np
    n, B = spec["warmup"] + spec["iters"], spec["batch"]
    rng = np.random.default_rng(spec["seed"])
    if spec["data"] is None:
        x = rng.random((n * B, 784), dtype=np.float32)
        y = rng.integers(0, 10, n * B)
    else:
        from minisnn.data import load_dataset
        d = load_dataset(spec["data"], dtype="uint8")
        pick = rng.permutation(len(d.train_y))[:n * B]
        x, y = d.train_x[pick].astype(np.float32) / 255, d.train_y[pick]
    x, y = x.reshape(n, B, 1, 28, 28), y.reshape(n, B).astype(np.int64)
    return [(x[i], y[i]) for i in range(n)]


def train_batches(spec, split="train"):
    """The whole split in the order minisnn's training loop uses (shuffled with the seed and
    epoch, drop_last) for "train"; the test split in order, every image, for "test"."""
    import numpy as np
    from minisnn.data import iterate_batches, load_dataset
    d = load_dataset(spec["data"], dtype="uint8")
    if split == "test":
        yield from ((x.reshape(-1, 1, 28, 28), y) for x, y in iterate_batches(
            d.test_x, d.test_y, 128, shuffle=False, drop_last=False, dtype=np.float32))
        return
    for epoch in range(spec["epochs"]):
        for x, y in iterate_batches(d.train_x, d.train_y, spec["batch"], seed=spec["seed"],
                                    epoch=epoch, dtype=np.float32):
            yield x.reshape(-1, 1, 28, 28), y


def train_and_test(step, predict, spec, to_tensor=lambda a: a):
    """Train on every batch of `spec`'s epochs, then the rate-decoded test accuracy."""
    t, n = time.perf_counter(), 0
    for x, y in train_batches(spec):
        step(to_tensor(x), to_tensor(y))
        n += 1
    seconds = time.perf_counter() - t
    correct = total = 0
    for x, y in train_batches(spec, "test"):
        correct += int((predict(to_tensor(x)) == y).sum())
        total += len(y)
    return {"iterations": n, "s_per_iter": seconds / n, "test_accuracy": correct / total,
            "test_images": total}


def rss_mb():
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def timed(step, data, warmup):
    """Run step(x, y) on every batch; returns wall and CPU ms of those after the warm-up."""
    wall, cpu = [], []
    for i, (x, y) in enumerate(data):
        w, c = time.perf_counter(), time.process_time()
        step(x, y)
        if i >= warmup:
            wall.append((time.perf_counter() - w) * 1e3)
            cpu.append((time.process_time() - c) * 1e3)
    return {"ms": statistics.median(wall), "ms_min": min(wall), "cpu_ms": statistics.median(cpu)}


# ----------------------------------------------------------------------------- minisnn

def minisnn_worker(spec):
    import minisnn as ms
    from minisnn.models import build
    data = [] if spec["train"] else batches(spec)
    base = rss_mb()
    net = build("csnn", rng=spec["seed"])
    opt = ms.Adam(net.parameters(), lr=LR, betas=(0.9, 0.999))

    def step(x, y):
        opt.zero_grad()
        spk, _ = net(x, spec["steps"])
        _, d_spk = ms.ce_rate_loss(spk, y)
        net.backward(d_spk=d_spk)
        opt.step()
    if spec["train"]:
        def predict(x):
            spk, _ = net(x, spec["steps"])
            return ms.predict_rate(spk)
        out = train_and_test(step, predict, spec)
        out.update(base_rss_mb=base, peak_rss_mb=rss_mb())
        return out
    profile = Profile(net) if spec["profile"] else None
    out = timed(step, data, spec["warmup"])
    out.update(base_rss_mb=base, peak_rss_mb=rss_mb())
    if profile is not None:
        out["profile"] = profile.report(spec["iters"] + spec["warmup"], out)
    return out


class Profile:
    """Times every layer's forward and backward, and the matrix products of each Conv2d (they
    all go through minisnn.conv.matmul), by wrapping them; counts the products' FLOPs. The
    times are the process's CPU time (all its threads), which other work on the machine
    disturbs less than the wall clock."""

    def __init__(self, net):
        from minisnn import conv
        self.times, self.mm, self.flops, self.current = {}, {}, {}, None
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
        self.chunk_shape = None

    def _wrap_layer(self, fn, name, method):
        def wrapped(*args, **kwargs):
            self.current = (name, method)
            t = time.process_time()
            r = fn(*args, **kwargs)
            self.times[name, method] = self.times.get((name, method), 0) + time.process_time() - t
            self.current = None
            return r
        return wrapped

    def report(self, n_iters, timing):
        import numpy as np
        from minisnn import conv
        per = {f"{k[0]} {k[1]}": v / n_iters * 1e3 for k, v in self.times.items()}
        mm = {f"{k[0]} {k[1]}": (v / n_iters * 1e3, self.flops[k] / n_iters / 1e9)
              for k, v in self.mm.items()}
        # the machine's speed for a plain float32 matmul of the second conv's forward chunk
        m = max(1, conv.CHUNK_BYTES // (64 * 300 * 4))
        a = np.random.default_rng(0).random((m * 64, 300), dtype=np.float32)
        b = np.random.default_rng(1).random((300, 64), dtype=np.float32)
        reps, t = 20, time.process_time()
        for _ in range(reps):
            a @ b
        plain = 2 * a.shape[0] * 300 * 64 * reps / (time.process_time() - t) / 1e9
        return {"layers_ms": per, "matmul_ms_gflop": mm, "plain_matmul_gflops": plain,
                "plain_matmul_shape": [a.shape[0], 300, 64]}


# ----------------------------------------------------------------------------- snnTorch

def snntorch_worker(spec):
    import numpy as np
    import snntorch as snn
    import snntorch.functional as SF
    import torch
    from snntorch import surrogate, utils
    from minisnn.models import build
    torch.set_num_threads(spec["threads"])
    data = [] if spec["train"] else [(torch.from_numpy(x), torch.from_numpy(y))
                                     for x, y in batches(spec)]
    base = rss_mb()
    sg = surrogate.fast_sigmoid(slope=SLOPE)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(1, 12, 5), torch.nn.MaxPool2d(2),
        snn.Leaky(beta=BETA, spike_grad=sg, init_hidden=True),
        torch.nn.Conv2d(12, 64, 5), torch.nn.MaxPool2d(2),
        snn.Leaky(beta=BETA, spike_grad=sg, init_hidden=True),
        torch.nn.Flatten(), torch.nn.Linear(64 * 4 * 4, 10),
        snn.Leaky(beta=BETA, spike_grad=sg, init_hidden=True, output=True))
    ours = build("csnn", rng=spec["seed"])            # the same initial weights
    with torch.no_grad():
        for i in (0, 3, 7):
            net[i].weight.copy_(torch.from_numpy(np.asarray(ours[i].W)))
            net[i].bias.copy_(torch.from_numpy(np.asarray(ours[i].b)))
    del ours
    loss_fn = SF.ce_rate_loss()
    opt = torch.optim.Adam(net.parameters(), lr=LR, betas=(0.9, 0.999))

    def forward_pass(x):                                  # tutorial 6's forward_pass
        utils.reset(net)
        spk_rec = []
        for _ in range(spec["steps"]):
            spk, _ = net(x)
            spk_rec.append(spk)
        return torch.stack(spk_rec)

    def step(x, y):
        spk = forward_pass(x)
        loss = loss_fn(spk, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    if spec["train"]:
        def predict(x):
            with torch.no_grad():
                return forward_pass(x).sum(dim=0).argmax(dim=1).numpy()
        out = train_and_test(step, predict, spec, torch.from_numpy)
    else:
        out = timed(step, data, spec["warmup"])
    out.update(base_rss_mb=base, peak_rss_mb=rss_mb(), torch_threads=torch.get_num_threads())
    return out


WORKERS = {"minisnn": minisnn_worker, "snntorch": snntorch_worker}


# ----------------------------------------------------------------------------- the parent

def spawn(framework, spec):
    env = dict(os.environ)
    for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[k] = str(spec["threads"])
    proc = subprocess.run([sys.executable, __file__, "--worker", framework, json.dumps(spec)],
                          capture_output=True, text=True, env=env)
    lines = [l for l in proc.stdout.splitlines() if l.startswith(MARK)]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"the {framework} worker failed (exit {proc.returncode}):\n"
                           f"{proc.stderr[-3000:]}")
    return json.loads(lines[-1][len(MARK):])


def print_profile(prof, total_ms):
    print("\nminisnn profile (CPU ms per iteration, share of the iteration's CPU time):")
    for name, ms_ in sorted(prof["layers_ms"].items(), key=lambda kv: int(kv[0].split()[0])):
        print(f"  {name:<24} {ms_:8.1f}  {ms_ / total_ms:6.1%}")
    plain = prof["plain_matmul_gflops"]
    print(f"matrix products of the convolutions (minisnn.conv.matmul):")
    for name, (ms_, gflop) in sorted(prof["matmul_ms_gflop"].items()):
        print(f"  {name:<24} {ms_:8.1f} ms  {ms_ / total_ms:6.1%} of the iteration  "
              f"{gflop:6.2f} GFLOP  {gflop / ms_ * 1e3:6.1f} GFLOP/s per CPU second")
    print(f"plain NumPy float32 matmul {tuple(prof['plain_matmul_shape'])}: {plain:.1f} GFLOP/s "
          f"per CPU second")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, default=None, help="an MNIST-style folder")
    p.add_argument("--random", action="store_true", help="random images instead of --data")
    p.add_argument("--steps", type=int, default=25)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--iters", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--frameworks", default="minisnn,snntorch")
    p.add_argument("--profile", action="store_true", help="where minisnn's iteration goes")
    p.add_argument("--train", action="store_true",
                   help="instead of timing: train both for --epochs on all of --data (same "
                        "initial weights, same batches) and compare their test accuracy")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--json", type=Path, default=None, help="also write the results here")
    p.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        framework, spec = args.worker
        from minisnn.malloc import keep_freed_memory
        keep_freed_memory()
        print(MARK + json.dumps(WORKERS[framework](json.loads(spec))))
        return
    if (args.data is None) == (not args.random):
        p.error("give --data FOLDER (an MNIST-style folder) or --random, not both")
    if args.train and args.random:
        p.error("--train needs --data")
    spec = {"data": None if args.random else str(args.data), "steps": args.steps,
            "batch": args.batch, "iters": args.iters, "warmup": args.warmup,
            "threads": args.threads, "seed": args.seed, "profile": args.profile,
            "train": args.train, "epochs": args.epochs}
    frameworks = args.frameworks.split(",")
    load0 = os.getloadavg()[0]
    results = {f: spawn(f, spec) for f in frameworks}
    load1 = os.getloadavg()[0]
    if args.train:
        print(f"CSNN trained on {spec['data']}: {args.epochs} epoch(s), batch {args.batch}, "
              f"{args.steps} steps, {args.threads} threads; load average {load0:.2f} / "
              f"{load1:.2f}")
        for f, r in results.items():
            print(f"{f:<10} test accuracy {r['test_accuracy']:.4f} ({r['test_images']} images) "
                  f"after {r['iterations']} iterations, {r['s_per_iter']:.3f} s/iteration, "
                  f"peak RSS {r['peak_rss_mb']:.0f} MB")
        if args.json:
            args.json.write_text(json.dumps({"spec": spec, "results": results}, indent=1))
        return
    print(f"CSNN 12C5-MP2-64C5-MP2-FC10, batch {args.batch}, {args.steps} steps, "
          f"{args.threads} threads, {args.iters} timed iterations after {args.warmup}; "
          f"data: {spec['data'] or 'random images'}")
    print(f"load average before/after: {load0:.2f} / {load1:.2f} on {os.cpu_count()} cores"
          + ("  (WARNING: the machine is busy; rerun when it is quiet)"
             if max(load0, load1) > 0.5 * os.cpu_count() else ""))
    print(f"{'framework':<10} {'ms/iter':>9} {'min':>9} {'cpu ms':>9} {'base RSS MB':>12} "
          f"{'peak RSS MB':>12}")
    for f, r in results.items():
        print(f"{f:<10} {r['ms']:9.1f} {r['ms_min']:9.1f} {r['cpu_ms']:9.1f} "
              f"{r['base_rss_mb']:12.0f} {r['peak_rss_mb']:12.0f}")
    if {"minisnn", "snntorch"} <= set(results):
        a, b = results["minisnn"], results["snntorch"]
        print(f"speed-up (snnTorch ms / minisnn ms): {b['ms'] / a['ms']:.2f}x")
        print(f"peak memory ratio (minisnn / snnTorch): {a['peak_rss_mb'] / b['peak_rss_mb']:.2f}")
    if "profile" in results.get("minisnn", {}):
        print_profile(results["minisnn"]["profile"], results["minisnn"]["cpu_ms"])
    if args.json:
        args.json.write_text(json.dumps({"spec": spec, "load": [load0, load1],
                                         "results": results}, indent=1))


if __name__ == "__main__":
    main()

"""How closely the fast paths agree with the readable reference, over every setting the fused
kernels cover: the fused CPU kernels (whole window), the kernels in segments of recompute_every,
and the reference in segments, each against the reference with full records.

    python benchmarks/agreement.py          # about a minute the first time (kernel builds)

For every surrogate × reset × detach, with learnable β and without, static and time-varying
input, a 5-300-4 network over 23 steps, batch 16, both losses: the largest relative error
max|a − b| / max(max|a|, max|b|) of any parameter's gradient in float64, and in float32 whether
the output spikes and the output membranes are identical. tests/test_cpu_kernels.py and
tests/test_recompute.py assert the same with their bounds (float64 ≤ 1e-12).
"""
import itertools

import numpy as np

import minisnn as ms
from minisnn import cpu_kernels, fused
from minisnn.gradcheck import rel_error

T, EVERY = 23, 5
SURROGATES = sorted(cls.name for cls in fused.SURROGATE_CODES)


def network(surrogate, reset, detach, learn_beta, dtype):
    rng = np.random.default_rng(0)
    kw = dict(threshold=0.5, reset=reset, detach_reset=detach, surrogate=surrogate,
              learn_beta=learn_beta)
    return ms.Sequential(ms.Linear(5, 300, dtype=dtype, rng=rng), ms.Leaky(0.9, **kw),
                         ms.Linear(300, 4, dtype=dtype, rng=rng), ms.Leaky(0.8, **kw))


def one_pass(net, x, y, every, reference):
    def go():
        net.zero_grad()
        spk, mem = net(x, T, recompute_every=every)
        net.backward(d_mem=ms.ce_membrane_loss(mem, y)[1], d_spk=ms.ce_rate_loss(spk, y)[1])
        return (spk.copy(), mem.copy()), {n: np.array(p.grad, np.float64)
                                          for n, p in net.named_parameters()}
    if reference:
        with fused.disabled():
            return go()
    return go()


def main():
    print(cpu_kernels.status())
    paths = {"fused kernels": (None, False), f"fused, segments of {EVERY}": (EVERY, False),
             f"reference, segments of {EVERY}": (EVERY, True)}
    worst = {p: 0.0 for p in paths}
    identical = {p: [0, 0, 0] for p in paths}     # float32: spikes equal, membranes equal, runs
    settings = list(itertools.product(SURROGATES, ("subtract", "zero", "none"), (True, False),
                                      (False, True), (True, False)))
    rng = np.random.default_rng(1)
    for surrogate, reset, detach, learn_beta, static in settings:
        for dtype in ("float64", "float32"):
            x = (rng.random((16, 5)) if static else rng.random((T, 16, 5))).astype(dtype) * 2
            y = rng.integers(0, 4, 16)
            net = network(surrogate, reset, detach, learn_beta, dtype)
            ref_out, ref_g = one_pass(net, x, y, None, True)
            for path, (every, reference) in paths.items():
                out, g = one_pass(net, x, y, every, reference)
                if dtype == "float64":
                    worst[path] = max(worst[path], max(rel_error(g[k], ref_g[k]) for k in g))
                else:
                    identical[path][0] += np.array_equal(out[0], ref_out[0])
                    identical[path][1] += np.array_equal(out[1], ref_out[1])
                    identical[path][2] += 1
    print(f"{len(settings)} settings ({len(SURROGATES)} surrogates × 3 resets × detached or not "
          f"× learnable β or not × static or time-varying input), {T} steps, against the "
          f"reference with full records:")
    for path in paths:
        spikes, mems, n = identical[path]
        print(f"  {path:28s} float64 gradients: max rel error {worst[path]:.1e};  float32 "
              f"output spikes identical {spikes}/{n}, output membranes {mems}/{n}")
    print("(in segments the output layer's matrix product runs on k steps at a time, and BLAS "
          "may round a product of another size differently: the membranes then differ in the "
          "last bits)")


if __name__ == "__main__":
    main()

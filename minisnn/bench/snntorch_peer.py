"""The snnTorch peer: the architecture's network as snnTorch's tutorial writes it (its
`snntorch_net`), its loss (`snntorch_loss`) and torch.optim.Adam with the architecture's learning
rate. For the mlp: the reference tutorial's snn.Leaky(beta=0.95) with its default atan
surrogate, nn.Linear, fc1 applied at every step, nn.CrossEntropyLoss on the membrane summed over
the steps; for the csnn: tutorial 6's nn.Sequential called once per step, SF.ce_rate_loss. On the
CPU beside minisnn's NumPy backend, on CUDA beside its CuPy backend.

`snntorch-hoisted` is the same network with the layers that see only the static input computed
once before the time loop (fc1(x) for the mlp; the first convolution and its max-pool for the
csnn), which is what minisnn does: the fairer yardstick for the engine itself, though not the
tutorial's code. torch and snntorch are optional (`pip install "minisnn[bench]"`), never engine
dependencies.
"""
from . import plan
from .inputs import load_arrays, timing_batches
from .memory import baseline_memory, peak_memory, with_eval
from .timing import WallClock, time_phases, torch_cuda_clock, training_loop

LABELS = {"snntorch": "snnTorch", "snntorch-hoisted": "snnTorch-hoisted"}
DEVICES = {"numpy": "cpu", "cupy": "cuda"}


def device(backend):
    return DEVICES[backend]


def setup(config, device, seed, threads, hoist, arch=None):
    """The peer network with minisnn's initial weights for the same seed (so both start from
    the same point), its Adam and its loss(spk_rec, mem_rec, y)."""
    import torch
    arch = arch or plan.architecture("mlp")
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    net = arch.snntorch_net(config, seed, hoist).to(device)
    opt = torch.optim.Adam(net.parameters(), lr=arch.LR, betas=plan.BETAS)
    return net, opt, arch.snntorch_loss(config)


def phases(net, opt, loss_fn, batches):
    """forward (+ loss), backward, step of one iteration of the tutorial's training loop."""
    state = {"i": 0}

    def forward():
        x, y = batches[state["i"] % len(batches)]
        state["i"] += 1
        spk_rec, mem_rec = net(x)
        state["loss"] = loss_fn(spk_rec, mem_rec, y)

    def backward():
        opt.zero_grad()
        state["loss"].backward()

    return forward, backward, opt.step


def _setup(spec):
    import snntorch  # noqa: F401  (imported here so that the baseline memory includes it)
    import torch
    where = DEVICES[spec["backend"]]
    if where == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("torch has no usable CUDA device (a CPU-only torch build?)")
    clock = torch_cuda_clock() if where == "cuda" else WallClock()
    return torch, where, clock, plan.architecture(spec.get("arch", "mlp"))


def _peaks(torch, where):
    return peak_memory(torch.cuda.max_memory_reserved() / 2 ** 20 if where == "cuda" else None)


def timing(spec):
    torch, where, clock, arch = _setup(spec)
    train_x, train_y, *_ = load_arrays(spec["data"], spec["seed"])
    base = baseline_memory()
    results = []
    for config in spec["configs"]:
        net, opt, loss_fn = setup(config, where, spec["seed"], spec["threads"],
                                  spec["framework"] == "snntorch-hoisted", arch)
        batches = [(torch.from_numpy(x).to(where), torch.from_numpy(y).to(where)) for x, y in
                   timing_batches(train_x, train_y, config["batch"], shape=arch.INPUT_SHAPE)]
        row = time_phases(phases(net, opt, loss_fn, batches), clock, config["warmup"],
                          config["repeats"])
        results.append(dict(config, **row, **base, **_peaks(torch, where)))
        del net, opt, batches
    return results


def train(spec):
    from .. import data as data_mod
    torch, where, clock, arch = _setup(spec)
    train_x, train_y, test_x, test_y, name = load_arrays(spec["data"], spec["seed"])
    config = spec["config"]
    base = baseline_memory()
    net, opt, loss_fn = setup(config, where, spec["seed"], spec["threads"],
                              spec["framework"] == "snntorch-hoisted", arch)
    shape = (-1,) + tuple(arch.INPUT_SHAPE)
    tx, ty = torch.from_numpy(train_x).to(where), torch.from_numpy(train_y).to(where)
    batches = lambda epoch: ((xb.float().div_(255).reshape(shape), yb) for xb, yb in
                             data_mod.iterate_batches(tx, ty, config["batch"], seed=spec["seed"],
                                                      epoch=epoch))
    run = training_loop(lambda b: phases(net, opt, loss_fn, [b]), batches, clock,
                        spec["epochs"], spec["max_iters"], spec["warmup"])
    trained = _peaks(torch, where)
    correct = 0
    with torch.no_grad():
        for i in range(0, len(test_x), plan.EVAL_BATCH):
            xb = data_mod.pixels_to_float(test_x[i:i + plan.EVAL_BATCH], "float32")
            spk_rec, _ = net(torch.from_numpy(xb).reshape(shape).to(where))
            pred = spk_rec.sum(dim=0).argmax(dim=1).cpu()
            correct += int((pred == torch.from_numpy(test_y[i:i + plan.EVAL_BATCH])).sum())
    return dict(run, data=name, test_accuracy=correct / len(test_y), **base, **trained,
                **with_eval(_peaks(torch, where)))


def versions(backend):
    import snntorch
    import torch
    v = {"torch": torch.__version__, "snntorch": snntorch.__version__}
    if backend == "cupy":
        v["torch_cuda"] = torch.version.cuda
    return v


def thread_info():
    import torch
    return {"torch_threads": torch.get_num_threads()}


def missing():
    """Why this peer cannot run here (None when it can)."""
    import importlib.util
    absent = [m for m in ("torch", "snntorch") if importlib.util.find_spec(m) is None]
    return f"{' and '.join(absent)} not installed (pip install \"minisnn[bench]\")" if absent else None

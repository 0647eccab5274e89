"""minisnn itself, timed by `minisnn bench`: one training iteration as forward (+ loss),
backward and step, and the --train run, on the NumPy or the CuPy backend."""
from . import plan
from .inputs import load_arrays, timing_batches
from .memory import baseline_memory, peak_memory, with_eval
from .timing import WallClock, cupy_clock, time_phases, training_loop

LABELS = {"minisnn": "minisnn"}


def device(backend):
    return backend


def phases(net, opt, batches, steps, loss="ce_membrane", recompute_every=None):
    """forward (+ loss), backward, step of one minisnn training iteration, cycling `batches`;
    `loss` by name, as `minisnn train` has it (train.loss_of: 'ce_membrane' or 'ce_rate');
    recompute_every: BPTT in segments of that many steps (minisnn.recompute)."""
    from ..train import loss_of
    state = {"i": 0}

    def forward():
        x, y = batches[state["i"] % len(batches)]
        state["i"] += 1
        spk_rec, mem_rec = net(x, steps, recompute_every)
        state["loss"], state["grads"] = loss_of(loss, spk_rec, mem_rec, y)

    def backward():
        opt.zero_grad()
        net.backward(**state["grads"])

    return forward, backward, opt.step


def _setup(backend):
    """How to move arrays onto the backend, and the clock that times it."""
    if backend == "cupy":
        import cupy
        return cupy.asarray, cupy_clock()
    import numpy as np
    return np.asarray, WallClock()


def _peaks(backend):
    if backend != "cupy":
        return peak_memory()
    import cupy   # CuPy's pool never gives blocks back by itself: its total is its peak
    return peak_memory(cupy.get_default_memory_pool().total_bytes() / 2 ** 20)


def timing(spec):
    arch = plan.architecture(spec.get("arch", "mlp"))
    move, clock = _setup(spec["backend"])
    train_x, train_y, *_ = load_arrays(spec["data"], spec["seed"])
    base = baseline_memory()
    results = []
    for config in spec["configs"]:
        net, opt = arch.minisnn_net(config, spec["backend"], spec["seed"])
        batches = [(move(x), move(y)) for x, y in
                   timing_batches(train_x, train_y, config["batch"], shape=arch.INPUT_SHAPE)]
        row = time_phases(phases(net, opt, batches, config["steps"], arch.LOSS,
                                 spec.get("recompute_every")), clock,
                          config["warmup"], config["repeats"])
        results.append(dict(config, **row, **base, **_peaks(spec["backend"])))
        del net, opt, batches
    return results


def train(spec):
    """One training run as the tutorial's loop does it: shuffled batches (drop_last), every
    iteration timed by phase, then the rate-decoded accuracy on the whole test set."""
    from .. import data as data_mod, train as T
    from ..encoding import Inputs
    arch = plan.architecture(spec.get("arch", "mlp"))
    move, clock = _setup(spec["backend"])
    train_x, train_y, test_x, test_y, name = load_arrays(spec["data"], spec["seed"])
    train_x, train_y, test_x, test_y = map(move, (train_x, train_y, test_x, test_y))
    base = baseline_memory()
    config = spec["config"]
    net, opt = arch.minisnn_net(config, spec["backend"], spec["seed"])
    shape = tuple(arch.INPUT_SHAPE)                      # the static image, shaped for the net
    batches = lambda epoch: ((x.reshape((len(x),) + shape), y) for x, y in
                             data_mod.iterate_batches(train_x, train_y, config["batch"],
                                                      seed=spec["seed"], epoch=epoch,
                                                      dtype="float32"))
    every = spec.get("recompute_every")
    run = training_loop(lambda b: phases(net, opt, [b], config["steps"], arch.LOSS, every),
                        batches, clock, spec["epochs"], spec["max_iters"], spec["warmup"])
    trained = _peaks(spec["backend"])
    correct, total = T.evaluate(net, test_x, test_y, config["steps"], batch_size=plan.EVAL_BATCH,
                                inputs=Inputs(image_shape=shape, num_steps=config["steps"]),
                                recompute_every=every)
    return dict(run, data=name, test_accuracy=correct / total, **base, **trained,
                **with_eval(_peaks(spec["backend"])))


def versions(backend):
    if backend == "cupy":
        import cupy
        return {"cupy": cupy.__version__}
    return {}


def thread_info():
    return {}


def missing():
    return None

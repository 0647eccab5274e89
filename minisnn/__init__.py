"""minisnn: a from-scratch spiking-neural-network engine with hand-written backprop through time.

    import minisnn as ms
    net = ms.Sequential(ms.Linear(784, 1000), ms.Leaky(beta=0.95),
                        ms.Linear(1000, 10), ms.Leaky(beta=0.95))
    spk_rec, mem_rec = net(x, num_steps=25)
    loss, d_mem = ms.ce_membrane_loss(mem_rec, y)
    net.backward(d_mem=d_mem)

Every name below is imported on first use (PEP 562), so `import minisnn` costs almost nothing
and the command line can take Ctrl-C from its first moment. `ms.plot` imports matplotlib; the
engine never does.
"""
import importlib

__version__ = "0.1.0"

#: public name -> the module that defines it
_NAMES = {
    "get_backend": "backend", "set_backend": "backend",
    "CheckpointError": "checkpoint", "load": "checkpoint", "save": "checkpoint",
    "accuracy": "decode", "first_spike_time": "decode", "predict_latency": "decode",
    "predict_rate": "decode",
    "Linear": "linear",
    "ce_count_loss": "loss", "ce_membrane_loss": "loss", "ce_rate_loss": "loss",
    "mse_count_loss": "loss",
    "Param": "network", "Sequential": "network",
    "Leaky": "neuron", "RLeaky": "rleaky", "Synaptic": "synaptic",
    "SGD": "optim", "Adam": "optim",
    # convolutional networks and skip connections
    "Conv2d": "conv", "AvgPool2d": "pool", "Flatten": "pool", "MaxPool2d": "pool",
    "Residual": "residual",
}
_SUBMODULES = ("backend", "checkpoint", "data", "decode", "fused", "gradcheck", "linear",
               "literal", "loss", "network", "neuron", "optim", "plot", "record", "rleaky",
               "spikegen", "surrogate", "synaptic", "train",
               "conv", "models", "pool", "residual")

__all__ = sorted(_NAMES) + ["__version__"]


def __getattr__(name):
    """Import a public name or submodule on first use. `ms.rate` / `ms.latency`, once decoders,
    raise an error naming what replaced them."""
    if name in _NAMES:
        value = getattr(importlib.import_module(f".{_NAMES[name]}", __name__), name)
    elif name in _SUBMODULES:
        value = importlib.import_module(f".{name}", __name__)
    else:
        raise importlib.import_module(".decode", __name__).renamed_error(__name__, name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_NAMES) | set(_SUBMODULES))

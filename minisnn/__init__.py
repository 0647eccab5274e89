"""minisnn: a from-scratch spiking-neural-network engine with hand-written backprop through time.

    import minisnn as ms
    net = ms.Sequential(ms.Linear(784, 1000), ms.Leaky(beta=0.95),
                        ms.Linear(1000, 10), ms.Leaky(beta=0.95))
    spk_rec, mem_rec = net(x, num_steps=25)
    loss, d_mem = ms.ce_membrane_loss(mem_rec, y)
    net.backward(d_mem=d_mem)
"""
from . import decode, gradcheck, spikegen, surrogate
from .backend import get_backend, set_backend
from .checkpoint import CheckpointError, load, save
from .decode import accuracy, first_spike_time, predict_latency, predict_rate
from .linear import Linear
from .loss import ce_count_loss, ce_membrane_loss, ce_rate_loss, mse_count_loss
from .network import Param, Sequential
from .neuron import Leaky
from .rleaky import RLeaky
from .synaptic import Synaptic
from .optim import SGD, Adam

__version__ = "0.1.0"


def __getattr__(name):
    """`ms.plot` is imported on first use (it imports matplotlib; the engine never does);
    `ms.rate` / `ms.latency`, once decoders, raise an error naming what replaced them."""
    if name == "plot":
        import importlib
        return importlib.import_module(".plot", __name__)
    raise decode.renamed_error(__name__, name)

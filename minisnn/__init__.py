"""minisnn: a from-scratch spiking-neural-network engine with hand-written backprop through time.

    import minisnn as ms
    net = ms.Sequential(ms.Linear(784, 1000), ms.Leaky(beta=0.95),
                        ms.Linear(1000, 10), ms.Leaky(beta=0.95))
    spk_rec, mem_rec = net(x, num_steps=25)
    loss, d_mem = ms.ce_membrane_loss(mem_rec, y)
    net.backward(d_mem=d_mem)
"""
from . import gradcheck, surrogate
from .backend import get_backend, set_backend
from .checkpoint import CheckpointError, load, save
from .decode import accuracy, first_spike_time, latency, rate
from .linear import Linear
from .loss import ce_membrane_loss, ce_rate_loss, mse_count_loss
from .network import Param, Sequential
from .neuron import Leaky
from .optim import SGD, Adam

# convolutional networks and skip connections
from . import models
from .conv import Conv2d
from .pool import AvgPool2d, Flatten, MaxPool2d
from .residual import Residual

__version__ = "0.1.0"

"""snnTorch tutorial 6's convolutional SNN, built for each framework from the same initial
weights: 12C5-MP2-64C5-MP2-1024FC10 on (1, 28, 28) images, three Leaky layers (β 0.5, fast
sigmoid of slope 25, subtractive reset), snnTorch's ce_rate_loss on the output spikes, Adam
lr 1e-2. minisnn's side is `minisnn train --arch csnn`'s network and recipe
(minisnn.models.RECIPES["csnn"]); the peer is the tutorial's code.

Its layer sizes are fixed: a point has a batch and a number of steps, no hidden size. The
interface is mlp.py's.
"""
from ..models import RECIPES

RECIPE = RECIPES["csnn"]
TITLE = "CSNN (snnTorch tutorial 6)"
AXES = ("batch", "steps")
INPUT_SHAPE = RECIPE.image_shape          # (1, 28, 28)
LOSS, LR = RECIPE.loss, RECIPE.lr         # 'ce_rate' on the output spikes; Adam 1e-2
SLOPE = 25                                # tutorial 6's surrogate.fast_sigmoid(slope=25)
WEIGHTED = (0, 3, 7)                      # Conv2d, Conv2d, Linear: same index in both Sequentials


def describe(config):
    return "12C5-MP2-64C5-MP2-1024FC10"


def minisnn_net(config, backend, seed):
    """`minisnn train --arch csnn`'s network and Adam, with its recipe's defaults."""
    from .. import train as T
    cfg = T.TrainConfig(arch="csnn", steps=config["steps"], batch_size=config["batch"],
                        seed=seed, backend=backend)
    net = T.build_net(cfg)
    return net, T.build_optimizer(net, cfg)


def snntorch_net(config, seed, hoist=False):
    """Tutorial 6's nn.Sequential (the Leaky layers with init_hidden, the last with output=True),
    called once per step on the same image by its forward_pass, with minisnn's initial weights
    for the same seed. hoist: the first convolution and its max-pool, which see only the static
    image, are computed once before the time loop (what minisnn does)."""
    import snntorch as snn
    import torch
    from snntorch import surrogate, utils
    from torch import nn
    steps, sg = config["steps"], surrogate.fast_sigmoid(slope=SLOPE)

    def leaky(**kw):
        return snn.Leaky(beta=RECIPE.beta, spike_grad=sg, init_hidden=True, **kw)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = nn.Sequential(nn.Conv2d(1, 12, 5), nn.MaxPool2d(2), leaky(),
                                     nn.Conv2d(12, 64, 5), nn.MaxPool2d(2), leaky(),
                                     nn.Flatten(), nn.Linear(64 * 4 * 4, 10), leaky(output=True))
            self._split = (self.net[:2], self.net[2:])   # a tuple: not registered twice

        def forward(self, x):                             # tutorial 6's forward_pass
            utils.reset(self.net)
            head, tail = self._split
            if hoist:
                x = head(x)
            spk_rec, mem_rec = [], []
            for _ in range(steps):
                spk_out, mem_out = tail(x) if hoist else self.net(x)
                spk_rec.append(spk_out)
                mem_rec.append(mem_out)
            return torch.stack(spk_rec), torch.stack(mem_rec)

    net = Net()
    ref, _ = minisnn_net(config, "numpy", seed)
    with torch.no_grad():
        for i in WEIGHTED:
            net.net[i].weight.copy_(torch.from_numpy(ref[i].W))
            net.net[i].bias.copy_(torch.from_numpy(ref[i].b))
    return net


def snntorch_loss(config):
    """Tutorial 6's loss: snntorch.functional.ce_rate_loss() of the output spikes."""
    import snntorch.functional as SF
    ce_rate = SF.ce_rate_loss()
    return lambda spk_rec, mem_rec, y: ce_rate(spk_rec, y)

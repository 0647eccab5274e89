"""The seed architecture, as the reference tutorial trains it: 784-H-10, fully connected, two
Leaky layers (β = 0.95, atan surrogate, subtractive reset), built for each framework from the
same initial weights.

An architecture module gives:
  TITLE, describe(config)  how the report names the network ("Seed network 784-1000-10")
  AXES                     the settings a point has, from plan.AXES (batch, hidden, steps)
  INPUT_SHAPE              of one example (the flat image is reshaped to it)
  LOSS, LR                 minisnn's loss by name (train.loss_of), Adam's learning rate
  minisnn_net(config, backend, seed) -> (net, optimizer)
  snntorch_net(config, seed, hoist) -> a torch module whose forward(x) returns (spk_rec,
      mem_rec) of the last layer, each (T, B, classes), from minisnn's initial weights
  snntorch_loss(config) -> loss(spk_rec, mem_rec, y), the peer's loss as its tutorial writes it
plan.ARCHITECTURES lists the modules.
"""
NUM_INPUTS, NUM_OUTPUTS, BETA = 784, 10, 0.95
TITLE = "Seed network"
AXES = ("batch", "hidden", "steps")
INPUT_SHAPE = (NUM_INPUTS,)
LOSS, LR = "ce_membrane", 5e-4    # membrane cross-entropy summed over the steps; Adam 5e-4


def describe(config):
    return f"{NUM_INPUTS}-{config['hidden']}-{NUM_OUTPUTS}"


def _train_config(config, backend, seed):
    from .. import train as T
    from .plan import BETAS
    return T.TrainConfig(hidden=config["hidden"], steps=config["steps"],
                         batch_size=config["batch"], seed=seed, backend=backend,
                         lr=LR, betas=BETAS, beta=BETA)


def minisnn_net(config, backend, seed):
    """`minisnn train`'s network and Adam for this configuration."""
    from .. import train as T
    cfg = _train_config(config, backend, seed)
    net = T.build_net(cfg)
    return net, T.build_optimizer(net, cfg)


def snntorch_net(config, seed, hoist=False):
    """The reference tutorial's network, as its training section writes it, with minisnn's
    initial weights for the same seed. hoist: the input current fc1(x) of the static input is
    computed once instead of at every step (what minisnn's Linear layer does)."""
    import snntorch as snn
    import torch
    from torch import nn
    hidden, steps = config["hidden"], config["steps"]

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1 = nn.Linear(NUM_INPUTS, hidden)
            self.lif1 = snn.Leaky(beta=BETA)
            self.fc2 = nn.Linear(hidden, NUM_OUTPUTS)
            self.lif2 = snn.Leaky(beta=BETA)

        def forward(self, x):
            mem1 = self.lif1.init_leaky()
            mem2 = self.lif2.init_leaky()
            spk2_rec, mem2_rec = [], []
            cur1 = self.fc1(x) if hoist else None
            for _ in range(steps):
                if not hoist:
                    cur1 = self.fc1(x)
                spk1, mem1 = self.lif1(cur1, mem1)
                cur2 = self.fc2(spk1)
                spk2, mem2 = self.lif2(cur2, mem2)
                spk2_rec.append(spk2)
                mem2_rec.append(mem2)
            return torch.stack(spk2_rec, dim=0), torch.stack(mem2_rec, dim=0)

    net = Net()
    ref, _ = minisnn_net(config, "numpy", seed)
    with torch.no_grad():
        for fc, lin in ((net.fc1, ref[0]), (net.fc2, ref[2])):
            fc.weight.copy_(torch.from_numpy(lin.W))
            fc.bias.copy_(torch.from_numpy(lin.b))
    return net


def snntorch_loss(config):
    """The reference tutorial's loss: nn.CrossEntropyLoss of the membrane, summed over steps."""
    import torch
    ce = torch.nn.CrossEntropyLoss()

    def loss(spk_rec, mem_rec, y):
        loss_val = torch.zeros((1), dtype=torch.float32, device=mem_rec.device)
        for step in range(config["steps"]):
            loss_val += ce(mem_rec[step], y)
        return loss_val
    return loss

"""The architectures a training run can build by name, and each one's recipe.

    net = build("csnn")          # snnTorch tutorial 6: 12C5-MP2-64C5-MP2-FC10, three Leaky layers
    net = build("mlp")           # the reference tutorial's 784-1000-10
    RECIPES["csnn"]              # its defaults: β 0.5, fast sigmoid (slope 25), ce_rate, Adam 1e-2

Only layers here (the engine side of the wall): the data, the training loop and the command
line live in the tools that call `build`.
"""
from dataclasses import dataclass

import numpy as np

from .conv import Conv2d
from .linear import Linear
from .network import Sequential
from .neuron import Leaky
from .pool import Flatten, MaxPool2d


@dataclass(frozen=True)
class Recipe:
    """The training defaults that go with an architecture."""
    arch: str
    beta: float                   # β of every Leaky layer
    surrogate: str                # a name from minisnn.surrogate.SURROGATES (default parameters)
    loss: str                     # 'ce_membrane' (the seed's) or 'ce_rate' (ms.ce_rate_loss)
    lr: float                     # Adam learning rate; betas (0.9, 0.999)
    steps: int = 25
    batch_size: int = 128
    image_shape: tuple = None     # how one image enters the network: None (flat), (1, 28, 28)


RECIPES = {
    # the reference tutorial (the seed network)
    "mlp": Recipe("mlp", beta=0.95, surrogate="atan", loss="ce_membrane", lr=5e-4),
    # snnTorch tutorial 6; fast_sigmoid's default slope is snnTorch's 25
    "csnn": Recipe("csnn", beta=0.5, surrogate="fast_sigmoid", loss="ce_rate", lr=1e-2,
                   image_shape=(1, 28, 28)),
}
ARCHS = tuple(RECIPES)


def build(arch, beta=None, surrogate=None, hidden=1000, num_outputs=10, dtype="float32",
          rng=0, num_inputs=784):
    """The Sequential for `arch` ('mlp' or 'csnn'), with its recipe's β and surrogate unless
    given. Weights come from `rng` (a seed or a numpy Generator), layer by layer.

    csnn (snnTorch tutorial 6, same layer order: each max-pool acts on the conv's currents,
    before the neuron):
        Conv2d(1, 12, 5) → MaxPool2d(2) → Leaky → Conv2d(12, 64, 5) → MaxPool2d(2) → Leaky
        → Flatten → Linear(64·4·4, 10) → Leaky
    for (B, 1, 28, 28) images. The first conv and pool see the static image: computed once.
    mlp: Linear(784, hidden) → Leaky → Linear(hidden, 10) → Leaky, for (B, 784) images
    (num_inputs: another image size, for the mlp only)."""
    if arch not in RECIPES:
        raise ValueError(f"arch must be one of {', '.join(ARCHS)}, got {arch!r}")
    recipe = RECIPES[arch]
    beta = recipe.beta if beta is None else beta
    surrogate = recipe.surrogate if surrogate is None else surrogate
    gen = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)

    def leaky():
        return Leaky(beta=beta, surrogate=surrogate)
    if arch == "mlp":
        return Sequential(Linear(num_inputs, hidden, dtype=dtype, rng=gen), leaky(),
                          Linear(hidden, num_outputs, dtype=dtype, rng=gen), leaky())
    return Sequential(Conv2d(1, 12, 5, dtype=dtype, rng=gen), MaxPool2d(2), leaky(),
                      Conv2d(12, 64, 5, dtype=dtype, rng=gen), MaxPool2d(2), leaky(),
                      Flatten(), Linear(64 * 4 * 4, num_outputs, dtype=dtype, rng=gen), leaky())


def as_images(x, arch):
    """Flat images (B, 784), or spike trains of them (T, B, 784), in the shape `arch` takes:
    unchanged for the mlp, (…, 1, 28, 28) for the csnn (a view: no copy)."""
    shape = RECIPES[arch].image_shape
    return x if shape is None else x.reshape(x.shape[:-1] + shape)

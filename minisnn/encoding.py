"""How a training run shows an image to the network (`minisnn train --encoding`).

    static    the pixel values themselves, the same at every step (the reference tutorial's)
    rate      a Bernoulli spike train per pixel, P(spike) = pixel value, a fresh draw for every
              batch (minisnn.spikegen.rate)
    latency   one spike per pixel, brighter pixels earlier: spikegen.latency(x, T, tau=5,
              threshold=0.01, clip=True, normalize=True, linear=True), the settings of snnTorch's
              tutorial 1 (a pixel below the threshold never fires)

The random draws of the rate code are seeded by the run's seed and the batch's place in the run
(`key`): a resumed run draws exactly the spikes an uninterrupted one would have.
"""
from dataclasses import dataclass

import numpy as np

from . import spikegen

ENCODINGS = ("static", "rate", "latency")
LATENCY = dict(tau=5.0, threshold=0.01, clip=True, normalize=True, linear=True)

# the streams of random draws, one per use of the encoder in a run
TRAIN, TEST_MINIBATCH, EVALUATE = 1, 2, 3


def encode(x, encoding, num_steps, seed, stream, index):
    """x (B, 784) in [0, 1] as the network's input: x itself for 'static', else (T, B, 784)
    spikes. (seed, stream, index) seed the rate code's draws: stream says which use (TRAIN,
    TEST_MINIBATCH, EVALUATE), index which batch of it (the global iteration, or the batch)."""
    if encoding == "static":
        return x
    if encoding == "rate":
        draw = int(np.random.SeedSequence([seed, stream, index]).generate_state(1)[0])
        return spikegen.rate(x, num_steps, rng=draw)
    if encoding == "latency":
        return spikegen.latency(x, num_steps, **LATENCY)
    raise ValueError(f"encoding must be one of {', '.join(ENCODINGS)}; got {encoding!r}")


@dataclass(frozen=True)
class Inputs:
    """How each batch of flat images (B, 784) reaches a run's network: encoded (`encode`), then
    shaped for the architecture, e.g. (1, 28, 28) per image for a convolutional one."""
    encoding: str = "static"
    image_shape: tuple = None       # None: the flat pixels, as they are
    num_steps: int = 25
    seed: int = 0

    def __call__(self, x, stream, index):
        x = encode(x, self.encoding, self.num_steps, self.seed, stream, index)
        return x if self.image_shape is None else x.reshape(x.shape[:-1] + self.image_shape)

"""Small builders shared by the core tests (pure functions: every test builds its own objects)."""
import numpy as np

import minisnn as ms


def one_layer(n_in=6, n_out=4, dtype="float64", seed=0, **leaky):
    leaky.setdefault("beta", 0.9)
    return ms.Sequential(ms.Linear(n_in, n_out, dtype=dtype, rng=seed), ms.Leaky(**leaky))


def deep(sizes, dtype="float64", seed=0, **leaky):
    leaky.setdefault("beta", 0.9)
    rng = np.random.default_rng(seed)
    layers = []
    for a, b in zip(sizes, sizes[1:]):
        layers += [ms.Linear(a, b, dtype=dtype, rng=rng), ms.Leaky(**leaky)]
    return ms.Sequential(*layers)


def both_losses(y):
    """Membrane CE plus rate CE, so that both d_mem and d_spk reach the backward pass."""
    def loss_fn(spk, mem):
        L1, d_mem = ms.ce_membrane_loss(mem, y)
        L2, d_spk = ms.ce_rate_loss(spk, y)
        return L1 + L2, d_mem, d_spk
    return loss_fn

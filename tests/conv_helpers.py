"""Builders and checks shared by the tests of the convolutional layers (pure functions: every
test builds its own objects)."""
import numpy as np

import minisnn as ms
from minisnn import gradcheck
from minisnn.network import named_parameters
from minisnn.surrogate import SmoothSigmoid

from helpers import both_losses  # noqa: F401  (membrane CE + rate CE: d_mem and d_spk)


def smooth_leaky(beta=0.8, learn_beta=True, reset="subtract"):
    """The finite-difference stand-in neuron: a sigmoid spike, the reset attached."""
    return ms.Leaky(beta, surrogate=SmoothSigmoid(4.0), reset=reset, detach_reset=False,
                    learn_beta=learn_beta)


def layer_grads(layer, X, num_steps, R):
    """One forward and backward of a single layer for L = Σ R·out: (∂L/∂X, {name: gradient})."""
    for _, p in named_parameters([layer]):
        p.grad[...] = 0
    out, rec = layer.forward(X, num_steps)
    assert out.shape == R.shape, (out.shape, R.shape)
    dX = layer.backward(rec, R.copy())
    return dX, {name: np.array(p.grad) for name, p in named_parameters([layer])}


def layer_fd_errors(layer, X, num_steps, seed=0, h=1e-6):
    """Relative errors of a layer's backward against central differences of L = Σ R·out, for its
    input X and each of its parameters (those of a Residual's block included)."""
    out, _ = layer.forward(X, num_steps)
    R = np.random.default_rng(seed).standard_normal(out.shape)
    dX, grads = layer_grads(layer, X, num_steps, R)
    f = lambda: float((layer.forward(X, num_steps)[0] * R).sum())
    errors = {"X": gradcheck.rel_error(dX, gradcheck.numerical_gradient(f, X, h))}
    for name, p in named_parameters([layer]):
        errors[name] = gradcheck.rel_error(grads[name], gradcheck.numerical_gradient(f, p.value, h))
    return errors


def tiny_csnn(leaky=smooth_leaky, residual=False, seed=0, dtype="float64"):
    """A small CSNN for (B, 1, 10, 10) images, with the layers of snnTorch's tutorial 6 (and an
    average pool, and optionally a residual block)."""
    rng = np.random.default_rng(seed)
    layers = [ms.Conv2d(1, 3, 3, dtype=dtype, rng=rng), ms.MaxPool2d(2), leaky()]   # 3×4×4
    if residual:
        layers.append(ms.Residual(ms.Conv2d(3, 3, 3, padding=1, dtype=dtype, rng=rng), leaky()))
    layers += [ms.Conv2d(3, 4, 3, padding=1, dtype=dtype, rng=rng), ms.AvgPool2d(2), leaky(),
               ms.Flatten(), ms.Linear(16, 3, dtype=dtype, rng=rng), leaky()]
    return ms.Sequential(*layers)


def image_loss(shape, seed=0):
    """A loss on image-shaped records (T, B, C, H, W), for a network that ends in a convolution
    and a neuron: L = Σ A·U² / 2 + Σ C·S, with fixed random A, C. Returns (L, d_mem, d_spk)."""
    rng = np.random.default_rng(seed)
    A, C = rng.random(shape), rng.standard_normal(shape)

    def loss_fn(spk, mem):
        return (A * mem ** 2).sum() / 2 + (C * spk).sum(), A * mem, C.copy()
    return loss_fn

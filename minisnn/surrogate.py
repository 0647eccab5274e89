"""Surrogate gradients: a Heaviside step forward, a smooth stand-in for its derivative backward.

Forward, every surrogate fires the same way (eq. 3):  S = Θ(V),  V = U − θ,  with a strict `>`.
Backward, the Dirac delta dΘ/dV (zero almost everywhere: the dead-neuron problem) is replaced by
the derivative of a smooth function, written ∂S̃/∂U in eq. (5). Each surrogate is a small frozen
dataclass with `spike(V)` and `grad(V, S)`; pass an instance, or a name, to `Leaky(surrogate=...)`.
A user's own surrogate only needs those two methods (subclass `Surrogate`).

All constants are Python floats, so float32 in gives float32 out and float64 gives float64.
"""
import math
from dataclasses import dataclass

from .backend import get_xp


def _logistic(z):
    """σ(z) = 1/(1 + e^−z), written as (1 + tanh(z/2))/2 so that it never overflows."""
    return (1 + get_xp(z).tanh(z / 2)) / 2


class Surrogate:
    """Base class: Heaviside forward; subclasses define `grad`."""
    name = "surrogate"
    smooth = False  # True only for the gradient-checking stand-in, whose forward is not a step

    def spike(self, V):
        """S = Θ(V): 1 where V > 0 (strict), else 0, in V's dtype. (eq. 3)"""
        return (V > 0).astype(V.dtype)

    def grad(self, V, S):
        raise NotImplementedError(f"{type(self).__name__} must define grad(V, S)")


@dataclass(frozen=True)
class ATan(Surrogate):
    """Arctangent surrogate, snnTorch's default.

    The step is smoothed as S̃ = 1/π · arctan(π·α/2 · V) + 1/2, whose derivative is

        ∂S̃/∂U = (α/2) / (1 + (π·α/2 · V)²)                                   (5)

    which equals 1 at threshold when α = 2. The printed eq. (5) of the reference tutorial,
    1/π · 1/(1 + (πU)²), carries an extra factor 1/π (the same misprint is in snnTorch's
    docstring; its code computes the formula above). Differentiate S̃ by hand to see it:
    d/dV [arctan(kV)/π] = k / (π (1 + k²V²)) and with k = πα/2 the π cancels.
    """
    alpha: float = 2.0
    name = "atan"

    def grad(self, V, S):
        k = math.pi * self.alpha / 2
        g = k * V                                              # one new array, then in place:
        g *= g                                                 # (π·α/2 · V)²
        g += 1
        return get_xp(V).divide(self.alpha / 2, g, out=g)      # (α/2) / (1 + (π·α/2 · V)²)


@dataclass(frozen=True)
class SpikeOperator(Surrogate):
    """The reference tutorial's `LeakySurrogate`: ∂S̃/∂U = S (1 where the neuron spiked, else 0).
    snnTorch calls this `surrogate.heaviside`."""
    name = "spike_operator"

    def grad(self, V, S):
        return S


@dataclass(frozen=True)
class FastSigmoid(Surrogate):
    """Fast sigmoid (SuperSpike): ∂S̃/∂U = 1 / (slope·|V| + 1)²."""
    slope: float = 25.0
    name = "fast_sigmoid"

    def grad(self, V, S):
        xp = get_xp(V)
        return 1 / (self.slope * xp.abs(V) + 1) ** 2


@dataclass(frozen=True)
class Sigmoid(Surrogate):
    """Logistic sigmoid σ(slope·V): ∂S̃/∂U = slope · σ(slope·V) · (1 − σ(slope·V)).
    snnTorch's `surrogate.sigmoid` computes the same formula as e^(−kV)/(e^(−kV) + 1)², which
    overflows to NaN once slope·V < −88 in float32 (V < −3.6 at slope 25); this one never does."""
    slope: float = 25.0
    name = "sigmoid"

    def grad(self, V, S):
        s = _logistic(self.slope * V)
        return self.slope * s * (1 - s)


@dataclass(frozen=True)
class StraightThrough(Surrogate):
    """Straight-through estimator: ∂S̃/∂U = 1 everywhere (snnTorch's
    `surrogate.straight_through_estimator`)."""
    name = "straight_through"

    def grad(self, V, S):
        return get_xp(V).ones_like(V)


@dataclass(frozen=True)
class Triangular(Surrogate):
    """Triangle of half-width `width` around threshold: ∂S̃/∂U = max(0, 1 − |V|/width).

    Not snnTorch's `surrogate.triangular`, which despite its name is a sign step: +threshold for
    V < 0 and −threshold for V ≥ 0 (its `threshold` argument, default 1, is the height). For
    snnTorch's behaviour, subclass Surrogate with
    `grad = lambda self, V, S: get_xp(V).where(V < 0, 1.0, -1.0).astype(V.dtype)`
    (see docs/coming_from_snntorch.md)."""
    width: float = 1.0
    name = "triangular"

    def grad(self, V, S):
        xp = get_xp(V)
        return xp.maximum(1 - xp.abs(V) / self.width, 0)


@dataclass(frozen=True)
class SmoothSigmoid(Surrogate):
    """For gradient checking only: the forward is *not* a spike but σ(slope·V), and the backward
    is its exact derivative. With it the whole network is smooth, so finite differences can
    verify the backward pass, β terms and reset path included."""
    slope: float = 4.0
    name = "smooth_sigmoid"
    smooth = True

    def spike(self, V):
        return _logistic(self.slope * V)

    def grad(self, V, S):
        return self.slope * S * (1 - S)  # S is σ(slope·V) here


SURROGATES = {cls.name: cls for cls in
              (ATan, SpikeOperator, FastSigmoid, Sigmoid, StraightThrough, Triangular, SmoothSigmoid)}


def get_surrogate(surrogate):
    """Turn a name (see `SURROGATES`) or a Surrogate instance into a Surrogate instance."""
    if isinstance(surrogate, str):
        if surrogate not in SURROGATES:
            raise ValueError(f"surrogate must be one of {sorted(SURROGATES)} or a Surrogate "
                             f"instance, got {surrogate!r}")
        return SURROGATES[surrogate]()
    if callable(getattr(surrogate, "spike", None)) and callable(getattr(surrogate, "grad", None)):
        return surrogate
    raise TypeError(f"surrogate must be a name or an object with spike(V) and grad(V, S), "
                    f"got {surrogate!r}")

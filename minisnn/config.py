"""The settings of a training run, where a run stands, and what `--resume` may change.

`TrainConfig` holds every setting (defaults: the reference tutorial's); `Progress` says how far
training has got, counted in images seen, so that a run resumed with another batch size goes on
from the very image where it stopped.

Resuming: every setting has one rule, in the table `RESUME` below.

    kind       a setting of this kind, when resuming from a checkpoint ...
    --------   ------------------------------------------------------------------------------
    fixed      is the checkpoint's; a different value is refused (it defines the network, or
               the path of the run: hidden, steps, beta, surrogate, dtype, seed, betas, ...)
    continue   is the checkpoint's unless given; a given value is used from here on
               (lr, batch_size: progress counts images, so another batch size goes on from the
               next image of the same shuffled epoch)
    run        belongs to this command only: the given value or the default, never the
               checkpoint's (epochs, max_iters, backend, report and checkpoint intervals, ...)

Adding a TrainConfig field means adding one line to `RESUME` (a test checks that every field
has a rule).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

import numpy as np

from .encoding import ENCODINGS
from .models import RECIPES
from .surrogate import SURROGATES

#: Surrogates a training run may use: every one but the gradient-checking stand-in, whose
#: forward pass is not a spike.
TRAIN_SURROGATES = tuple(name for name, cls in SURROGATES.items() if not cls.smooth)
DTYPES = ("float32", "float64")
BACKENDS = ("numpy", "cupy")
LOSSES = ("ce_membrane", "ce_rate")     # the seed's membrane cross-entropy; snnTorch's ce_rate_loss


class ConfigError(ValueError):
    """A training setting out of range (the message names the setting and the value)."""


@dataclass(frozen=True)
class TrainConfig:
    """Every setting of a training run. The defaults are the reference tutorial's."""

    arch: str = "mlp"                # the network (models.py): 'mlp' (the seed's) or 'csnn'
    hidden: int | None = None        # mlp's hidden neurons: 784-1000-10 (None: 1000)
    steps: int = 25                  # time steps each image is shown for (num_steps)
    beta: float | None = None        # membrane decay β of every Leaky layer (None: the arch's)
    surrogate: str | None = None     # surrogate gradient, from TRAIN_SURROGATES (None: the arch's)
    lr: float | None = None          # Adam learning rate (None: the arch's recipe)
    loss: str | None = None          # 'ce_membrane' or 'ce_rate' (None: the arch's recipe)
    betas: tuple = (0.9, 0.999)      # Adam's β1, β2
    batch_size: int = 128            # training (and test-minibatch) batch size; drop_last
    epochs: int = 1                  # passes over the training set in this run
    seed: int = 0                    # weights, shuffling and test minibatches all follow it
    dtype: str = "float32"
    backend: str = "numpy"           # 'numpy' or 'cupy'
    max_iters: int | None = None     # stop after this many iterations (None: run all epochs)
    report_every: int = 50           # print the tutorial's report every this many iterations
    eval_batch_size: int = 128       # batch size of the final full test-set evaluation
    num_inputs: int = 784            # pixels per image
    num_outputs: int = 10            # classes
    checkpoint_every: int | None = None   # also checkpoint every this many iterations
    checkpoint_minutes: float = 5.0  # checkpoint at least this often (wall time; 0: never by time)
    encoding: str = "static"         # how images become input: static, rate or latency (encoding.py)
    recompute_every: int | None = None   # BPTT in segments of this many steps (recompute.py)

    def __post_init__(self):
        if self.arch not in RECIPES:
            raise ConfigError(f"arch must be one of {', '.join(RECIPES)}; got {self.arch!r}")
        recipe = RECIPES[self.arch]
        if self.arch != "mlp" and self.hidden is not None:
            raise ConfigError(f"hidden sets the mlp's hidden layer; the {self.arch} has no such "
                              f"setting (got hidden={self.hidden!r})")
        defaults = (("hidden", 1000),) if self.arch == "mlp" else ()
        for name, default in defaults + (("beta", recipe.beta), ("surrogate", recipe.surrogate),
                              ("lr", recipe.lr), ("loss", recipe.loss)):
            if getattr(self, name) is None:       # the architecture's recipe (models.RECIPES)
                object.__setattr__(self, name, default)
        for name in ("steps", "batch_size", "epochs", "report_every",
                     "eval_batch_size", "num_inputs", "num_outputs"):
            _check_int(name, getattr(self, name), 1)
        if self.arch == "mlp":
            _check_int("hidden", self.hidden, 1)
        _check_int("seed", self.seed, 0)
        for name in ("max_iters", "checkpoint_every", "recompute_every"):
            if getattr(self, name) is not None:
                _check_int(name, getattr(self, name), 1)
        if not _is_number(self.beta) or not 0.0 <= self.beta <= 1.0:
            raise ConfigError(f"beta must be a number in [0, 1], got {self.beta!r}")
        if not _is_number(self.lr) or not self.lr > 0:
            raise ConfigError(f"lr must be a finite number > 0, got {self.lr!r}")
        if not _is_number(self.checkpoint_minutes) or self.checkpoint_minutes < 0:
            raise ConfigError(f"checkpoint_minutes must be a finite number >= 0, got "
                              f"{self.checkpoint_minutes!r}")
        betas = tuple(self.betas) if isinstance(self.betas, (tuple, list)) else None
        if betas is None or len(betas) != 2 or not all(_is_number(b) and 0 <= b < 1 for b in betas):
            raise ConfigError(f"betas must be two numbers in [0, 1), got {self.betas!r}")
        object.__setattr__(self, "betas", betas)
        for name, value, allowed in (("surrogate", self.surrogate, TRAIN_SURROGATES),
                                     ("dtype", self.dtype, DTYPES),
                                     ("backend", self.backend, BACKENDS),
                                     ("encoding", self.encoding, ENCODINGS),
                                     ("loss", self.loss, LOSSES)):
            if value not in allowed:
                raise ConfigError(f"{name} must be one of {', '.join(allowed)}; got {value!r}")

    def to_meta(self):
        """The settings as a JSON-able dict, for a checkpoint's meta data."""
        meta = asdict(self)
        meta["betas"] = list(self.betas)
        return meta

    @classmethod
    def from_meta(cls, meta, **overrides):
        """Settings read back from a checkpoint's meta data (unknown keys are ignored);
        `overrides` replace single values (no resume rule applied: see `resume_config`)."""
        names = {f.name for f in fields(cls)}
        kwargs = {k: v for k, v in meta.items() if k in names}
        if "betas" in kwargs:
            kwargs["betas"] = tuple(kwargs["betas"])
        kwargs.update(overrides)
        return cls(**kwargs)


def _is_number(v):
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool) \
        and math.isfinite(v)


def _check_int(name, v, least):
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < least:
        raise ConfigError(f"{name} must be an integer >= {least}, got {v!r}")


# ----------------------------------------------------------------------------- resuming

FIXED, CONTINUE, RUN = "fixed", "continue", "run"

#: The resume rule of every TrainConfig field (see the module docstring). One line per field.
RESUME = {
    "arch": FIXED,
    "hidden": FIXED,
    "steps": FIXED,
    "beta": FIXED,
    "surrogate": FIXED,
    "dtype": FIXED,
    "seed": FIXED,              # the shuffled order of every epoch follows it
    "betas": FIXED,
    "num_inputs": FIXED,
    "num_outputs": FIXED,
    "encoding": FIXED,          # the network learned from this kind of input
    "loss": FIXED,
    "lr": CONTINUE,
    "batch_size": CONTINUE,     # progress counts images, so it may change between runs
    "epochs": RUN,
    "max_iters": RUN,
    "backend": RUN,
    "report_every": RUN,
    "eval_batch_size": RUN,
    "checkpoint_every": RUN,
    "checkpoint_minutes": RUN,
    "recompute_every": RUN,     # the same gradients: how much memory this run may use
}


def flag(name):
    """The command-line flag of a setting: batch_size -> --batch-size."""
    return "--" + name.replace("_", "-")


def settings_of_kind(kind):
    """The TrainConfig fields that `RESUME` gives this kind, in table order."""
    return [name for name, k in RESUME.items() if k == kind]


def refused_changes(saved: TrainConfig, given: dict):
    """The given values that a resumed run may not change: [(field, saved value, given value)]."""
    return [(name, getattr(saved, name), value) for name, value in given.items()
            if RESUME[name] == FIXED and _differs(getattr(saved, name), value)]


def _differs(a, b):
    if isinstance(a, tuple):
        return tuple(a) != tuple(b)
    return a != b


def resume_config(saved: TrainConfig, given: dict, flag=lambda name: name,
                  keep_run=False) -> TrainConfig:
    """The settings of a run that resumes from a checkpoint trained with `saved`, given the
    values in `given` (settings the user set). Applies `RESUME`; a given fixed setting that
    differs raises ConfigError listing every such setting (`flag(name)` spells it, e.g.
    '--batch-size' on the command line). keep_run=True keeps the checkpoint's run settings
    where `given` has none (the settings it was trained with, for the API)."""
    unknown = set(given) - set(RESUME)
    if unknown:
        raise ConfigError(f"unknown settings {sorted(unknown)}")
    refused = refused_changes(saved, given)
    if refused:
        listed = "; ".join(f"{flag(n)} {_show(v)} (the checkpoint has {_show(s)})"
                           for n, s, v in refused)
        raise ConfigError(f"a resumed run cannot change {listed}: these define the trained "
                          f"network or the path of the run; leave them out to continue, or "
                          f"start a new run without --resume")
    kwargs = {}
    for name, kind in RESUME.items():
        if kind == RUN and not keep_run:
            if name in given:
                kwargs[name] = given[name]
        else:
            kwargs[name] = given.get(name, getattr(saved, name))
    return TrainConfig(**kwargs)


def _show(v):
    return f"{v:g}" if isinstance(v, float) else str(v)


# ----------------------------------------------------------------------------- progress

@dataclass(frozen=True)
class Progress:
    """How far training has got: `epoch` epochs completed, `images` images of the next epoch
    already trained on (in its shuffled order), `iteration` optimizer steps in all.
    A resumed run starts from here, whatever its batch size."""
    epoch: int = 0
    images: int = 0
    iteration: int = 0

    @classmethod
    def from_meta(cls, meta):
        if "images" in meta:
            images = int(meta["images"])
        else:   # checkpoints written before progress counted images: a batch index
            images = int(meta.get("batch", 0)) * int(meta.get("batch_size", 0))
        return cls(int(meta.get("epoch", 0)), images, int(meta.get("iteration", 0)))

    def to_meta(self):
        return {"epoch": self.epoch, "images": self.images, "iteration": self.iteration}

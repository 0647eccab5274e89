"""Building a training run from its settings: the network, the optimizer and the data a
TrainConfig describes, and the same from a checkpoint (refused unless it fits exactly).

    cfg = TrainConfig(hidden=100)
    net, opt = build_net(cfg), build_optimizer(net, cfg)
    data = load_data("data/mnist", cfg); check_data(cfg, data)
    net, opt, progress, meta = load_checkpoint("runs/latest/model.npz",
                                               config_from_checkpoint("runs/latest/model.npz"))

minisnn.train re-exports every name here.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from . import data as data_mod
from .backend import array_module, backend_name, get_xp
from .checkpoint import CheckpointError, load, read_info
from .config import (FIXED, ConfigError, Progress, TrainConfig, refused_changes,
                     resume_config, settings_of_kind)
from . import models
from .encoding import Inputs
from .network import Sequential
from .optim import Adam


def build_net(cfg: TrainConfig) -> Sequential:
    """cfg's network (minisnn.models.build): for the mlp, the tutorial's Linear(784, hidden) →
    Leaky(β) → Linear(hidden, 10) → Leaky(β); for the csnn, snnTorch tutorial 6's. Weights come
    from numpy.random.default_rng(cfg.seed), so a seed gives the same network; they are created
    on cfg.backend."""
    net = models.build(cfg.arch, beta=cfg.beta, surrogate=cfg.surrogate,
                       hidden=cfg.hidden if cfg.arch == "mlp" else None,
                       num_outputs=cfg.num_outputs, dtype=cfg.dtype, rng=cfg.seed,
                       num_inputs=cfg.num_inputs)
    return net.to(cfg.backend)


def inputs_for(cfg: TrainConfig):
    """How cfg's run shows each batch of flat images to its network (encoded, then shaped)."""
    return Inputs(cfg.encoding, models.RECIPES[cfg.arch].image_shape, cfg.steps, cfg.seed)


def build_optimizer(net: Sequential, cfg: TrainConfig) -> Adam:
    """Adam over every parameter of `net` with cfg's learning rate and betas."""
    return Adam(net.parameters(), lr=cfg.lr, betas=cfg.betas)


def load_data(folder, cfg: TrainConfig):
    """Load an MNIST-style folder onto cfg's backend (one copy, here). The images stay uint8
    pixels 0..255 (a quarter of float32's memory); each batch becomes cfg.dtype in [0, 1] as it
    is used. Label files must hold integers (DataError for an IDX file of floats)."""
    xp = None if cfg.backend == "numpy" else array_module(cfg.backend)
    try:
        dataset = data_mod.load_dataset(folder, dtype="uint8", xp=xp)
    except ValueError as e:
        if isinstance(e, data_mod.DataError):
            raise
        for split, name in (("train", data_mod.TRAIN_IMAGES), ("test", data_mod.TEST_IMAGES)):
            if len(data_mod.read_idx(Path(folder) / name)) == 0:   # data cannot reshape it
                raise ConfigError(f"the {split} set of {Path(folder).name} is empty "
                                  f"(0 images)") from e
        raise
    if isinstance(folder, str) and folder in data_mod.BUNDLED:
        return dataset                        # checked against its MD5s: uint8 labels
    for name in (data_mod.TRAIN_LABELS, data_mod.TEST_LABELS):
        path = Path(folder) / name
        kind = data_mod.read_idx(path).dtype
        if kind.kind not in "iu":
            raise data_mod.DataError(f"{path}: holds {kind} labels; class labels must be "
                                     f"integers (minisnn does not round them)")
    return dataset


def check_data(cfg: TrainConfig, data, training=True):
    """Raise ConfigError if `data` cannot be used with `cfg` (sizes, dtype, backend, labels).
    training=False checks only what evaluating on the test set needs."""
    for split in ("train", "test") if training else ("test",):
        x = getattr(data, f"{split}_x")
        if x.ndim != 2 or x.shape[1] != cfg.num_inputs:
            raise ConfigError(f"the {split} images have shape {tuple(x.shape)}, but the network "
                              f"takes {cfg.num_inputs} inputs per image")
        if len(x) == 0:
            raise ConfigError(f"the {split} set of {data.name or 'the data set'} is empty "
                              f"(0 images)")
        if training and len(x) < cfg.batch_size:
            raise ConfigError(f"batch_size {cfg.batch_size} is larger than the {len(x)} "
                              f"{split} images of {data.name or 'the data set'}")
        if str(x.dtype) not in ("uint8", cfg.dtype):
            raise ConfigError(f"the {split} images are {x.dtype} but the run computes in "
                              f"{cfg.dtype}; load them with load_data(folder, cfg)")
        if backend_name(get_xp(x)) != cfg.backend:
            raise ConfigError(f"the {split} images are on {backend_name(get_xp(x))} but the run "
                              f"uses {cfg.backend}; load them with load_data(folder, cfg)")
        y = getattr(data, f"{split}_y")   # value checks once here, not at every step
        if y.dtype.kind not in "iu":
            raise ConfigError(f"the {split} labels are {y.dtype}; class labels must be integers")
        if len(y) != len(x):
            raise ConfigError(f"the {split} set has {len(x)} images but {len(y)} labels")
        if int(y.min()) < 0 or int(y.max()) >= cfg.num_outputs:
            raise ConfigError(f"the {split} labels must be in [0, {cfg.num_outputs}), got values "
                              f"from {int(y.min())} to {int(y.max())}")
        if x.dtype.kind == "f" and not bool(get_xp(x).isfinite(x).all()):
            raise ConfigError(f"the {split} images contain NaN or inf")


# ----------------------------------------------------------------------------- checkpoints

_REQUIRED_META = ("hidden", "steps", "beta", "surrogate", "dtype")


def _saved_config(meta, path) -> TrainConfig:
    missing = [k for k in _REQUIRED_META if k not in meta]
    if missing:
        raise CheckpointError(f"{path}: holds no training settings ({', '.join(missing)} "
                              f"missing from its meta data); was it written by minisnn train?")
    try:
        return TrainConfig.from_meta(meta)
    except (ConfigError, TypeError) as e:
        raise CheckpointError(f"{path}: bad training settings in its meta data: {e}") from e


def config_from_checkpoint(path, **overrides) -> TrainConfig:
    """The TrainConfig a checkpoint written by a training run was trained with; `overrides`
    replace single settings, as config.RESUME allows (ConfigError for a fixed setting that
    differs). Raises CheckpointError for other files."""
    saved = _saved_config(read_info(path)["meta"], path)
    return resume_config(saved, overrides, keep_run=True)


def load_checkpoint(path, cfg: TrainConfig, with_optimizer=True):
    """Build cfg's network (and optimizer) and load `path` into them.

    The checkpoint must hold exactly this architecture (ms.load compares every layer's
    settings) and have been trained with cfg's fixed settings (config.RESUME: steps, seed...),
    else CheckpointError. Returns (net, opt or None, Progress, meta)."""
    net = build_net(cfg)
    opt = build_optimizer(net, cfg) if with_optimizer else None
    meta = load(path, net, optimizer=opt)
    saved = _saved_config(meta, path)
    refused = refused_changes(saved, {k: getattr(cfg, k) for k in settings_of_kind(FIXED)})
    if refused:
        listed = ", ".join(f"{k}={s} in the checkpoint, {v} here" for k, s, v in refused)
        raise CheckpointError(f"{path}: the checkpoint was trained with other settings: {listed}")
    return net, opt, Progress.from_meta(meta), meta

"""Bad input gets a clear error naming the argument and what was expected (item 10)."""
import numpy as np
import pytest

import minisnn as ms


def net():
    return ms.Sequential(ms.Linear(4, 3, rng=0), ms.Leaky(0.9))


X = np.ones((2, 4), dtype=np.float32)


@pytest.mark.parametrize("x, steps, match", [
    (np.ones((2, 5), np.float32), 3, r"x must have shape \(B, 4\)"),
    (np.ones((4,), np.float32), 3, r"x must have shape"),
    (np.ones((1, 2, 3, 4), np.float32), 3, r"x must have shape"),
    (np.ones((2, 4), np.float64), 3, "dtype float64 but the network computes in float32"),
    (np.ones((2, 4), np.int64), 3, "dtype int64"),
    (np.full((2, 4), np.nan, np.float32), 3, "NaN or inf"),
    (np.full((2, 4), np.inf, np.float32), 3, "NaN or inf"),
    (X, 0, "num_steps must be an integer >= 1"),
    (X, 2.5, "num_steps must be an integer >= 1"),
    (X, None, "num_steps is required"),
    (np.ones((3, 2, 4), np.float32), 5, "does not match x's time axis"),
    ([[1.0] * 4], 3, "x must be a NumPy or CuPy array"),
])
def test_bad_forward_input(x, steps, match):
    with pytest.raises((ValueError, TypeError), match=match):
        net()(x, num_steps=steps)


@pytest.mark.parametrize("kwargs, match", [
    ({"beta": 1.5}, r"beta must be in \[0, 1\]"),
    ({"beta": -0.1}, r"beta must be in \[0, 1\]"),
    ({"beta": "a"}, "beta must be a number"),
    ({"beta": 0.9, "threshold": 0}, "threshold must be a number > 0"),
    ({"beta": 0.9, "threshold": -1}, "threshold must be a number > 0"),
    ({"beta": 0.9, "reset": "soft"}, "reset must be one of"),
    ({"beta": 0.9, "surrogate": "relu"}, "surrogate must be one of"),
    ({"beta": 0.9, "detach_reset": "yes"}, "detach_reset must be True or False"),
])
def test_bad_neuron_settings(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        ms.Leaky(**kwargs)


def test_bad_layers():
    with pytest.raises(ValueError, match="in_features must be a positive integer"):
        ms.Linear(0, 3)
    with pytest.raises(ValueError, match="dtype must be a floating-point"):
        ms.Linear(2, 3, dtype="int32")
    with pytest.raises(ValueError, match="do not chain"):
        ms.Sequential(ms.Linear(4, 3), ms.Leaky(0.9), ms.Linear(2, 1), ms.Leaky(0.9))
    with pytest.raises(ValueError, match="last layer must be a Leaky"):
        ms.Sequential(ms.Linear(4, 3))


def test_backward_before_forward_and_bad_gradients():
    n = net()
    with pytest.raises(RuntimeError, match="needs a forward pass first"):
        n.backward(d_mem=np.zeros((3, 2, 3), np.float32))
    spk, mem = n(X, num_steps=3)
    with pytest.raises(ValueError, match="needs d_mem, d_spk or both"):
        n.backward()
    with pytest.raises(ValueError, match=r"d_mem must have shape \(3, 2, 3\)"):
        n.backward(d_mem=np.zeros((3, 2, 4), np.float32))


@pytest.mark.parametrize("y, match", [
    (np.array([0, 3]), r"labels in \[0, 3\)"),
    (np.array([-1, 0]), r"labels in \[0, 3\)"),
    (np.array([0, 1, 2]), r"y must have shape \(2,\)"),
    (np.array([0.0, 1.0]), "integer class labels"),
])
def test_bad_labels(y, match):
    spk, mem = net()(X, num_steps=3)
    for fn, rec in ((ms.ce_membrane_loss, mem), (ms.ce_rate_loss, spk), (ms.mse_count_loss, spk)):
        with pytest.raises((ValueError, TypeError), match=match):
            fn(rec, y)


@pytest.mark.parametrize("make, kwargs, error, match", [
    ("Adam", {"lr": -1e-3}, ValueError, r"lr must be a finite number >= 0, got -0.001"),
    ("Adam", {"lr": float("inf")}, ValueError, "lr must be a finite number >= 0, got inf"),
    ("Adam", {"lr": float("nan")}, ValueError, "lr must be a finite number"),
    ("Adam", {"lr": "1e-3"}, TypeError, "lr must be a real number, got '1e-3'"),
    ("Adam", {"lr": True}, TypeError, "lr must be a real number"),
    ("Adam", {"eps": 0}, ValueError, "eps must be a finite number > 0, got 0.0"),
    ("Adam", {"eps": -1e-8}, ValueError, "eps must be a finite number > 0"),
    ("Adam", {"betas": (1.0, 0.9)}, ValueError, r"betas\[0\] must be a finite number in \[0, 1\)"),
    ("Adam", {"betas": (0.9, -0.1)}, ValueError, r"betas\[1\] must be"),
    ("Adam", {"betas": 0.9}, TypeError, r"betas must be a pair"),
    ("Adam", {"weight_decay": -1}, ValueError, "weight_decay must be a finite number >= 0"),
    ("SGD", {"momentum": -0.5}, ValueError, "momentum must be a finite number >= 0"),
    ("SGD", {"momentum": float("nan")}, ValueError, "momentum must be a finite number"),
    ("SGD", {"weight_decay": float("inf")}, ValueError, "weight_decay must be a finite"),
])
def test_bad_optimizer_settings(make, kwargs, error, match):
    with pytest.raises(error, match=match):
        getattr(ms, make)(net().parameters(), **kwargs)


def test_optimizer_edge_values_that_torch_accepts():
    for opt in (ms.Adam(net().parameters(), lr=0), ms.SGD(net().parameters(), lr=0, momentum=0),
                ms.Adam(net().parameters(), betas=(0, 0))):
        assert opt.lr >= 0
    with pytest.raises(ValueError, match="params is empty"):
        ms.SGD([], lr=0.1)
    with pytest.raises(TypeError, match=r"params\[0\] must be a Param"):
        ms.SGD([np.zeros(3)], lr=0.1)


def test_empty_batch_is_refused_by_every_loss():
    spk, mem = net()(X, num_steps=3)
    y = np.zeros(0, dtype=np.int64)
    for fn, rec in ((ms.ce_membrane_loss, mem), (ms.ce_rate_loss, spk), (ms.mse_count_loss, spk)):
        with pytest.raises(ValueError, match=r"the batch is empty \(0 examples\)"):
            fn(rec[:, :0], y)

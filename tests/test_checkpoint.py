"""Save/load round trip, atomic writes, and checkpoints that do not fit."""
import os

import numpy as np
import pytest

import minisnn as ms


def net_and_opt(hidden=4, seed=0):
    net = ms.Sequential(ms.Linear(3, hidden, rng=seed), ms.Leaky(0.9, learn_beta=True),
                        ms.Linear(hidden, 2, rng=seed + 1), ms.Leaky(0.9))
    return net, ms.Adam(net.parameters(), lr=1e-2)


def one_step(net, opt):
    spk, mem = net(np.full((2, 3), 0.7, dtype=np.float32), num_steps=4)
    net.backward(d_mem=ms.ce_membrane_loss(mem, np.array([0, 1]))[1])
    opt.step()
    opt.zero_grad()


def test_round_trip_with_optimizer(tmp_path):
    net, opt = net_and_opt()
    one_step(net, opt)
    path = tmp_path / "m.npz"
    ms.save(path, net, optimizer=opt, epoch=3)
    net2, opt2 = net_and_opt(seed=7)
    assert ms.load(path, net2, optimizer=opt2) == {"epoch": 3}
    for a, b in zip(net.parameters(), net2.parameters()):
        np.testing.assert_array_equal(a.value, b.value)
    assert opt2.state["step"] == 1
    np.testing.assert_array_equal(opt.state["v"][0], opt2.state["v"][0])
    one_step(net, opt)
    one_step(net2, opt2)                   # resuming gives the very same next step
    for a, b in zip(net.parameters(), net2.parameters()):
        np.testing.assert_array_equal(a.value, b.value)
    assert [f for f in os.listdir(tmp_path)] == ["m.npz"]


def test_interrupted_save_keeps_old_file(tmp_path, monkeypatch):
    net, opt = net_and_opt()
    path = tmp_path / "m.npz"
    ms.save(path, net)
    before = path.read_bytes()

    def crash(*a, **k):
        raise KeyboardInterrupt
    monkeypatch.setattr(np, "savez", crash)
    with pytest.raises(KeyboardInterrupt):
        ms.save(path, net)
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["m.npz"]


def test_checkpoint_that_does_not_fit(tmp_path):
    net, _ = net_and_opt(hidden=4)
    ms.save(tmp_path / "m.npz", net)
    other, _ = net_and_opt(hidden=5)
    with pytest.raises(ms.CheckpointError, match="different architecture than this network: layer 0 Linear: "
                       "argument 2 4 in the checkpoint, argument 2 5 here; layer 2 Linear: "
                       "argument 1 4 in the checkpoint, argument 1 5 here"):
        ms.load(tmp_path / "m.npz", other)


def test_not_a_checkpoint(tmp_path):
    (tmp_path / "x.npz").write_bytes(b"garbage")
    net, _ = net_and_opt()
    with pytest.raises(ms.CheckpointError, match="x.npz"):
        ms.load(tmp_path / "x.npz", net)


def test_damaged_checkpoint(tmp_path):
    net, _ = net_and_opt()
    path = tmp_path / "m.npz"
    ms.save(path, net)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])           # truncated zip
    with pytest.raises(ms.CheckpointError, match="m.npz"):
        ms.load(path, net)


def test_dtype_mismatch_is_refused(tmp_path):
    net, _ = net_and_opt()
    ms.save(tmp_path / "m.npz", net)
    net64 = ms.Sequential(ms.Linear(3, 4, dtype="float64"), ms.Leaky(0.9, learn_beta=True),
                          ms.Linear(4, 2, dtype="float64"), ms.Leaky(0.9))
    with pytest.raises(ms.CheckpointError, match="layer 0 Linear: dtype=float32 in the "
                       "checkpoint, dtype=float64 here; layer 2 Linear: dtype=float32"):
        ms.load(tmp_path / "m.npz", net64)


def test_saved_file_has_normal_permissions(tmp_path):
    net, _ = net_and_opt()
    ms.save(tmp_path / "m.npz", net)
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "m.npz").stat().st_mode & 0o777 == 0o666 & ~umask

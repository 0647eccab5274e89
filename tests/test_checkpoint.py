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
    with pytest.raises(ms.CheckpointError, match="different architecture than this network: "
                       "layer 0 Linear: "
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


def test_load_refuses_other_neuron_settings_listing_each(tmp_path):
    net = ms.Sequential(ms.Linear(3, 4, rng=0), ms.Leaky(0.5, threshold=2, reset="zero"),
                        ms.Linear(4, 2, rng=1), ms.Leaky(0.5, threshold=2, reset="zero"))
    path = ms.save(tmp_path / "m.npz", net)
    other = ms.Sequential(ms.Linear(3, 4), ms.Leaky(0.95), ms.Linear(4, 2), ms.Leaky(0.95))
    before = [p.value.copy() for p in other.parameters()]
    with pytest.raises(ms.CheckpointError) as e:
        ms.load(path, other)
    msg = str(e.value)
    saved, here = (ms.checkpoint.layer_fields(repr(n[1]))[1] for n in (net, other))
    assert (saved["beta"], here["beta"], saved["reset"]) == ("0.5", "0.95", "'zero'")
    listed = ", ".join(f"{k}={saved[k]} in the checkpoint, {k}={here[k]} here"
                       for k in ("beta", "threshold", "reset"))   # as the reprs spell them
    for i in (1, 3):
        assert f"layer {i} Leaky: {listed}" in msg
    assert "layer 0" not in msg and "layer 2" not in msg
    assert all(np.array_equal(a, p.value) for a, p in zip(before, other.parameters()))


def test_architecture_differences_read_nested_settings_and_user_layers():
    diff = ms.checkpoint.architecture_differences
    a = "Leaky(beta=0.95, threshold=1, surrogate=ATan(alpha=2.0), reset='subtract')"
    b = "Leaky(beta=0.95, threshold=1, surrogate=ATan(alpha=3.0), reset='subtract')"
    assert diff([a], [a]) == []
    assert diff([a], [b]) == ["layer 0 Leaky: surrogate=ATan(alpha=2.0) in the checkpoint, "
                              "surrogate=ATan(alpha=3.0) here"]
    assert diff(["Foo(1, 2, k='a,b')"], ["Foo(1, 3, k='a,b')"]) == [
        "layer 0 Foo: argument 2 2 in the checkpoint, argument 2 3 here"]
    assert diff(["Foo(k='a,b')"], ["Foo(k='a,c')"]) == [
        "layer 0 Foo: k='a,b' in the checkpoint, k='a,c' here"]
    assert diff(["Leaky(beta=0.9)"], ["Leaky(beta=0.9, learn_beta=True)"]) == [
        "layer 0 Leaky: no learn_beta in the checkpoint, learn_beta=True here"]
    # a user's layer without __repr__: the class name only, not its address
    mine = "<my_layers.Dendrite object at 0x7f3a2c1b9d50>"
    assert diff([mine], ["<other.pkg.Dendrite object at 0x55aa00>"]) == []
    assert diff([mine], ["<my_layers.Soma object at 0x7f3a2c1b9d50>"]) == [
        f"layer 0 is {mine} in the checkpoint, <my_layers.Soma object at 0x7f3a2c1b9d50> here"]
    assert diff([a, mine], [a]) == ["2 layers in the checkpoint (Leaky, Dendrite), 1 in this "
                                    "network (Leaky)"]
    assert diff(["Leaky(beta=0.9)"], ["Leaky(beta=0.8)"], learned=[{"beta"}]) == []


def test_files_that_are_not_checkpoints(tmp_path):
    net, _ = net_and_opt()
    np.save(tmp_path / "a.npy", np.zeros(3))
    np.savez(tmp_path / "b.npz", x=np.zeros(3))                      # no info entry
    np.savez(tmp_path / "c.npz", info=np.array('["a list"]'))         # info of another shape
    (tmp_path / "d.npz").mkdir()
    for name, match in (("a.npy", "holds a single NumPy array"), ("b.npz", "no readable 'info'"),
                        ("c.npz", "does not hold an architecture"), ("d.npz", "not a readable")):
        for fn in (lambda p: ms.load(p, net), ms.checkpoint.read_info):
            with pytest.raises(ms.CheckpointError, match=f"{name}: .*{match}"):
                fn(tmp_path / name)


class Scale:
    """A user's layer without __repr__ (out = X · 2): compared by its class name only."""
    state_names = ()

    def param_names(self):
        return ()

    def forward(self, X, num_steps):
        return X * 2, ms.record.Record(X=X)

    def backward(self, rec, d_out):
        return d_out * 2


class Shift(Scale):
    pass


def test_users_layer_is_compared_by_class_name(tmp_path):
    make = lambda layer: ms.Sequential(ms.Linear(3, 4, rng=0), layer, ms.Leaky(0.9))
    ms.save(tmp_path / "m.npz", make(Scale()))
    assert "object at 0x" in ms.checkpoint.read_info(tmp_path / "m.npz")["architecture"][1]
    ms.load(tmp_path / "m.npz", make(Scale()))            # another object: the same layer
    with pytest.raises(ms.CheckpointError, match=r"layer 1 is <.*Scale object at 0x[0-9a-f]+> "
                                                 r"in the checkpoint, <.*Shift object at"):
        ms.load(tmp_path / "m.npz", make(Shift()))

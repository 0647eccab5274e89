"""minisnn.train, function by function, on small in-memory data (fast, CPU)."""
import dataclasses
import os

import numpy as np
import pytest

import minisnn as ms
from minisnn import train as T
from minisnn.data import Dataset


def toy_data(n_train=96, n_test=64, features=20, classes=3, seed=0, dtype="float32"):
    """Learnable toy data: class c lights up its own block of features, plus noise."""
    rng = np.random.default_rng(seed)

    def split(n):
        y = rng.integers(0, classes, n)
        x = rng.uniform(0, 0.3, (n, features))
        block = features // classes
        for c in range(classes):
            x[y == c, c * block:(c + 1) * block] += 0.7
        return x.astype(dtype), y.astype(np.int64)

    return Dataset(*split(n_train), *split(n_test), name="toy")


def toy_config(**kw):
    base = dict(hidden=12, steps=5, batch_size=16, num_inputs=20, num_outputs=3, lr=1e-2,
                eval_batch_size=25, report_every=4)
    base.update(kw)
    return T.TrainConfig(**base)


def params(net):
    return [p.value.copy() for p in net.parameters()]


def test_defaults_are_the_tutorials():
    cfg = T.TrainConfig()
    assert (cfg.num_inputs, cfg.hidden, cfg.num_outputs) == (784, 1000, 10)
    assert (cfg.steps, cfg.beta, cfg.lr, cfg.betas) == (25, 0.95, 5e-4, (0.9, 0.999))
    assert (cfg.batch_size, cfg.epochs, cfg.surrogate) == (128, 1, "atan")
    assert (cfg.dtype, cfg.backend, cfg.max_iters, cfg.report_every) == ("float32", "numpy", None, 50)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.hidden = 5
    net = T.build_net(cfg)
    assert [repr(l) for l in net.layers][0] == "Linear(784, 1000, dtype=float32)"
    assert net[1].beta == 0.95 and net[3].surrogate.name == "atan"
    opt = T.build_optimizer(net, cfg)
    assert isinstance(opt, ms.Adam) and opt.lr == 5e-4 and opt.betas == (0.9, 0.999)


@pytest.mark.parametrize("kw, match", [
    ({"epochs": 0}, "epochs must be an integer >= 1"),
    ({"epochs": -2}, "epochs must be an integer >= 1"),
    ({"hidden": 0}, "hidden must be an integer >= 1"),
    ({"steps": 0}, "steps must be an integer >= 1"),
    ({"batch_size": 0}, "batch_size must be an integer >= 1"),
    ({"batch_size": 2.5}, "batch_size must be an integer"),
    ({"max_iters": 0}, "max_iters must be an integer >= 1"),
    ({"seed": -1}, "seed must be an integer >= 0"),
    ({"beta": 1.01}, r"beta must be a number in \[0, 1\]"),
    ({"beta": -0.1}, r"beta must be a number in \[0, 1\]"),
    ({"beta": float("nan")}, r"beta must be a number in \[0, 1\]"),
    ({"lr": 0}, "lr must be a finite number > 0"),
    ({"lr": -1e-3}, "lr must be a finite number > 0"),
    ({"lr": float("inf")}, "lr must be a finite number > 0"),
    ({"betas": (0.9, 1.0)}, "betas must be two numbers"),
    ({"surrogate": "relu"}, "surrogate must be one of"),
    ({"surrogate": "smooth_sigmoid"}, "surrogate must be one of"),
    ({"dtype": "float16"}, "dtype must be one of"),
    ({"backend": "jax"}, "backend must be one of"),
])
def test_bad_settings(kw, match):
    with pytest.raises(T.ConfigError, match=match):
        T.TrainConfig(**kw)


def test_build_net_follows_the_seed():
    a, b, c = (T.build_net(toy_config(seed=s)) for s in (3, 3, 4))
    for p, q in zip(params(a), params(b)):
        np.testing.assert_array_equal(p, q)
    assert not np.array_equal(params(a)[0], params(c)[0])
    assert [p.value.shape for p in a.parameters()] == [(12, 20), (12,), (3, 12), (3,)]
    assert a.dtype == np.float32 and T.build_net(toy_config(dtype="float64")).dtype == np.float64


def test_train_step_learns_a_batch():
    cfg, data = toy_config(), toy_data()
    net, x, y = T.build_net(cfg), data.train_x[:32], data.train_y[:32]
    opt = T.build_optimizer(net, cfg)
    losses = [float(T.train_step(net, opt, x, y, cfg.steps)[0]) for _ in range(30)]
    assert losses[-1] < 0.5 * losses[0]
    assert opt.state["step"] == 30
    loss, spk = T.eval_batch(net, x, y, cfg.steps)
    assert spk.shape == (5, 32, 3) and loss.shape == ()
    assert T.batch_accuracy(spk, y) > 0.8


def test_eval_batch_does_not_touch_parameters_or_gradients():
    cfg, data = toy_config(), toy_data()
    net = T.build_net(cfg)
    before = params(net)
    T.eval_batch(net, data.test_x[:10], data.test_y[:10], 5)
    for p, b in zip(net.parameters(), before):
        np.testing.assert_array_equal(p.value, b)
        assert not p.grad.any()


def test_evaluate_counts_every_example():
    cfg, data = toy_config(), toy_data(n_test=250)
    net = T.build_net(cfg)
    correct, total = T.evaluate(net, data.test_x, data.test_y, cfg.steps, batch_size=100)
    spk, _ = net(data.test_x, cfg.steps)
    assert total == 250 and isinstance(correct, int)
    assert correct == int((ms.predict_rate(spk) == data.test_y).sum())


def test_cycle_test_batches_can_start_anywhere():
    x, y = np.arange(50, dtype=np.float32)[:, None], np.arange(50)
    full = T.cycle_test_batches(x, y, 8, seed=5)
    seq = [next(full)[1] for _ in range(20)]          # 6 batches per pass: crosses 3 passes
    assert len(set(np.concatenate(seq[:6]).tolist())) == 48   # one pass: 48 distinct examples
    assert not np.array_equal(seq[0], seq[6])         # each pass has its own order
    for start in (0, 4, 6, 13):
        later = T.cycle_test_batches(x, y, 8, seed=5, start=start)
        for k in range(start, 20):
            np.testing.assert_array_equal(next(later)[1], seq[k])


def test_train_records_history_and_progress():
    cfg, data = toy_config(epochs=2), toy_data()
    lines = []
    r = T.train(cfg, data, log=lines.append)
    per_epoch = 96 // 16
    assert r.iterations == len(r.history) == 2 * per_epoch == r.progress.iteration
    assert r.progress == T.Progress(epoch=2, images=0, iteration=12)
    assert r.history.iteration == list(range(12))
    assert r.history.epoch == [0] * 6 + [1] * 6
    assert all(isinstance(v, float) for v in r.history.train_loss + r.history.test_loss)
    assert r.total == 64 and r.test_accuracy == r.correct / 64
    assert r.test_accuracy > 0.6
    assert r.sec_per_iter > 0 and r.sec_per_epoch == pytest.approx(r.sec_per_iter * per_epoch)
    assert r.opt.state["step"] == 12
    text = "\n".join(lines)
    # reports at global iterations 0, 4, 8: the iteration printed counts within the epoch
    for head in ("Epoch 0, Iteration 0", "Epoch 0, Iteration 4", "Epoch 1, Iteration 2"):
        assert head in text
    for label in ("Train Set Loss: ", "Test Set Loss: ",
                  "Train set accuracy for a single minibatch: ",
                  "Test set accuracy for a single minibatch: "):
        assert text.count(label) == 3
    assert f"Total correctly classified test set images: {r.correct}/64" in text
    assert f"Test Set Accuracy: {100 * r.correct / 64:.2f}%" in text
    assert "s/iteration" in text and "s/epoch" in text


def test_max_iters_stops_inside_an_epoch():
    r = T.train(toy_config(epochs=3, max_iters=8), toy_data(), log=None)
    assert r.iterations == 8 and r.progress == T.Progress(epoch=1, images=32, iteration=8)
    r = T.train(toy_config(epochs=3, max_iters=6), toy_data(), log=None)
    assert r.progress == T.Progress(epoch=1, images=0, iteration=6)


def test_same_seed_same_history_other_seed_other_history():
    data = toy_data()
    a, b, c = (T.train(toy_config(seed=s, max_iters=9), data, log=None).history
               for s in (1, 1, 2))
    assert a.rows() == b.rows()
    assert a.train_loss != c.train_loss


def test_training_shuffles_every_epoch():
    """The same seed shuffles each epoch differently (mnist-5k is sorted by label)."""
    from minisnn.data import iterate_batches
    x, y = np.zeros((40, 1), np.float32), np.arange(40)
    e0 = [b[1] for b in iterate_batches(x, y, 10, seed=0, epoch=0)]
    e1 = [b[1] for b in iterate_batches(x, y, 10, seed=0, epoch=1)]
    assert not np.array_equal(np.concatenate(e0), np.concatenate(e1))
    assert not np.array_equal(np.concatenate(e0), y)


def test_resume_gives_the_straight_run(tmp_path):
    data = toy_data()
    straight = T.train(toy_config(epochs=2, max_iters=9), data, log=None)

    cfg = toy_config(epochs=2, max_iters=4)
    first = T.train(cfg, data, log=None)
    T.save_run(tmp_path, first, cfg, data.name)
    cfg2 = T.config_from_checkpoint(tmp_path / "model.npz", max_iters=5)
    assert cfg2 == toy_config(epochs=2, max_iters=5)
    net, opt, start, meta = T.load_checkpoint(tmp_path / "model.npz", cfg2)
    assert start == T.Progress(epoch=0, images=64, iteration=4) and opt.state["step"] == 4
    assert meta["data"] == "toy" and meta["hidden"] == 12
    history = T.read_history(tmp_path / "loss_history.csv")
    second = T.train(cfg2, data, net=net, opt=opt, start=start, history=history, log=None)

    assert second.history.rows() == straight.history.rows()
    assert second.progress == straight.progress == T.Progress(epoch=1, images=48, iteration=9)
    assert opt.state["step"] == 9
    for p, q in zip(params(second.net), params(straight.net)):
        np.testing.assert_array_equal(p, q)
    assert second.correct == straight.correct


def test_save_run_writes_three_files_atomically(tmp_path):
    cfg, data = toy_config(max_iters=3), toy_data()
    r = T.train(cfg, data, log=None)
    out = tmp_path / "a" / "b"
    paths = T.save_run(out, r, cfg, data.name)
    assert sorted(os.listdir(out)) == ["loss_curve.png", "loss_history.csv", "model.npz"]
    assert [p.name for p in paths] == ["model.npz", "loss_history.csv", "loss_curve.png"]
    info = ms.checkpoint.read_info(paths[0])
    meta = info["meta"]
    for key in ("hidden", "steps", "beta", "surrogate", "dtype", "epoch", "iteration", "seed",
                "data", "lr", "batch_size", "test_accuracy"):
        assert key in meta
    assert meta["iteration"] == 3 and meta["data"] == "toy" and info["optimizer"]["step"] == 3
    text = paths[1].read_text().splitlines()
    assert text[0] == "iteration,epoch,train_loss,test_loss" and len(text) == 4
    assert T.read_history(paths[1]).rows() == r.history.rows()   # floats survive exactly
    assert paths[2].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    T.save_run(out, r, cfg, data.name)                           # overwrite: no temp files left
    assert sorted(os.listdir(out)) == ["loss_curve.png", "loss_history.csv", "model.npz"]


def test_load_model_from_checkpoint(tmp_path):
    cfg, data = toy_config(max_iters=3, beta=0.8, surrogate="fast_sigmoid"), toy_data()
    r = T.train(cfg, data, log=None)
    T.save_run(tmp_path, r, cfg, data.name)
    cfg2 = T.config_from_checkpoint(tmp_path / "model.npz")
    assert (cfg2.hidden, cfg2.beta, cfg2.surrogate, cfg2.steps) == (12, 0.8, "fast_sigmoid", 5)
    net, opt, _, _ = T.load_checkpoint(tmp_path / "model.npz", cfg2, with_optimizer=False)
    assert opt is None
    assert T.evaluate(net, data.test_x, data.test_y, 5, 25) == (r.correct, r.total)


def test_checkpoint_of_another_architecture(tmp_path):
    cfg, data = toy_config(max_iters=2), toy_data()
    T.save_run(tmp_path, T.train(cfg, data, log=None), cfg, data.name)
    path = tmp_path / "model.npz"
    with pytest.raises(ms.CheckpointError, match="different architecture than this network: "
                       "layer 0 Linear: "
                       "argument 2 12 in the checkpoint, argument 2 13 here; layer 2 Linear"):
        T.load_checkpoint(path, toy_config(hidden=13))
    with pytest.raises(ms.CheckpointError, match="different architecture than this network: "
                       "layer 1 Leaky: "
                       "beta=0.95 in the checkpoint, beta=0.5 here; layer 3 Leaky"):
        T.load_checkpoint(path, toy_config(beta=0.5))
    with pytest.raises(ms.CheckpointError, match="trained with other settings: steps=5 in the "
                       "checkpoint, 6 here, seed=0 in the checkpoint, 2 here"):
        T.load_checkpoint(path, toy_config(steps=6, seed=2))   # same network, another run
    bare = tmp_path / "bare.npz"
    ms.save(bare, T.build_net(cfg))                      # saved without the training settings
    with pytest.raises(ms.CheckpointError, match="holds no training settings"):
        T.config_from_checkpoint(bare)


def test_check_data_rejects_what_does_not_fit():
    cfg = toy_config()
    with pytest.raises(T.ConfigError, match="larger than the 10 train images"):
        T.check_data(cfg, toy_data(n_train=10))
    with pytest.raises(T.ConfigError, match="takes 20 inputs"):
        T.check_data(cfg, toy_data(features=21))
    with pytest.raises(T.ConfigError, match="float64 but the run computes in float32"):
        T.check_data(cfg, toy_data(dtype="float64"))
    T.check_data(cfg, toy_data(n_test=10), training=False)   # evaluation needs no full batch


def test_history_upto():
    h = T.History()
    for i in range(5):
        h.append(i, 0, 1.0 + i, 2.0 + i)
    assert h.upto(3).iteration == [0, 1, 2] and len(h.upto(0)) == 0


# ----------------------------------------------------------------------------- faults, checkpoints

@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_divergence_stops_training_and_no_checkpoint_holds_nan():
    saved = []
    cfg = toy_config(lr=1e37, epochs=3, checkpoint_every=1)
    with pytest.raises(T.Diverged, match=r"training diverged at iteration (\d+): the "
                       r"(training|test-minibatch) loss is (nan|inf); try a smaller learning "
                       r"rate than 1e\+37") as e:
        T.train(cfg, toy_data(), log=None, checkpoint=saved.append)
    assert e.value.iteration >= 0 and e.value.lr == 1e37
    assert [s.progress.iteration for s in saved] == list(range(1, e.value.iteration + 1))
    for s in saved:                     # the states handed out were finite when handed out
        assert all(np.isfinite(h) for h in s.history.train_loss + s.history.test_loss)


def test_non_finite_parameter_is_found_before_a_checkpoint():
    cfg, data, saved = toy_config(checkpoint_every=2, max_iters=2), toy_data(), []

    def poison(state):                  # after the last checkpoint, a weight goes bad: the
        saved.append(state.progress.iteration)   # check at the end of training finds it
        state.net[2].W[0, 0] = np.nan
    with pytest.raises(T.Diverged, match=r"iteration 1: parameter 2(\.W)? holds NaN or inf"):
        T.train(cfg, data, log=None, checkpoint=poison)
    assert saved == [2]


def test_checkpoints_each_epoch_every_n_iterations_and_by_time():
    seen = []
    T.train(toy_config(epochs=2, checkpoint_every=4), toy_data(), log=None,
            checkpoint=lambda s: seen.append(s.progress))
    assert seen == [T.Progress(0, 64, 4), T.Progress(1, 0, 6), T.Progress(1, 32, 8),
                    T.Progress(2, 0, 12)]           # iteration 12 ends an epoch: saved once
    seen.clear()
    T.train(toy_config(max_iters=3, checkpoint_minutes=1e-9), toy_data(), log=None,
            checkpoint=lambda s: seen.append(s.progress.iteration))
    assert seen == [1, 2, 3]
    r = T.train(toy_config(max_iters=3), toy_data(), log=None)   # no callback: nothing to do
    assert r.checkpoints == 0


def test_stop_ends_training_after_the_iteration_in_progress():
    calls = []
    r = T.train(toy_config(epochs=3), toy_data(), log=None,
                stop=lambda: calls.append(1) or len(calls) == 5)
    assert r.stopped == "stopped" and r.iterations == 5 and len(r.history) == 5
    assert r.progress == T.Progress(0, 80, 5) and r.test_accuracy is None and r.end_epoch == 3
    r = T.train(toy_config(epochs=3), toy_data(), log=None, stop=lambda: True)
    assert r.progress == T.Progress(0, 16, 1)
    r = T.train(toy_config(epochs=3), toy_data(), log=None,   # after an epoch's last batch
                stop=lambda: calls.append(1) or len(calls) == 11)
    assert r.progress == T.Progress(1, 0, 6)


def test_epoch_batches_go_on_from_any_image_with_any_batch_size():
    x, y = np.arange(100, dtype=np.float32)[:, None], np.arange(100)
    whole = np.concatenate([b[1] for b in T.epoch_batches(x, y, 10, seed=3, epoch=2)])
    straight = [b[1] for b in ms.data.iterate_batches(x, y, 10, seed=3, epoch=2)]
    np.testing.assert_array_equal(whole, np.concatenate(straight))   # start 0: the same batches
    first = [b[1] for b in T.epoch_batches(x, y, 16, seed=3, epoch=2)][:3]        # 48 images
    rest = [b[1] for b in T.epoch_batches(x, y, 20, seed=3, epoch=2, start=48)]   # 2 batches
    used = np.concatenate(first + rest)
    assert len(rest) == 2 and len(set(used.tolist())) == len(used) == 88   # no image twice
    np.testing.assert_array_equal(used, whole[:88])


def test_resume_with_another_batch_size_continues_at_the_next_image(tmp_path):
    data = toy_data()
    first = T.train(toy_config(epochs=2, max_iters=4), data, log=None)     # 64 of 96 images
    T.save_run(tmp_path, first, toy_config(epochs=2, max_iters=4), data.name)
    cfg = T.config_from_checkpoint(tmp_path / "model.npz", batch_size=8, max_iters=5)
    net, opt, start, _ = T.load_checkpoint(tmp_path / "model.npz", cfg)
    assert start == T.Progress(0, 64, 4)
    r = T.train(cfg, data, net=net, opt=opt, start=start, log=None)
    assert r.progress == T.Progress(1, 8, 9)   # 4 batches of 8 end epoch 0, one more in epoch 1
    assert r.history.epoch == [0, 0, 0, 0, 1]
    assert T.load_checkpoint(tmp_path / "model.npz", cfg)[2].iteration == 4


def test_check_data_refuses_float_labels_and_empty_sets():
    cfg, d = toy_config(), toy_data()
    with pytest.raises(T.ConfigError, match="the train labels are float64; class labels must "
                                            "be integers"):
        T.check_data(cfg, Dataset(d.train_x, d.train_y.astype(float), d.test_x, d.test_y))
    with pytest.raises(T.ConfigError, match=r"the test set of toy is empty \(0 images\)"):
        T.check_data(cfg, Dataset(d.train_x, d.train_y, d.test_x[:0], d.test_y[:0], "toy"),
                     training=False)


def test_load_data_refuses_label_files_of_floats(tmp_path):
    from run_helpers import write_mnist_like
    folder = write_mnist_like(tmp_path / "f", n_train=40, n_test=20, label_dtype="float32")
    with pytest.raises(ms.data.DataError, match=r"train-labels-idx1-ubyte.gz: holds float32 "
                                                r"labels; class labels must be integers"):
        T.load_data(folder, toy_config(num_inputs=784, num_outputs=10))

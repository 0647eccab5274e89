"""minisnn.plot, on the Agg backend: what was drawn equals the record it was given."""
import os
import subprocess
import sys

import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib import animation  # noqa: E402

import minisnn as ms  # noqa: E402
from fused_cpu_harness import make_array_module  # noqa: E402

rng = np.random.default_rng(0)
S = (rng.random((12, 6)) < 0.3).astype("float32")       # (T, N), one sample


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def points(collection):
    return {(int(t), int(i)) for t, i in collection.get_offsets()}


def test_import_minisnn_does_not_import_matplotlib_but_ms_plot_does():
    code = ("import sys, minisnn as ms; assert 'matplotlib' not in sys.modules; "
            "assert ms.plot.raster and 'matplotlib.pyplot' in sys.modules; print('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**os.environ, "MPLBACKEND": "Agg"})
    assert out.stdout.strip() == "ok", out.stderr


def test_raster_draws_one_point_per_spike():
    ax = ms.plot.raster(S)
    assert points(ax.collections[0]) == {(t, i) for t, i in zip(*S.nonzero())}
    assert len(ax.collections) == 1
    assert ax.get_xlabel() == "time step t" and ax.get_ylabel() == "neuron index"
    assert ax.get_xlim() == (-0.5, 11.5) and ax.get_ylim() == (-0.5, 5.5)


def test_raster_flattens_frames_row_major_and_marks_off_spikes():
    frames = np.zeros((3, 2, 4))
    frames[1, 1, 2] = 1                     # pixel (1, 2) -> neuron 4·1 + 2 = 6
    frames[2, 0, 3] = -1                    # an off spike at neuron 3
    ax = ms.plot.raster(frames)
    assert points(ax.collections[0]) == {(1, 6)} and points(ax.collections[1]) == {(2, 3)}
    assert ax.get_ylim() == (-0.5, 7.5)
    ax = ms.plot.raster(np.array([0.0, 1.0, 1.0]))           # (T,): one neuron
    assert points(ax.collections[0]) == {(1, 0), (2, 0)}


def test_traces_draw_every_neuron_and_the_threshold():
    U = rng.normal(size=(12, 3))
    spikes = (U > 0.8).astype(float)
    ax = ms.plot.traces(U, threshold=0.8, spikes=spikes)
    for i in range(3):
        x, y = ax.lines[i].get_data()
        np.testing.assert_array_equal(x, np.arange(12))
        np.testing.assert_array_equal(y, U[:, i])
    assert ax.lines[3].get_ydata()[0] == 0.8 and ax.lines[3].get_linestyle() == "--"
    marked = ax.collections[0].get_offsets()
    np.testing.assert_array_equal(np.asarray(marked)[:, 1], U[spikes > 0])
    assert ax.get_ylabel() == "membrane potential U" and ax.get_xlabel() == "time step t"
    assert [t.get_text() for t in ax.get_legend().get_texts()][-1] == "threshold θ = 0.8"


def test_spike_count_bars_are_the_counts():
    labels = list("abcdef")
    ax = ms.plot.spike_count(S, labels=labels)
    np.testing.assert_array_equal([p.get_width() for p in ax.patches], S.sum(axis=0))
    assert [t.get_text() for t in ax.get_yticklabels()] == labels
    assert ax.get_xlim() == (0, 12) and "of T = 12 steps" in ax.get_xlabel()
    with pytest.raises(ValueError, match="labels must name each of the 6 neurons"):
        ms.plot.spike_count(S, labels=["a"])


class FrameRecorder(animation.AbstractMovieWriter):
    """A movie writer that keeps the image data of every frame it is handed."""
    def setup(self, fig, outfile, dpi=None):
        super().setup(fig, outfile, dpi)
        self.frames = []

    def grab_frame(self, **kwargs):
        self.frames.append(self.fig.axes[0].images[0].get_array().copy())

    def finish(self):
        pass


def test_animate_shows_step_t_in_frame_t(tmp_path):
    frames = (rng.random((5, 4, 3)) < 0.5).astype("float32")
    anim = ms.plot.animate(frames, interval=50)
    recorder = FrameRecorder()
    anim.save(str(tmp_path / "unused"), writer=recorder)
    assert len(recorder.frames) == 5
    for t in range(5):
        np.testing.assert_array_equal(recorder.frames[t], frames[t])


def test_animate_saves_a_gif_with_one_frame_per_step(tmp_path):
    from PIL import Image
    path = tmp_path / "sub" / "spikes.gif"
    ms.plot.animate(S, path)                               # (T, N): a 1×N strip per step
    with Image.open(path) as gif:
        assert gif.n_frames == 12
    assert [p.name for p in path.parent.iterdir()] == ["spikes.gif"]    # no temporary left
    with pytest.raises(ValueError, match="path must end in .gif"):
        ms.plot.animate(S, tmp_path / "spikes.mp4")


def test_device_arrays_are_moved_to_the_host_explicitly():
    cp = make_array_module("cupy", "ndarray")               # arrays that refuse np.asarray
    dev = cp.asarray(S)
    with pytest.raises(TypeError):
        np.asarray(dev)
    assert points(ms.plot.raster(dev).collections[0]) == points(ms.plot.raster(S).collections[0])
    np.testing.assert_array_equal([p.get_width() for p in ms.plot.spike_count(dev).patches],
                                  S.sum(axis=0))
    assert cp.events.count(("sync", "backend.to_numpy")) == 2      # one explicit copy each


@pytest.mark.parametrize("fn", [lambda a: ms.plot.raster(a), lambda a: ms.plot.traces(a),
                                lambda a: ms.plot.spike_count(a)])
def test_bad_shapes_and_types_are_refused(fn):
    with pytest.raises(ValueError, match="one sample's record with time first"):
        fn(np.zeros(()))
    with pytest.raises(TypeError, match="must be a NumPy or CuPy array"):
        fn([[0, 1]])
    with pytest.raises(ValueError, match=r"\(T, N\) or \(T, H, W\)"):
        ms.plot.animate(np.zeros((3, 2, 2, 2)))

"""Pictures of spikes and membranes, drawn straight from record arrays.

    import minisnn as ms
    spk, mem = net(x, num_steps=25)
    ms.plot.raster(net.record[1].S[:, 0])                   # hidden spikes of sample 0, (T, N)
    ms.plot.traces(mem[:, 0], threshold=1.0)                # output membranes of sample 0
    ms.plot.spike_count(spk[:, 0], labels=list("0123456789"))
    ms.plot.animate(ms.spikegen.rate(img, 25)[:, 0], "digit.gif")    # (T, 28, 28) frames

Every function takes one sample's record, time first: (T,) for one neuron, (T, N), or (T, ...)
whose trailing axes are flattened in row-major order (neuron index = that flat index: pixel
(r, c) of a 28×28 frame is neuron 28·r + c). CuPy arrays are copied to the host explicitly.
`ax`: the matplotlib Axes to draw into (default: a new figure). raster, traces and spike_count
return that Axes (what they drew is in ax.collections, ax.lines, ax.patches); animate returns
its matplotlib FuncAnimation.

A tool, not part of the engine: `import minisnn` does not import this module or matplotlib;
`import minisnn.plot` or the first use of `ms.plot` does.
"""
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
from matplotlib import animation

from .atomic import atomic_write
from .backend import to_numpy
from .checks import check_array


def _host(a, name, ndims=None):
    """`a` on the host as a NumPy array: one sample's record, time first, with one of the
    numbers of dimensions in `ndims` (any, when None)."""
    check_array(a, name)
    a = to_numpy(a)                                      # explicit device -> host copy
    if a.ndim < 1 or a.shape[0] < 1 or (ndims is not None and a.ndim not in ndims):
        shapes = "(T, N) or (T, H, W)" if ndims else "(T,), (T, N) or (T, ...)"
        raise ValueError(f"{name} must be one sample's record with time first, {shapes}; "
                         f"got shape {a.shape} (index one sample first, e.g. S[:, 0])")
    return a


def _time_by_neuron(a, name):
    """(T,) -> (T, 1); (T, N) as it is; (T, ...) -> (T, N) flattened row-major."""
    a = _host(a, name)
    return a.reshape(a.shape[0], -1)


def _axes(ax):
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 4))
    return ax


def raster(S, ax=None, **scatter_kwargs):
    """Raster plot: one mark at (t, i) for every spike S[t, i] > 0; off spikes (S < 0, from
    `spikegen.delta(..., off_spike=True)`) in a second colour. S: (T,), (T, N) or (T, ...).
    Extra keyword arguments go to `ax.scatter` for both kinds of spikes (the off spikes keep
    their own colour and label). Returns the Axes."""
    S = _time_by_neuron(S, "S")
    T, N = S.shape
    ax = _axes(ax)
    style = dict(marker="|", s=60, color="black", linewidths=1.2, label="spike")
    style.update(scatter_kwargs)
    t, i = (S > 0).nonzero()
    ax.scatter(t, i, **style)
    t_off, i_off = (S < 0).nonzero()
    if len(t_off):
        ax.scatter(t_off, i_off, **{**style, "color": "tab:red", "label": "off spike (−1)"})
        ax.legend(loc="upper right")
    ax.set(xlim=(-0.5, T - 0.5), ylim=(-0.5, N - 0.5), xlabel="time step t",
           ylabel="neuron index", title=f"{len(t)} spikes, {N} neurons, {T} steps")
    return ax


def traces(U, threshold=None, ax=None, spikes=None, ylabel="membrane potential U"):
    """One line per neuron: U[t, i] against t. U: (T,), (T, N) or (T, ...).

    threshold: draw θ as a dashed horizontal line. spikes: the matching S, marked with a dot on
    the trace where S > 0. Lines are labelled 'neuron i' (a legend for up to 10 neurons).
    Returns the Axes (lines in ax.lines: the N traces, then the threshold)."""
    U = _time_by_neuron(U, "U")
    T, N = U.shape
    ax = _axes(ax)
    for i in range(N):
        ax.plot(range(T), U[:, i], lw=1.2, label=f"neuron {i}")
    if spikes is not None:
        S = _time_by_neuron(spikes, "spikes")
        if S.shape != U.shape:
            raise ValueError(f"spikes must have the shape of U, {U.shape}, got {S.shape}")
        t, i = (S > 0).nonzero()
        ax.scatter(t, U[t, i], s=18, color="black", zorder=3, label="spike")
    if threshold is not None:
        ax.axhline(float(threshold), ls="--", lw=1, color="gray",
                   label=f"threshold θ = {float(threshold):g}")
    ax.set(xlim=(0, max(T - 1, 1)), xlabel="time step t", ylabel=ylabel)
    if N <= 10:
        ax.legend(loc="best", fontsize="small")
    return ax


def spike_count(S, labels=None, ax=None, **barh_kwargs):
    """Horizontal bars: each neuron's spike count Σ_t S[t, i], on a scale of 0 to T.
    S: (T,), (T, N) or (T, ...); labels: a name per neuron (e.g. the classes). The neuron with
    the most spikes (the rate-code prediction) is drawn in a second colour. Returns the Axes
    (bars in ax.patches, in neuron order)."""
    S = _time_by_neuron(S, "S")
    T, N = S.shape
    counts = S.sum(axis=0)
    if labels is not None and len(labels) != N:
        raise ValueError(f"labels must name each of the {N} neurons, got {len(labels)} labels")
    ax = _axes(ax)
    colors = ["tab:blue"] * N
    colors[int(counts.argmax())] = "tab:orange"
    style = dict(color=colors)
    style.update(barh_kwargs)
    ax.barh(range(N), counts, **style)
    ax.set_yticks(range(N), labels if labels is not None else [str(i) for i in range(N)])
    ax.set(xlim=(0, T), ylim=(-0.6, N - 0.4), xlabel=f"spike count (of T = {T} steps)",
           ylabel="neuron" if labels is None else "class")
    return ax


def animate(S, path=None, interval=100, ax=None, cmap="gray"):
    """An animation with one frame per time step. S: (T, H, W) frames (e.g. encoded images,
    `spikegen.rate(x, T)[:, 0]` for x of shape (B, 28, 28)) or (T, N) (a 1×N strip per step).

    path: save it there as a GIF (it must end in .gif; written atomically, needs pillow, which
    matplotlib installs); interval: milliseconds per frame. Returns the FuncAnimation (keep a
    reference to it while it plays; in a notebook, `HTML(anim.to_jshtml())`)."""
    frames = _host(S, "S", (2, 3))
    if frames.ndim == 2:
        frames = frames.reshape(frames.shape[0], 1, -1)
    if path is not None and Path(path).suffix.lower() != ".gif":
        raise ValueError(f"path must end in .gif, got {str(path)!r}")
    T = frames.shape[0]
    ax = _axes(ax)
    vmin, vmax = min(0.0, float(frames.min())), max(1.0, float(frames.max()))
    image = ax.imshow(frames[0], cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest")
    ax.set(xlabel="column", ylabel="row", xticks=[], yticks=[])
    title = ax.set_title(f"time step t = 0 of {T}")

    def draw(t):
        image.set_data(frames[t])
        title.set_text(f"time step t = {t} of {T}")
        return image, title

    anim = animation.FuncAnimation(ax.figure, draw, frames=T, interval=interval, blit=False)
    if path is not None:
        _save_gif(anim, Path(path), fps=1000 / interval)
    return anim


def _save_gif(anim, path, fps):
    """Render the GIF in a temporary folder, then write it to `path` atomically."""
    if not animation.writers.is_available("pillow"):
        raise RuntimeError("saving a GIF needs pillow: pip install pillow")
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder) / path.name
        anim.save(tmp, writer=animation.PillowWriter(fps=fps))
        atomic_write(path, tmp.read_bytes())

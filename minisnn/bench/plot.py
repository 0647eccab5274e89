"""bench.png: with a sweep, total ms per iteration against each swept setting (log-log, one line
per framework and backend); for the seed point alone (--quick), one bar per framework and
backend, split into forward, backward and step."""
from ..atomic import atomic_open
from .frameworks import label
from .plan import SWEEP
from .timing import PHASES


def _sweep_axes(fig, report, axes_names):
    for i, axis in enumerate(axes_names):
        ax = fig.add_subplot(1, len(axes_names), i + 1)
        for run in report["runs"]:
            pts = sorted((r[axis], r["total_ms"]) for r in run["results"] if axis in r["axes"])
            if pts:
                ax.plot(*zip(*pts), marker="o", label=label(run["framework"], run["backend"]))
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(axis)
        ax.set_ylabel("ms per training iteration")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)


def _seed_bars(fig, report):
    ax = fig.add_subplot(1, 1, 1)
    rows = [(label(run["framework"], run["backend"]), r) for run in report["runs"]
            for r in run["results"] if "seed" in r["axes"]]
    names = [name for name, _ in rows]
    bottom = [0.0] * len(rows)
    for phase in PHASES:
        values = [r[phase] for _, r in rows]
        ax.barh(names, values, left=bottom, label=phase.replace("_ms", ""))
        bottom = [b + v for b, v in zip(bottom, values)]
    for i, total in enumerate(r["total_ms"] for _, r in rows):
        ax.annotate(f" {total:.3g} ms", (bottom[i], i), va="center", fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("ms per training iteration (median; phases stacked)")
    ax.set_xlim(0, 1.25 * max(bottom, default=1))
    seed = report["seed_config"]
    ax.set_title("seed point: " + ", ".join(f"{k} {v}" for k, v in seed.items()), fontsize=9)
    ax.grid(True, axis="x", alpha=0.3)
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))


def plot(report, path):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    axes_names = [a for a in SWEEP if any(a in r["axes"] for r in report["comparison"])]
    if axes_names:
        fig = Figure(figsize=(4.2 * len(axes_names), 3.6))
        _sweep_axes(fig, report, axes_names)
    else:
        fig = Figure(figsize=(7.2, 1.6 + 0.45 * len(report["runs"])))
        _seed_bars(fig, report)
    FigureCanvasAgg(fig)
    fig.suptitle(f"minisnn bench — {report['meta']['cpu']}", fontsize=10)
    fig.tight_layout()
    with atomic_open(path) as f:
        fig.savefig(f, format="png", dpi=110)

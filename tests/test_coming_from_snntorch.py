"""docs/coming_from_snntorch.md, checked against the package (no snnTorch needed): every row
names a minisnn counterpart or says "not in minisnn", every minisnn name on the page exists (all
the missing ones reported at once), the names a tutorial reader meets are all there, and the
page's code runs. The snnTorch side of the page: test_snntorch_names.py."""
import re
from pathlib import Path

import numpy as np
import pytest

import minisnn as ms

PAGE = Path(__file__).resolve().parents[1] / "docs" / "coming_from_snntorch.md"
NOT_HERE = "not in minisnn"
PREFIXES = {"snn": "snntorch", "surrogate": "snntorch.surrogate", "spikegen": "snntorch.spikegen",
            "SF": "snntorch.functional", "splt": "snntorch.spikeplot", "utils": "snntorch.utils",
            "backprop": "snntorch.backprop", "nn": "torch.nn", "torch": "torch"}
MET_BY_A_TUTORIAL_READER = {
    "snn.Leaky", "snn.Synaptic", "snn.RLeaky", "snn.RSynaptic", "snn.Alpha", "snn.Lapicque",
    "snn.SLSTM", "surrogate.atan", "surrogate.fast_sigmoid", "surrogate.sigmoid",
    "surrogate.straight_through_estimator", "surrogate.triangular", "surrogate.heaviside",
    "spikegen.rate", "spikegen.latency", "spikegen.delta", "SF.ce_rate_loss", "SF.ce_count_loss",
    "SF.mse_count_loss", "SF.accuracy_rate", "SF.accuracy_temporal", "splt.raster",
    "splt.traces", "splt.spike_count", "splt.animator", "utils.reset", "backprop.BPTT",
    "nn.Linear", "nn.Conv2d", "nn.MaxPool2d", "nn.AvgPool2d", "nn.Flatten"}


def page():
    return PAGE.read_text(encoding="utf-8")


def table_rows():
    """(snnTorch cell, minisnn cell, note) of every table row, header rows left out."""
    rows = []
    for line in page().splitlines():
        if not line.startswith("| ") or line.startswith("| ---"):
            continue
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip()[1:-1])]
        assert len(cells) == 3, f"a table row needs 3 cells: {line}"
        if cells[0] not in ("snnTorch", "PyTorch"):
            rows.append(tuple(cells))
    return rows


def code_names(cell):
    return re.findall(r"`([A-Za-z_][\w.]*)`", cell)


def lookup(root, dotted):
    obj = root
    for part in dotted.split(".")[1:]:
        obj = getattr(obj, part)
    return obj


def test_every_row_names_a_minisnn_counterpart_or_says_it_is_not_here():
    rows = table_rows()
    assert len(rows) > 50
    bad = [r for r in rows if not (code_names(r[1]) and all(n.startswith("ms.")
                                                             for n in code_names(r[1]))
                                   or r[1] == NOT_HERE)]
    assert not bad, f"rows without a minisnn name or '{NOT_HERE}': {bad}"
    firsts = [r[0] for r in rows]
    assert len(firsts) == len(set(firsts)), "a name is listed twice"


def test_the_page_lists_every_name_a_tutorial_reader_meets():
    listed = {n for r in table_rows() for n in code_names(r[0])}
    assert not MET_BY_A_TUTORIAL_READER - listed, MET_BY_A_TUTORIAL_READER - listed


REMOVED = {"ms.rate", "ms.latency"}      # on the page as names that raise, pointing elsewhere


def test_every_minisnn_name_on_the_page_exists():
    names = sorted(set(re.findall(r"\bms(?:\.[A-Za-z_]\w*)+", page())))
    assert "ms.spikegen.rate" in names and "ms.plot.raster" in names and REMOVED <= set(names)
    for name in REMOVED:
        with pytest.raises(AttributeError, match="minisnn.spikegen"):
            lookup(ms, name)
    missing = []
    for name in sorted(set(names) - REMOVED):
        try:
            lookup(ms, name)
        except AttributeError:
            missing.append(name)
    assert not missing, f"names on {PAGE.name} that minisnn lacks: {missing}"


def test_the_page_code_runs_and_gives_snntorchs_triangular():
    blocks = re.findall(r"```python\n(.*?)```", page(), flags=re.S)
    assert blocks
    scope = {}
    for block in blocks:
        exec(compile(block, str(PAGE), "exec"), scope)
    sur = scope["SnnTorchTriangular"]()
    V = np.array([-0.5, -1e-9, 0.0, 0.5], dtype="float32")
    g = sur.grad(V, sur.spike(V))
    assert g.dtype == np.float32 and g.tolist() == [1, 1, -1, -1]
    net = ms.Sequential(ms.Linear(3, 2, rng=0), scope["lif"])
    spk, mem = net(np.ones((4, 3), dtype="float32"), 5)
    net.backward(d_mem=np.ones_like(mem))
    assert np.isfinite(net[0].dW).all() and net[0].dW.any()

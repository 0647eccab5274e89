"""The frameworks `minisnn bench` can time, by name. Each is a module with LABELS ({name: label}),
device(backend) (where it runs beside that minisnn backend), timing(spec), train(spec),
versions(backend) and thread_info(): see ours.py and snntorch_peer.py. Adding a peer is adding
such a module to MODULES."""
from . import ours, snntorch_peer

MODULES = (ours, snntorch_peer)
FRAMEWORKS = {name: module for module in MODULES for name in module.LABELS}
PEERS = tuple(name for name in FRAMEWORKS if name != "minisnn")
BACKENDS = ("numpy", "cupy")


def label(framework, backend):
    """How a (framework, backend) pair is named in tables: 'minisnn/cupy', 'snnTorch/cuda'."""
    module = FRAMEWORKS[framework]
    return f"{module.LABELS[framework]}/{module.device(backend)}"

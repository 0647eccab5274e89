"""The backend seam, on the CPU: choosing NumPy or CuPy, the error when CuPy cannot be used, and
evidence that the engine's hot path is written against an array module `xp` and nothing else.

That last part needs an array library other than NumPy, and CuPy is not here. So the training
step runs on `fakexp`: a small array module whose arrays (`DeviceArray`) hold NumPy arrays inside
but behave, where it matters, like CuPy's:

  * they refuse to become NumPy arrays implicitly: np.asarray(a), np.exp(a), np.sum(a) and
    mixing them with NumPy arrays (a + np.ones(3)) raise TypeError, as with CuPy;
  * every function the engine calls on them must come from `fakexp` (a list of functions CuPy
    has), and is recorded;
  * every device->host copy (bool(a), float(a), int(a), a.get(), a.item()) and every upload of a
    host array (fakexp.asarray(numpy array)) is recorded, with the engine function it came from.

(fakexp comes from tests/fused_cpu_harness.make_array_module.) The engine finds the array
module with backend.get_xp and recognises device arrays with backend.is_cupy_array; for the
duration of a test those two names, in every loaded minisnn module, also answer for DeviceArray
(fakexp plays the role CuPy plays). Nothing in the engine is edited. Because fakexp computes with
NumPy underneath, the results must equal NumPy's exactly. A static check (ast) adds that engine
modules never call numpy functions.
"""
import ast
import copy
import sys
import types
from pathlib import Path

import numpy as np
import pytest

import minisnn as ms
from minisnn import backend, decode, fused  # noqa: F401  (fused: loaded, so it gets patched too)
from minisnn.surrogate import SURROGATES

from fused_cpu_harness import FUNCTIONS, make_array_module
from helpers import both_losses


@pytest.fixture
def reference_path():
    """NumPy against another array module, bit for bit: both on the reference path (on NumPy
    the fused CPU kernels would add the same terms in another order)."""
    with fused.disabled():
        yield


@pytest.fixture(autouse=True)
def numpy_default():
    """Every test starts and ends with NumPy as the default backend."""
    backend.set_backend("numpy")
    yield
    backend.set_backend("numpy")


# ----------------------------------------------------------------------------- choosing a backend

def test_numpy_backend_by_name():
    for name in ("numpy", "NumPy", "NUMPY"):
        ms.set_backend(name)
        assert ms.get_backend() is np
    assert backend.array_module("numpy") is np
    assert backend.array_module(np) is np                 # a module passes through
    assert backend.backend_name(np) == "numpy"


@pytest.mark.parametrize("name", ["jax", "torch", "", "cupy2", "gpu"])
def test_bad_backend_name_is_a_value_error_naming_the_argument(name):
    with pytest.raises(ValueError, match=r"backend must be 'numpy' or 'cupy', got '.*'"):
        ms.set_backend(name)
    assert ms.get_backend() is np                         # unchanged after the error
    net = ms.Sequential(ms.Linear(3, 2, rng=0), ms.Leaky(0.9))
    with pytest.raises(ValueError, match="backend must be"):
        net.to(name)
    with pytest.raises(ValueError, match="backend must be"):
        ms.Adam(net.parameters()).to(name)


@pytest.mark.parametrize("value", [None, 3, object()])
def test_backend_of_wrong_type(value):
    with pytest.raises(TypeError, match="backend must be 'numpy' or 'cupy'"):
        ms.set_backend(value)


def test_numpy_arrays_stay_numpy():
    a = np.arange(3.0)
    assert backend.get_xp(a) is np and backend.get_xp(a, 1.0) is np and backend.get_xp() is np
    assert not backend.is_cupy_array(a)
    assert backend.to_numpy(a) is a and backend.to_xp(a, np) is a
    backend.synchronize(np)                                # a no-op on NumPy


HINT = 'pip install "minisnn[cuda]"'


def _cupy_unusable(build):
    """All the ways of asking for CuPy raise one clear RuntimeError with the install hint."""
    net = ms.Sequential(ms.Linear(3, 2, rng=0), ms.Leaky(0.9))
    opt = ms.Adam(net.parameters())
    calls = [lambda: ms.set_backend("cupy"), lambda: backend.array_module("cupy"),
             lambda: net.to("cupy"), lambda: opt.to("cupy"), lambda: ms.set_backend("CuPy")]
    messages = []
    for call in calls:
        with pytest.raises(RuntimeError) as info:
            call()
        assert HINT in str(info.value)
        messages.append(str(info.value))
    assert ms.get_backend() is np                          # nothing changed
    assert isinstance(net[0].W, np.ndarray) and isinstance(opt.state["m"][0], np.ndarray)
    return messages


def test_missing_cupy_gives_install_hint(monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", None)        # `import cupy` raises ImportError
    for message in _cupy_unusable(None):
        assert message.startswith("backend 'cupy' needs CuPy, which is not installed")


def test_cupy_without_gpu_gives_install_hint(monkeypatch):
    def no_driver():
        raise RuntimeError("cudaErrorInsufficientDriver")
    fake = types.SimpleNamespace(cuda=types.SimpleNamespace(
        runtime=types.SimpleNamespace(getDeviceCount=no_driver)))
    monkeypatch.setitem(sys.modules, "cupy", fake)
    for message in _cupy_unusable(None):
        assert "no CUDA GPU is usable" in message and "cudaErrorInsufficientDriver" in message
    fake.cuda.runtime.getDeviceCount = lambda: 0
    for message in _cupy_unusable(None):
        assert "found no CUDA GPU" in message


def test_cupy_that_fails_to_import_gives_install_hint(monkeypatch, tmp_path):
    (tmp_path / "cupy").mkdir()
    (tmp_path / "cupy" / "__init__.py").write_text(
        "raise ImportError('libcudart.so.12: cannot open shared object file')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "cupy", raising=False)
    for message in _cupy_unusable(None):
        assert "installed but could not be imported" in message and "libcudart" in message


class FakeCupy(types.ModuleType):
    """A CuPy that imports and sees one GPU, with a kernel compiler that fails as `compile_error`
    says (or, with `wrong`, a kernel that writes wrong values). Arrays are NumPy arrays."""

    def __init__(self, compile_error=None, wrong=False):
        super().__init__("cupy")
        self.__version__ = "14.2.0"
        self.float32 = np.float32
        self.cuda = types.SimpleNamespace(runtime=types.SimpleNamespace(getDeviceCount=lambda: 1))
        self.compiled, self.launched = [], []
        fake = self

        class Array(np.ndarray):
            def get(self):
                return np.asarray(self).copy()

        self.zeros = lambda n, dtype: np.zeros(n, dtype).view(Array)

        class RawModule:
            def __init__(self, code, options=()):
                fake.compiled.append((code, options))
                if compile_error is not None:
                    raise compile_error

            def get_function(self, name):
                def kernel(grid, block, args):
                    out, n = args
                    fake.launched.append((name, grid, block, type(n)))
                    out[:] = np.arange(int(n)) * 0.5 + (2 if wrong else 1)
                return kernel

        self.RawModule = RawModule


@pytest.mark.parametrize("error, shown", [
    (RuntimeError("CuPy failed to load libnvrtc.so.13: cannot open shared object file"),
     "libnvrtc.so.13"),
    (RuntimeError("Failed to auto-detect CUDA root directory. Please specify `CUDA_PATH`"),
     "auto-detect CUDA root"),
    (Exception("kern.cu(1): catastrophic error: cannot open source file \"cuda_fp16.h\"\n\n1 error"),
     "cuda_fp16.h"),
])
def test_cupy_that_cannot_compile_a_kernel_gives_install_hint(monkeypatch, error, shown):
    """CuPy >= 14 without its toolkit libraries: imports, sees the GPU, fails at the first kernel
    compile. The backend check compiles one itself, so the error comes at set_backend, in one
    line, with the hint."""
    fake = FakeCupy(compile_error=error)
    monkeypatch.setitem(sys.modules, "cupy", fake)
    for message in _cupy_unusable(None):
        assert "could not compile and run a CUDA kernel" in message and shown in message
        assert "NVRTC" in message and "CuPy 14.2.0 sees 1 GPU(s)" in message
        assert "\n" not in message
    assert fake.compiled and all(opts == ("--fmad=false",) for _, opts in fake.compiled)


def test_cupy_whose_kernel_writes_wrong_values_is_refused(monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", FakeCupy(wrong=True))
    with pytest.raises(RuntimeError, match="wrote wrong values"):
        ms.set_backend("cupy")
    assert ms.get_backend() is np


def test_working_cupy_is_checked_once(monkeypatch):
    fake = FakeCupy()
    monkeypatch.setitem(sys.modules, "cupy", fake)
    monkeypatch.setitem(backend._default, "cupy_checked", None)
    for _ in range(3):
        assert backend.array_module("cupy") is fake
    assert len(fake.compiled) == 1 and backend.PROBE_NAME in fake.compiled[0][0]
    assert fake.launched == [(backend.PROBE_NAME, (1,), (64,), np.int32)]
    ms.set_backend("cupy")
    assert ms.get_backend() is fake and len(fake.compiled) == 1
    other = FakeCupy()                                     # another CuPy module: checked again
    monkeypatch.setitem(sys.modules, "cupy", other)
    backend.array_module("cupy")
    assert len(other.compiled) == 1


# ---------------------------------------------------------------------- a second array module

fakexp = make_array_module("fakexp")
DeviceArray = fakexp.ndarray
EVENTS, CALLS = fakexp.events, fakexp.calls   # host <-> device copies; fakexp functions called


@pytest.fixture
def on_fakexp(monkeypatch):
    """get_xp / is_cupy_array in every loaded minisnn module also answer for DeviceArray."""
    original_get_xp, original_is_cupy = backend.get_xp, backend.is_cupy_array

    def get_xp(*arrays):
        if any(isinstance(a, DeviceArray) for a in arrays):
            return fakexp
        return original_get_xp(*arrays)

    def is_cupy_array(a):
        return isinstance(a, DeviceArray) or original_is_cupy(a)

    patched = []
    for name, module in list(sys.modules.items()):
        if name == "minisnn" or name.startswith("minisnn."):
            for attr, new, old in (("get_xp", get_xp, original_get_xp),
                                   ("is_cupy_array", is_cupy_array, original_is_cupy)):
                if getattr(module, attr, None) is old:
                    monkeypatch.setattr(module, attr, new)
                    patched.append(f"{name}.{attr}")
    assert "minisnn.neuron.get_xp" in patched and "minisnn.checks.is_cupy_array" in patched
    EVENTS.clear()
    CALLS.clear()
    yield fakexp


def test_device_array_refuses_numpy(on_fakexp):
    a = fakexp.ones((2, 3))
    for bad in (lambda: np.asarray(a), lambda: np.exp(a), lambda: np.sum(a),
                lambda: a + np.ones(3), lambda: np.ones(3) * a, lambda: np.zeros_like(a)):
        with pytest.raises(TypeError):
            bad()
    assert float((a * 2).sum()) == 12.0 and EVENTS == [("sync", "test")]


def make_net(seed=0, dtype="float64", **leaky):
    rng = np.random.default_rng(seed)
    return ms.Sequential(ms.Linear(6, 8, dtype=dtype, rng=rng), ms.Leaky(0.9, **leaky),
                         ms.Linear(8, 5, dtype=dtype, rng=rng), ms.Leaky(0.8, **leaky))


def train_steps(net, opt, batches, num_steps):
    """The training loop's body: forward, losses, backward, optimizer step; plus decoding."""
    history = []
    for x, y in batches:
        opt.zero_grad()
        spk, mem = net(x, num_steps)
        loss, d_mem, d_spk = both_losses(y)(spk, mem)
        loss_mse, d_spk_mse = ms.mse_count_loss(spk, y)
        d_spk += d_spk_mse
        net.backward(d_mem=d_mem, d_spk=d_spk)
        opt.step()
        history.append((loss + loss_mse, decode.predict_rate(spk), decode.predict_latency(spk)))
    return history


def data(dtype, n=3, static=True, T=7, B=4, seed=1):
    rng = np.random.default_rng(seed)
    shape = (B, 6) if static else (T, B, 6)
    return [((rng.random(shape) * 2).astype(dtype), rng.integers(0, 5, B)) for _ in range(n)], T


def _host(a):
    return a.get() if isinstance(a, DeviceArray) else np.asarray(a)


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
@pytest.mark.parametrize("setting", [
    dict(),
    dict(reset="zero", detach_reset=False, learn_beta=True, surrogate="sigmoid"),
    dict(reset="none", learn_beta=True, surrogate="triangular", static=False),
    dict(surrogate="smooth_sigmoid", learn_beta=True, static=False, dtype="float32"),
], ids=["seed", "zero-attached-beta", "none-time-varying", "smooth-float32"])
def test_training_step_runs_on_another_array_module(on_fakexp, setting, optimizer, reference_path):
    setting = dict(setting)
    static, dtype = setting.pop("static", True), setting.pop("dtype", "float64")
    batches, T = data(dtype, static=static)
    make_opt = ((lambda p: ms.Adam(p, lr=1e-2)) if optimizer == "adam"
                else (lambda p: ms.SGD(p, lr=0.05, momentum=0.9)))

    net_np = make_net(dtype=dtype, **setting)
    net_dev = copy.deepcopy(net_np).to(fakexp)               # explicit uploads, before the loop
    opt_np, opt_dev = make_opt(net_np.parameters()), make_opt(net_dev.parameters())
    assert all(isinstance(p.value, DeviceArray) and isinstance(p.grad, DeviceArray)
               for p in net_dev.parameters())
    dev_batches = [(fakexp.asarray(x), fakexp.asarray(y)) for x, y in batches]
    EVENTS.clear()

    hist_np = train_steps(net_np, opt_np, batches, T)
    hist_dev = train_steps(net_dev, opt_dev, dev_batches, T)
    loop_events = list(EVENTS)

    # the same numbers, bit for bit (fakexp computes with NumPy underneath)
    for (l0, r0, t0), (l1, r1, t1) in zip(hist_np, hist_dev):
        assert isinstance(l1, DeviceArray) and isinstance(r1, DeviceArray)
        assert _host(l1) == l0
        np.testing.assert_array_equal(_host(r1), r0)
        np.testing.assert_array_equal(_host(t1), t0)
    for p0, p1 in zip(net_np.parameters(), net_dev.parameters()):
        assert isinstance(p1.value, DeviceArray)
        np.testing.assert_array_equal(_host(p1.value), p0.value)
        np.testing.assert_array_equal(_host(p1.grad), p0.grad)

    # no uploads inside the loop; the only device -> host copies are the input checks
    assert not [e for e in loop_events if e[0] == "upload"], loop_events
    syncs = [site for kind, site in loop_events if kind == "sync"]
    assert set(syncs) <= {"checks.check_float_input", "checks.check_labels"}, set(syncs)
    per_step = len(syncs) / len(batches)
    assert per_step <= 1 + 2 * 3, syncs     # finiteness of x; min and max of y for three losses
    # every function the engine used is one CuPy has (they are all in FUNCTIONS)
    assert set(CALLS) <= set(FUNCTIONS) | {"asarray"}


def test_to_round_trip_on_another_array_module(on_fakexp, reference_path):
    batches, T = data("float64")
    net = make_net(learn_beta=True)
    opt = ms.Adam(net.parameters(), lr=1e-2)
    train_steps(net, opt, batches[:1], T)
    ref_net, ref_opt = copy.deepcopy((net, opt))   # together, so ref_opt updates ref_net
    net.to(fakexp)
    opt.to(fakexp)
    assert net.record is None
    assert all(isinstance(a, DeviceArray) for arrs in opt.state_arrays().values() for a in arrs)
    train_steps(net, opt, [(fakexp.asarray(x), fakexp.asarray(y)) for x, y in batches[1:]], T)
    net.to("numpy")
    opt.to("numpy")
    assert all(isinstance(p.value, np.ndarray) and isinstance(p.grad, np.ndarray)
               for p in net.parameters())
    assert opt.state["step"] == 3
    train_steps(ref_net, ref_opt, batches[1:], T)
    for p0, p1 in zip(ref_net.parameters(), net.parameters()):
        np.testing.assert_array_equal(p0.value, p1.value)
    for k in ref_opt.state_arrays():
        for a0, a1 in zip(ref_opt.state[k], opt.state[k]):
            assert isinstance(a1, np.ndarray)
            np.testing.assert_array_equal(a0, a1)


def test_parameters_created_on_the_default_backend(on_fakexp):
    ms.set_backend(fakexp)
    layer, leaky = ms.Linear(4, 3, rng=0), ms.Leaky(0.9, learn_beta=True)
    assert all(isinstance(a, DeviceArray) for a in (layer.W, layer.b, layer.dW, layer.db,
                                                     leaky.beta, leaky.dbeta))
    ms.set_backend("numpy")
    assert isinstance(ms.Linear(4, 3, rng=0).W, np.ndarray)


def test_mixed_backends_are_refused(on_fakexp):
    net = make_net().to(fakexp)
    x = np.ones((2, 6))
    with pytest.raises(TypeError, match="different backends"):
        net(x, 3)


# ----------------------------------------------------------------------------- static check

ENGINE = Path(ms.__file__).parent
# Modules that may use NumPy directly: host-side I/O and tools, never in a forward/backward pass.
HOST_SIDE = {"backend.py": "the seam itself", "checkpoint.py": "files are host data",
             "data.py": "loading and shuffling on the host", "gradcheck.py": "float64 checks on "
             "NumPy by design", "literal.py": "float64 checks on NumPy by design",
             "encoding.py": "seeds drawn on the host (a training tool)",
             "cli.py": "command line",
             "__main__.py": "command line", "__init__.py": "imports only"}
# NumPy calls that take no arrays: dtype specs, the host RNG used to initialise weights, and the
# scalar type of a kernel argument (fused.py passes an unused pointer as a 64-bit zero).
ALLOWED = {"dtype", "random.default_rng", "uint64"}


def numpy_calls(path):
    """(line, 'np.name') of every call of a numpy function in a source file."""
    tree = ast.parse(path.read_text(), filename=str(path))
    aliases = {a.asname or a.name for node in ast.walk(tree) if isinstance(node, ast.Import)
               for a in node.names if a.name == "numpy"}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "numpy":
            found.append((node.lineno, f"from {node.module} import ..."))
        if isinstance(node, ast.Call):
            parts, f = [], node.func
            while isinstance(f, ast.Attribute):
                parts.append(f.attr)
                f = f.value
            if isinstance(f, ast.Name) and f.id in aliases and parts:
                name = ".".join(reversed(parts))
                if name not in ALLOWED:
                    found.append((node.lineno, f"{f.id}.{name}"))
    return found


def test_engine_modules_call_no_numpy_functions():
    checked = sorted(p for p in ENGINE.glob("*.py") if p.name not in HOST_SIDE)
    assert {"neuron.py", "bptt.py", "surrogate.py", "linear.py", "network.py", "loss.py",
            "optim.py", "decode.py", "checks.py", "fused.py"} <= {p.name for p in checked}
    bad = {p.name: calls for p in checked if (calls := numpy_calls(p))}
    assert not bad, ("engine code calls NumPy directly; use xp = get_xp(array) "
                     f"(or add a host-side module to HOST_SIDE with a reason): {bad}")


def test_static_check_catches_numpy_calls(tmp_path):
    src = tmp_path / "m.py"
    src.write_text("import numpy as np\nimport numpy\nfrom numpy import exp\n"
                   "def f(x):\n    np.dtype('f4'); np.random.default_rng(0)\n"
                   "    return np.exp(x) + numpy.linalg.norm(x) + np.random.rand()\n")
    assert sorted(c for _, c in numpy_calls(src)) == ["from numpy import ...", "np.exp",
                                                      "np.random.rand", "numpy.linalg.norm"]


def test_every_surrogate_grad_on_another_array_module(on_fakexp):
    V = np.linspace(-2, 2, 9)
    for name, cls in SURROGATES.items():
        s = cls()
        S = s.spike(V)
        S_dev = s.spike(fakexp.asarray(V))
        np.testing.assert_array_equal(_host(S_dev), S)
        np.testing.assert_array_equal(_host(s.grad(fakexp.asarray(V), S_dev)), s.grad(V, S))

#!/usr/bin/env bash
# One prepared check of the CuPy backend on a GPU machine, offline, in about 4-6 minutes:
#
#   benchmarks/gpu_check.sh OUT_DIR             on the GPU machine
#   benchmarks/gpu_check.sh --dry-run OUT_DIR   the same steps on the CPU with NumPy, tiny sizes
#
# Steps (each under a time limit; a failed step is reported and the next one still runs):
#   install   minisnn from this working tree without the network (pip --no-index --no-deps
#             --no-build-isolation -e .; PYTHONPATH if that fails), and a snntorch wheel from
#             .whl/ if one was brought along (pure Python, needing only torch: unpacked onto
#             PYTHONPATH)
#   sanity    one fused-vs-reference GPU test, so the figures below come from kernels seen to agree
#   seed      minisnn bench --quick: the seed network, NumPy vs CuPy vs snnTorch on CPU and CUDA
#   kernels   python -m minisnn.bench.kernels: the fused kernels' time and achieved memory
#             bandwidth, hidden 100 ... 10,000, against a device copy and the datasheet figure
#   sweep     minisnn bench on the GPU over hidden 100 ... 10,000, beside snnTorch on CUDA
#   tests     pytest -m gpu, every GPU test
#   summary   OUT_DIR/summary.md: the GPU section for docs/benchmarks.md, from the files above
# Writes (8 files): gpu_check.log (everything printed), summary.md, seed/bench.{json,png},
# kernels/kernels.{json,png}, sweep/bench.{json,png}. Exit status 0 only if every step passed.
# Data: the benchmarks follow minisnn's data rule (--data, $MINISNN_DATA, data/mnist, else the
# MNIST sample bundled in the package, which travels with the working tree).
set -uo pipefail
dry=0
if [ "${1:-}" = "--dry-run" ]; then dry=1; shift; fi
out=${1:?usage: benchmarks/gpu_check.sh [--dry-run] OUT_DIR}
cd "$(dirname "$0")/.."
mkdir -p "$out/seed" "$out/kernels" "$out/sweep"
out=$(cd "$out" && pwd)
log="$out/gpu_check.log"
: > "$log"
PY=${PYTHON:-python3}
export MPLBACKEND=Agg PYTHONUNBUFFERED=1
# a fresh kernel cache, so that every kernel is really compiled in this run
CUPY_CACHE_DIR=$(mktemp -d)
export CUPY_CACHE_DIR
site=$(mktemp -d)
trap 'rm -rf "$CUPY_CACHE_DIR" "$site"' EXIT

if [ "$dry" = 1 ]; then
    backend_all=(--backend numpy); backend_gpu=(--backend numpy)
    seed_size=(--batch 8 --hidden 32 --steps 4 --repeats 2 --warmup 1)
    sweep_size=(--batch 8 --hidden 32 --steps 4 --sweep-batch 8 --sweep-steps 4 --sweep-hidden 16,32,64
                --repeats 2 --warmup 1)
    kernel_size=(--backend numpy --hidden 16,64 --batch 8 --steps 4 --launches 2 --samples 2
                 --copy-mb 8)
    pip_mode=(--dry-run)
else
    backend_all=(--backend all); backend_gpu=(--backend cupy)
    seed_size=(--repeats 20)
    sweep_size=(--sweep-batch 128 --sweep-steps 25 --sweep-hidden 100,300,1000,3000,10000
                --repeats 10)
    kernel_size=(--backend cupy)
    pip_mode=()
fi
# pytest-xdist, where installed, runs the GPU tests in 4 processes (the compiles are most of it)
parallel=()
if [ "$dry" = 0 ] && "$PY" -c "import xdist" 2>/dev/null; then parallel=(-n 4); fi

sanity="test_fused_matches_reference and float32 and static and detached and subtract and atan"
failed=()
step() {   # step NAME LIMIT_S COMMAND...: run it (a shell function: without the limit), log it
    local name=$1 limit=$2 t0=$SECONDS rc
    shift 2
    echo "=== $name (limit ${limit} s, at ${SECONDS} s): $*" | tee -a "$log"
    if [ "$(type -t "$1")" = function ]; then
        "$@" 2>&1 | tee -a "$log"
    else
        timeout --kill-after=10 "$limit" "$@" 2>&1 | tee -a "$log"
    fi
    rc=${PIPESTATUS[0]}
    echo "=== $name: exit $rc after $((SECONDS - t0)) s" | tee -a "$log"
    [ "$rc" = 0 ] || failed+=("$name (exit $rc)")
    return "$rc"
}

install() {
    if "$PY" -c "import setuptools" \
            && "$PY" -m pip install "${pip_mode[@]}" --no-index --no-deps --no-build-isolation -e .
    then
        return 0
    fi
    echo "(pip could not install minisnn offline: it runs from the working tree instead)"
}

environment() {
    date -u +"%Y-%m-%d %H:%M:%S UTC"
    if [ "$dry" = 0 ]; then nvidia-smi || true; fi
    "$PY" - <<'EOF'
import importlib, platform
print("python", platform.python_version())
for name in ("numpy", "cupy", "torch", "snntorch", "minisnn"):
    try:
        m = importlib.import_module(name)
        print(name, getattr(m, "__version__", "?"), getattr(m, "__file__", ""))
    except Exception as e:
        print(name, "not importable:", type(e).__name__, e)
try:
    import torch
    print("torch CUDA", torch.version.cuda, "available:", torch.cuda.is_available())
except Exception:
    pass
EOF
}

echo "gpu_check: $([ "$dry" = 1 ] && echo 'dry run, NumPy on the CPU' || echo 'GPU run'), out $out" \
    | tee -a "$log"
step install 60 install
# the minisnn that python imports must be this working tree's (installed, or on PYTHONPATH)
here=$(pwd -P)
if ! (cd / && "$PY" -c "import minisnn, os, sys
sys.exit(os.path.dirname(os.path.dirname(os.path.realpath(minisnn.__file__))) != sys.argv[1])" \
        "$here") 2>/dev/null; then
    export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
    echo "(minisnn from the working tree: PYTHONPATH=$PWD)" | tee -a "$log"
fi
# a carried snntorch wheel (pure Python): unpacked into a folder of its own on PYTHONPATH
for wheel in .whl/snntorch-*.whl; do
    [ -e "$wheel" ] || continue
    "$PY" -m zipfile -e "$wheel" "$site" && export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}" \
        && echo "(snntorch from $wheel)" | tee -a "$log"
done
step environment 30 environment
step sanity 60 "$PY" -m pytest -q -p no:cacheprovider -m gpu tests/test_gpu.py -rs -k "$sanity"
step seed 100 "$PY" -m minisnn bench --quick "${backend_all[@]}" --peer snntorch,snntorch-hoisted \
    "${seed_size[@]}" --out "$out/seed"
step kernels 45 "$PY" -m minisnn.bench.kernels "${kernel_size[@]}" --out "$out/kernels"
step sweep 75 "$PY" -m minisnn bench "${backend_gpu[@]}" --peer snntorch "${sweep_size[@]}" \
    --out "$out/sweep"
# the GPU tests get what is left of 340 s (at least 60 s), so that the whole run stays near 6 min
step tests $(( SECONDS < 280 ? 340 - SECONDS : 60 )) "$PY" -m pytest -q -p no:cacheprovider -m gpu \
    -ra "${parallel[@]}" tests
# minisnn/numpy's seed-point median on the 2-core CPU of docs/benchmarks.md, for the ratio
step summary 20 "$PY" -m minisnn.bench.gpu_summary "$out" --cpu-reference-ms 17.1 \
    --write "$out/summary.md"

echo "gpu_check: $SECONDS s in all; $([ ${#failed[@]} = 0 ] && echo 'every step passed' \
    || echo "failed: ${failed[*]}")" | tee -a "$log"
[ ${#failed[@]} = 0 ]

#!/usr/bin/env bash
# The commands behind docs/benchmarks.md, from the repository root, on an idle machine.
# Needs the bench extra: torch (a CPU build is enough) and snntorch; see docs/benchmarks.md.
set -euo pipefail
cd "$(dirname "$0")/.."
export MPLBACKEND=Agg
export MINISNN_SHARED_DATA="${MINISNN_SHARED_DATA:-$(cd .. && pwd)/shared/data}"

# 1. Seed network and the sweep (batch, hidden, steps), minisnn beside snnTorch, with a fresh
#    process per point for its peak memory, plus a one-epoch training run on mnist-5k.
python -m minisnn bench --memory --train --peer snntorch,snntorch-hoisted --out runs/bench/cpu

# 2. One epoch of Fashion-MNIST, both frameworks from the same initial weights and batches.
python -m minisnn bench --quick --train --peer snntorch,snntorch-hoisted \
    --data "$MINISNN_SHARED_DATA/fashion-mnist" --out runs/bench/fashion
for seed in 1 2 3 4; do
    python -m minisnn bench --quick --train --seed "$seed" --repeats 5 --no-plot \
        --data "$MINISNN_SHARED_DATA/fashion-mnist" --out "runs/bench/fashion-seed$seed"
done

# 3. The steps axis alone, minisnn only, more repeats.
python -m minisnn bench --no-peer --sweep-batch 128 --sweep-hidden 1000 \
    --sweep-steps 10,25,50,75,100 --repeats 40 --out runs/bench/steps

# 4. The allocator: the same training run with the minisnn command's tuning and with glibc's defaults.
python -m minisnn bench --no-peer --quick --train --epochs 3 --out runs/bench/malloc-tuned
MINISNN_MALLOC=default python -m minisnn bench --no-peer --quick --train --epochs 3 \
    --out runs/bench/malloc-default

# 5. Peak memory of the whole `minisnn train` command (training, test set, loss-curve plot).
for d in mnist-5k fashion-mnist; do
    /usr/bin/time -f "minisnn train on $d: peak RSS %M KB" \
        python -m minisnn train --data "$MINISNN_SHARED_DATA/$d" --quiet --out "runs/bench/train-$d"
done

# 6. Issue 15: every peer at the seed point and the T sweep (installs: pip install spikingjelly
#    norse), the fast paths' agreement with the reference, where the seed iteration's time goes.
python benchmarks/t_sweep.py --steps 25 --iters 40 --warmup 5 --rounds 4 \
    --data "$MINISNN_SHARED_DATA/mnist-5k"
python benchmarks/t_sweep.py --iters 3 --warmup 1 --data "$MINISNN_SHARED_DATA/mnist-5k"
python benchmarks/agreement.py
OPENBLAS_THREAD_TIMEOUT=4 python benchmarks/profile_seed.py
OPENBLAS_THREAD_TIMEOUT=4 python benchmarks/narrow_products.py
OPENBLAS_THREAD_TIMEOUT=4 python benchmarks/narrow_products.py --seed-iteration

# 7. Optional: an earlier revision against the working tree, alternately (e.g. the commit before
#    the engine's performance changes, c674585): benchmarks/compare_revisions.sh c674585 5

#!/usr/bin/env bash
# Before/after of an engine change: time the seed network (minisnn on NumPy only) at git
# revision REV and in the working tree, alternately, ROUNDS times each, so that a drift of the
# machine's speed hits both sides alike. Both sides use the working tree's minisnn/bench/
# package (REV must have minisnn/train.py, atomic.py and malloc.py, which it builds on).
#
#   benchmarks/compare_revisions.sh HEAD 5
set -euo pipefail
rev=${1:?usage: benchmarks/compare_revisions.sh REV [ROUNDS]}
rounds=${2:-3}
root=$(git rev-parse --show-toplevel)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
git -C "$root" archive "$rev" minisnn | tar -x -C "$tmp"
rm -rf "$tmp/minisnn/bench.py" "$tmp/minisnn/bench"
cp -r "$root/minisnn/bench" "$tmp/minisnn/bench"
for round in $(seq "$rounds"); do
  for tree in "$tmp" "$root"; do
    if [ "$tree" = "$root" ]; then name="working tree"; else name="$rev"; fi
    printf '%-14s round %s: ' "$name" "$round"
    (cd "$tree" && PYTHONPATH="$tree" python -m minisnn.bench --quick --no-peer --repeats 50 \
        --out "$tmp/out" 2>/dev/null | grep -E "^  minisnn/numpy|WARNING" | tr -s ' ')
  done
done
echo "(columns: forward, backward, step, total ms per iteration; peak RSS, start RSS MB)"

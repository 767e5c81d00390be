#!/usr/bin/env bash
# Alternated A/B runs of the engine bench on this noisy host: each round runs a 1-second
# criterion measurement of `evaluate_1kb/default_policy/<set>` on one core for every
# binary in turn, then prints min and median per binary and their ratios to the first.
#
#   B=$(ls -t target/release/deps/engine-* | grep -v '\.d$' | head -1)   # after
#   cargo bench --bench engine --no-run; copy it aside before building the other side.
#   bench/engine_ab.sh 8 en /tmp/engine-before /tmp/engine-after
#
# Sets: en (encyclopedia passages), ko (KLUE sentences), en_prompts (user prompts).
set -euo pipefail
ROUNDS=$1
SET=$2
shift 2
for _ in $(seq "$ROUNDS"); do
  for b in "$@"; do
    t=$(taskset -c 1 "$b" --bench --warm-up-time 0.5 --measurement-time 1 \
      "evaluate_1kb/default_policy/$SET\$" 2>/dev/null | grep "time:" | head -1 |
      awk '{v=$4; if ($5=="ms") v*=1000; if ($5=="ns") v/=1000; print v}')
    echo "$(basename "$b") $t"
  done
done | python3 -c '
import collections, statistics, sys
runs = collections.defaultdict(list)
for line in sys.stdin:
    name, value = line.split()
    runs[name].append(float(value))
base = None
for name, v in runs.items():
    lo, med = min(v), statistics.median(v)
    base = base or (lo, med)
    print(f"{name:20s} min {lo:7.2f} us  median {med:7.2f} us  ratio min {lo/base[0]:.3f} median {med/base[1]:.3f}  n={len(v)}")
'

#!/usr/bin/env bash
# Runs every fuzz target for a bounded time and prints libFuzzer's final stats.
#   fuzz/run.sh [SECONDS_PER_TARGET] [TARGET...]      (default 90 s, all targets)
# Needs the nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz`).
# Build output goes to $CARGO_TARGET_DIR (default fuzz/target). Crashes land in
# fuzz/artifacts/<target>/; copy a fixed one to tests/fuzz-regressions/<target>/ so the
# unit tests replay it (see src/dialect/fuzz_regressions.rs).
set -euo pipefail
cd "$(dirname "$0")"
secs="${1:-90}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(decode sse stream_guard eventstream policy config scan)
fi
# No sanitizer: the crate is safe Rust (panics, overflows, hangs and OOMs are what we
# look for), and it keeps the build and the runs fast on a small machine.
flags=(--sanitizer none --debug-assertions)
cargo +nightly fuzz build "${flags[@]}"
for t in "${targets[@]}"; do
  mkdir -p "corpus/$t"
  seeds="../tests/fuzz-regressions/$t"
  extra=()
  [ -d "$seeds" ] && extra+=("$seeds")
  [ -d "seeds/$t" ] && extra+=("seeds/$t")
  echo "== $t ($secs s)"
  cargo +nightly fuzz run "${flags[@]}" "$t" "corpus/$t" "${extra[@]}" -- \
    -max_total_time="$secs" -rss_limit_mb=2048 -timeout=10 -max_len=65536 -print_final_stats=1 \
    2>&1 | grep -E "stat::number_of_executed_units|stat::peak_rss_mb|Done [0-9]+ runs|ERROR|panicked|SUMMARY" || true
done

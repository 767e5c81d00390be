#!/usr/bin/env bash
# Load harness: direct-to-mock vs through-Haechi, non-streaming and streaming, at
# concurrency 1, 16 and 64 with a ~1 KB chat request. The gateway is pinned to core 0;
# the mock upstream and the load generator share core 1. Prints a Markdown table per
# policy: `core` (an allow-all policy: the proxy alone) and `default` (the shipped
# default policy: PII, secrets, prompt-attack, toxicity, profanity on every prompt and
# answer).
#
#   bench/run.sh                   # 5 s per point, both policies
#   SECS=10 POLICIES=core bench/run.sh
#   HALTPOLL_NS=200000 bench/run.sh  # (root) let idle vCPUs poll 200 µs before halting
#
# On this VM the kernel command line sets `haltpoll.guest_halt_poll_ns=0`: an idle vCPU
# halts at once and waking it costs tens of microseconds. A request through the gateway
# crosses cores four times (client -> gateway -> mock -> gateway -> client) while the
# direct path stays on one core, so at concurrency 1 the wake-ups, not the gateway, make
# most of the added latency. HALTPOLL_NS sets the guest's halt-poll window for the run
# and restores it afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${SECS:-5}
MOCK_ADDR=127.0.0.1:${MOCK_PORT:-9100}
GW_ADDR=127.0.0.1:${GW_PORT:-9200}
cargo build --release --quiet --bin haechi --example mock_upstream --example loadgen
T=${CARGO_TARGET_DIR:-target}/release

HALTPOLL=/sys/module/haltpoll/parameters/guest_halt_poll_ns
if [ -n "${HALTPOLL_NS:-}" ]; then
  OLD_HALTPOLL=$(cat "$HALTPOLL")
  echo "$HALTPOLL_NS" > "$HALTPOLL"
  echo "guest_halt_poll_ns: $OLD_HALTPOLL -> $HALTPOLL_NS for this run"
fi
cleanup() {
  kill "${MOCK_PID:-}" "${GW_PID:-}" 2>/dev/null || true
  if [ -n "${OLD_HALTPOLL:-}" ]; then echo "$OLD_HALTPOLL" > "$HALTPOLL"; fi
}
trap cleanup EXIT

taskset -c 1 "$T/examples/mock_upstream" "$MOCK_ADDR" 2>/dev/null &
MOCK_PID=$!
rss() { awk '/VmRSS/ {printf "%.1f", $2/1024}' "/proc/$1/status"; }
AUDIT_DIR=$(mktemp -d)

for POLICY in ${POLICIES:-core default}; do
policy_args=()
if [ "$POLICY" = core ]; then policy_args=(--policies bench/policy-allow); fi
HAECHI_LOG=warn taskset -c 0 "$T/haechi" serve --listen "$GW_ADDR" --upstream "http://$MOCK_ADDR/v1" \
  "${policy_args[@]}" --audit-log "$AUDIT_DIR/audit-$POLICY.jsonl" 2>/dev/null >/dev/null &
GW_PID=$!
for _ in $(seq 100); do
  curl -sf "http://$GW_ADDR/healthz" >/dev/null 2>&1 && curl -sf -o /dev/null "http://$MOCK_ADDR/v1/models" && break
  sleep 0.1
done
IDLE_RSS=$(rss "$GW_PID")

RESULTS=$(mktemp)
for mode in json stream; do
  body=bench/chat-1k.json
  flag=""
  if [ "$mode" = stream ]; then body=bench/chat-1k-stream.json; flag=stream; fi
  for c in 1 16 64; do
    d=$(taskset -c 1 "$T/examples/loadgen" "http://$MOCK_ADDR/v1/chat/completions" "$body" "$c" "$SECS" $flag)
    g=$(taskset -c 1 "$T/examples/loadgen" "http://$GW_ADDR/v1/chat/completions" "$body" "$c" "$SECS" $flag)
    echo "{\"mode\":\"$mode\",\"direct\":$d,\"gateway\":$g}" >> "$RESULTS"
  done
done
LOADED_RSS=$(rss "$GW_PID")
kill "$GW_PID"; wait "$GW_PID" 2>/dev/null || true

echo
echo "### policy: $POLICY"
python3 - "$RESULTS" "$IDLE_RSS" "$LOADED_RSS" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
print("| mode | c | direct RPS | Haechi RPS | RPS ratio | direct p50 ms | Haechi p50 ms | added p50 ms | added p99 ms | direct TTFB p50 ms | Haechi TTFB p50 ms | errors |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|")
for r in rows:
    d, g = r["direct"], r["gateway"]
    print(f"| {r['mode']} | {d['concurrency']} | {d['rps']:.0f} | {g['rps']:.0f} | {g['rps']/max(d['rps'],1e-9):.2f} | "
          f"{d['p50_ms']:.3f} | {g['p50_ms']:.3f} | {g['p50_ms']-d['p50_ms']:.3f} | {g['p99_ms']-d['p99_ms']:.3f} | "
          f"{d['ttfb_p50_ms']:.3f} | {g['ttfb_p50_ms']:.3f} | {d['errors']}/{g['errors']} |")
print()
print(f"Gateway RSS: idle {sys.argv[2]} MB, after the run {sys.argv[3]} MB")
PY
done

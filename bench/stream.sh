#!/usr/bin/env bash
# Streaming guardrails at LLM speed. The mock upstream streams ~1 KB of prose in 4-byte
# deltas, one every DELAY ms (a model's pace); the shipped default policy's output stage
# runs on every delta. Prints:
#   1. time to first token (first non-empty delta) direct vs through Haechi, and how much
#      of the gateway's delay the hold-back explains (the first word is released when the
#      delta after it shows where it ends);
#   2. the gateway's RSS with MANY streams open at once.
#
#   bench/stream.sh                      # DELAY=30 STREAMS=40 PAR=8 MANY=1000
set -euo pipefail
cd "$(dirname "$0")/.."
DELAY=${DELAY:-30}
STREAMS=${STREAMS:-40}
MANY=${MANY:-1000}
MOCK_ADDR=127.0.0.1:${MOCK_PORT:-9101}
GW_ADDR=127.0.0.1:${GW_PORT:-9201}
cargo build --release --quiet --bin haechi --example mock_upstream --example stream_probe
T=${CARGO_TARGET_DIR:-target}/release
cleanup() { kill "${MOCK_PID:-}" "${GW_PID:-}" "${PROXY_PID:-}" 2>/dev/null || true; }
trap cleanup EXIT
rss() { awk '/VmRSS/ {printf "%.1f", $2/1024}' "/proc/$1/status"; }
AUDIT_DIR=$(mktemp -d)

start_mock() {
  kill "${MOCK_PID:-}" 2>/dev/null || true
  "$T/examples/mock_upstream" "$MOCK_ADDR" "$1" prose 2>/dev/null &
  MOCK_PID=$!
}
start_mock "$DELAY"
HAECHI_LOG=warn "$T/haechi" serve --listen "$GW_ADDR" --upstream "http://$MOCK_ADDR/v1" \
  --audit-log "$AUDIT_DIR/audit.jsonl" >/dev/null 2>&1 &
GW_PID=$!
# The proxy alone (allow-all policy), for comparison.
PROXY_ADDR=127.0.0.1:${PROXY_PORT:-9202}
HAECHI_LOG=warn "$T/haechi" serve --listen "$PROXY_ADDR" --upstream "http://$MOCK_ADDR/v1" \
  --policies bench/policy-allow --audit-log "$AUDIT_DIR/audit-allow.jsonl" >/dev/null 2>&1 &
PROXY_PID=$!
for _ in $(seq 100); do
  curl -sf "http://$GW_ADDR/healthz" >/dev/null 2>&1 && curl -sf -o /dev/null "http://$MOCK_ADDR/v1/models" && break
  sleep 0.1
done

PAR=${PAR:-8}
DIRECT=$("$T/examples/stream_probe" "http://$MOCK_ADDR/v1/chat/completions" "$STREAMS" "$PAR")
GATEWAY=$("$T/examples/stream_probe" "http://$GW_ADDR/v1/chat/completions" "$STREAMS" "$PAR")
PROXY=$("$T/examples/stream_probe" "http://$PROXY_ADDR/v1/chat/completions" "$STREAMS" "$PAR")
kill "$PROXY_PID" 2>/dev/null || true

# Many streams at once: 20 ms deltas keep each stream open about 5 s.
start_mock 20
sleep 0.5
IDLE_RSS=$(rss "$GW_PID")
"$T/examples/stream_probe" "http://$GW_ADDR/v1/chat/completions" "$MANY" "$MANY" > "$AUDIT_DIR/many.json" &
PROBE_PID=$!
PEAK=0
while kill -0 "$PROBE_PID" 2>/dev/null; do
  R=$(rss "$GW_PID"); PEAK=$(python3 -c "print(max($PEAK, $R))")
  sleep 0.1
done
MANY_OUT=$(cat "$AUDIT_DIR/many.json")

python3 - "$DIRECT" "$GATEWAY" "$IDLE_RSS" "$PEAK" "$MANY_OUT" "$DELAY" "$MANY" "$PAR" "$PROXY" <<'PY'
import json, math, sys
d, g = json.loads(sys.argv[1]), json.loads(sys.argv[2])
par = sys.argv[8]
p = json.loads(sys.argv[9])
idle, peak, many, delay, n = float(sys.argv[3]), float(sys.argv[4]), json.loads(sys.argv[5]), sys.argv[6], int(sys.argv[7])
first = int(g["first_text_bytes_p50"])
# The first token of `first` bytes is released once the byte after it has arrived.
k = math.ceil((first + 1) / 4)
hold = d["chunk_at_p50"][k - 1]
print(f"### streaming at one 4-byte delta every {delay} ms, shipped default policy ({d['streams']} streams, {par} at a time)")
print("| | direct | Haechi | added |")
print("|---|---|---|---|")
print(f"| time to first token p50 (ms) | {d['ttft_p50']:.2f} | {g['ttft_p50']:.2f} | {g['ttft_p50'] - d['ttft_p50']:.2f} |")
print(f"| same through Haechi with an allow-all policy (ms) | | {p['ttft_p50']:.2f} | {p['ttft_p50'] - d['ttft_p50']:.2f} |")
print(f"| first token (bytes) | {int(d['first_text_bytes_p50'])} | {first} | |")
print(f"| direct arrival of the delta that completes it (ms) | | {hold:.2f} | |")
print(f"| Haechi beyond the hold-back (ms) | | | {g['ttft_p50'] - hold:.2f} |")
print(f"| whole stream p50 (ms) | {d['total_p50']:.1f} | {g['total_p50']:.1f} | {g['total_p50'] - d['total_p50']:.1f} |")
print(f"| text bytes / errors | {d['text_bytes']} / {d['errors']} | {g['text_bytes']} / {g['errors']} | |")
print()
print(f"### {n} concurrent streams through one gateway")
print(f"| idle RSS MB | peak RSS MB | per stream KB | streams ok | errors |")
print("|---|---|---|---|---|")
print(f"| {idle:.1f} | {peak:.1f} | {(peak - idle) * 1024 / n:.1f} | {many['streams']} | {many['errors']} |")
PY

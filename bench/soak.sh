#!/usr/bin/env bash
# Soak: two gateway replicas sharing one redis-server, steady mixed load for DURATION
# seconds (default 600): streamed and not, plain, masked (PII), blocked (banned word),
# and a tenant far over its quota. Reports requests by outcome, unexpected errors, RSS of
# each replica at start / middle / end, open fds at start / end, and checks every request
# id is in the audit logs exactly once (and that each log's chain verifies).
#
#   bench/soak.sh                         # 600 s
#   DURATION=60 RATE=40 bench/soak.sh     # a short run
#
# Loopback only; ports from BASE_PORT (default 9300). Exits 1 when anything is off.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-600}
RATE=${RATE:-40}                 # requests per second, both replicas together
CONCURRENCY=${CONCURRENCY:-16}
BASE_PORT=${BASE_PORT:-9300}
REDIS_PORT=$BASE_PORT
MOCK_ADDR=127.0.0.1:$((BASE_PORT + 1))
GW1=127.0.0.1:$((BASE_PORT + 2))
GW2=127.0.0.1:$((BASE_PORT + 3))
cargo build --release --quiet --bin haechi --example mock_upstream --example soak
T=${CARGO_TARGET_DIR:-target}/release
WORK=$(mktemp -d)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no >/dev/null &
PIDS+=($!)
# Answers stream in 20 ms steps, like a model emitting tokens.
"$T/examples/mock_upstream" "$MOCK_ADDR" 20 2>/dev/null &
PIDS+=($!)

hash() { printf 'sha256:%s' "$(printf '%s' "$1" | sha256sum | cut -d' ' -f1)"; }
mkdir -p "$WORK/policies"
cat >"$WORK/policies/default.yaml" <<'EOF'
id: default
input:
  - {id: banned, detector: word, words: [frobnicate], action: block}
  - {id: pii-in, detector: pii, entities: [EMAIL], action: pseudonymize}
output:
  - {id: pii-out, detector: pii, action: mask}
EOF
for i in 1 2; do
  addr_var=GW$i
  cat >"$WORK/gw$i.yaml" <<EOF
listen: ${!addr_var}
policies: $WORK/policies
upstreams:
  - {name: mock, base_url: "http://$MOCK_ADDR/v1", dialect: openai}
tenants:
  - id: acme
    keys: ["$(hash hk_soak_acme)"]
    quotas: {requests_per_minute: 1000000, tokens_per_minute: 100000000}
  - id: tiny
    keys: ["$(hash hk_soak_tiny)"]
    quotas: {requests_per_minute: 60}
store:
  redis_url: redis://127.0.0.1:$REDIS_PORT
  replicas: 2
audit:
  path: $WORK/audit$i.jsonl
EOF
  HAECHI_LOG=warn "$T/haechi" serve --config "$WORK/gw$i.yaml" 2>"$WORK/gw$i.log" >/dev/null &
  PIDS+=($!)
  eval "GW${i}_PID=$!"
done
for _ in $(seq 200); do
  curl -sf "http://$GW1/readyz" >/dev/null 2>&1 && curl -sf "http://$GW2/readyz" >/dev/null 2>&1 &&
    curl -sf -o /dev/null "http://$MOCK_ADDR/v1/models" && break
  sleep 0.1
done

rss() { awk '/VmRSS/ {printf "%.1f", $2/1024}' "/proc/$1/status"; }
fds() { ls "/proc/$1/fd" | wc -l; }
snapshot() { echo "$(rss "$GW1_PID") $(rss "$GW2_PID") $(fds "$GW1_PID") $(fds "$GW2_PID")"; }

"$T/examples/soak" run "http://$GW1,http://$GW2" "$DURATION" "$CONCURRENCY" "$RATE" "$WORK/ids.tsv" \
  >"$WORK/run.json" &
LOAD_PID=$!
sleep 5
read -r RSS1_START RSS2_START FD1_START FD2_START <<<"$(snapshot)"
sleep $((DURATION / 2 - 5))
read -r RSS1_MID RSS2_MID _ _ <<<"$(snapshot)"
sleep $((DURATION / 2 - 5))
read -r RSS1_END RSS2_END FD1_END FD2_END <<<"$(snapshot)"
wait "$LOAD_PID"
# After the load: idle fds (keep-alive connections closed by the client's exit).
sleep 2
read -r _ _ FD1_IDLE FD2_IDLE <<<"$(snapshot)"

kill -TERM "$GW1_PID" "$GW2_PID"
EXIT1=0; EXIT2=0
wait "$GW1_PID" || EXIT1=$?
wait "$GW2_PID" || EXIT2=$?
CHECK=$("$T/examples/soak" check "$WORK/ids.tsv" "$WORK/audit1.jsonl" "$WORK/audit2.jsonl") && CHECK_OK=1 || CHECK_OK=0
VERIFY_OK=1
for i in 1 2; do "$T/haechi" audit verify "$WORK/audit$i.jsonl" >/dev/null || VERIFY_OK=0; done
LOGLINES="error $(cat "$WORK"/gw*.log | grep -ci 'error' || true), warn $(cat "$WORK"/gw*.log | grep -ci 'warn' || true)"

cat <<EOF
load:  $(cat "$WORK/run.json")
audit: $CHECK   chains verify: $([ $VERIFY_OK = 1 ] && echo yes || echo NO)
replica 1: RSS MB start/mid/end $RSS1_START / $RSS1_MID / $RSS1_END; fds start/end/idle $FD1_START / $FD1_END / $FD1_IDLE; exit $EXIT1
replica 2: RSS MB start/mid/end $RSS2_START / $RSS2_MID / $RSS2_END; fds start/end/idle $FD2_START / $FD2_END / $FD2_IDLE; exit $EXIT2
log lines of both replicas (HAECHI_LOG=warn): $LOGLINES
EOF
UNEXPECTED=$(sed -n 's/.*"unexpected_total":\([0-9]*\).*/\1/p' "$WORK/run.json")
[ "$UNEXPECTED" = 0 ] && [ "$CHECK_OK" = 1 ] && [ "$VERIFY_OK" = 1 ] && [ "$EXIT1" = 0 ] && [ "$EXIT2" = 0 ]

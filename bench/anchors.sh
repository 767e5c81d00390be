#!/usr/bin/env bash
# Haechi beside two anchor gateways, measured the same way as bench/run.sh: the gateway
# under test pinned to core 0, the mock upstream and the load generator on core 1, a
# ~1 KB chat request, direct-to-mock measured in the same run before each gateway.
#
# The anchors are installed by their own package managers, outside the repo:
#   python3 -m venv $ANCHORS/litellm-venv && $ANCHORS/litellm-venv/bin/pip install 'litellm[proxy]'
#   (cd $ANCHORS && npm install @portkey-ai/gateway)
#
#   ANCHORS=/work/anchors SECS=4 bench/anchors.sh
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${SECS:-4}
ANCHORS=${ANCHORS:?set ANCHORS to the directory with litellm-venv/ and node_modules/}
MOCK_ADDR=127.0.0.1:9100
PORT=9300
cargo build --release --quiet --bin haechi --example mock_upstream --example loadgen
T=${CARGO_TARGET_DIR:-target}/release
WORK=$(mktemp -d)
cleanup() { kill "${MOCK_PID:-}" "${GW_PID:-}" 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT
rss() { awk '/VmRSS/ {printf "%.1f", $2/1024}' "/proc/$1/status"; }

taskset -c 1 "$T/examples/mock_upstream" "$MOCK_ADDR" 2>/dev/null &
MOCK_PID=$!

cat > "$WORK/litellm.yaml" <<YAML
model_list:
  - model_name: gpt-4o-mini
    litellm_params:
      model: openai/gpt-4o-mini
      api_base: http://$MOCK_ADDR/v1
      api_key: sk-bench
general_settings:
  master_key: sk-bench
  dangerously_permit_weak_or_unset_master_key: true
YAML

start() {
  case $1 in
    haechi) HAECHI_LOG=warn taskset -c 0 "$T/haechi" serve --listen "127.0.0.1:$PORT" \
              --upstream "http://$MOCK_ADDR/v1" --policies bench/policy-allow \
              --audit-log "$WORK/audit.jsonl" >/dev/null 2>&1 & ;;
    portkey) taskset -c 0 node "$ANCHORS/node_modules/@portkey-ai/gateway/build/start-server.js" \
              --port="$PORT" --headless >/dev/null 2>&1 & ;;
    litellm) taskset -c 0 "$ANCHORS/litellm-venv/bin/litellm" --config "$WORK/litellm.yaml" \
              --port "$PORT" --num_workers 1 >/dev/null 2>&1 & ;;
  esac
  GW_PID=$!
  for _ in $(seq 600); do
    code=$(LOADGEN_HEADERS="${HEADERS:-}" curl -s -o /dev/null -w '%{http_code}' \
      -H 'content-type: application/json' -H 'authorization: Bearer sk-bench' \
      -H "x-portkey-provider: openai" -H "x-portkey-custom-host: http://$MOCK_ADDR/v1" \
      -d @bench/chat-1k.json "http://127.0.0.1:$PORT/v1/chat/completions" || true)
    [ "$code" = 200 ] && return 0
    sleep 0.2
  done
  echo "$1 did not come up" >&2
  return 1
}

RESULTS=$WORK/results.jsonl
for gw in haechi portkey litellm; do
  HEADERS=""
  if [ "$gw" = portkey ]; then
    HEADERS="x-portkey-provider: openai; x-portkey-custom-host: http://$MOCK_ADDR/v1"
  fi
  start "$gw" || continue
  sleep 1
  idle=$(rss "$GW_PID")
  for mode in json stream; do
    body=bench/chat-1k.json; flag=""
    if [ "$mode" = stream ]; then body=bench/chat-1k-stream.json; flag=stream; fi
    for c in 1 64; do
      d=$(taskset -c 1 "$T/examples/loadgen" "http://$MOCK_ADDR/v1/chat/completions" "$body" "$c" "$SECS" $flag)
      g=$(LOADGEN_HEADERS="$HEADERS" taskset -c 1 "$T/examples/loadgen" "http://127.0.0.1:$PORT/v1/chat/completions" "$body" "$c" "$SECS" $flag)
      echo "{\"gw\":\"$gw\",\"mode\":\"$mode\",\"idle\":$idle,\"direct\":$d,\"gateway\":$g}" >> "$RESULTS"
    done
  done
  # The whole process tree (LiteLLM forks a worker).
  pids="$GW_PID $(pgrep -P "$GW_PID" | tr "\n" " " || true)"
  kill $pids 2>/dev/null || true; wait "$GW_PID" 2>/dev/null || true
  sleep 1
done

python3 - "$RESULTS" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
print("| gateway | mode | c | direct RPS | gateway RPS | RPS ratio | gateway p50 ms | added p50 ms | gateway TTFB p50 ms | errors | idle RSS MB |")
print("|---|---|---|---|---|---|---|---|---|---|---|")
for r in rows:
    d, g = r["direct"], r["gateway"]
    print(f"| {r['gw']} | {r['mode']} | {d['concurrency']} | {d['rps']:.0f} | {g['rps']:.0f} | {g['rps']/max(d['rps'],1e-9):.3f} | "
          f"{g['p50_ms']:.3f} | {g['p50_ms']-d['p50_ms']:.3f} | {g['ttfb_p50_ms']:.3f} | {g['errors']} | {r['idle']} |")
PY

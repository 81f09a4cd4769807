#!/usr/bin/env bash
# Run every benchmark at GPU scale and write one markdown table (see bench_gpu.py).
# Usage: experiments/bench_gpu.sh [MOVIELENS.npz] [extra bench_gpu.py args, e.g. --dry-run]
# Runs from the source tree alone (PYTHONPATH=.); PYTHON defaults to python3.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
if [ -d experiments/wheels ] && ! "$PY" -c "import flax, optax, pandas" 2>/dev/null; then
  "$PY" -m pip install -q --no-index --find-links experiments/wheels flax optax pandas || true
fi
ML=()
if [ $# -gt 0 ] && [ -f "$1" ]; then ML=(--movielens "$1"); shift; fi
PYTHONPATH=. "$PY" experiments/bench_gpu.py "${ML[@]}" --out "${OUT:-bench_gpu.md}" \
  --json "${OUT_JSON:-bench_gpu.json}" "$@"

#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Resume-point benchmark: prune a synthetic SmolLM2-shaped bf16 checkpoint (hidden 576, SwiGLU 1536,
# 9 heads / 3 KV heads; 8 blocks unless --blocks) with Wanda 50 % + DSnoT, N = 32, L = 512 pre-tokenized
# calibration, without and with resume points, then interrupted and resumed (`dsnot-bench resume`).
#
#   scripts/bench-resume.sh [--release] [make-synthetic-llama.py options]
#
# The checkpoint is generated under $BENCH_SCALE_DIR (default .fixtures) once. Python: $BENCH_SCALE_PYTHON
# (default .venv/bin/python) with numpy, ml_dtypes and safetensors.
set -euo pipefail
cd "$(dirname "$0")/.."
SWIFT=${SWIFT:-swift}
PY=${BENCH_SCALE_PYTHON:-.venv/bin/python}
DIR=${BENCH_SCALE_DIR:-.fixtures}
configuration=debug
if [ "${1:-}" = "--release" ]; then configuration=release; shift; fi
shape=(--blocks 8 --hidden 576 --mlp 1536 --heads 9 --kv-heads 3 --vocab 4096 "$@")
tag=$(printf '%s' "${shape[*]}" | tr -c 'A-Za-z0-9' '_')
model=$DIR/synthetic-llama-$tag
if ! [ -f "$model/config.json" ] || ! [ -f "$model-calib.safetensors" ]; then
    echo "bench-resume: generating $model"
    rm -rf "$model" "$model-calib.safetensors"
    mkdir -p "$DIR"
    "$PY" scripts/make-synthetic-llama.py "$model" --calib-n 32 --calib-len 512 "${shape[@]}"
fi
$SWIFT build -c "$configuration" --product dsnot-bench >/dev/null
bench="$($SWIFT build -c "$configuration" --show-bin-path)/dsnot-bench"
echo "bench-resume: $(du -sh "$model" | cut -f1) checkpoint, load average $(cut -d' ' -f1-3 /proc/loadavg)"
DSNOT_BENCH_RESUME_MODEL=$model DSNOT_BENCH_RESUME_CALIB=$model-calib.safetensors "$bench" resume
echo "    load average $(cut -d' ' -f1-3 /proc/loadavg)"

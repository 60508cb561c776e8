#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Scale benchmark (`make bench-scale`): prune a synthetic LLaMA-7B-shaped bf16 checkpoint with
# Wanda at 60 % (N = 8, L = 128, pre-tokenized calibration) and report peak RSS and wall time
# (/usr/bin/time -v) next to the pipeline's own memory estimate.
#
#   scripts/bench-scale.sh [make-synthetic-llama.py options]   e.g. --blocks 2 --hidden 256 --mlp 688 --heads 4 --kv-heads 4 --vocab 512
#
# Without options the checkpoint is LLaMA-7B's shape: about 14 GB under .fixtures/ (kept for reruns,
# regenerated only when missing) and a long CPU run. The pruned output goes to a temporary directory,
# removed at the end. Needs .venv-fixtures (scripts/fixtures.sh creates it).
# Environment: BENCH_SCALE_DIR (default .fixtures) holds the generated checkpoints; BENCH_SCALE_PYTHON
# (default .venv-fixtures/bin/python) has numpy, ml_dtypes and safetensors.
set -euo pipefail
cd "$(dirname "$0")/.."
SWIFT=${SWIFT:-swift}
PY=${BENCH_SCALE_PYTHON:-.venv-fixtures/bin/python}
DIR=${BENCH_SCALE_DIR:-.fixtures}
if ! [ -x "$PY" ]; then
    echo "bench-scale: $PY missing; run scripts/fixtures.sh first" >&2
    exit 1
fi
if ! [ -x /usr/bin/time ]; then
    echo "bench-scale: /usr/bin/time missing (apt-get install time)" >&2
    exit 1
fi

# One checkpoint directory per shape, named after the options.
tag=$(printf '%s' "${*:-default}" | tr -c 'A-Za-z0-9' '_')
model=$DIR/synthetic-llama-$tag
if ! [ -f "$model/config.json" ] || ! [ -f "$model-calib.safetensors" ]; then
    echo "bench-scale: generating $model $*"
    rm -rf "$model" "$model-calib.safetensors"
    "$PY" scripts/make-synthetic-llama.py "$model" --calib-n 8 --calib-len 128 "$@"
fi

$SWIFT build -c release --product dsnotctl >/dev/null
dsnotctl="$($SWIFT build -c release --show-bin-path)/dsnotctl"
work=$(mktemp -d "${TMPDIR:-/tmp}/dsnot-bench-scale.XXXXXX")
trap 'rm -rf "$work"' EXIT

echo "bench-scale: $(du -sh "$model" | cut -f1) checkpoint, load average $(cut -d' ' -f1-3 /proc/loadavg)"
/usr/bin/time -v -o "$work/time.txt" "$dsnotctl" prune "$model" "$work/out" \
    --calib-tokens "$model-calib.safetensors" --nsamples 8 --seqlen 128 \
    --method wanda --sparsity 0.6 --json >"$work/report.json"

peak_kb=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$work/time.txt")
wall=$(awk -F': ' '/Elapsed \(wall clock\) time/ {print $2}' "$work/time.txt")
estimate=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["memory_estimate_bytes"])' "$work/report.json")
total=$("$PY" -c 'import json,sys; print(round(json.load(open(sys.argv[1]))["timings"]["total"], 1))' "$work/report.json")
ratio=$("$PY" -c 'import sys; print(round(int(sys.argv[1]) / (int(sys.argv[2]) * 1024), 3))' "$estimate" "$peak_kb")
echo "scale.prune_wanda_60: peak RSS $((peak_kb / 1024)) MiB, wall $wall (pipeline total ${total} s), output $(du -sh "$work/out" | cut -f1)"
echo "scale.memory_estimate_vs_peak_rss: ratio = $ratio (report.memory_estimate_bytes $((estimate / 1048576)) MiB / peak RSS)"
echo "    load average $(cut -d' ' -f1-3 /proc/loadavg)"

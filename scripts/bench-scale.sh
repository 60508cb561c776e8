#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Scale benchmark (`make bench-scale`): prune a synthetic LLaMA-7B-shaped bf16 checkpoint with
# Wanda at 60 % (N = 8, L = 128, pre-tokenized calibration, `--compute bf16`: BENCH_SCALE_COMPUTE) and
# report peak RSS and wall time (/usr/bin/time -v) next to the pipeline's own memory estimate; then
# measure one block-sequence forward at the paper's L = 2048 (`dsnot-bench scale-forward`) and project
# the pipeline time of the paper's N = 128, L = 2048 on this machine and on a 32-core server.
#
#   scripts/bench-scale.sh [make-synthetic-llama.py options]   e.g. --blocks 2 --hidden 256 --mlp 688 --heads 4 --kv-heads 4 --vocab 512
#
# The projection (printed with its inputs): the run's forward phases (statistics, propagation, DSnoT's
# output and loss checks) are scaled by the number of sequences each one runs (N for the statistics and
# propagation; DSnoT's held-out sequences, a quarter of N and at most 8, for the output check; the loss
# check's 8 windows do not grow) and by the measured block-sequence cost at L = 2048 over the one at the
# run's L (attention's L² included, since both are measured); the other phases (base pruner, DSnoT,
# writing, copying) do not depend on N or L and are kept. A server runs `Parallel.workers` sequences at
# once, at most 8 however many cores it has: with this machine's per-core speed, a 32-core server is
# min(8, 32) / (this machine's workers) times faster on every phase (an optimistic bound: memory
# bandwidth per core is assumed equal); the figure without the cap (32 workers) is printed too.
#
# Without options the checkpoint is LLaMA-7B's shape: about 14 GB under .fixtures/ (kept for reruns,
# regenerated only when missing) and a long CPU run. The pruned output goes to a temporary directory,
# removed at the end. Needs .venv-fixtures (scripts/fixtures.sh creates it).
# Environment: BENCH_SCALE_DIR (default .fixtures) holds the generated checkpoints; BENCH_SCALE_PYTHON
# (default .venv-fixtures/bin/python) has numpy, ml_dtypes and safetensors; BENCH_SCALE_COMPUTE (default
# bf16) is the prune's --compute.
set -euo pipefail
cd "$(dirname "$0")/.."
SWIFT=${SWIFT:-swift}
PY=${BENCH_SCALE_PYTHON:-.venv-fixtures/bin/python}
DIR=${BENCH_SCALE_DIR:-.fixtures}
COMPUTE=${BENCH_SCALE_COMPUTE:-bf16}
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
$SWIFT build -c release --product dsnot-bench >/dev/null
dsnotctl="$($SWIFT build -c release --show-bin-path)/dsnotctl"
bench="$($SWIFT build -c release --show-bin-path)/dsnot-bench"
work=$(mktemp -d "${TMPDIR:-/tmp}/dsnot-bench-scale.XXXXXX")
trap 'rm -rf "$work"' EXIT

echo "bench-scale: $(du -sh "$model" | cut -f1) checkpoint, load average $(cut -d' ' -f1-3 /proc/loadavg)"
/usr/bin/time -v -o "$work/time.txt" "$dsnotctl" prune "$model" "$work/out" \
    --calib-tokens "$model-calib.safetensors" --nsamples 8 --seqlen 128 \
    --method wanda --sparsity 0.6 --compute "$COMPUTE" --json >"$work/report.json"

peak_kb=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$work/time.txt")
wall=$(awk -F': ' '/Elapsed \(wall clock\) time/ {print $2}' "$work/time.txt")
estimate=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["memory_estimate_bytes"])' "$work/report.json")
total=$("$PY" -c 'import json,sys; print(round(json.load(open(sys.argv[1]))["timings"]["total"], 1))' "$work/report.json")
ratio=$("$PY" -c 'import sys; print(round(int(sys.argv[1]) / (int(sys.argv[2]) * 1024), 3))' "$estimate" "$peak_kb")
echo "scale.prune_wanda_60: peak RSS $((peak_kb / 1024)) MiB, wall $wall (pipeline total ${total} s), output $(du -sh "$work/out" | cut -f1)"
echo "scale.memory_estimate_vs_peak_rss: ratio = $ratio (report.memory_estimate_bytes $((estimate / 1048576)) MiB / peak RSS)"
echo "    load average $(cut -d' ' -f1-3 /proc/loadavg)"

# The projection's measured input: one block-sequence at the run's L and at the paper's.
for length in 128 2048; do
    DSNOT_SCALE_MODEL="$model" DSNOT_SCALE_LENGTH=$length "$bench" scale-forward | tee "$work/forward-$length.txt"
done
"$PY" - "$work/report.json" "$work/forward-128.txt" "$work/forward-2048.txt" "$(nproc)" <<'PY'
import json, re, sys
report = json.load(open(sys.argv[1]))
compute = report.get("compute", "fp32")
def block_sequence(path):
    for line in open(path):
        m = re.match(r"scale\.block_sequence_seconds_" + compute + r": ([0-9.]+)", line)
        if m:
            return float(m.group(1))
    sys.exit(f"bench-scale: no {compute} block-sequence figure in {path}")
t0, t1 = block_sequence(sys.argv[2]), block_sequence(sys.argv[3])
cores = int(sys.argv[4])
workers = min(8, cores)
t = report["timings"]
n0 = report["calibration"]["sequences"]
held = lambda n: 0 if n < 2 else max(1, min(8, n // 4))
n = 128
scale = t1 / t0
forward = (t["statistics"] + t["propagation"]) * n / n0 * scale
checks = t.get("output_check", 0) * held(n) / max(1, held(n0)) * scale + t.get("loss_check", 0) * scale
fixed = sum(t.get(k, 0) for k in ("base", "dsnot", "writing", "copy", "embedding", "owl"))
here = forward + checks + fixed
blocks = report["block_count"]
print(f"scale.per_token_block_seconds ({compute}, L = 2048, {workers} sequences at once): "
      f"{t1 / 2048 * 1e3:.3f} ms per token per block ({t1:.2f} s per block-sequence; {t0:.3f} s at L = 128)")
print(f"scale.projection N = {n}, L = 2048, {blocks} blocks, {compute}: this machine ({cores} cores, {workers} workers) "
      f"{here / 3600:.1f} h = forward passes {forward / 3600:.1f} h + DSnoT checks {checks / 3600:.1f} h "
      f"+ the rest {fixed / 60:.0f} min (measured at N = {n0}, L = 128: pipeline {t['total'] / 60:.1f} min)")
for server_cores, label in ((32, "a 32-core server, Parallel's cap of 8 workers"), (32, "the same without the cap")):
    server_workers = min(8, server_cores) if "cap of 8" in label else server_cores
    print(f"scale.projection on {label}: {here * workers / server_workers / 3600:.2f} h "
          f"({server_workers} workers; per-core speed and memory bandwidth as here)")
PY
echo "    load average $(cut -d' ' -f1-3 /proc/loadavg)"

#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Fleet benchmark (part of `make bench`; issue 15): real dsnotd processes on one throwaway PostgreSQL
# job store (initdb + pg_ctl on a Unix socket in a temporary directory) and one shared inbox.
#
#   fleet.claim_latency   200 tiny checkpoints queued before two nodes start; each node times every
#                         claim it makes (the claiming transaction, won or lost: claim.seconds in its
#                         log); p50 / p99 / max over all claims. Aim: p99 < 25 ms (a claim is one committed
#                         transaction; the nodes' tiny jobs keep both CPUs busy meanwhile).
#   fleet.throughput      K copies of SmolLM2-135M (Wanda 50 %, 4 calibration sequences of 256 tokens);
#                         one node pinned to CPU 0 against two nodes pinned to CPUs 0 and 1 (taskset,
#                         OPENBLAS_NUM_THREADS=1); ratio = wall(one node) / wall(two nodes), each wall
#                         from the daemons' start to the last job done. Aim: >= 1.8.
#   fleet.machine_scaling the same prune offline, two at once on CPUs 0 and 1 against one alone: what
#                         the two CPUs give without any coordination; coordination_efficiency is the
#                         fleet's ratio over it.
#
#   scripts/bench-fleet.sh [--claims N] [--checkpoints K]     defaults: 200, 6
#
# Needs the release dsnotd and dsnotctl (`make bench` builds them), PostgreSQL's server binaries
# (scripts/install-deps.sh), .venv (its Python reads the JSON) and, for the throughput part,
# .fixtures/smollm2-135m (scripts/fixtures.sh; skipped with a notice when missing). Under root the
# PostgreSQL server runs as `nobody`, as it refuses to run as root.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
CLAIMS=200
CHECKPOINTS=6
while [ $# -gt 0 ]; do
    case "$1" in
    --claims) CLAIMS=$2; shift 2 ;;
    --checkpoints) CHECKPOINTS=$2; shift 2 ;;
    *) echo "bench-fleet: unknown option $1" >&2; exit 2 ;;
    esac
done
BIN=${DSNOT_BIN:-$(swift build -c release --show-bin-path)}
PY=$REPO/.venv/bin/python
TINY=$REPO/Tests/DSnoTCoreTests/Resources/golden/block/model
SMOLLM2=${DSNOT_BENCH_FIXTURES:-$REPO/.fixtures}/smollm2-135m
CALIB=${DSNOT_BENCH_FIXTURES:-$REPO/.fixtures}/text/calib.txt
for tool in "$BIN/dsnotd" "$BIN/dsnotctl" "$PY"; do
    [ -x "$tool" ] || { echo "bench-fleet: $tool missing (make bench builds it; make deps)" >&2; exit 1; }
done
PGBIN=${DSNOT_POSTGRESQL_BIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)}
[ -x "$PGBIN/pg_ctl" ] || { echo "bench-fleet: PostgreSQL server binaries missing (make deps)" >&2; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/dsnot-fleet.XXXXXX")
chmod 755 "$work"
pids=()
as_postgres() { if [ "$(id -u)" -eq 0 ]; then runuser -u nobody -- "$@"; else "$@"; fi; }
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    [ -f "$work/pg/data/postmaster.pid" ] && as_postgres "$PGBIN/pg_ctl" -D "$work/pg/data" -m immediate stop >/dev/null 2>&1
    rm -rf "$work"
}
trap cleanup EXIT

# The store: trust authentication on a socket only the benchmark knows (no TCP port).
mkdir -p "$work/pg"
[ "$(id -u)" -eq 0 ] && chown nobody "$work/pg"
as_postgres "$PGBIN/initdb" -D "$work/pg/data" -U dsnot --auth=trust >"$work/initdb.log" 2>&1
as_postgres "$PGBIN/pg_ctl" -D "$work/pg/data" -l "$work/pg/server.log" -w \
    -o "-k $work/pg -c listen_addresses='' -c fsync=on" start >/dev/null
new_database() { # NAME: an empty database of that name
    "$PGBIN/psql" -h "$work/pg" -U dsnot -d postgres -X -q -v ON_ERROR_STOP=1 -c "CREATE DATABASE $1" >/dev/null
}

# start_node NAME DATABASE RUN CPU RECIPE...: a dsnotd in the background (CPU "" = not pinned).
start_node() {
    local name=$1 db=$2 run=$3 cpu=$4
    shift 4
    local home=$work/$run/$name
    mkdir -p "$home/state"
    cat >"$home/dsnotd.toml" <<TOML
state_dir = "$home/state"
socket = "$home/dsnotd.sock"
admin_group = ""
workers = 1
rescan_interval = 1
settle = 0
log_level = "debug"
job_store = "postgresql"
node_name = "$name"
[postgresql]
url = "postgresql://dsnot@/$db?host=$work/pg"
[[watch]]
name = "fleet"
inbox = "$work/$run/in"
outbox = "$work/$run/out"
[watch.recipe]
$(printf '%s\n' "$@")
TOML
    "$BIN/dsnotd" --check-config --config "$home/dsnotd.toml" >/dev/null
    local pin=()
    [ -n "$cpu" ] && pin=(taskset -c "$cpu")
    OPENBLAS_NUM_THREADS=1 "${pin[@]}" "$BIN/dsnotd" --config "$home/dsnotd.toml" 2>"$home/log" &
    pids+=("$!")
}

# drop RUN MODEL COUNT: COUNT copies (hard links) of MODEL in RUN's inbox, each moved in whole.
drop() {
    local run=$1 model=$2 count=$3 i
    mkdir -p "$work/$run/in" "$work/$run/out" "$work/$run/staging"
    for i in $(seq -f '%03g' 1 "$count"); do
        cp -rl "$model" "$work/$run/staging/m$i" 2>/dev/null || cp -r "$model" "$work/$run/staging/m$i"
        mv "$work/$run/staging/m$i" "$work/$run/in/m$i"
    done
}

# wait_done RUN NODE COUNT TIMEOUT: until COUNT jobs are done (fails on a failed job or the timeout).
wait_done() {
    local run=$1 node=$2 count=$3 timeout=$4 start=$SECONDS counts
    while true; do
        counts=$("$BIN/dsnotctl" status --socket "$work/$run/$node/dsnotd.sock" --json 2>/dev/null |
            "$PY" -c 'import json,sys; c=json.load(sys.stdin)["counts"]; print(c.get("done",0), c.get("failed",0))' \
            2>/dev/null || echo "0 0")
        if [ "${counts% *}" -ge "$count" ]; then return 0; fi
        if [ "${counts#* }" -gt 0 ] || [ $((SECONDS - start)) -gt "$timeout" ]; then
            echo "bench-fleet: $run: done/failed = $counts after $((SECONDS - start)) s; logs:" >&2
            tail -n 20 "$work/$run"/*/log >&2
            exit 1
        fi
        sleep 0.2
    done
}

stop_nodes() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    pids=()
}

now() { date +%s.%N; }
echo "bench-fleet: PostgreSQL $("$PGBIN/postgres" --version | awk '{print $3}'), load average $(cut -d' ' -f1-3 /proc/loadavg)"

# 1. Claim latency with CLAIMS jobs queued.
db=claims
new_database "$db"
drop claims "$TINY" "$CLAIMS"
recipe=('method = "magnitude"' 'pattern = "2:4"' 'dsnot = false')
start_node a "$db" claims "" "${recipe[@]}"
start_node b "$db" claims "" "${recipe[@]}"
wait_done claims a "$CLAIMS" 600
stop_nodes
cat "$work"/claims/*/log | grep -o 'claim\.seconds=[0-9.e-]*' | cut -d= -f2 | "$PY" -c '
import sys
values = sorted(float(v) for v in sys.stdin.read().split())
if not values:
    sys.exit("bench-fleet: no claim.seconds in the logs")
pick = lambda q: values[min(len(values) - 1, int(q * (len(values) - 1) + 0.5))] * 1000
print(f"fleet.claim_latency: {len(values)} claims by 2 nodes of {sys.argv[1]} queued jobs: "
      f"p50 {pick(0.5):.2f} ms, p99 {pick(0.99):.2f} ms, max {values[-1] * 1000:.2f} ms (aim: p99 < 25 ms)")
' "$CLAIMS"

# 2. Throughput: one node on one core against two nodes on one core each.
if ! [ -f "$SMOLLM2/config.json" ] || ! [ -f "$CALIB" ]; then
    echo "fleet.throughput: skipped ($SMOLLM2 or $CALIB missing; make fixtures)"
    exit 0
fi
if [ "$(nproc)" -lt 2 ]; then
    echo "fleet.throughput: skipped (needs 2 CPUs, this machine has $(nproc))"
    exit 0
fi
recipe=('method = "wanda"' 'pattern = 0.5' 'dsnot = false'
    "calibration = { path = \"$CALIB\", sequences = 4, sequence_length = 256 }")
declare -A wall
for nodes in 1 2; do
    run=throughput$nodes
    db=$run
    new_database "$db"
    drop "$run" "$SMOLLM2" "$CHECKPOINTS"
    t0=$(now)
    start_node a "$db" "$run" 0 "${recipe[@]}"
    [ "$nodes" -eq 2 ] && start_node b "$db" "$run" 1 "${recipe[@]}"
    wait_done "$run" a "$CHECKPOINTS" 3600
    wall[$nodes]=$("$PY" -c 'import sys; print(float(sys.argv[2]) - float(sys.argv[1]))' "$t0" "$(now)")
    split=$("$BIN/dsnotctl" list --socket "$work/$run/a/dsnotd.sock" --json |
        "$PY" -c 'import json,sys,collections; c=collections.Counter(j.get("node") for j in json.load(sys.stdin)); print(", ".join(f"{n}: {c[n]}" for n in sorted(c, key=str)))')
    stop_nodes
    printf '    %d node(s): %d checkpoints in %.1f s (jobs by node: %s)\n' "$nodes" "$CHECKPOINTS" "${wall[$nodes]}" "$split"
    rm -rf "${work:?}/$run/out"
done
# The machine's own scaling, without a fleet: the same prune offline (dsnotctl prune), alone on CPU 0,
# then two at once on CPUs 0 and 1. Two vCPUs that are one physical core's hyperthreads, or share
# memory bandwidth, scale below 2 whatever the coordination does.
offline_prune() { # CPU OUT
    OPENBLAS_NUM_THREADS=1 taskset -c "$1" "$BIN/dsnotctl" prune "$SMOLLM2" "$2" --method wanda --sparsity 0.5 \
        --no-dsnot --calib-text "$CALIB" --nsamples 4 --seqlen 256 >/dev/null 2>"$2.log" ||
        { cat "$2.log" >&2; return 1; }
}
t0=$(now)
offline_prune 0 "$work/offline-alone"
t1=$(now)
offline_prune 0 "$work/offline-0" &
first=$!
offline_prune 1 "$work/offline-1"
wait "$first"
t2=$(now)
"$PY" -c '
import sys
one, two, t0, t1, t2 = (float(v) for v in sys.argv[1:6])
fleet, machine = one / two, 2 * (t1 - t0) / (t2 - t1)
print(f"fleet.throughput: two nodes (1 CPU each) / one node (1 CPU): ratio = {fleet:.2f} (aim >= 1.8); "
      f"{sys.argv[6]} SmolLM2-135M Wanda 50 % prunes")
print(f"fleet.machine_scaling: two offline prunes on CPUs 0 and 1 / one alone on CPU 0: ratio = {machine:.2f} "
      f"({t1 - t0:.1f} s alone, {t2 - t1:.1f} s for the pair)")
print(f"fleet.coordination_efficiency: fleet ratio / machine ratio = {fleet / machine:.2f}")
' "${wall[1]}" "${wall[2]}" "$t0" "$t1" "$t2" "$CHECKPOINTS"
echo "    load average $(cut -d' ' -f1-3 /proc/loadavg)"

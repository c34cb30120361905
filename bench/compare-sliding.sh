#!/usr/bin/env bash
# Simplified sliding sync (MSC4186, issue 14): Synapse and Moot side by side in one run.
#
# Each step gets a fresh database and a freshly started server, on loopback with registration
# open and rate limits off (bench/common.sh), one after another:
#   synapse-sliding  bench/load.py --receive sliding  (the group chat, receivers on sliding sync)
#   synapse-sync     bench/load.py (/sync receivers)  only with SYNAPSE_SYNC=1 (~2 more minutes)
#   moot-sync        bench/load.py                    (Moot's own /sync figure, the baseline)
#   moot-sliding     bench/load.py --receive sliding
#   first            bench/sliding_first.py on both servers at once: each set up in turn, their
#                    first responses in 500 rooms taking turns, then idle memory one by one
# then prints every JSON result and the table (bench/sidebyside.py sliding) with the ratios and
# the issue's targets. It measures only: the exit status says whether the runs completed.
#
# Environment: PGHOST PGPORT PGUSER as bench/compare.sh; LOAD_ARGS (extra bench/load.py
# arguments), FIRST_ARGS (extra bench/sliding_first.py arguments); SYNAPSE_SYNC=1; ONLY=moot or
# ONLY=synapse (one server's steps, no table); KEEP=1 keeps the work directory and databases.
# Runs of this script on one machine take turns (a lock file in $TMPDIR, /tmp by default).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
LOG_TAG=compare-sliding
# shellcheck source=bench/common.sh
source "$ROOT/bench/common.sh"
start_run moot-bench-sliding
read -r -a FIRST_EXTRA <<< "${FIRST_ARGS:-}"

start_server() {  # server name: a fresh database and the server on it; sets PORT
    local database="bench_${2//-/_}_$STAMP"
    PORT="$(free_port)"
    new_database "$database"
    if [[ "$1" == synapse ]]; then
        write_synapse_config "$WORK/$2" localhost "$PORT" "$database"
        start_synapse "$WORK/$2" "$PORT"
    else
        start_moot "$WORK/$2" localhost "$PORT" "$database"
    fi
}

step() {  # server name [load.py args...]: one group-chat run on a fresh server -> $WORK/name.json
    local server="$1" name="$2"
    shift 2
    start_server "$server" "$name"
    log "$name: load average before the run: $(cut -d' ' -f1-3 /proc/loadavg)"
    "$MOOT_PY" "$ROOT/bench/load.py" --url "http://127.0.0.1:$PORT" --pid "${SERVER_PIDS[0]}" \
        --prefix "${name//-/}$STAMP" "$@" > "$WORK/$name.json"
    stop_servers
}

first_step() {  # servers...: sliding_first.py on all of them at once -> $WORK/SERVER-first.json
    local server args=()
    for server in "$@"; do
        start_server "$server" "$server-first"
        args+=(--url "http://127.0.0.1:$PORT" --pid "${SERVER_PIDS[-1]}")
    done
    log "first responses ($*): load average before the run: $(cut -d' ' -f1-3 /proc/loadavg)"
    "$MOOT_PY" "$ROOT/bench/sliding_first.py" "${args[@]}" --prefix "first$STAMP" \
        "${FIRST_EXTRA[@]}" > "$WORK/first.json"
    stop_servers
    "$MOOT_PY" -c 'import json, sys
result = json.load(open(sys.argv[1]))
for server, one in zip(sys.argv[3:], result.get("servers", [result]), strict=True):
    with open(f"{sys.argv[2]}/{server}-first.json", "w") as out:
        json.dump(one, out)' "$WORK/first.json" "$WORK" "$@"
}

combined() {  # server -> {"sliding": ..., "first": ..., "sync": ... or null}
    local sync="$WORK/$1-sync.json"
    printf '{"sliding": %s, "first": %s, "sync": %s}\n' "$(cat "$WORK/$1-sliding.json")" \
        "$(cat "$WORK/$1-first.json")" "$([[ -s "$sync" ]] && cat "$sync" || echo null)"
}

check_prerequisites
# Two comparisons at once on one machine measure each other: a second run waits for the first.
exec 9> "${TMPDIR:-/tmp}/moot-bench.lock"
if ! flock -n 9; then
    log "another comparison holds ${TMPDIR:-/tmp}/moot-bench.lock; waiting for it"
    flock 9
fi
STARTED=$SECONDS
SERVERS=()
if [[ "${ONLY:-}" != moot ]]; then
    log "Synapse $SYNAPSE_VERSION"
    SERVERS+=(synapse)
    step synapse synapse-sliding --receive sliding "${LOAD_EXTRA[@]}"
    if [[ "${SYNAPSE_SYNC:-0}" == 1 ]]; then
        step synapse synapse-sync "${LOAD_EXTRA[@]}"
    fi
fi
if [[ "${ONLY:-}" != synapse ]]; then
    log "Moot $MOOT_VERSION"
    SERVERS+=(moot)
    step moot moot-sync "${LOAD_EXTRA[@]}"
    step moot moot-sliding --receive sliding "${LOAD_EXTRA[@]}"
fi
first_step "${SERVERS[@]}"

echo "date: $(date -Is)  machine: $(nproc) cores  moot: $MOOT_VERSION  synapse: $SYNAPSE_VERSION  wall: $((SECONDS - STARTED)) s"
for server in synapse moot; do
    if [[ -s "$WORK/$server-first.json" ]]; then
        combined "$server" > "$WORK/$server.json"
        echo "$server: $(cat "$WORK/$server.json")"
    fi
done
if [[ -z "${ONLY:-}" ]]; then
    "$MOOT_PY" "$ROOT/bench/sidebyside.py" sliding "$WORK/synapse.json" "$WORK/moot.json"
fi

#!/usr/bin/env bash
# Synapse and Moot side by side under the identical bench/load.py load (issue 5).
#
# Installs matrix-synapse from PyPI into bench/.synapse-venv (never into Moot's .venv), gives each
# server a fresh database on the machine's PostgreSQL (127.0.0.1:5432, trust auth), runs each on
# loopback with registration open and rate limits off, loads it, stops it, then prints both JSON
# results and the five targets with the measured ratios (Moot / Synapse). It measures only: the
# exit status says whether the runs completed, not whether the targets were met.
#
# Environment: PGHOST PGPORT PGUSER (default 127.0.0.1 5432 postgres); LOAD_ARGS (extra
# bench/load.py arguments, e.g. "--users 64 --messages 200"); KEEP=1 keeps the work directory
# and databases.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
LOG_TAG=compare
# shellcheck source=bench/common.sh
source "$ROOT/bench/common.sh"
start_run moot-bench
SYNAPSE_DB="bench_synapse_$STAMP"
MOOT_DB="bench_moot_$STAMP"

run_load() {  # name url pid -> writes $WORK/name.json
    log "$1: load average before the run: $(cut -d' ' -f1-3 /proc/loadavg)"
    "$MOOT_PY" "$ROOT/bench/load.py" --url "$2" --pid "$3" --prefix "$1$STAMP" \
        "${LOAD_EXTRA[@]}" > "$WORK/$1.json"
}

check_prerequisites
new_database "$SYNAPSE_DB"
new_database "$MOOT_DB"

# --- Synapse -----------------------------------------------------------------------------------
SYN_PORT="$(free_port)"
write_synapse_config "$WORK/synapse" localhost "$SYN_PORT" "$SYNAPSE_DB"
log "starting Synapse $SYNAPSE_VERSION on 127.0.0.1:$SYN_PORT"
start_synapse "$WORK/synapse" "$SYN_PORT"
run_load synapse "http://127.0.0.1:$SYN_PORT" "${SERVER_PIDS[0]}"
stop_servers

# --- Moot --------------------------------------------------------------------------------------
MOOT_PORT="$(free_port)"
log "starting Moot ($MOOT_VERSION) on 127.0.0.1:$MOOT_PORT"
start_moot "$WORK/moot" localhost "$MOOT_PORT" "$MOOT_DB"
run_load moot "http://127.0.0.1:$MOOT_PORT" "${SERVER_PIDS[0]}"
stop_servers

# --- report ------------------------------------------------------------------------------------
echo "date: $(date -Is)  machine: $(nproc) cores  synapse: $SYNAPSE_VERSION"
echo "synapse: $(cat "$WORK/synapse.json")"
echo "moot:    $(cat "$WORK/moot.json")"
"$MOOT_PY" "$ROOT/bench/sidebyside.py" single "$WORK/synapse.json" "$WORK/moot.json"

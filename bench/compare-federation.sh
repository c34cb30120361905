#!/usr/bin/env bash
# Two Moot servers, then two Synapse servers, federating over TLS on loopback under the identical
# bench/federation.py load: cross-server fan-out and send rate side by side.
#
# Each pair: two servers started as subprocesses, each with its own fresh database on the
# machine's PostgreSQL (127.0.0.1:5432, trust auth; Synapse on PostgreSQL as in compare.sh),
# server names 127.0.0.1:<federation port> (peers connect straight to them), self-signed
# certificates accepted and loopback peers allowed, registration open and rate limits off; the
# load runs, the pair is stopped. Senders send as fast as their server answers, so the faster
# server is offered more messages; a third run therefore loads two Moot servers again with the
# senders paced at Synapse's measured send rate (`--rate`), for fan-out at an equal offered load.
# Then the JSON results and the tables (Moot / Synapse). It measures only: the exit status says
# whether the runs completed, not whether the targets were met.
#
# Environment: PGHOST PGPORT PGUSER (default 127.0.0.1 5432 postgres); LOAD_ARGS (extra
# bench/federation.py arguments, e.g. "--users 32 --messages 100"); ONLY=moot or ONLY=synapse runs
# one pair (no table); PACED=0 skips the paced run; KEEP=1 keeps the work directory (server logs)
# and the databases.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
LOG_TAG=compare-federation
# shellcheck source=bench/common.sh
source "$ROOT/bench/common.sh"
start_run moot-bench-fed

run_pair() {  # moot|synapse NAME [federation.py args]: two servers, the load -> $WORK/NAME.json
    local kind="$1" name="$2" n client_ports=() federation_ports=()
    shift 2
    for n in 1 2; do
        local dir="$WORK/$name$n" db="bench_fed_${name}${n}_$STAMP"
        local client_port federation_port
        client_port="$(free_port)" federation_port="$(free_port)"
        client_ports+=("$client_port") federation_ports+=("$federation_port")
        new_database "$db"
        log "starting $kind $n as 127.0.0.1:$federation_port (client API on $client_port)"
        if [[ "$kind" == moot ]]; then
            start_moot "$dir" "127.0.0.1:$federation_port" "$client_port" "$db" "$federation_port"
        else
            write_synapse_config "$dir" "127.0.0.1:$federation_port" "$client_port" "$db" \
                "$federation_port"
            start_synapse "$dir" "$client_port"
        fi
    done
    log "$name: load average before the run: $(cut -d' ' -f1-3 /proc/loadavg)"
    "$MOOT_PY" "$ROOT/bench/federation.py" \
        --url1 "http://127.0.0.1:${client_ports[0]}" --url2 "http://127.0.0.1:${client_ports[1]}" \
        --pid1 "${SERVER_PIDS[0]}" --pid2 "${SERVER_PIDS[1]}" --prefix "$name$STAMP" \
        "${LOAD_EXTRA[@]}" "$@" > "$WORK/$name.json"
    stop_servers
}

check_prerequisites
STARTED=$SECONDS
[[ "${ONLY:-moot}" == moot ]] && run_pair moot moot
[[ "${ONLY:-synapse}" == synapse ]] && run_pair synapse synapse
if [[ -z "${ONLY:-}" && "${PACED:-1}" != 0 ]]; then
    SYNAPSE_RATE="$("$MOOT_PY" -c 'import json, sys; print(json.load(open(sys.argv[1]))["send"]["msgs_per_s"])' "$WORK/synapse.json")"
    log "Moot again, the senders paced at Synapse's $SYNAPSE_RATE msgs/s"
    run_pair moot moot-paced --rate "$SYNAPSE_RATE"
fi

echo "date: $(date -Is)  machine: $(nproc) cores  moot: $MOOT_VERSION  synapse: $SYNAPSE_VERSION" \
    " wall: $((SECONDS - STARTED)) s"
for name in moot synapse moot-paced; do
    [[ -f "$WORK/$name.json" ]] && echo "$name: $(cat "$WORK/$name.json")"
done
if [[ -f "$WORK/moot.json" && -f "$WORK/synapse.json" ]]; then
    echo; echo "Same load: each sender sends its next message when the last one is answered"
    "$MOOT_PY" "$ROOT/bench/sidebyside.py" federation "$WORK/synapse.json" "$WORK/moot.json"
fi
if [[ -f "$WORK/moot-paced.json" ]]; then
    echo; echo "Moot's senders paced at Synapse's send rate ($SYNAPSE_RATE msgs/s)"
    "$MOOT_PY" "$ROOT/bench/sidebyside.py" federation "$WORK/synapse.json" "$WORK/moot-paced.json"
fi

#!/usr/bin/env bash
# Moot's send rate without and with push delivery, under the identical bench/load.py load (issue 17).
#
# Two steps, each on a fresh database and a freshly started Moot with the same configuration
# (`init` as in compare.sh, plus push.allow_private_addresses: true so that pushers may name a
# gateway on loopback): first the group chat without pushers, then the same load with each of
# the long-polling receivers (PUSHERS=all: every user) holding an http pusher to the loopback
# gateway that load.py starts in a process of its own (bench/push_gateway.py, answering 200
# {"rejected": []}). The with-pushers step configures a push worker (`workers.pusher1.push`) and
# runs it beside the main process under `nice -n 10`: delivery is the work that should wait when
# the CPU is saturated (see bench/README.md). Prints both JSON results, the send-rate ratio (the
# issue's target: with pushers within 10 % of without), the main process's CPU per message
# (and per push) in both and the push worker's, and what reached the gateway (latency, missing,
# duplicates). It measures only: the exit status says whether the runs completed.
#
# Environment: PGHOST PGPORT PGUSER (default 127.0.0.1 5432 postgres); LOAD_ARGS (extra
# bench/load.py arguments, e.g. "--users 64 --messages 200"); PUSHERS (all or receivers, default
# receivers, as the issue measures it; none: both steps alike, which measures the bench's own
# bias between its first and second step); PUSH_WORKER=0 delivers from the main process instead;
# DELIVER=0 configures the push worker but never starts it, so rows are queued and never sent
# (what the push path costs the room writer's side alone; pass LOAD_ARGS="--drain 2" so that
# load.py stops waiting for the pushes soon); KEEP=1 keeps the work directory and databases.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
LOG_TAG=compare-push
# shellcheck source=bench/common.sh
source "$ROOT/bench/common.sh"
start_run moot-bench-push

run_push_worker() {  # dir metrics_port: the push worker at nice 10; waits until it serves metrics
    nice -n 10 "$MOOT_PY" -m homeserver run --config "$1/homeserver.yaml" --worker pusher1 \
        > "$1/worker.log" 2>&1 &
    SERVER_PIDS+=("$!")
    local deadline=$((SECONDS + 120))
    until curl -sf "http://127.0.0.1:$2/metrics" >/dev/null 2>&1; do
        if ! kill -0 "$!" 2>/dev/null || ((SECONDS > deadline)); then
            log "the push worker did not start; last lines of $1/worker.log:"
            tail -n 30 "$1/worker.log" >&2; exit 1
        fi
        sleep 0.5
    done
}

run_step() {  # name pushers push_worker(0/1) -> writes $WORK/name.json
    local name="$1" db="bench_push_$1_$STAMP" port dir="$WORK/$1" worker_port worker_args=()
    port="$(free_port)"
    worker_port="$(free_port)"
    new_database "$db"
    init_moot "$dir" localhost "$port" "$db"
    "$MOOT_PY" - "$dir/homeserver.yaml" "$3" "$worker_port" <<'PY'
import sys, yaml
path, worker, port = sys.argv[1], sys.argv[2] == "1", int(sys.argv[3])
config = yaml.safe_load(open(path))
config.setdefault("push", {})["allow_private_addresses"] = True
if worker:
    config["workers"] = {"pusher1": {"push": True, "metrics": {"host": "127.0.0.1", "port": port}}}
open(path, "w").write(yaml.safe_dump(config))
PY
    log "$name: starting Moot ($MOOT_VERSION) on 127.0.0.1:$port; load average $(cut -d' ' -f1-3 /proc/loadavg)"
    run_moot "$dir" "$port"
    if [[ "$3" == 1 && "${DELIVER:-1}" == 1 ]]; then
        run_push_worker "$dir" "$worker_port"
        worker_args=(--worker-pid "${SERVER_PIDS[1]}")
    fi
    "$MOOT_PY" "$ROOT/bench/load.py" --url "http://127.0.0.1:$port" --pid "${SERVER_PIDS[0]}" \
        "${worker_args[@]}" --prefix "$name$STAMP" --pushers "$2" "${LOAD_EXTRA[@]}" \
        > "$WORK/$name.json"
    stop_servers
}

check_prerequisites
run_step without none 0
run_step with "${PUSHERS:-receivers}" "${PUSH_WORKER:-1}"

echo "date: $(date -Is)  machine: $(nproc) cores  moot: $MOOT_VERSION"
echo "without pushers: $(cat "$WORK/without.json")"
echo "with pushers:    $(cat "$WORK/with.json")"
"$MOOT_PY" - "$WORK/without.json" "$WORK/with.json" <<'PY'
import json, sys
without, with_ = (json.load(open(path)) for path in sys.argv[1:3])
a, b = without["send"]["msgs_per_s"], with_["send"]["msgs_per_s"]
push = with_["push"] or {"expected": 0}
print(f"send rate: {a} msgs/s without pushers, {b} with ({b / a:.3f}x; target >= 0.9x)")
cpu_a, cpu_b = without["cpu"], with_["cpu"]
more = cpu_b["server_delivered_s"] - cpu_a["server_delivered_s"]
per_push = f"{more * 1e6 / push['expected']:.0f} us" if push["expected"] else "(no pushes)"
print(f"main process CPU per message, send start -> all delivered: "
      f"{cpu_a['server_delivered_ms_per_msg']} ms without pushers, "
      f"{cpu_b['server_delivered_ms_per_msg']} ms with; per push {per_push} more; during the "
      f"send phase {cpu_a['server_send_s']} s and {cpu_b['server_send_s']} s; the gateway "
      f"process {push.get('gateway_cpu_s')} s")
if "worker_delivered_s" in cpu_b:
    print(f"push worker (nice 10) CPU: {cpu_b['worker_send_s']} s during the send phase, "
          f"{cpu_b['worker_delivered_s']} s to all delivered "
          f"({cpu_b['worker_delivered_s'] * 1e6 / max(1, push.get('received', 0)):.0f} us per push)")
if push["expected"]:
    print(f"pushes: {push['received']} of {push['expected']} received, {push['missing']} "
          f"missing, {push['duplicates']} duplicates; send start -> gateway p50 "
          f"{push['latency']['p50_ms']} ms, p99 {push['latency']['p99_ms']} ms")
PY

#!/usr/bin/env bash
# Send latency during an admin history purge of the same room (issue 20: "sends during a purge
# stay within 2x their normal p99").
#
# One fresh database and one freshly started Moot (`init` as in compare.sh: open registration,
# rate limits off), an admin made with `register-user --admin`, then bench/purge_latency.py:
# loads a room with MESSAGES old messages, times SENDS sequential sends while a second user
# long-polls /sync (the baseline), then purges the history up to now through the admin API
# while sending one message at a time until the purge is over. Prints one JSON line per phase
# and the p99 comparison. It measures only: the exit status says whether the run completed.
#
# Environment: PGHOST PGPORT PGUSER (default 127.0.0.1 5432 postgres); MESSAGES (default 20000)
# and SENDS (default 500); LOAD_ARGS (more bench/purge_latency.py arguments); KEEP=1 keeps the
# work directory (the server's log) and the database.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# `python -m homeserver` runs the checkout's code, whichever venv MOOT_PY belongs to.
cd "$ROOT"
LOG_TAG=purge-latency
# shellcheck source=bench/common.sh
source "$ROOT/bench/common.sh"
start_run moot-bench-purge

ADMIN=benchadmin
PASSWORD="bench admin password"
check_moot_prerequisites
db="bench_purge_$STAMP"
port="$(free_port)"
new_database "$db"
init_moot "$WORK/moot" localhost "$port" "$db"
# register-user reads the password from stdin (a throwaway account of this run only).
echo "$PASSWORD" | "$MOOT_PY" -m homeserver register-user --config "$WORK/moot/homeserver.yaml" \
    "$ADMIN" --admin >"$WORK/register-user.log" 2>&1
log "starting Moot ($MOOT_VERSION) on 127.0.0.1:$port; load average $(cut -d' ' -f1-3 /proc/loadavg)"
run_moot "$WORK/moot" "$port"
echo "date: $(date -Is)  machine: $(nproc) cores  moot: $MOOT_VERSION  load: $(cut -d' ' -f1-3 /proc/loadavg)"
"$MOOT_PY" "$ROOT/bench/purge_latency.py" --url "http://127.0.0.1:$port" --pid "${SERVER_PIDS[0]}" \
    --database-url "postgresql://$PGUSER@$PGHOST:$PGPORT/$db" --admin "$ADMIN" \
    --password "$PASSWORD" --messages "${MESSAGES:-20000}" --sends "${SENDS:-500}" \
    "${LOAD_EXTRA[@]}"

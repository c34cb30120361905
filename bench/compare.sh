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
export PGHOST="${PGHOST:-127.0.0.1}" PGPORT="${PGPORT:-5432}" PGUSER="${PGUSER:-postgres}"
SYNAPSE_VENV="$ROOT/bench/.synapse-venv"
MOOT_PY="$ROOT/.venv/bin/python"
STAMP="$(date +%Y%m%d%H%M%S)_$$"
WORK="$(mktemp -d /tmp/moot-bench.XXXXXX)"
SYNAPSE_DB="bench_synapse_$STAMP"
MOOT_DB="bench_moot_$STAMP"
read -r -a LOAD_EXTRA <<< "${LOAD_ARGS:-}"
SERVER_PID=""

log() { echo "[compare $(date +%H:%M:%S)] $*" >&2; }

cleanup() {
    if [[ -n "$SERVER_PID" ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    if [[ "${KEEP:-0}" != 1 ]]; then
        dropdb --if-exists "$SYNAPSE_DB" 2>/dev/null || true
        dropdb --if-exists "$MOOT_DB" 2>/dev/null || true
        rm -rf "$WORK"
    else
        log "kept $WORK and databases $SYNAPSE_DB $MOOT_DB"
    fi
}
trap cleanup EXIT

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

wait_ready() {  # url pid logfile
    local deadline=$((SECONDS + 120))
    until curl -sf "$1/_matrix/client/versions" >/dev/null 2>&1; do
        if ! kill -0 "$2" 2>/dev/null; then
            log "server exited during start-up; last lines of $3:"; tail -n 30 "$3" >&2; exit 1
        fi
        if ((SECONDS > deadline)); then log "server not ready after 120 s"; exit 1; fi
        sleep 0.5
    done
}

stop_server() {
    kill -TERM "$SERVER_PID"
    wait "$SERVER_PID" || true
    SERVER_PID=""
}

run_load() {  # name url pid -> writes $WORK/name.json
    log "$1: load average before the run: $(cut -d' ' -f1-3 /proc/loadavg)"
    "$MOOT_PY" "$ROOT/bench/load.py" --url "$2" --pid "$3" --prefix "$1$STAMP" \
        "${LOAD_EXTRA[@]}" > "$WORK/$1.json"
}

# --- prerequisites -----------------------------------------------------------------------------
if ! pg_isready -q -h "$PGHOST" -p "$PGPORT"; then
    echo "PostgreSQL is not reachable on $PGHOST:$PGPORT; start it (trust auth for $PGUSER)" >&2
    exit 2
fi
if ! psql -qAtc 'select 1' postgres >/dev/null 2>&1; then
    echo "cannot connect to PostgreSQL as $PGUSER on $PGHOST:$PGPORT without a password" >&2
    exit 2
fi
if [[ ! -x "$MOOT_PY" ]]; then
    log "creating Moot's .venv (make install)"
    make -C "$ROOT" install >&2
fi
bash "$ROOT/bench/synapse-venv.sh" "$SYNAPSE_VENV"
SYNAPSE_VERSION="$("$SYNAPSE_VENV/bin/python" -c "from importlib.metadata import version; print(version('matrix-synapse'))")"
createdb -E UTF8 --lc-collate=C --lc-ctype=C -T template0 "$SYNAPSE_DB"
createdb -E UTF8 --lc-collate=C --lc-ctype=C -T template0 "$MOOT_DB"

# --- Synapse -----------------------------------------------------------------------------------
SYN_DIR="$WORK/synapse"
SYN_PORT="$(free_port)"
mkdir -p "$SYN_DIR/media"
cat > "$SYN_DIR/log.yaml" <<EOF
version: 1
formatters: {plain: {format: '%(asctime)s %(levelname)s %(name)s: %(message)s'}}
handlers: {file: {class: logging.FileHandler, filename: $SYN_DIR/homeserver.log, formatter: plain}}
root: {level: WARNING, handlers: [file]}
disable_existing_loggers: false
EOF
HIGH='{per_second: 100000, burst_count: 1000000}'
cat > "$SYN_DIR/homeserver.yaml" <<EOF
server_name: localhost
pid_file: $SYN_DIR/homeserver.pid
listeners:
  - {port: $SYN_PORT, bind_addresses: ['127.0.0.1'], type: http, tls: false, x_forwarded: false,
     resources: [{names: [client], compress: false}]}
database:
  name: psycopg2
  args: {user: $PGUSER, host: $PGHOST, port: $PGPORT, database: $SYNAPSE_DB, cp_min: 5, cp_max: 10}
log_config: $SYN_DIR/log.yaml
media_store_path: $SYN_DIR/media
signing_key_path: $SYN_DIR/localhost.signing.key
report_stats: false
trusted_key_servers: []
suppress_key_server_warning: true
macaroon_secret_key: $(python3 -c 'import secrets; print(secrets.token_hex(32))')
form_secret: $(python3 -c 'import secrets; print(secrets.token_hex(32))')
enable_registration: true
enable_registration_without_verification: true
# Registration is set-up, not a measured figure: cheap password hashes shorten it.
bcrypt_rounds: 4
rc_message: $HIGH
rc_registration: $HIGH
rc_registration_token_validity: $HIGH
rc_login: {address: $HIGH, account: $HIGH, failed_attempts: $HIGH}
rc_joins: {local: $HIGH, remote: $HIGH}
rc_joins_per_room: $HIGH
rc_invites: {per_room: $HIGH, per_user: $HIGH, per_issuer: $HIGH}
rc_3pid_validation: $HIGH
rc_admin_redaction: $HIGH
rc_room_creation: $HIGH
rc_presence: {per_user: $HIGH}
rc_delayed_event_mgmt: $HIGH
rc_reports: $HIGH
rc_media_create: $HIGH
EOF
"$SYNAPSE_VENV/bin/python" -m synapse.app.homeserver --config-path "$SYN_DIR/homeserver.yaml" \
    --generate-keys >/dev/null
log "starting Synapse $SYNAPSE_VERSION on 127.0.0.1:$SYN_PORT"
"$SYNAPSE_VENV/bin/python" -m synapse.app.homeserver --config-path "$SYN_DIR/homeserver.yaml" \
    > "$SYN_DIR/stdout.log" 2>&1 &
SERVER_PID=$!
wait_ready "http://127.0.0.1:$SYN_PORT" "$SERVER_PID" "$SYN_DIR/stdout.log"
run_load synapse "http://127.0.0.1:$SYN_PORT" "$SERVER_PID"
stop_server

# --- Moot --------------------------------------------------------------------------------------
MOOT_DIR="$WORK/moot"
MOOT_PORT="$(free_port)"
"$MOOT_PY" -m homeserver init --data-dir "$MOOT_DIR" --server-name localhost \
    --client-port "$MOOT_PORT" --federation-port "$(free_port)" --metrics-port "$(free_port)" \
    --database-url "postgresql://$PGUSER@$PGHOST:$PGPORT/$MOOT_DB" \
    --open-registration --no-rate-limits >/dev/null
log "starting Moot ($(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')) on 127.0.0.1:$MOOT_PORT"
"$MOOT_PY" -m homeserver run --config "$MOOT_DIR/homeserver.yaml" > "$MOOT_DIR/stdout.log" 2>&1 &
SERVER_PID=$!
wait_ready "http://127.0.0.1:$MOOT_PORT" "$SERVER_PID" "$MOOT_DIR/stdout.log"
run_load moot "http://127.0.0.1:$MOOT_PORT" "$SERVER_PID"
stop_server

# --- report ------------------------------------------------------------------------------------
echo "date: $(date -Is)  machine: $(nproc) cores  synapse: $SYNAPSE_VERSION"
echo "synapse: $(cat "$WORK/synapse.json")"
echo "moot:    $(cat "$WORK/moot.json")"
"$MOOT_PY" - "$WORK/synapse.json" "$WORK/moot.json" <<'EOF'
import json
import sys

synapse, moot = (json.load(open(path)) for path in sys.argv[1:3])


def ratio(path: tuple[str, ...]) -> tuple[object, object, float | None]:
    values = []
    for result in (synapse, moot):
        value = result
        for key in path:
            value = value[key] if isinstance(value, dict) else None
        values.append(value)
    s, m = values
    return s, m, (m / s if isinstance(s, (int, float)) and isinstance(m, (int, float)) and s else None)


rows = []
for name, path, op, target in (
    ("send throughput (msgs/s)", ("send", "msgs_per_s"), ">=", 10.0),
    ("fan-out p99 (ms)", ("fanout", "p99_ms"), "<=", 0.1),
    ("255 joins total (s)", ("joins", "total_s"), "<=", 0.2),
    ("peak RSS (MB)", ("peak_rss_mb",), "<=", 1.0),
):
    s, m, r = ratio(path)
    met = r is not None and (r >= target if op == ">=" else r <= target)
    shown = f"{r:.3f}x" if r is not None else "n/a"
    rows.append((name, str(s), str(m), shown, f"{op} {target}x", met))
faults = {k: moot[k] for k in ("lost", "duplicates")} | {"errors": moot["send"]["errors"]}
synapse_faults = synapse["lost"] + synapse["duplicates"] + synapse["send"]["errors"]
rows.append(("lost / dup / send errors", str(synapse_faults), str(sum(faults.values())),
             json.dumps(faults), "= 0", sum(faults.values()) == 0))

header = ("figure", "synapse", "moot", "moot/synapse", "target", "")
widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(5)]
print()
print("  ".join(h.ljust(w) for h, w in zip(header, widths)))
for row in rows:
    cells = "  ".join(str(c).ljust(w) for c, w in zip(row[:5], widths))
    print(f"{cells}  {'met' if row[5] else 'NOT MET'}")
print(f"\n{sum(row[5] for row in rows)} of {len(rows)} targets met")
EOF

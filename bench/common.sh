# Shared by the bench scripts (compare.sh, compare-federation.sh, compare-push.sh,
# compare-sliding.sh, fuzz-client-api.sh, purge-latency.sh; sourced, not run): prerequisites,
# fresh databases, free ports, and starting and stopping Synapse and Moot as subprocesses on
# loopback with registration open and rate limits off. The caller calls `start_run` before
# anything else here. SYNAPSE_LOG_LEVEL (default WARNING) sets Synapse's log level, e.g. INFO
# to follow transactions in its homeserver.log.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export PGHOST="${PGHOST:-127.0.0.1}" PGPORT="${PGPORT:-5432}" PGUSER="${PGUSER:-postgres}"
SYNAPSE_VENV="$ROOT/bench/.synapse-venv"
MOOT_PY="${MOOT_PY:-$ROOT/.venv/bin/python}"
SERVER_PIDS=()   # every server started here, stopped by stop_servers
DATABASES=()     # every database created here, dropped on exit unless KEEP=1

start_run() {  # scratch prefix: sets STAMP (unique per run), WORK (its scratch directory,
    # /tmp/PREFIX.*) and LOAD_EXTRA (LOAD_ARGS as words); servers, databases and WORK go on exit
    STAMP="$(date +%Y%m%d%H%M%S)_$$"
    WORK="$(mktemp -d "/tmp/$1.XXXXXX")"
    read -r -a LOAD_EXTRA <<< "${LOAD_ARGS:-}"
    trap cleanup_servers_and_databases EXIT
}

log() { echo "[${LOG_TAG:-bench} $(date +%H:%M:%S)] $*" >&2; }

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

check_prerequisites() {  # PostgreSQL reachable, Moot's .venv and Synapse's venv installed
    check_moot_prerequisites
    bash "$ROOT/bench/synapse-venv.sh" "$SYNAPSE_VENV"
    SYNAPSE_VERSION="$("$SYNAPSE_VENV/bin/python" -c "from importlib.metadata import version; print(version('matrix-synapse'))")"
}

check_moot_prerequisites() {  # PostgreSQL reachable, Moot's .venv installed (Moot-only runs)
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
    MOOT_VERSION="$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')"
}

new_database() {  # name: a fresh, empty database, dropped on exit
    createdb -E UTF8 --lc-collate=C --lc-ctype=C -T template0 "$1"
    DATABASES+=("$1")
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

stop_servers() {  # SIGTERM every started server and wait for it
    local pid
    for pid in "${SERVER_PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${SERVER_PIDS[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    SERVER_PIDS=()
}

cleanup_servers_and_databases() {
    stop_servers
    if [[ "${KEEP:-0}" != 1 ]]; then
        local db
        for db in "${DATABASES[@]}"; do
            dropdb --if-exists "$db" 2>/dev/null || true
        done
        rm -rf "$WORK"
    else
        log "kept $WORK and databases ${DATABASES[*]}"
    fi
}

# write_synapse_config DIR SERVER_NAME CLIENT_PORT DATABASE [FEDERATION_PORT]
# Synapse on PostgreSQL with every rc_* limit at 100 000/s (inbound federation per origin too)
# and cheap password hashes (registration is set-up, not a measured figure). With a federation
# port: a TLS federation listener with a self-signed certificate, peers' certificates not
# checked and loopback peers allowed (an empty IP blocklist), as tests/synapse_peer.py does.
write_synapse_config() {
    local dir="$1" name="$2" client_port="$3" database="$4" federation_port="${5:-}"
    local high='{per_second: 100000, burst_count: 1000000}'
    local federation=""
    mkdir -p "$dir/media"
    if [[ -n "$federation_port" ]]; then
        "$MOOT_PY" -c 'import sys; from pathlib import Path
from homeserver.setup import write_tls_certificate
write_tls_certificate(Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3])' \
            "$dir/tls.crt" "$dir/tls.key" "$name"
        federation="  - {port: $federation_port, bind_addresses: ['127.0.0.1'], type: http, tls: true,
     x_forwarded: false, resources: [{names: [federation], compress: false}]}
tls_certificate_path: $dir/tls.crt
tls_private_key_path: $dir/tls.key
federation_verify_certificates: false
ip_range_blacklist: []"
    fi
    cat > "$dir/log.yaml" <<EOF
version: 1
formatters: {plain: {format: '%(asctime)s %(levelname)s %(name)s: %(message)s'}}
handlers: {file: {class: logging.FileHandler, filename: $dir/homeserver.log, formatter: plain}}
root: {level: ${SYNAPSE_LOG_LEVEL:-WARNING}, handlers: [file]}
disable_existing_loggers: false
EOF
    cat > "$dir/homeserver.yaml" <<EOF
server_name: '$name'
pid_file: $dir/homeserver.pid
listeners:
  - {port: $client_port, bind_addresses: ['127.0.0.1'], type: http, tls: false, x_forwarded: false,
     resources: [{names: [client], compress: false}]}
$federation
database:
  name: psycopg2
  args: {user: $PGUSER, host: $PGHOST, port: $PGPORT, database: $database, cp_min: 5, cp_max: 10}
log_config: $dir/log.yaml
media_store_path: $dir/media
signing_key_path: $dir/signing.key
report_stats: false
trusted_key_servers: []
suppress_key_server_warning: true
macaroon_secret_key: $(python3 -c 'import secrets; print(secrets.token_hex(32))')
form_secret: $(python3 -c 'import secrets; print(secrets.token_hex(32))')
enable_registration: true
enable_registration_without_verification: true
bcrypt_rounds: 4
rc_message: $high
rc_registration: $high
rc_registration_token_validity: $high
rc_login: {address: $high, account: $high, failed_attempts: $high}
rc_joins: {local: $high, remote: $high}
rc_joins_per_room: $high
rc_invites: {per_room: $high, per_user: $high, per_issuer: $high}
rc_3pid_validation: $high
rc_admin_redaction: $high
rc_room_creation: $high
rc_presence: {per_user: $high}
rc_delayed_event_mgmt: $high
rc_reports: $high
rc_media_create: $high
rc_federation: {window_size: 1000, sleep_limit: 100000, reject_limit: 100000, concurrent: 100}
federation_rr_transactions_per_room_per_second: 100000
EOF
    "$SYNAPSE_VENV/bin/python" -m synapse.app.homeserver --config-path "$dir/homeserver.yaml" \
        --generate-keys >/dev/null
}

start_synapse() {  # dir client_port: runs it, appends its PID to SERVER_PIDS, waits for it
    "$SYNAPSE_VENV/bin/python" -m synapse.app.homeserver --config-path "$1/homeserver.yaml" \
        > "$1/stdout.log" 2>&1 &
    SERVER_PIDS+=("$!")
    wait_ready "http://127.0.0.1:$2" "$!" "$1/stdout.log"
}

# start_moot DIR SERVER_NAME CLIENT_PORT DATABASE [FEDERATION_PORT]: `init_moot`, then `run_moot`.
start_moot() {
    init_moot "$@"
    run_moot "$1" "$3"
}

# init_moot DIR SERVER_NAME CLIENT_PORT DATABASE [FEDERATION_PORT]: `init` (registration open,
# rate limits off; with a federation port, insecure federation for loopback peers with
# self-signed certificates) writes DIR/homeserver.yaml.
init_moot() {
    local dir="$1" name="$2" client_port="$3" database="$4" federation_port="${5:-$(free_port)}"
    local insecure=()
    [[ -n "${5:-}" ]] && insecure=(--insecure-federation)
    "$MOOT_PY" -m homeserver init --data-dir "$dir" --server-name "$name" \
        --client-port "$client_port" --federation-port "$federation_port" \
        --metrics-port "$(free_port)" \
        --database-url "postgresql://$PGUSER@$PGHOST:$PGPORT/$database" \
        --open-registration --no-rate-limits "${insecure[@]}" >/dev/null
}

# run_moot DIR CLIENT_PORT: `run` on DIR/homeserver.yaml; appends its PID to SERVER_PIDS and
# waits for it.
run_moot() {
    "$MOOT_PY" -m homeserver run --config "$1/homeserver.yaml" > "$1/stdout.log" 2>&1 &
    SERVER_PIDS+=("$!")
    wait_ready "http://127.0.0.1:$2" "$!" "$1/stdout.log"
}

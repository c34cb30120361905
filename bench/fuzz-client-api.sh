#!/usr/bin/env bash
# Fuzz Moot with schemathesis over every operation of the spec's Client-Server OpenAPI (issue 13):
# every response must be anything but a 5xx. Not part of `make test` (minutes of CPU, random).
#
# Installs schemathesis (the `fuzz` extra of pyproject.toml, a pinned version) into Moot's .venv,
# bundles the spec's YAML files into one document (bench/fuzz_bundle.py), starts Moot on a fresh
# PostgreSQL database with registration open and rate limits off, registers a user, creates a
# room and sends a message (their IDs fill half of the path parameters), then runs `st run` with
# that user's access token and prints how many requests the server answered and how many with a
# 5xx (from its access log). MAX_EXAMPLES (20 per operation and phase) and SEED (13) set the size
# and the randomness; extra arguments go to `st run` (e.g. `--phases stateful`). The two logout
# operations are left out: they would revoke the token mid-run and turn the rest into 401s.
# KEEP=1 keeps the server log, schemathesis' report and the database. Exits with st's status.
set -euo pipefail
LOG_TAG=fuzz
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
start_run moot-fuzz

SPEC="${SPEC:-$ROOT/../shared/matrix-spec/data/api/client-server}"
[[ -d "$SPEC" ]] || { echo "spec not found at $SPEC (set SPEC=.../data/api/client-server)" >&2; exit 2; }
pg_isready -q -h "$PGHOST" -p "$PGPORT" || { echo "PostgreSQL not reachable on $PGHOST:$PGPORT" >&2; exit 2; }
[[ -x "$MOOT_PY" ]] || make -C "$ROOT" install >&2
ST="${ST:-$ROOT/.venv/bin/st}"   # schemathesis' CLI; ST=... uses another install
if [[ ! -x "$ST" ]]; then
    log "installing schemathesis into .venv (pip install -e '.[fuzz]')"
    "$MOOT_PY" -m pip install -q -e "$ROOT[fuzz]" >&2
fi

"$MOOT_PY" "$ROOT/bench/fuzz_bundle.py" "$SPEC" "$WORK/client-server.json"
new_database "moot_fuzz_$STAMP"
port="$(free_port)"
start_moot "$WORK/moot" fuzz.test "$port" "moot_fuzz_$STAMP"
url="http://127.0.0.1:$port"

post() {  # path json [token]: POST to the server, print the response body
    curl -sf -X POST "$url/_matrix/client/v3/$1" -H 'Content-Type: application/json' \
        ${3:+-H "Authorization: Bearer $3"} -d "$2"
}
field() { "$MOOT_PY" -c 'import json, sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }
registered="$(post register '{"username": "fuzzer", "password": "fuzz-password-1",
    "auth": {"type": "m.login.dummy"}}')"
token="$(field access_token <<<"$registered")"
device="$(field device_id <<<"$registered")"
room="$(post createRoom '{"preset": "public_chat", "room_alias_name": "fuzz"}' "$token" | field room_id)"
event="$(curl -sf -X PUT "$url/_matrix/client/v3/rooms/$room/send/m.room.message/fuzz-1" \
    -H "Authorization: Bearer $token" -d '{"msgtype": "m.text", "body": "hello"}' | field event_id)"
log "server $url, user @fuzzer:fuzz.test, device $device, room $room, work dir $WORK"

# Half of the generated path parameters are real IDs, so that requests get past the 403/404
# of an unknown user or room into the handlers' own code.
cat > "$WORK/schemathesis.toml" <<TOML
[dictionaries]
users = { values = ["@fuzzer:fuzz.test"] }
rooms = { values = ["$room"] }
rooms_or_aliases = { values = ["$room", "#fuzz:fuzz.test"] }
aliases = { values = ["#fuzz:fuzz.test"] }
events = { values = ["$event"] }
devices = { values = ["$device"] }

[parameters]
"path.userId" = { dictionary = "users", probability = 0.5 }
"path.roomId" = { dictionary = "rooms", probability = 0.5 }
"path.roomIdOrAlias" = { dictionary = "rooms_or_aliases", probability = 0.5 }
"path.roomAlias" = { dictionary = "aliases", probability = 0.5 }
"path.eventId" = { dictionary = "events", probability = 0.5 }
"path.deviceId" = { dictionary = "devices", probability = 0.5 }

# These operations ask another homeserver when the ID names one (the spec's examples name
# matrix.org and example.com). The sandbox reaches none, so Moot answers 502 Bad Gateway (the
# remote server failed, not Moot; Synapse answers 502 there too). Any other 5xx still fails.
[[operations]]
include-operation-id-regex = "^(getUserProfile|getProfileField|getRoomIdByAlias|joinRoom|joinRoomById)$"
checks.not_a_server_error.expected-statuses = ["1XX", "2XX", "3XX", "4XX", 502]
TOML

status=0
# The request timeout lies above the longest long-poll a client may ask of /sync or /events
# (limits.sync_timeout_max_ms, 60 s): a long-poll that waits is no error.
cd "$WORK"   # schemathesis keeps a cache in .schemathesis/ under the current directory
"$ST" --config-file "$WORK/schemathesis.toml" run "$WORK/client-server.json" --url "$url" \
    -H "Authorization: Bearer $token" \
    --checks not_a_server_error \
    --exclude-operation-id logout --exclude-operation-id logout_all \
    --phases examples,coverage,fuzzing,stateful \
    --max-examples "${MAX_EXAMPLES:-20}" --seed "${SEED:-13}" \
    --request-timeout 70 --no-color --workers 2 \
    --report ndjson --report-dir "$WORK/report" "$@" || status=$?
# The server's access log has one line per request: "<id> <client> <METHOD> <route> <status> <ms>".
access=' homeserver.access: \S+ \S+ [A-Z]+ \S+ [0-9]{3} [0-9.]+ms$'
log "requests served: $(grep -cE "$access" "$WORK/moot/stdout.log" || true)," \
    "5xx: $(grep -E "$access" "$WORK/moot/stdout.log" | grep -cE ' 5[0-9]{2} [0-9.]+ms$' || true)" \
    "(other than 502: $(grep -E "$access" "$WORK/moot/stdout.log" \
        | grep -E ' 5[0-9]{2} [0-9.]+ms$' | grep -cvE ' 502 [0-9.]+ms$' || true))"
exit "$status"

"""Every Prometheus metric the server exports, named moot_<subsystem>_<what>_<unit>.

Defining them in one module keeps names consistent and lets operators find them all at once.
The default registry also carries the process and platform collectors.
"""

from importlib import metadata

from prometheus_client import Counter, Gauge, Histogram

from homeserver.tallies import TallyFamily

HTTP_REQUESTS = Counter(
    "moot_http_requests_total", "HTTP requests served, by route, method and status",
    ["route", "method", "status"],
)
HTTP_SECONDS = Histogram(
    "moot_http_request_duration_seconds", "HTTP request latency, by route and method",
    ["route", "method"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
HTTP_CONNECTIONS = Gauge(
    "moot_http_connections", "Connections open, by listener", ["listener"]
)
HTTP_CONNECTIONS_CLOSED = Counter(
    "moot_http_connections_closed_total",
    "Connections the server closed or refused, by listener and reason (header_timeout, "
    "request_timeout, idle_evicted, over_capacity)",
    ["listener", "reason"],
)
# Event types are chosen by senders: those the spec defines have a label of their own, any
# other is counted as "other", so no client can mint series.
EVENT_TYPES = (
    "m.room.create", "m.room.member", "m.room.power_levels", "m.room.join_rules",
    "m.room.history_visibility", "m.room.guest_access", "m.room.name", "m.room.topic",
    "m.room.avatar", "m.room.canonical_alias", "m.room.encryption", "m.room.server_acl",
    "m.room.tombstone", "m.room.pinned_events", "m.room.third_party_invite",
    "m.room.message", "m.room.encrypted", "m.room.redaction", "m.reaction", "m.sticker",
    "m.space.child", "m.space.parent", "m.call.invite", "m.call.candidates", "m.call.answer",
    "m.call.select_answer", "m.call.negotiate", "m.call.reject", "m.call.hangup",
    "m.poll.start", "m.poll.response", "m.poll.end", "other",
)
EVENT_ORIGINS = ("local", "remote")
EVENTS_PERSISTED = TallyFamily(
    "moot_events_persisted_total",
    "Events persisted to the room DAG, by event type (the spec's types; any other is "
    "\"other\") and origin (local: sent by our users; remote: received over federation)",
    ("type", "origin"), "counter",
)
SEND_BATCH_SIZE = Histogram(
    "moot_send_batch_size", "Client sends persisted together in one room transaction",
    buckets=(1, 2, 4, 8, 16, 32, 64),
)
EVENTS_REFUSED = Counter(
    "moot_events_refused_total", "Events refused by the room engine, by reason", ["reason"]
)
EVENTS_SOFT_FAILED = Counter(
    "moot_events_soft_failed_total",
    "Remote events kept in the DAG but not applied, because they fail against the current "
    "state (auth) or would seat more members than the room's limit (room_full)",
    ["reason"],
)
SYNC_LONG_POLLS = Gauge("moot_sync_long_polls_in_flight", "/sync requests currently waiting")
DB_POOL_SIZE = Gauge("moot_db_pool_connections", "Connections open in the database pool")
DB_POOL_IN_USE = Gauge("moot_db_pool_connections_in_use", "Pool connections lent out")
USERS = Gauge("moot_users", "Registered, non-deactivated users")
ROOMS = Gauge("moot_rooms", "Rooms known to this server")
DEVICES = Gauge("moot_devices", "Devices (logged-in sessions)")
# Every in-memory cache that can grow, by the name its metrics carry.
CACHES = (
    "events", "recent_events", "current_state", "access_tokens", "memberships", "txn_ids",
    "unread_counts", "filters", "one_time_key_counts", "ignored_users",
    "sliding_sync_capped_rooms", "sliding_sync_departures", "sliding_sync_room_types",
    "sliding_sync_account", "push_rules", "appservice_rooms",
)
CACHE_REQUESTS = TallyFamily(
    "moot_cache_requests_total",
    "Lookups of an in-memory cache, by cache and result (hit: answered from memory; miss: "
    "read from the database or computed)", ("cache", "result"), "counter",
)
CACHE_ENTRIES = TallyFamily(
    "moot_cache_entries", "Entries held by an in-memory cache (rooms, for current_state)",
    ("cache",), "gauge",
)
CACHE_SIZE_BYTES = TallyFamily(
    "moot_cache_size_bytes",
    "Bytes of event JSON held by an in-memory cache (events, recent_events, current_state); "
    "the Python objects holding them take somewhat more",
    ("cache",), "gauge",
)
PASSWORD_CHECKS_REFUSED = Counter(
    "moot_password_checks_refused_total",
    "Password checks refused with 429 because their address had too many running or waiting "
    "(rate_limits.password_checks_per_ip)",
)
RATE_LIMITED = Counter(
    "moot_ratelimit_refused_total", "Requests refused with 429 by a rate limit, by its kind",
    ["kind"],
)
REPLICATION_MESSAGES = Counter(
    "moot_replication_messages_total",
    "Replication messages between processes (PostgreSQL NOTIFY payloads), by direction",
    ["direction"],
)
REPLICATION_RECONNECTS = Counter(
    "moot_replication_reconnects_total", "Times the LISTEN connection was lost and re-established"
)
REPLICATION_RESYNCS = Counter(
    "moot_replication_resyncs_total",
    "Stream-position catch-ups of a worker, by source (main: answered by the main process; "
    "database: read from PostgreSQL because the main process did not answer)",
    ["source"],
)
# The per-destination federation metrics label at most `federation.metrics_destinations`
# destinations by name; the others are summed under destination="other"
# (federation/metric_labels.py). The backoff gauge has no "other" series.
FEDERATION_QUEUED = Gauge(
    "moot_federation_outbox_queued_items",
    "PDUs plus EDUs queued for a destination server and not yet delivered", ["destination"],
)
FEDERATION_TRANSACTIONS_SENT = Counter(
    "moot_federation_transactions_sent_total",
    "Transactions a destination server accepted (200)", ["destination"],
)
FEDERATION_TRANSACTIONS_FAILED = Counter(
    "moot_federation_transactions_failed_total",
    "Transaction attempts that failed (unreachable, timeout, non-200 answer), dropped ones "
    "included", ["destination"],
)
FEDERATION_TRANSACTIONS_DROPPED = Counter(
    "moot_federation_transactions_dropped_total",
    "Transactions given up because the destination refused them as malformed or too large "
    "(400, 413): retrying could not succeed", ["destination"],
)
FEDERATION_ADDRESSES_REFUSED = Counter(
    "moot_federation_addresses_refused_total",
    "Outbound federation connections refused before they were opened because every address of "
    "the target server is non-public (server-side request forgery attempts through chosen "
    "server names, or peers on private networks while federation.allow_private_addresses is "
    "off), by why the first address was refused", ["reason"],
)
FEDERATION_BACKOFF_SECONDS = Gauge(
    "moot_federation_backoff_seconds",
    "The current retry delay of a destination server (0 while it is healthy)", ["destination"],
)
FEDERATION_PDU_AGE_SECONDS = Histogram(
    "moot_federation_pdu_delivery_age_seconds",
    "Time from queueing a PDU (the transaction that stored its event) to its delivery to a "
    "destination server, by our own clock", ["destination"],
    buckets=(0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600, 21600, 86400),
)
FEDERATION_DESTINATIONS_EXPIRED = Counter(
    "moot_federation_destinations_expired_total",
    "Destinations whose whole queue was dropped because they accepted no transaction for "
    "federation.destination_expiry_ms after the oldest item was queued",
)


def _version() -> str:
    try:
        return metadata.version("moot")
    except metadata.PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown"


BUILD_INFO = Gauge("moot_build_info", "Always 1; the version of Moot running", ["version"])
BUILD_INFO.labels(_version()).set(1)
# Methods are the client's to choose: those HTTP defines have a label, any other is "other".
HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"})
HTTP_IN_FLIGHT = TallyFamily(
    "moot_http_requests_in_flight",
    "Requests being answered right now on the client and federation listeners, by route "
    "pattern and method",
    ("route", "method"), "gauge",
)
PDU_OUTCOMES = ("accepted", "soft_failed", "rejected", "duplicate", "refused", "ignored")
FEDERATION_INBOUND_PDUS = Counter(
    "moot_federation_inbound_pdus_total",
    "PDUs received in federation transactions, by outcome (accepted; soft_failed: kept but "
    "not applied; rejected: failed the auth rules; duplicate: held already; refused: failed "
    "its checks (signature, hash, server ACL) or what it refers to could not be fetched; "
    "ignored: a room this server is not in, or no event ID could be computed)",
    ["outcome"],
)
EDU_TYPES = (
    "m.typing", "m.receipt", "m.presence", "m.device_list_update", "m.signing_key_update",
    "m.direct_to_device", "other",
)
FEDERATION_INBOUND_EDUS = Counter(
    "moot_federation_inbound_edus_total",
    "EDUs received in federation transactions, by type (the spec's; any other is \"other\")",
    ["type"],
)
FEDERATION_INBOUND_TRANSACTION_SECONDS = Histogram(
    "moot_federation_inbound_transaction_duration_seconds",
    "Time to process one inbound federation transaction (PUT /send), its PDUs and EDUs",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
FEDERATION_OUTBOX_OLDEST_AGE_SECONDS = Gauge(
    "moot_federation_outbox_oldest_age_seconds",
    "Age of the oldest PDU or EDU still queued for any destination server (0 when none is)",
)
ROOM_FORWARD_EXTREMITIES_MAX = Gauge(
    "moot_room_forward_extremities_max",
    "The most forward extremities (DAG heads) any room has, refreshed every 15 s (main "
    "process); many heads make every new event of that room costlier to resolve",
)
EVENT_LOOP_LAG_SECONDS = Histogram(
    "moot_event_loop_lag_seconds",
    "How late a timer due every 0.5 s fires: the time the event loop was busy or blocked, "
    "which every request of this process waited through",
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
SYNC_WAKEUP_SECONDS = Histogram(
    "moot_sync_wakeup_delay_seconds",
    "From a change being announced (right after its commit; on a worker, when the main "
    "process's notification arrives) to a waiting /sync or sliding sync long-poll it woke "
    "having its answer ready",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)

# Series whose labels are known in advance exist (at 0) from startup in every process, so
# that dashboards and alert rules find them before the first event: the caches' here (not
# every process makes every cache); the others where their children are bound (persisted
# events: `RoomCache`; inbound PDUs and EDUs: `federation.inbound_pdus` and `.transactions`;
# rate limits: `RateLimiter`; routes in flight: `precreate_route_series`).
for _cache in CACHES:
    CACHE_REQUESTS.child(_cache, "hit")
    CACHE_REQUESTS.child(_cache, "miss")
    CACHE_ENTRIES.child(_cache)
for _cache in ("events", "recent_events", "current_state"):
    CACHE_SIZE_BYTES.child(_cache)

PUSH_SENT = TallyFamily(  # one a push: a tally, not a locked counter
    "moot_push_sent_total",
    "Notifications (and badge updates) a push gateway accepted, by pusher kind", ("kind",),
    "counter",
)
PUSH_SENT.child("http")  # exported at 0 from the start
PUSH_FAILED = Counter(
    "moot_push_failed_total",
    "Attempts to deliver to a push gateway that failed (unreachable, refused address, timeout, "
    "an error status); each is retried after a backoff, by pusher kind", ["kind"],
)
PUSH_REJECTED = Counter(
    "moot_push_rejected_total",
    "Pushkeys a push gateway listed as rejected, whose pushers were deleted, by pusher kind",
    ["kind"],
)
PUSH_QUEUE_DEPTH = Gauge(
    "moot_push_queue_depth", "Pushes queued and not yet accepted by a gateway, by pusher kind",
    ["kind"],
)
PUSH_QUEUE_OLDEST_AGE_SECONDS = Gauge(
    "moot_push_queue_oldest_age_seconds",
    "Age of the oldest queued push (0 when none is queued), by pusher kind", ["kind"],
)
for _push_metric in (
    PUSH_FAILED, PUSH_REJECTED, PUSH_QUEUE_DEPTH, PUSH_QUEUE_OLDEST_AGE_SECONDS
):
    _push_metric.labels("http")  # exported at 0 from the start

# Per application service: one series per registration (`appservice` is its `id`).
APPSERVICE_TRANSACTIONS_SENT = Counter(
    "moot_appservice_transactions_sent_total",
    "Transactions an application service acknowledged (2xx)", ["appservice"],
)
APPSERVICE_TRANSACTIONS_FAILED = Counter(
    "moot_appservice_transactions_failed_total",
    "Transaction attempts to an application service that failed (unreachable, timeout, "
    "non-2xx answer); each is retried with the same txnId", ["appservice"],
)
APPSERVICE_QUEUE_DEPTH = Gauge(
    "moot_appservice_queue_depth",
    "Events plus ephemeral events owed to an application service (queued or in its "
    "unacknowledged transaction)", ["appservice"],
)
APPSERVICE_QUEUE_AGE_SECONDS = Gauge(
    "moot_appservice_queue_oldest_age_seconds",
    "How long the oldest item owed to an application service has waited (0 when none is)",
    ["appservice"],
)

# The retention sweeps (services/retention_sweeps.py), one series per sweep from the start.
RETENTION_SWEEPS = ("rooms", "redactions", "media", "client_ips")
RETENTION_PURGED_EVENTS = Counter(
    "moot_retention_purged_events_total",
    "What the retention sweeps forgot, by sweep (rooms: events purged; redactions: events "
    "whose content was erased; media: local media deleted; client_ips: devices whose last "
    "address and user agent were deleted)", ["sweep"],
)
RETENTION_PURGED_BYTES = Counter(
    "moot_retention_purged_bytes_total",
    "Bytes the retention sweeps freed, by sweep, where the sweep knows them (event JSON for "
    "rooms and redactions, file sizes for media; none for client_ips)", ["sweep"],
)
RETENTION_SWEEP_SECONDS = Histogram(
    "moot_retention_sweep_seconds", "Duration of a successful run of a retention sweep",
    ["sweep"], buckets=(0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600),
)
RETENTION_LAST_SUCCESS = Gauge(
    "moot_retention_last_success_timestamp_seconds",
    "Unix time of the last successful run of a retention sweep (0: none since start-up)",
    ["sweep"],
)
RETENTION_SWEEP_FAILURES = Counter(
    "moot_retention_sweep_failures_total",
    "Runs of a retention sweep that failed (logged; retried at the next interval)", ["sweep"],
)
for _sweep in RETENTION_SWEEPS:
    for _retention_metric in (
        RETENTION_PURGED_EVENTS, RETENTION_PURGED_BYTES, RETENTION_SWEEP_SECONDS,
        RETENTION_LAST_SUCCESS, RETENTION_SWEEP_FAILURES,
    ):
        _retention_metric.labels(_sweep)

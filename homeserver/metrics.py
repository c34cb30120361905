"""Every Prometheus metric the server exports, named moot_<subsystem>_<what>_<unit>.

Defining them in one module keeps names consistent and lets operators find them all at once.
The default registry also carries the process and platform collectors.
"""

from prometheus_client import Counter, Gauge, Histogram

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
EVENTS_PERSISTED = Counter(
    "moot_events_persisted_total", "Events persisted to the room DAG, by event type", ["type"]
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
CACHE_ENTRIES = Gauge(
    "moot_cache_entries", "Entries held by an in-memory cache (events, recent_events)", ["cache"]
)
CACHE_SIZE_BYTES = Gauge(
    "moot_cache_size_bytes",
    "Bytes of event JSON held by an in-memory cache (events, recent_events); the Python "
    "objects holding them take somewhat more",
    ["cache"],
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
PUSH_SENT = Counter(
    "moot_push_sent_total",
    "Notifications (and badge updates) a push gateway accepted, by pusher kind", ["kind"],
)
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
    PUSH_SENT, PUSH_FAILED, PUSH_REJECTED, PUSH_QUEUE_DEPTH, PUSH_QUEUE_OLDEST_AGE_SECONDS
):
    _push_metric.labels("http")  # exported at 0 from the start

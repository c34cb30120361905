"""Database metrics, defined once and updated by `storage.database`."""

from prometheus_client import Gauge, Histogram

POOL_WAITERS = Gauge(
    "moot_db_pool_waiters", "Tasks waiting for a database connection from the pool"
)
TRANSACTION_SECONDS = Histogram(
    "moot_db_transaction_duration_seconds",
    "Time spent in one database transaction, by name",
    ["name"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
POOL_ACQUIRE_SECONDS = Histogram(
    "moot_db_pool_acquire_duration_seconds",
    "Time spent waiting for a connection from the database pool (long waits: the pool is "
    "too small for the load, or transactions hold their connections too long)",
    buckets=(0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5,
             5, 10),
)

"""The servers this one federates with, for server admins (Synapse's federation admin API):
each destination's retry state, the rooms it shares with us, and `reset_connection`, which
ends a destination's backoff so that the federation sender tries it again at once.

The sender lives in `federation/`, which services do not import: `app.py` hands it in as a
`RetryNow` (the one call this needs)."""

from __future__ import annotations

from typing import Any, Protocol

import asyncpg

from homeserver.errors import MatrixError, not_found
from storage import destinations as store
from storage.database import Database
from storage.outbox import DestinationState, upsert_destination_state

HEALTHY = DestinationState(0, None, None)


class RetryNow(Protocol):
    def retry_now(self, destination: str) -> bool:
        """Drop the backoff held in memory for `destination` and retry it at once."""
        ...


def _destination_json(row: asyncpg.Record) -> dict[str, Any]:
    return {
        key: row[key] for key in (
            "destination", "retry_last_ts", "retry_interval", "failure_ts",
            "last_successful_stream_ordering",
        )
    }


class FederationDestinations:
    def __init__(self, db: Database, sender: RetryNow) -> None:
        self._db = db
        self._sender = sender

    async def destinations(
        self, name_contains: str | None, offset: int, limit: int, *, order_by: str,
        backwards: bool,
    ) -> tuple[list[dict[str, Any]], int]:
        """A page of destinations in Synapse's shape, and how many match in all."""
        rows, total = await self._db.run(lambda conn: store.get_destinations(
            conn, name_contains, offset, limit, order_by=order_by, backwards=backwards
        ))
        return [_destination_json(row) for row in rows], total

    async def destination(self, destination: str) -> dict[str, Any]:
        return _destination_json(await self._known(destination))

    async def shared_rooms(
        self, destination: str, offset: int, limit: int, *, backwards: bool
    ) -> tuple[list[dict[str, Any]], int]:
        await self._known(destination)
        rows, total = await self._db.run(lambda conn: store.get_shared_rooms(
            conn, destination, offset, limit, backwards=backwards
        ))
        return [dict(row) for row in rows], total

    async def reset_connection(self, destination: str) -> None:
        """Forget the destination's backoff, stored and in the sender, which retries now."""
        if (await self._known(destination))["failures"] == 0:
            # Synapse's answer (and errcode) for a destination with nothing to reset.
            raise MatrixError(
                400, "M_UNKNOWN", "The retry timing does not need to be reset for this destination"
            )
        await self._db.transaction(
            lambda conn: upsert_destination_state(conn, destination, HEALTHY),
            name="reset_destination",
        )
        self._sender.retry_now(destination)

    async def _known(self, destination: str) -> asyncpg.Record:
        row = await self._db.run(lambda conn: store.get_destination(conn, destination))
        if row is None:
            raise not_found("Unknown destination")
        return row

"""Account data (Client-Server API "Client Config"): per-user global and per-room JSON blobs.

Every write takes a position on the account-data stream inside the transaction that stores the
row, so /sync returns exactly the entries whose position lies between two tokens; the owner's
long-polls are woken afterwards. A user holds at most `quotas.max_account_data_entries` entries
of at most `quotas.max_account_data_bytes` each; rewriting an entry never counts as a new one.
"""

from __future__ import annotations

from typing import Any

import asyncpg

from homeserver.config import QuotasConfig
from homeserver.errors import MatrixError, not_found
from homeserver.services.ignored_users import IGNORED_USER_LIST, IgnoreLists
from homeserver.services.notifier import Notifier
from homeserver.services.quotas import check_size, over_quota
from homeserver.services.stream_wakes import StreamWakes
from storage import account_data as account_data_store
from storage.account_data import AccountData
from storage.database import Database
from storage.streams import StreamIdGenerator

# Types the server manages itself; the spec has clients get 405 M_BAD_JSON for them.
SERVER_MANAGED_TYPES = frozenset({"m.fully_read", "m.push_rules"})
GLOBAL = ""


class AccountDataService:
    def __init__(
        self, db: Database, stream: StreamIdGenerator, notifier: Notifier, quotas: QuotasConfig,
    ) -> None:
        self.db = db
        self.quotas = quotas
        self.stream = stream
        self.notifier = notifier
        self.wakes = StreamWakes(notifier, stream)
        self.ignore_lists = IgnoreLists()

    async def set_by_client(
        self, user_id: str, room_id: str, data_type: str, content: dict[str, Any]
    ) -> None:
        """A client's PUT: refuses the server-managed types."""
        if data_type in SERVER_MANAGED_TYPES:
            raise MatrixError(405, "M_BAD_JSON", f"Cannot set {data_type} through this API.")
        await self.set(user_id, room_id, data_type, content)

    async def set(
        self, user_id: str, room_id: str, data_type: str, content: dict[str, Any]
    ) -> None:
        """Store an entry (room_id '' for global) and wake the owner's syncs."""
        quotas = self.quotas
        check_size(content, "An account data entry", quotas.max_account_data_bytes)

        async def txn(conn: asyncpg.Connection, position: int) -> None:
            held = await account_data_store.count_account_data_if_new(
                conn, user_id, room_id, data_type
            )
            if held is not None and held >= quotas.max_account_data_entries:
                raise over_quota("account data entries", quotas.max_account_data_entries)
            await account_data_store.upsert_account_data(
                conn, user_id, room_id, data_type, content, position
            )

        try:
            with self.stream.allocate() as slot:
                await self.db.transaction(
                    lambda conn: txn(conn, slot.position), name="account_data"
                )
        finally:
            if room_id == GLOBAL and data_type == IGNORED_USER_LIST:
                self.ignore_lists.changed(user_id)
        self.wakes.add(slot.last_written, [user_id])

    async def get(self, user_id: str, room_id: str, data_type: str) -> dict[str, Any]:
        """The content, or M_NOT_FOUND when the user never set it."""
        content = await self.db.run(
            lambda conn: account_data_store.get_account_data(conn, user_id, room_id, data_type)
        )
        if content is None:
            raise not_found("Account data not found")
        return content

    async def changes(
        self, conn: asyncpg.Connection, user_id: str, after: int, upto: int
    ) -> list[AccountData]:
        """For /sync: entries changed in (after, upto]; nothing to read when the stream is still."""
        if after >= upto:
            return []
        return await account_data_store.get_account_data_changes(conn, user_id, after, upto)

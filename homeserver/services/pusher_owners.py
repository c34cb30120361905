"""The users who hold an http pusher, in memory, so that the room writer queues pushes (one
more statement in its transaction) only for a batch that notifies one of them.

Theory of operation. The set is read at start-up and changed by every write of pushers, all
of which run in the main process (workers serve /sync only), which also runs the room writer,
so memory is as good as the table. It may hold a user who no longer has a pusher (a pusher
that went with its device's deletion, or that a push worker deleted because its gateway
rejected the pushkey; a failed write that meant to add one): that costs the
writer a statement that queues nothing. It must never miss a user who has one, so a user is
added *before* the transaction that gives them a pusher commits, and removed only after a
read, inside the transaction that took one away, found none left. Pusher writes are serialized
by one lock, so a removal cannot race an addition for the same user.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable

import asyncpg

from storage import push as push_store
from storage.database import Database

# A write of pushers; it returns the users who may have lost their last http pusher.
PusherWrite = Callable[[asyncpg.Connection], Awaitable[Iterable[str]]]


class PusherOwners:
    """Who may hold an http pusher: a superset of the table, kept current by `write`."""

    def __init__(self) -> None:
        self._users: set[str] = set()
        self._writing = asyncio.Lock()
        # Told of a user added to the set (the push worker's counts of them may be stale).
        self.on_added: list[Callable[[str], None]] = []

    async def load(self, db: Database) -> None:
        self._users = await db.run(push_store.get_http_pusher_owners, name="pusher_owners")

    def among(self, user_ids: Iterable[str]) -> list[str]:
        """Those of these users who may hold an http pusher."""
        return [u for u in user_ids if u in self._users]

    async def write(
        self, db: Database, fn: PusherWrite, *, adding: str | None = None, name: str = "pushers"
    ) -> None:
        """Run `fn` in one transaction. `adding`: the user it may give an http pusher."""
        async def write_and_check(conn: asyncpg.Connection) -> set[str]:
            losing = set(await fn(conn))
            if not losing:
                return losing
            return losing - await push_store.get_http_pusher_owners_among(conn, list(losing))

        async with self._writing:
            if adding is not None and adding not in self._users:
                self._users.add(adding)
                for listener in self.on_added:
                    listener(adding)
            self._users -= await db.transaction(write_and_check, name=name)

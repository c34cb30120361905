"""EDUs of local users for other servers: the seam to the federation sender, and who gets them.

The services that make ephemeral data (typing, receipts, presence, to-device, device lists,
cross-signing keys) never import `federation/`: they are handed an `Edus` when they are built,
`OutboundEdus` over the federation sender when a federation listener is configured and
`NoEdus` otherwise.
Who gets an EDU is decided here, from the room engine's cached memberships: the servers with
joined members in a room, or in any room a user is joined to; never this server itself.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

import asyncpg

from homeserver.protocol.identifiers import SERVER_SIGILS
from homeserver.services.rooms.view import RoomView
from storage.database import Database


class EduOutbox(Protocol):
    async def send_edu(
        self, destinations: Iterable[str], edu_type: str, content: dict[str, Any]
    ) -> None:
        """Queue one EDU for each destination; durable once this returns."""
        ...


def servers_of(user_ids: Iterable[str]) -> set[str]:
    """The servers of these users (IDs without a server name are skipped)."""
    # `server_name_of` inlined: this runs over every member of a room for every event sent
    # to it (the federation sender's destinations), where two calls per member showed.
    servers = set()
    for user_id in user_ids:
        if isinstance(user_id, str) and user_id[:1] in SERVER_SIGILS:
            server = user_id.partition(":")[2]
            if server:
                servers.add(server)
    return servers


async def users_sharing_room(
    engine: RoomView, conn: asyncpg.Connection, user_id: str
) -> set[str]:
    """Every user joined to a room `user_id` is joined to (with `user_id` when in any)."""
    users: set[str] = set()
    for room_id, membership in (await engine.memberships(conn, user_id)).items():
        if membership.membership == "join":
            users |= await engine.joined_members(conn, room_id)
    return users


class Edus(Protocol):
    """Where the services send local users' EDUs."""

    def sends_for(self, user_id: str) -> bool:
        """Whether EDUs about this user go to other servers: a local user's do."""
        ...

    def reaches_any(self, user_ids: Iterable[str]) -> bool:
        """Whether any of these users is on a server EDUs go to."""
        ...

    async def to_servers_of(
        self, users: Iterable[str], edu_type: str, content: dict[str, Any]
    ) -> None: ...

    async def to_room(self, room_id: str, edu_type: str, content: dict[str, Any]) -> None: ...

    async def to_roommates(
        self, user_id: str, edu_type: str, content: dict[str, Any]
    ) -> None: ...

    async def to_server(self, server: str, edu_type: str, content: dict[str, Any]) -> None: ...


class NoEdus:
    """Without federation no EDU leaves this server, so there is nothing to work out."""

    def sends_for(self, user_id: str) -> bool:
        return False

    def reaches_any(self, user_ids: Iterable[str]) -> bool:
        return False

    async def to_servers_of(
        self, users: Iterable[str], edu_type: str, content: dict[str, Any]
    ) -> None:
        return

    async def to_room(self, room_id: str, edu_type: str, content: dict[str, Any]) -> None:
        return

    async def to_roommates(self, user_id: str, edu_type: str, content: dict[str, Any]) -> None:
        return

    async def to_server(self, server: str, edu_type: str, content: dict[str, Any]) -> None:
        return


class OutboundEdus:
    """Sends local users' EDUs to the other servers concerned."""

    def __init__(
        self, db: Database, engine: RoomView, server_name: str, outbox: EduOutbox
    ) -> None:
        self.db = db
        self.engine = engine
        self.server_name = server_name
        self.outbox = outbox

    def sends_for(self, user_id: str) -> bool:
        return self.engine.is_local(user_id)

    def reaches_any(self, user_ids: Iterable[str]) -> bool:
        return not all(self.engine.is_local(u) for u in user_ids)

    async def to_servers_of(
        self, users: Iterable[str], edu_type: str, content: dict[str, Any]
    ) -> None:
        """To the servers of `users` (a room's members, a user's roommates) but our own."""
        servers = servers_of(users) - {self.server_name}
        if servers:
            await self.outbox.send_edu(servers, edu_type, content)

    async def to_room(self, room_id: str, edu_type: str, content: dict[str, Any]) -> None:
        """To the other servers with members joined to the room."""
        members = await self.db.run(lambda conn: self.engine.joined_members(conn, room_id))
        await self.to_servers_of(members, edu_type, content)

    async def to_roommates(self, user_id: str, edu_type: str, content: dict[str, Any]) -> None:
        """To the other servers sharing a joined room with `user_id`."""
        users = await self.db.run(lambda conn: users_sharing_room(self.engine, conn, user_id))
        await self.to_servers_of(users, edu_type, content)

    async def to_server(self, server: str, edu_type: str, content: dict[str, Any]) -> None:
        if server != self.server_name:
            await self.outbox.send_edu([server], edu_type, content)

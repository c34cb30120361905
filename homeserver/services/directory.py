"""The published room directory (`/publicRooms`, `/directory/list/room`) and the user directory.

A room is published when `rooms.is_public` is set: by `createRoom` with `visibility: public`, or
by a room admin through `/directory/list/room/{roomId}`. An application service publishes rooms
per network of its own (`/directory/list/appservice/{networkId}/{roomId}`, the bridged rooms of
one remote network): those are listed for that network's `third_party_instance_id` (from
`/thirdparty/protocols`), and with the server's own under `include_all_networks`, as Synapse
does. Listings are offset-paginated in a stable order (most joined members first, then room
ID); a token is `o<offset>`. Another server's directory (`?server=`) is that server's answer to
federation `publicRooms` (`RemoteQueries`), its tokens its own.

The user directory finds users joined to a room the searcher is joined to, or to a room with a
public join rule or world-readable history (the spec's minimum), by user ID or display name.
"""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg

from homeserver.errors import MatrixError, forbidden, invalid_param, not_found
from homeserver.protocol.public_rooms import PublicRoomsQuery
from homeserver.protocol.third_party_networks import parse_instance_id
from homeserver.services.appservices import AppServices
from homeserver.services.clock import Clock
from homeserver.services.remote_directory_pages import RemoteDirectoryPages
from homeserver.services.remote_queries import RemoteQueries
from homeserver.services.remote_server_limits import ServerLimits
from homeserver.services.requester import Requester
from homeserver.services.room_admins import is_room_admin
from homeserver.services.rooms.view import RoomView
from storage import appservice_room_list
from storage import directory as directory_store
from storage.database import Database

MAX_TOKEN_OFFSET = 10**9
# How long a client waits for another server's directory: a peer that is down or hangs costs
# a 504 after this, not the federation client's minute.
REMOTE_TIMEOUT_S = 10.0


def _offset(token: str) -> int:
    digits = token[1:]
    if not token.startswith("o") or not digits.isascii() or not digits.isdigit():
        raise invalid_param("'since' is not a pagination token from this server")
    offset = int(digits)
    if offset > MAX_TOKEN_OFFSET:
        raise invalid_param("'since' is out of range")
    return offset


def _str_field(state: dict[str, Any], event_type: str, key: str) -> str | None:
    content = state.get(event_type)
    value = content.get(key) if isinstance(content, dict) else None
    return value if isinstance(value, str) else None


def room_chunk(room_id: str, joined: int, state: dict[str, Any]) -> dict[str, Any]:
    """One `PublishedRoomsChunk`: optional fields only when the state has a valid value."""
    entry: dict[str, Any] = {
        "room_id": room_id,
        "num_joined_members": joined,
        "world_readable": _str_field(state, "m.room.history_visibility", "history_visibility")
        == "world_readable",
        "guest_can_join": _str_field(state, "m.room.guest_access", "guest_access") == "can_join",
    }
    optional = {
        "name": _str_field(state, "m.room.name", "name"),
        "topic": _str_field(state, "m.room.topic", "topic"),
        "join_rule": _str_field(state, "m.room.join_rules", "join_rule"),
        "room_type": _str_field(state, "m.room.create", "type"),
    }
    alias = _str_field(state, "m.room.canonical_alias", "alias")
    if alias is not None and alias.startswith("#"):
        optional["canonical_alias"] = alias
    avatar = _str_field(state, "m.room.avatar", "url")
    if avatar is not None and avatar.startswith("mxc://"):
        optional["avatar_url"] = avatar
    entry.update((k, v) for k, v in optional.items() if v is not None)
    return entry


def _check_networks(query: PublicRoomsQuery) -> None:
    if query.third_party_instance_id is not None and query.include_all_networks:
        raise invalid_param("third_party_instance_id cannot be used with include_all_networks")


class DirectoryService:
    def __init__(
        self, db: Database, engine: RoomView, appservices: AppServices, *,
        remote: RemoteQueries, server_limits: ServerLimits, clock: Clock,
    ) -> None:
        self.db = db
        self.engine = engine
        self.appservices = appservices
        self.remote = remote
        self.server_limits = server_limits
        self.remote_pages = RemoteDirectoryPages(clock)

    # ---- room visibility --------------------------------------------------------------------

    async def visibility(self, room_id: str) -> str:
        is_public = await self.db.run(
            lambda conn: directory_store.get_room_visibility(conn, room_id)
        )
        if is_public is None:
            raise not_found("Room not found")
        return "public" if is_public else "private"

    async def set_visibility(self, requester: Requester, room_id: str, visibility: str) -> None:
        """Publish or unpublish: room admins (power to set the canonical alias), the
        creators, and server admins."""
        async def run(conn: asyncpg.Connection) -> None:
            if await directory_store.get_room_visibility(conn, room_id) is None:
                raise not_found("Room not found")
            if not requester.is_admin and not await is_room_admin(
                conn, self.engine, room_id, requester.user_id
            ):
                raise forbidden(
                    "Only room admins (joined, with the power to change the canonical alias) "
                    "may change the room's visibility in the directory"
                )
            await directory_store.set_room_visibility(conn, room_id, visibility == "public")

        await self.db.transaction(run, name="room_visibility")

    async def set_network_visibility(
        self, appservice_id: str, network_id: str, room_id: str, visibility: str
    ) -> None:
        """An application service lists a room in one of its networks' directories, or takes it
        out. Any room this server knows may be listed, as in Synapse: the service answers for
        its networks the way a room admin answers for the server's own directory."""
        async def run(conn: asyncpg.Connection) -> None:
            if await directory_store.get_room_visibility(conn, room_id) is None:
                raise not_found("Room not found")
            change = (
                appservice_room_list.insert_listed_room if visibility == "public"
                else appservice_room_list.delete_listed_room
            )
            await change(conn, appservice_id, network_id, room_id)

        await self.db.transaction(run, name="appservice_room_list")

    # ---- listings ---------------------------------------------------------------------------

    async def public_rooms(self, query: PublicRoomsQuery) -> dict[str, Any]:
        """A page of the published room directory (spec `PublishedRoomsResponse`)."""
        offset = _offset(query.since) if query.since is not None else 0
        listing = self._listing(query)
        types = query.room_types
        term = query.search_term.strip() if query.search_term else ""
        rows = await self.db.run(lambda conn: directory_store.get_public_rooms(
            conn,
            pattern=directory_store.like_pattern(term) if term else None,
            room_types=[t for t in types if t is not None] if types is not None else None,
            include_untyped=types is not None and None in types,
            limit=query.limit, offset=offset, listing=listing,
        ))
        total = rows[0]["total"] if rows else 0
        body: dict[str, Any] = {
            "chunk": [room_chunk(r["room_id"], r["joined"], r["state"]) for r in rows],
            "total_room_count_estimate": total if rows else offset,
        }
        if rows and offset + len(rows) < total:
            body["next_batch"] = f"o{offset + len(rows)}"
        if offset > 0:
            body["prev_batch"] = f"o{max(0, offset - query.limit)}"
        return body

    async def server_public_rooms(
        self, requester: Requester, server: str, query: PublicRoomsQuery
    ) -> dict[str, Any]:
        """A page of another server's directory (`?server=`), asked over federation within
        REMOTE_TIMEOUT_S unless asked lately (`RemoteDirectoryPages`). The user pays for the
        server as for any other they make this server contact (`ServerLimits`)."""
        _check_networks(query)
        await self.server_limits.admit(requester.user_id, [server])
        page = self.remote_pages.get(server, query)
        if page is not None:
            return page
        try:
            async with asyncio.timeout(REMOTE_TIMEOUT_S):
                page = await self.remote.public_rooms(server, query)
        except TimeoutError:
            raise MatrixError(
                504, "M_UNKNOWN", f"{server} did not answer with its room directory in time"
            ) from None
        self.remote_pages.put(server, query, page)
        return page

    def _listing(self, query: PublicRoomsQuery) -> directory_store.Listing:
        """The directory the query names: one network's, every network's too, or the server's.
        Registered services only make up "all networks": a removed bridge's rooms drop out."""
        _check_networks(query)
        instance = query.third_party_instance_id
        if instance is not None:
            return directory_store.Listing(network=parse_instance_id(instance))
        if query.include_all_networks:
            return directory_store.Listing(all_networks_of=tuple(s.id for s in self.appservices))
        return directory_store.OWN_DIRECTORY

    async def search_users(self, requester: Requester, term: str, limit: int) -> dict[str, Any]:
        """Spec `/user_directory/search`: at most `limit` results and whether there were more."""
        rows = await self.db.run(
            lambda conn: directory_store.search_users(conn, requester.user_id, term, limit + 1)
        )
        results = []
        for row in rows[:limit]:
            result = {"user_id": row["user_id"]}
            if row["displayname"] is not None:
                result["display_name"] = row["displayname"]
            if row["avatar_url"] is not None:
                result["avatar_url"] = row["avatar_url"]
            results.append(result)
        return {"results": results, "limited": len(rows) > limit}

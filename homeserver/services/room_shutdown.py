"""Deleting a room (Synapse's admin "Delete Room" API): shut it down, then purge it.

Theory of operation. A deletion is a task with an opaque `delete_id`, run in the background
(v2) or awaited (v1); at most one runs per room. Its status moves scheduled -> active ->
complete or failed, and is kept in memory for a day after it ends (as Synapse: also until a
restart). The shutdown, in order:

1. block the room when asked (first, so nobody of ours joins it again meanwhile);
2. with `new_room_user_id`: create a public room named `room_name` as that user, in which
   everyone else gets power level -10, and post `message` there;
3. unpublish the room from the directory; every local user joined, invited or knocking leaves
   it themselves (their own leave, as Synapse sends), forgets it, and joins the new room;
4. move the room's local aliases to the new room, or delete them when there is none.

The purge (`purge`, the default) then waits a short while for other servers and application
services to be sent the leaves, refuses while a local user is still joined (unless
`force_purge`), and deletes every row of the room in one transaction (`storage.room_purge`)
before the caches forget it: afterwards the server answers as for a room it never saw.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from homeserver.errors import MatrixError, invalid_param, not_found
from homeserver.protocol import identifiers
from homeserver.services.clock import Clock
from homeserver.services.requester import NO_DEVICE, Requester
from homeserver.services.room_operations import RoomsService
from homeserver.services.rooms.cache import RoomCache
from storage import admin_rooms as admin_store
from storage import blocked_rooms, room_purge
from storage import directory as directory_store
from storage import rooms as rooms_store
from storage.database import Database

log = logging.getLogger(__name__)

DEFAULT_ROOM_NAME = "Content Violation Notification"
DEFAULT_MESSAGE = (
    "Sharing illegal content on this server is not permitted and rooms in violation will be "
    "blocked."
)
KEEP_STATUS_MS = 24 * 3600 * 1000
# How long a purge waits for the room's queued events (the users' leaves) to reach other
# servers and application services before it deletes them anyway.
UNSENT_WAIT_S = 30.0
UNSENT_POLL_S = 0.5


@dataclass(frozen=True, slots=True)
class DeleteRequest:
    """The body of a deletion, as Synapse's docs define it."""

    new_room_user_id: str | None = None
    room_name: str = DEFAULT_ROOM_NAME
    message: str = DEFAULT_MESSAGE
    block: bool = False
    purge: bool = True
    force_purge: bool = False


@dataclass(slots=True)
class DeleteTask:
    delete_id: str
    room_id: str
    status: str = "scheduled"
    error: str | None = None
    ended_ms: int | None = None
    kicked_users: list[str] = field(default_factory=list)
    failed_to_kick_users: list[str] = field(default_factory=list)
    local_aliases: list[str] = field(default_factory=list)
    new_room_id: str | None = None

    def shutdown_result(self) -> dict[str, Any]:
        return {
            "kicked_users": self.kicked_users, "failed_to_kick_users": self.failed_to_kick_users,
            "local_aliases": self.local_aliases, "new_room_id": self.new_room_id,
        }

    def to_json(self) -> dict[str, Any]:
        body = {
            "delete_id": self.delete_id, "room_id": self.room_id, "status": self.status,
            "shutdown_room": self.shutdown_result(),
        }
        if self.error is not None:
            body["error"] = self.error
        return body


class RoomShutdown:
    def __init__(
        self, db: Database, engine: RoomCache, rooms: RoomsService, clock: Clock
    ) -> None:
        self.db = db
        self.engine = engine
        self.rooms = rooms
        self.clock = clock
        self.server_name = rooms.server_name
        self._tasks: dict[str, DeleteTask] = {}  # delete_id -> its task
        self._running: dict[str, asyncio.Task[None]] = {}  # room_id -> its deletion

    def check(self, request: DeleteRequest) -> None:
        """400 for a `new_room_user_id` that is not a local user ID."""
        user = request.new_room_user_id
        if user is not None and not (
            identifiers.is_valid_user_id(user)
            and identifiers.server_name_of(user) == self.server_name
        ):
            raise invalid_param("new_room_user_id must be a user ID of this server")

    async def _known(self, room_id: str) -> bool:
        return await self.db.run(lambda c: rooms_store.get_room_version(c, room_id)) is not None

    def _new_task(self, room_id: str) -> DeleteTask:
        if room_id in self._running:
            raise MatrixError(400, "M_UNKNOWN", f"A deletion of {room_id} is already running")
        now = self.clock.now_ms()
        for delete_id, old in list(self._tasks.items()):
            if old.ended_ms is not None and now - old.ended_ms > KEEP_STATUS_MS:
                del self._tasks[delete_id]
        task = DeleteTask(secrets.token_urlsafe(12), room_id)
        self._tasks[task.delete_id] = task
        return task

    async def start(self, admin: Requester, room_id: str, request: DeleteRequest) -> str:
        """Begin deleting a room in the background (v2); its delete_id."""
        self.check(request)
        if not await self._known(room_id):
            raise not_found(f"Unknown room {room_id}")
        task = self._new_task(room_id)
        self._running[room_id] = asyncio.create_task(self._run(task, admin, request))
        return task.delete_id

    async def delete_now(
        self, admin: Requester, room_id: str, request: DeleteRequest
    ) -> dict[str, Any]:
        """Delete a room and answer when done (v1). A room this server does not know may be
        blocked ahead; deleting it otherwise is a bad request (Synapse's docs)."""
        self.check(request)
        if not await self._known(room_id):
            if not request.block:
                raise MatrixError(400, "M_UNKNOWN", f"Unknown room {room_id}")
            now = self.clock.now_ms()
            await self.db.run(
                lambda c: blocked_rooms.insert_block(c, room_id, admin.user_id, now)
            )
            return DeleteTask("", room_id).shutdown_result()
        task = self._new_task(room_id)
        running = asyncio.create_task(self._run(task, admin, request))
        self._running[room_id] = running
        await asyncio.shield(running)
        if task.status == "failed":
            raise MatrixError(400, "M_UNKNOWN", task.error or "The deletion failed")
        return task.shutdown_result()

    def status(self, delete_id: str) -> dict[str, Any]:
        task = self._tasks.get(delete_id)
        if task is None:
            raise not_found(f"No deletion with ID {delete_id}")
        return task.to_json()

    def statuses(self, room_id: str) -> list[dict[str, Any]]:
        found = [t.to_json() for t in self._tasks.values() if t.room_id == room_id]
        if not found:
            raise not_found(f"No deletion of {room_id}")
        return found

    async def close(self) -> None:
        """Stop the deletions still running (the server is stopping)."""
        running = list(self._running.values())
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)

    async def _run(self, task: DeleteTask, admin: Requester, request: DeleteRequest) -> None:
        task.status = "active"
        try:
            await self._shutdown(task, admin, request)
            if request.purge:
                await self._purge(task.room_id, request.force_purge)
            task.status = "complete"
        except asyncio.CancelledError:
            task.status, task.error = "failed", "The server stopped during the deletion"
            raise
        except MatrixError as e:
            task.status, task.error = "failed", e.error
        except Exception as e:
            log.exception("deleting room %s failed", task.room_id)
            task.status, task.error = "failed", str(e) or type(e).__name__
        finally:
            task.ended_ms = self.clock.now_ms()
            del self._running[task.room_id]
        log.info("deleting room %s: %s", task.room_id, task.status)

    async def _shutdown(self, task: DeleteTask, admin: Requester, request: DeleteRequest) -> None:
        room_id = task.room_id
        if request.block:
            now = self.clock.now_ms()
            await self.db.run(
                lambda c: blocked_rooms.insert_block(c, room_id, admin.user_id, now)
            )
        if request.new_room_user_id is not None:
            task.new_room_id = await self._new_room(request)
        await self.db.run(lambda c: directory_store.set_room_visibility(c, room_id, False))
        local = await self.db.run(lambda c: admin_store.get_local_members(
            c, room_id, ":" + self.server_name, ["join", "invite", "knock"]
        ))
        for row in local:
            user = Requester(row["user_id"], NO_DEVICE)
            try:
                await self.rooms.set_membership(user, room_id, user.user_id, "leave", None)
            except MatrixError as e:
                log.warning("room %s: could not remove %s: %s", room_id, user.user_id, e)
                task.failed_to_kick_users.append(user.user_id)
                continue
            task.kicked_users.append(user.user_id)
            await self._resettle(user, room_id, task.new_room_id, row["membership"] == "join")
        task.local_aliases = await self.db.transaction(
            lambda c: self._move_aliases(c, room_id, task.new_room_id), name="shutdown_aliases"
        )
        self.rooms.aliases_changed(room_id)
        if task.new_room_id is not None:
            self.rooms.aliases_changed(task.new_room_id)

    async def _resettle(
        self, user: Requester, room_id: str, new_room_id: str | None, was_joined: bool
    ) -> None:
        """After a user left the room: forget it for them, and join them to the new room if
        they were joined (a failure here leaves them out of it, and is only logged)."""
        try:
            await self.rooms.forget(user, room_id)
            if new_room_id is not None and was_joined:
                await self.rooms.join(user, new_room_id, {})
        except MatrixError as e:
            log.warning("room %s: could not move %s: %s", room_id, user.user_id, e)

    async def _new_room(self, request: DeleteRequest) -> str:
        """The room the users move to, with the message that says why."""
        assert request.new_room_user_id is not None
        owner = request.new_room_user_id
        room_id = await self.rooms.creation.create_room(owner, {
            "preset": "public_chat", "name": request.room_name,
            "power_level_content_override": {"users_default": -10},
        })
        await self.rooms.local.send(
            room_id, owner, "m.room.message", {"msgtype": "m.text", "body": request.message}
        )
        return room_id

    async def _move_aliases(
        self, conn: asyncpg.Connection, room_id: str, new_room_id: str | None
    ) -> list[str]:
        if new_room_id is not None:
            return await rooms_store.move_aliases(conn, room_id, new_room_id)
        aliases = await rooms_store.get_aliases_for_room(conn, room_id)
        for alias in aliases:
            await rooms_store.delete_alias(conn, alias)
        return aliases

    async def _purge(self, room_id: str, force: bool) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + UNSENT_WAIT_S
        while await self.db.run(lambda c: room_purge.count_unsent(c, room_id)):
            if loop.time() > deadline:
                log.warning("purging %s with events still unsent to other servers", room_id)
                break
            await asyncio.sleep(UNSENT_POLL_S)
        local = ":" + self.server_name

        async def purge(conn: asyncpg.Connection) -> list[str]:
            if not await rooms_store.lock_room(conn, room_id):
                return []  # purged already
            joined = await admin_store.get_local_members(conn, room_id, local, ["join"])
            if joined and not force:
                raise MatrixError(400, "M_UNKNOWN", "Local users are still joined to the room")
            event_ids = await room_purge.get_event_ids(conn, room_id)
            await room_purge.purge_room(conn, room_id)
            return event_ids

        event_ids = await self.db.transaction(purge, name="purge_room")
        self.engine.forget_room(room_id, event_ids)
        log.info("purged room %s (%d events)", room_id, len(event_ids))

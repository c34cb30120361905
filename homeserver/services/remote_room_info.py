"""`RemoteRoomInfo`: the seam through which room services ask another server about a room this
server holds none (or not enough) of: its space hierarchy (`GET /hierarchy/{roomId}`), the
event nearest a timestamp (`GET /timestamp_to_event/{roomId}`) and that event itself.

`homeserver/app.py` hands the federation implementation (`federation/room_info.py`) to the
services when a federation listener is configured, `NoRemoteRoomInfo` otherwise. Each method
asks the one server it names and returns that server's answer, checked for shape; a server that
cannot be reached, refuses or answers garbage raises a MatrixError, so the caller tries the next.
"""

from __future__ import annotations

from typing import Any, Protocol

from homeserver.errors import federation_unavailable


class RemoteRoomInfo(Protocol):
    async def hierarchy(
        self, server_name: str, room_id: str, suggested_only: bool
    ) -> dict[str, Any]:
        """The server's {room, children, inaccessible_children} of a space (its `room` is of
        ``room_id``; summaries not yet cut down, see `protocol/room_previews.py`)."""
        ...

    async def timestamp_to_event(
        self, server_name: str, room_id: str, ts: int, direction: str
    ) -> dict[str, Any]:
        """The server's {event_id, origin_server_ts} nearest ``ts`` in ``direction``."""
        ...

    async def fetch_event(self, server_name: str, room_id: str, event_id: str) -> None:
        """Fetch one event of a room this server holds from the server, and store it (checked
        like any received event) so that clients can read it and around it."""
        ...


class NoRemoteRoomInfo:
    """A server without federation knows other servers' rooms only from its own database."""

    async def hierarchy(
        self, server_name: str, room_id: str, suggested_only: bool
    ) -> dict[str, Any]:
        raise federation_unavailable()

    async def timestamp_to_event(
        self, server_name: str, room_id: str, ts: int, direction: str
    ) -> dict[str, Any]:
        raise federation_unavailable()

    async def fetch_event(self, server_name: str, room_id: str, event_id: str) -> None:
        raise federation_unavailable()

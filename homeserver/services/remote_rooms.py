"""The seam through which the client API's room services reach rooms that live on other
servers; `federation/joins.py` implements it and `app.py` plugs it in."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol


class RemoteRooms(Protocol):
    async def join_remote(
        self, room_id: str, user_id: str, content: Mapping[str, Any], servers: Sequence[str]
    ) -> None:
        """Join through the first of `servers` that lets us; MatrixError otherwise."""
        ...

    async def invite_remote(
        self, room_id: str, inviter: str, invitee: str, content: Mapping[str, Any]
    ) -> None:
        """Invite a user of another server (their server countersigns it first)."""
        ...

    async def leave_remote(self, room_id: str, user_id: str, servers: Sequence[str]) -> None:
        """Leave (reject an invite to) a room this server is not in, through `servers`; an
        invite or knock none of them helps with is rejected here alone."""
        ...

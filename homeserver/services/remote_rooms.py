"""The seam through which the client API's room services reach rooms that live on other
servers; `federation/joins.py` implements it, `NoRemoteRooms` stands in without federation."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from homeserver.errors import federation_unavailable


class RemoteRooms(Protocol):
    # False without federation: a room this server is not in is joined, and a user of another
    # server invited, by a plain event of this server, as for any other room.
    federates: bool

    async def join_remote(
        self, room_id: str, user_id: str, content: Mapping[str, Any], servers: Sequence[str]
    ) -> None:
        """Join through the first of `servers` that lets us; MatrixError otherwise."""
        ...

    async def knock_remote(
        self, room_id: str, user_id: str, content: Mapping[str, Any], servers: Sequence[str]
    ) -> None:
        """Knock through the first of `servers` that takes it; MatrixError otherwise."""
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


class NoRemoteRooms:
    """A server without federation, whose room services never take the remote paths."""

    federates = False

    async def join_remote(
        self, room_id: str, user_id: str, content: Mapping[str, Any], servers: Sequence[str]
    ) -> None:
        raise federation_unavailable()

    async def knock_remote(
        self, room_id: str, user_id: str, content: Mapping[str, Any], servers: Sequence[str]
    ) -> None:
        raise federation_unavailable()

    async def invite_remote(
        self, room_id: str, inviter: str, invitee: str, content: Mapping[str, Any]
    ) -> None:
        raise federation_unavailable()

    async def leave_remote(self, room_id: str, user_id: str, servers: Sequence[str]) -> None:
        raise federation_unavailable()

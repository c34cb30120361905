"""Answers to the federation query API about this server's users (`query/profile`).

server-server-api.md "Querying for information": peers ask only about users of the receiving
server, so a user ID of another server is a bad request, not an unknown user.
"""

from __future__ import annotations

from typing import Any, Protocol

from homeserver.errors import MatrixError, invalid_param, not_found
from homeserver.protocol.identifiers import parse_user_id


class ProfileSource(Protocol):
    """Local profiles: the client API's accounts service fits."""

    async def get_profile(self, user_id: str) -> dict[str, Any]:
        """The fields that are set; MatrixError 404 for an unknown user."""
        ...


class FederationQueries:
    def __init__(self, server_name: str, profiles: ProfileSource) -> None:
        self.server_name = server_name
        self.profiles = profiles

    async def profile(self, user_id: str, field: str | None) -> dict[str, Any]:
        """The public profile of a local user, or only ``field`` of it (404 if it is unset)."""
        try:
            _, server = parse_user_id(user_id)
        except ValueError:
            raise invalid_param(f"{user_id!r} is not a user ID") from None
        if server != self.server_name:
            raise MatrixError(
                400, "M_INVALID_PARAM", f"{user_id} is not a user of this server"
            )
        profile = await self.profiles.get_profile(user_id)
        if field is None:
            return profile
        if field not in profile:
            raise not_found(f"The user has no {field!r} in their profile")
        return {field: profile[field]}

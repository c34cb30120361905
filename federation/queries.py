"""Answers to the federation query API about this server's users and aliases
(`query/profile`, `query/directory`).

server-server-api.md "Querying for information": peers ask only about users and aliases of the
receiving server, so an identifier of another server is a bad request, not an unknown one.
"""

from __future__ import annotations

from typing import Any, Protocol

from homeserver.errors import MatrixError, invalid_param, not_found
from homeserver.protocol.identifiers import is_valid_room_alias, parse_user_id, server_name_of


class ProfileSource(Protocol):
    """Local profiles: the profile service (homeserver/services/profiles.py) fits."""

    async def get_profile(self, user_id: str) -> dict[str, Any]:
        """The fields that are set; MatrixError 404 for an unknown user."""
        ...


class AliasSource(Protocol):
    """Local aliases: the client API's rooms service fits."""

    async def local_alias(self, alias: str) -> dict[str, Any]:
        """{room_id, servers} of an alias of this server; MatrixError 404 when unknown."""
        ...


class FederationQueries:
    def __init__(self, server_name: str, profiles: ProfileSource, aliases: AliasSource) -> None:
        self.server_name = server_name
        self.profiles = profiles
        self.aliases = aliases

    async def room_alias(self, alias: str) -> dict[str, Any]:
        """The room ID of a local alias and the servers likely to hold the room."""
        if not is_valid_room_alias(alias):
            raise invalid_param(f"{alias!r} is not a room alias")
        if server_name_of(alias) != self.server_name:
            raise invalid_param(f"{alias} is not an alias of this server")
        return await self.aliases.local_alias(alias)

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

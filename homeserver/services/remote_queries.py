"""`RemoteQueries`: the seam through which client-API services ask another homeserver.

The services that answer about users, aliases and directories (keys, profiles, the room
directory) know
only this interface, so they never import `federation/`; `homeserver/app.py` hands them the
federation implementation when a federation listener is configured, and `NoRemoteQueries`
otherwise. Every method asks the server named by its arguments and returns that server's
answer, already checked for shape; when the server cannot be reached or answers an error, it
raises a MatrixError the service may pass on to the client (404 for an unknown user or
alias, 502 for a server that failed).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol, TypeVar

from homeserver.errors import MatrixError, federation_unavailable, not_found
from homeserver.protocol.public_rooms import PublicRoomsQuery

T = TypeVar("T")


class RemoteQueries(Protocol):
    async def query_keys(
        self, server_name: str, device_keys: dict[str, list[str]]
    ) -> dict[str, Any]:
        """`user/keys/query`: {device_keys, master_keys, self_signing_keys} of the server's
        users among ``device_keys`` (user ID -> device IDs, empty for all)."""
        ...

    async def claim_keys(
        self, server_name: str, one_time_keys: dict[str, dict[str, str]]
    ) -> dict[str, Any]:
        """`user/keys/claim`: user -> device -> {"<algorithm>:<key_id>": key}."""
        ...

    async def profile(self, user_id: str) -> dict[str, Any]:
        """`query/profile`: the whole public profile of a user of another server."""
        ...

    async def room_alias(self, alias: str) -> dict[str, Any]:
        """`query/directory`: {room_id, servers} of an alias of another server."""
        ...

    async def public_rooms(self, server_name: str, query: PublicRoomsQuery) -> dict[str, Any]:
        """`publicRooms`: a page of the server's published room directory (spec
        `PublishedRoomsResponse`, at most `query.limit` rooms)."""
        ...


class NoRemoteQueries:
    """A server without federation answers for other servers what it would find of them in
    its own database: their users' keys fail, their profiles and aliases are unknown."""

    async def query_keys(
        self, server_name: str, device_keys: dict[str, list[str]]
    ) -> dict[str, Any]:
        raise federation_unavailable()

    async def claim_keys(
        self, server_name: str, one_time_keys: dict[str, dict[str, str]]
    ) -> dict[str, Any]:
        raise federation_unavailable()

    async def profile(self, user_id: str) -> dict[str, Any]:
        raise not_found("Profile not found")

    async def room_alias(self, alias: str) -> dict[str, Any]:
        raise not_found(f"Room alias {alias} not found")

    async def public_rooms(self, server_name: str, query: PublicRoomsQuery) -> dict[str, Any]:
        raise federation_unavailable()


async def ask_each(
    remote: RemoteQueries, users_by_server: Mapping[str, list[str]],
    ask: Callable[[RemoteQueries, str, list[str]], Awaitable[T]], timeout_s: float,
) -> tuple[dict[str, T], dict[str, dict[str, Any]]]:
    """Ask every server about its users at once, each for at most ``timeout_s``.

    Returns (answer per server, failure per server): the spec's `failures` of /keys/query
    and /keys/claim, so that one slow or broken server delays nobody else's keys.
    """
    async def one(server: str, users: list[str]) -> tuple[T | None, dict[str, Any] | None]:
        try:
            async with asyncio.timeout(timeout_s):
                return await ask(remote, server, users), None
        except TimeoutError:
            return None, {"errcode": "M_UNKNOWN", "error": f"{server} did not answer in time"}
        except MatrixError as e:
            return None, e.to_json()

    servers = list(users_by_server)
    results = await asyncio.gather(*(one(s, users_by_server[s]) for s in servers))
    answers: dict[str, T] = {}
    failures: dict[str, dict[str, Any]] = {}
    for server, (answer, failure) in zip(servers, results, strict=True):
        if failure is not None:
            failures[server] = failure
        elif answer is not None:
            answers[server] = answer
    return answers, failures

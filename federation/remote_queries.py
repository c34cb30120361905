"""Asks other homeservers what a local client wants to know about their users and aliases:
the federation side of `homeserver.services.remote_queries.RemoteQueries` (`user/keys/query`,
`user/keys/claim`, `query/profile`, `query/directory`, `publicRooms`).

A peer's answer is checked before a client sees it: only the shapes the spec gives, and only
what the peer was asked about its own users (a server cannot speak for another server's users'
keys, nor for devices nobody asked for). Failures become MatrixErrors: a peer's 403 and 404 are
passed on (the user or alias is unknown there, or it will not say); a peer that cannot be
reached, fails or answers garbage is a 502.
"""

from __future__ import annotations

from typing import Any

from federation.client import FederationClient, HttpResponseError
from federation.transport import DEFAULT_MAX_RESPONSE_BYTES, FederationError
from homeserver.errors import MatrixError
from homeserver.protocol.identifiers import is_valid_room_id, is_valid_server_name, server_name_of
from homeserver.protocol.public_rooms import (
    PublicRoomsQuery,
    clean_remote_page,
    federation_query,
)

PREFIX = "/_matrix/federation/v1"
# A peer's refusals a client can act on; anything else it answers is the peer failing.
PASSED_ON = (403, 404)
# A directory page of the largest limit a client may ask (500 rooms) is well under this.
MAX_DIRECTORY_BYTES = 4 * 1024 * 1024


def peer_failed(error: str) -> MatrixError:
    return MatrixError(502, "M_UNKNOWN", error)


async def ask_peer(
    client: FederationClient, method: str, server_name: str, path: str, *,
    query: dict[str, str] | None = None, content: Any = None,
    max_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
) -> dict[str, Any]:
    """The peer's JSON object answer to a request under `PREFIX`, or the MatrixError a client
    gets instead: the peer's own refusal (`PASSED_ON`, with its errcode), else a 502."""
    try:
        answer = await client.request(
            method, server_name, PREFIX + path, query=query, content=content,
            max_bytes=max_bytes,
        )
    except HttpResponseError as e:
        if e.status in PASSED_ON and e.errcode is not None:
            error = e.body.get("error")
            raise MatrixError(
                e.status, e.errcode, error if isinstance(error, str) else str(e)
            ) from None
        raise peer_failed(str(e)) from None
    except FederationError as e:
        raise peer_failed(f"{server_name} cannot be reached: {e}") from None
    if not isinstance(answer, dict):
        raise peer_failed(f"{server_name} answered {path} with something not an object")
    return answer


def _asked_users(answer: Any, asked: set[str]) -> dict[str, dict[str, Any]]:
    """The user -> object entries of a peer's map that are about users it was asked about."""
    if not isinstance(answer, dict):
        return {}
    return {u: v for u, v in answer.items() if u in asked and isinstance(v, dict)}


def _device_keys(answer: Any, wanted: dict[str, list[str]]) -> dict[str, dict[str, Any]]:
    """Device keys that say they are the device they are filed under, of asked devices."""
    keys: dict[str, dict[str, Any]] = {}
    for user_id, devices in _asked_users(answer, set(wanted)).items():
        keys[user_id] = {
            device_id: device for device_id, device in devices.items()
            if isinstance(device, dict) and device.get("user_id") == user_id
            and device.get("device_id") == device_id
            and (not wanted[user_id] or device_id in wanted[user_id])
        }
    return keys


def _cross_signing_keys(answer: Any, asked: set[str]) -> dict[str, dict[str, Any]]:
    return {
        user_id: key for user_id, key in _asked_users(answer, asked).items()
        if key.get("user_id") == user_id
    }


def _claimed_keys(answer: Any, wanted: dict[str, dict[str, str]]) -> dict[str, dict[str, Any]]:
    claimed: dict[str, dict[str, Any]] = {}
    for user_id, devices in _asked_users(answer, set(wanted)).items():
        kept = {
            device_id: keys for device_id, keys in devices.items()
            if device_id in wanted[user_id] and isinstance(keys, dict)
        }
        if kept:
            claimed[user_id] = kept
    return claimed


class FederationRemoteQueries:
    def __init__(self, client: FederationClient) -> None:
        self.client = client

    async def _ask(
        self, method: str, server_name: str, path: str, *,
        query: dict[str, str] | None = None, content: Any = None,
        max_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
    ) -> dict[str, Any]:
        return await ask_peer(self.client, method, server_name, path, query=query,
                              content=content, max_bytes=max_bytes)

    async def query_keys(
        self, server_name: str, device_keys: dict[str, list[str]]
    ) -> dict[str, Any]:
        answer = await self._ask(
            "POST", server_name, "/user/keys/query", content={"device_keys": device_keys}
        )
        asked = set(device_keys)
        return {
            "device_keys": _device_keys(answer.get("device_keys"), device_keys),
            "master_keys": _cross_signing_keys(answer.get("master_keys"), asked),
            "self_signing_keys": _cross_signing_keys(answer.get("self_signing_keys"), asked),
        }

    async def claim_keys(
        self, server_name: str, one_time_keys: dict[str, dict[str, str]]
    ) -> dict[str, Any]:
        answer = await self._ask(
            "POST", server_name, "/user/keys/claim", content={"one_time_keys": one_time_keys}
        )
        return _claimed_keys(answer.get("one_time_keys"), one_time_keys)

    async def profile(self, user_id: str) -> dict[str, Any]:
        server_name = server_name_of(user_id)
        return await self._ask("GET", server_name, "/query/profile", query={"user_id": user_id})

    async def room_alias(self, alias: str) -> dict[str, Any]:
        server_name = server_name_of(alias)
        answer = await self._ask(
            "GET", server_name, "/query/directory", query={"room_alias": alias}
        )
        room_id, servers = answer.get("room_id"), answer.get("servers")
        if not isinstance(room_id, str) or not is_valid_room_id(room_id) \
                or not isinstance(servers, list):
            raise peer_failed(f"{server_name} answered query/directory without a room")
        return {
            "room_id": room_id,
            "servers": [s for s in servers if isinstance(s, str) and is_valid_server_name(s)],
        }

    async def public_rooms(self, server_name: str, query: PublicRoomsQuery) -> dict[str, Any]:
        asked = federation_query(query)
        answer = await self._ask(
            "GET" if asked.body is None else "POST", server_name, "/publicRooms",
            query=asked.params, content=asked.body, max_bytes=MAX_DIRECTORY_BYTES,
        )
        page = clean_remote_page(answer, query.limit)
        if page is None:
            raise peer_failed(f"{server_name} answered publicRooms without a chunk of rooms")
        return page

"""`GET /_matrix/client/v1/mutual_rooms` (spec v1.19): the rooms two users are both joined to,
validated against the spec's OpenAPI."""

from __future__ import annotations

from typing import Any

import pytest

from tests.helpers import MatrixApi, validate_response

pytestmark = pytest.mark.usefixtures("no_server_errors")

PATH = "/_matrix/client/v1/mutual_rooms"


async def test_rooms_both_users_are_joined_to(api: MatrixApi) -> None:
    alice = await api.register("alice")
    bob = await api.register("bob")
    shared = sorted([await api.create_room(alice, preset="public_chat") for _ in range(2)])
    for room_id in shared:
        await api.join(bob, room_id)
    await api.create_room(alice)  # bob is not in it
    invited = await api.create_room(alice)
    await api.invite(alice, invited, bob)  # invited is not joined
    left = await api.create_room(alice, preset="public_chat")
    await api.join(bob, left)
    await api.ok("POST", f"rooms/{left}/leave", json={}, token=bob.token)

    body = await api.ok("GET", PATH, params={"user_id": bob.user_id}, token=alice.token)
    validate_response("mutual_rooms.yaml", "/mutual_rooms", "get", 200, body)
    assert body == {"joined": shared, "count": 2}
    # A user who doesn't exist shares nothing.
    body = await api.ok("GET", PATH, params={"user_id": "@ghost:localhost"}, token=alice.token)
    assert body == {"joined": [], "count": 0}


@pytest.mark.parametrize(
    ("params", "errcode"),
    [
        ({}, "M_MISSING_PARAM"),
        ({"user_id": "not-a-user"}, "M_INVALID_PARAM"),
        ({"user_id": "@alice:localhost"}, "M_INVALID_PARAM"),  # the requester's own
        ({"user_id": "@bob:localhost", "from": "anything"}, "M_INVALID_PARAM"),
    ],
)
async def test_bad_queries(api: MatrixApi, params: dict[str, Any], errcode: str) -> None:
    alice = await api.register("alice")
    status, error = await api.request("GET", PATH, params=params, token=alice.token)
    assert (status, error["errcode"]) == (400, errcode)
    validate_response("mutual_rooms.yaml", "/mutual_rooms", "get", 400, error)

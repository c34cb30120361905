"""Reporting content against a running server: reports are stored for the administrators,
event reports need the reporter in the room now, room and user reports reveal nothing of
whether their target exists, and reports have a rate limit of their own."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest

from tests.conftest import MakeServer, RunningServer
from tests.helpers import MatrixApi, validate_response

pytestmark = pytest.mark.usefixtures("no_server_errors")

EVENT = "/rooms/{roomId}/report/{eventId}"
ROOM = "/rooms/{roomId}/report"
USER = "/users/{userId}/report"


async def stored(server: RunningServer) -> list[dict[str, Any]]:
    """The reports the administrators would find, oldest first, without their stamps."""
    assert server.hs.db is not None
    rows = await server.hs.db.run(lambda conn: conn.fetch(
        "SELECT reporter, kind, room_id, event_id, target_user, reason FROM reports ORDER BY id"
    ))
    return [dict(r) for r in rows]


async def test_reports_are_stored_for_the_administrators(
    api: MatrixApi, homeserver: RunningServer
) -> None:
    alice = await api.register("alice")
    bob = await api.register("bob")
    room_id = await api.create_room(bob, preset="public_chat")
    await api.join(alice, room_id)
    event_id = await api.send_message(bob, room_id, "spam")

    body = await api.ok("POST", f"rooms/{quote(room_id)}/report/{quote(event_id)}",
                        json={"reason": "spam"}, token=alice.token)
    validate_response("report_content.yaml", EVENT, "post", 200, body)
    body = await api.ok("POST", f"rooms/{quote(room_id)}/report", json={"reason": "bad room"},
                        token=alice.token)
    validate_response("report_content.yaml", ROOM, "post", 200, body)
    body = await api.ok("POST", f"users/{quote(bob.user_id)}/report",
                        json={"reason": "rude\nand loud"}, token=alice.token)
    validate_response("report_content.yaml", USER, "post", 200, body)

    base = {"reporter": alice.user_id, "room_id": None, "event_id": None, "target_user": None}
    assert await stored(homeserver) == [
        base | {"kind": "event", "room_id": room_id, "event_id": event_id,
                "target_user": bob.user_id, "reason": "spam"},
        base | {"kind": "room", "room_id": room_id, "reason": "bad room"},
        base | {"kind": "user", "target_user": bob.user_id, "reason": "rude\nand loud"},
    ]


async def test_only_a_member_reports_an_event(
    api: MatrixApi, homeserver: RunningServer
) -> None:
    alice = await api.register("alice")
    bob = await api.register("bob")
    room_id = await api.create_room(alice, preset="public_chat")
    await api.join(bob, room_id)
    event_id = await api.send_message(alice, room_id, "seen by bob")
    await api.ok("POST", f"rooms/{quote(room_id)}/leave", json={}, token=bob.token)
    # Bob saw the event while he was in the room, but reports need him there now.
    for path in (f"rooms/{quote(room_id)}/report/{quote(event_id)}",
                 f"rooms/{quote(room_id)}/report/{quote('$nope')}"):
        status, error = await api.request("POST", path, json={"reason": "x"}, token=bob.token)
        assert (status, error["errcode"]) == (404, "M_NOT_FOUND"), path
        validate_response("report_content.yaml", EVENT, "post", 404, error)
    assert await stored(homeserver) == []


async def test_room_and_user_reports_do_not_reveal_existence(
    api: MatrixApi, homeserver: RunningServer
) -> None:
    alice = await api.register("alice")
    bob = await api.register("bob")
    private = await api.create_room(alice, preset="private_chat")
    # Bob is in neither room: the spec forbids restricting room reports to members.
    for room_id in (private, "!unknown:localhost"):
        assert await api.ok("POST", f"rooms/{quote(room_id)}/report", json={"reason": ""},
                            token=bob.token) == {}
    for user_id in (alice.user_id, "@nobody:localhost", "@someone:elsewhere.example"):
        assert await api.ok("POST", f"users/{quote(user_id)}/report", json={"reason": "x"},
                            token=bob.token) == {}
    assert [(r["kind"], r["room_id"] or r["target_user"]) for r in await stored(homeserver)] == [
        ("room", private), ("room", "!unknown:localhost"), ("user", alice.user_id),
        ("user", "@nobody:localhost"), ("user", "@someone:elsewhere.example"),
    ]


@pytest.mark.parametrize(
    ("path", "body", "errcode"),
    [
        ("rooms/!r:localhost/report", {}, "M_MISSING_PARAM"),
        ("users/@u:localhost/report", {"reason": 5}, "M_BAD_JSON"),
        ("users/not-a-user/report", {"reason": "x"}, "M_INVALID_PARAM"),
        ("rooms/not-a-room/report", {"reason": "x"}, "M_INVALID_PARAM"),
        ("rooms/!r:localhost/report", {"reason": "x" * 1001}, "M_INVALID_PARAM"),
        ("rooms/!r:localhost/report/$e", {"score": "high"}, "M_BAD_JSON"),
    ],
)
async def test_bad_reports(api: MatrixApi, path: str, body: Any, errcode: str) -> None:
    alice = await api.register("alice")
    status, error = await api.request("POST", path, json=body, token=alice.token)
    assert (status, error["errcode"]) == (400, errcode)


async def test_reports_have_their_own_rate_limit(make_homeserver: MakeServer, http: Any) -> None:
    server = await make_homeserver({
        "rate_limits.enabled": True,
        "rate_limits.reports": {"per_second": 0.001, "burst": 2},
    })
    api = MatrixApi(server.url, http)
    alice = await api.register("alice")
    for _ in range(2):
        await api.ok("POST", "users/@x:localhost/report", json={"reason": "x"}, token=alice.token)
    status, error = await api.request("POST", "rooms/!r:localhost/report", json={"reason": "x"},
                                      token=alice.token)
    assert (status, error["errcode"]) == (429, "M_LIMIT_EXCEEDED")
    validate_response("report_content.yaml", ROOM, "post", 429, error)
    # Sending messages is another budget.
    room_id = await api.create_room(alice)
    await api.send_message(alice, room_id, "still talking")
    assert len(await stored(server)) == 2

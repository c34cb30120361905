"""Server notices (Synapse's docs/admin_api/server_notices.md and the spec's Server Notices
module): a notice reaches the user in their one notices room, created by the notices user,
which invites them and tags the room `m.server_notice` for them."""

from __future__ import annotations

from typing import Any, NamedTuple

import aiohttp
import pytest

from tests.admin_api import ADMIN, admin_ok, make_admin
from tests.conftest import MakeServer
from tests.helpers import MatrixApi, User

pytestmark = pytest.mark.usefixtures("no_server_errors")

SEND = "/v1/send_server_notice"
NOTICES_USER = "@notices:localhost"


def notice(user: User, text: str, **extra: Any) -> dict[str, Any]:
    return {"user_id": user.user_id, "content": {"msgtype": "m.text", "body": text}, **extra}


class Notices(NamedTuple):
    api: MatrixApi
    admin: User


@pytest.fixture
async def notices(make_homeserver: MakeServer, http: aiohttp.ClientSession) -> Notices:
    """A server whose notices come from @notices, and its admin."""
    server = await make_homeserver({"server_notices.localpart": "notices"})
    api = MatrixApi(server.url, http)
    return Notices(api, await make_admin(server, api))


def texts(room: dict[str, Any]) -> list[str]:
    return [
        e["content"]["body"] for e in room["timeline"]["events"]
        if e["type"] == "m.room.message"
    ]


async def test_a_notice_reaches_the_user(notices: Notices) -> None:
    api, admin = notices
    alice = await api.register("alice")
    sent = await admin_ok(api, admin, "POST", SEND, json=notice(alice, "Maintenance at noon"))
    assert sent["event_id"].startswith("$")

    invited = (await api.sync(alice))["rooms"]["invite"]
    assert len(invited) == 1
    room_id, invite = next(iter(invited.items()))
    members = {
        e["state_key"]: e["content"]["membership"] for e in invite["invite_state"]["events"]
        if e["type"] == "m.room.member"
    }
    assert members[alice.user_id] == "invite" and members[NOTICES_USER] == "join"

    await api.join(alice, room_id)
    joined = (await api.sync(alice))["rooms"]["join"][room_id]
    assert texts(joined) == ["Maintenance at noon"]
    assert [e["sender"] for e in joined["timeline"]["events"] if e["event_id"] == sent["event_id"]
            ] == [NOTICES_USER]
    tags = [e for e in joined["account_data"]["events"] if e["type"] == "m.tag"]
    assert tags and "m.server_notice" in tags[0]["content"]["tags"]

    # Only the notices user may speak there.
    status, body = await api.request(
        "PUT", f"rooms/{room_id}/send/m.room.message/t1",
        json={"msgtype": "m.text", "body": "hi"}, token=alice.token,
    )
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN")

    # The second notice goes to the same room.
    second = await admin_ok(api, admin, "POST", SEND, json=notice(alice, "Done"))
    event = await api.ok("GET", f"rooms/{room_id}/event/{second['event_id']}", token=alice.token)
    assert event["content"]["body"] == "Done"
    assert list((await api.ok("GET", "joined_rooms", token=alice.token))["joined_rooms"]) == [
        room_id
    ]


async def test_the_invitation_cannot_be_rejected_but_the_room_can_be_left(
    notices: Notices,
) -> None:
    api, admin = notices
    bob = await api.register("bob")
    await admin_ok(api, admin, "POST", SEND, json=notice(bob, "one"))
    room_id = next(iter((await api.sync(bob))["rooms"]["invite"]))
    status, body = await api.request("POST", f"rooms/{room_id}/leave", json={}, token=bob.token)
    assert (status, body["errcode"]) == (403, "M_CANNOT_LEAVE_SERVER_NOTICE_ROOM")

    await api.join(bob, room_id)
    await api.ok("POST", f"rooms/{room_id}/leave", json={}, token=bob.token)
    # The next notice invites bob again, to the same room.
    await admin_ok(api, admin, "POST", SEND, json=notice(bob, "two"))
    assert list((await api.sync(bob))["rooms"]["invite"]) == [room_id]
    await api.join(bob, room_id)
    messages = await api.ok(
        "GET", f"rooms/{room_id}/messages", token=bob.token, params={"dir": "b"}
    )
    assert [e["content"]["body"] for e in messages["chunk"] if e["type"] == "m.room.message"
            ] == ["two", "one"]


async def test_a_transaction_id_sends_once(notices: Notices) -> None:
    api, admin = notices
    carol = await api.register("carol")
    path = SEND + "/txn1"
    first = await admin_ok(api, admin, "PUT", path, json=notice(carol, "once"))
    again = await admin_ok(api, admin, "PUT", path, json=notice(carol, "once"))
    assert first == again
    other = await admin_ok(api, admin, "PUT", SEND + "/txn2", json=notice(carol, "once"))
    assert other != first
    room_id = next(iter((await api.sync(carol))["rooms"]["invite"]))
    await api.join(carol, room_id)
    room = (await api.sync(carol))["rooms"]["join"][room_id]
    assert texts(room) == ["once", "once"]


async def test_state_notices_and_types(notices: Notices) -> None:
    api, admin = notices
    dan = await api.register("dan")
    sent = await admin_ok(api, admin, "POST", SEND, json={
        "user_id": dan.user_id, "type": "m.room.topic", "state_key": "",
        "content": {"topic": "Read me"},
    })
    room_id = next(iter((await api.sync(dan))["rooms"]["invite"]))
    await api.join(dan, room_id)
    topic = await api.ok("GET", f"rooms/{room_id}/state/m.room.topic/", token=dan.token)
    assert topic == {"topic": "Read me"}
    event = await api.ok("GET", f"rooms/{room_id}/event/{sent['event_id']}", token=dan.token)
    assert event["state_key"] == ""


async def test_bad_notices_are_refused(notices: Notices) -> None:
    api, admin = notices
    erin = await api.register("erin")
    cases: list[tuple[Any, int, str]] = [
        ({"content": {"body": "x"}}, 400, "M_MISSING_PARAM"),
        ({"user_id": erin.user_id}, 400, "M_MISSING_PARAM"),
        ({"user_id": erin.user_id, "content": "text"}, 400, "M_BAD_JSON"),
        ({"user_id": 5, "content": {}}, 400, "M_BAD_JSON"),
        ({"user_id": erin.user_id, "content": {}, "type": 7}, 400, "M_BAD_JSON"),
        ({"user_id": "not a user", "content": {}}, 400, "M_INVALID_PARAM"),
        ({"user_id": "@someone:elsewhere.example", "content": {}}, 400, "M_UNKNOWN"),
        ({"user_id": "@nobody:localhost", "content": {}}, 404, "M_NOT_FOUND"),
        ({"user_id": erin.user_id, "content": {"membership": "join"}, "type": "m.room.member",
          "state_key": erin.user_id}, 400, "M_INVALID_PARAM"),
    ]
    for body, status, errcode in cases:
        got, error = await api.request("POST", ADMIN + SEND, token=admin.token, json=body)
        assert (got, error["errcode"]) == (status, errcode), body
    assert (await api.sync(erin))["rooms"].get("invite", {}) == {}

    for method, path in (("POST", SEND), ("PUT", SEND + "/t")):
        status, error = await api.request(
            method, ADMIN + path, token=erin.token, json=notice(erin, "self")
        )
        assert (status, error["errcode"]) == (403, "M_FORBIDDEN")


async def test_notices_off(make_homeserver: MakeServer, http: aiohttp.ClientSession) -> None:
    server = await make_homeserver()
    api = MatrixApi(server.url, http)
    admin, frank = await make_admin(server, api), await api.register("frank")
    for method, path in (("POST", SEND), ("PUT", SEND + "/t")):
        status, error = await api.request(
            method, ADMIN + path, token=admin.token, json=notice(frank, "hello")
        )
        assert status == 400 and "not enabled" in error["error"], error

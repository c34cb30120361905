"""Reported events and rooms through the admin API: the list (paged, newest first by default,
filtered by reporter, room and sender) with the room's name and alias, one report with the
reported event, and deleting one; room reports apart from event reports."""

from __future__ import annotations

from typing import Any

import pytest

from tests.admin_api import ADMIN, admin_ok, make_admin
from tests.conftest import RunningServer
from tests.helpers import MatrixApi, User

pytestmark = pytest.mark.usefixtures("no_server_errors")


async def report(api: MatrixApi, user: User, room_id: str, event_id: str, reason: str) -> None:
    await api.ok("POST", f"rooms/{room_id}/report/{event_id}", json={"reason": reason},
                 token=user.token)


async def test_listing_reading_and_deleting_event_reports(
    homeserver: RunningServer, api: MatrixApi
) -> None:
    admin = await make_admin(homeserver, api)
    alice, bob, carol = [await api.register(n) for n in ("alice", "bob", "carol")]
    named = await api.create_room(alice, preset="public_chat", name="Town square",
                                  room_alias_name="square")
    plain = await api.create_room(alice, preset="public_chat")
    for room_id in (named, plain):
        await api.join(bob, room_id)
        await api.join(carol, room_id)
    spam = await api.send_message(alice, named, "buy now")
    rude = await api.send_message(carol, plain, "rude words")
    await report(api, bob, named, spam, "spam")
    await report(api, bob, plain, rude, "rude")
    await report(api, carol, named, spam, "also spam")

    body = await admin_ok(api, admin, "GET", "/v1/event_reports")
    assert body["total"] == 3 and "next_token" not in body
    reports = body["event_reports"]
    assert [r["reason"] for r in reports] == ["also spam", "rude", "spam"]  # newest first
    first = reports[2]
    assert first == {
        "id": first["id"], "received_ts": first["received_ts"], "room_id": named,
        "name": "Town square", "event_id": spam, "user_id": bob.user_id, "reason": "spam",
        "score": None, "sender": alice.user_id, "canonical_alias": "#square:localhost",
    }
    assert reports[1]["name"] is None and reports[1]["canonical_alias"] is None

    oldest = await admin_ok(api, admin, "GET", "/v1/event_reports",
                            params={"dir": "f", "limit": "2"})
    assert [r["reason"] for r in oldest["event_reports"]] == ["spam", "rude"]
    assert (oldest["total"], oldest["next_token"]) == (3, 2)
    rest = await admin_ok(api, admin, "GET", "/v1/event_reports",
                          params={"dir": "f", "limit": "2", "from": "2"})
    assert [r["reason"] for r in rest["event_reports"]] == ["also spam"]
    assert "next_token" not in rest

    async def reasons(**params: str) -> list[str]:
        page = await admin_ok(api, admin, "GET", "/v1/event_reports", params=params)
        assert page["total"] == len(page["event_reports"])
        return [r["reason"] for r in page["event_reports"]]

    assert await reasons(user_id="caro") == ["also spam"]  # matches anywhere in the ID
    assert await reasons(room_id=plain[1:12]) == ["rude"]
    assert await reasons(event_sender_user_id=carol.user_id) == ["rude"]
    assert await reasons(sender_user_id=alice.user_id) == ["also spam", "spam"]
    assert await reasons(user_id="%") == []  # a literal, not a pattern

    one = await admin_ok(api, admin, "GET", f"/v1/event_reports/{first['id']}")
    assert one["event_json"]["content"]["body"] == "buy now"
    assert {k: v for k, v in one.items() if k != "event_json"} == first

    await admin_ok(api, admin, "DELETE", f"/v1/event_reports/{first['id']}")
    assert await reasons() == ["also spam", "rude"]
    status, answer = await api.request("GET", ADMIN + f"/v1/event_reports/{first['id']}",
                                       token=admin.token)
    assert (status, answer["errcode"]) == (404, "M_NOT_FOUND")
    status, answer = await api.request("DELETE", ADMIN + f"/v1/event_reports/{first['id']}",
                                       token=admin.token)
    assert (status, answer["errcode"]) == (404, "M_NOT_FOUND")


async def test_room_reports_and_other_kinds_kept_apart(
    homeserver: RunningServer, api: MatrixApi
) -> None:
    admin = await make_admin(homeserver, api)
    alice, bob = await api.register("alice"), await api.register("bob")
    room_id = await api.create_room(alice, name="Noisy", topic="all day")
    other = await api.create_room(bob)
    await api.ok("POST", f"rooms/{room_id}/report", json={"reason": "noise"}, token=bob.token)
    await api.ok("POST", f"rooms/{other}/report", json={"reason": "mine"}, token=alice.token)
    # A room this server never knew is not listed (as Synapse leaves out purged rooms).
    await api.ok("POST", "rooms/!unknown:elsewhere.example/report", json={"reason": "?"},
                 token=bob.token)
    await api.ok("POST", "users/@x:localhost/report", json={"reason": "user"}, token=alice.token)
    assert await admin_ok(api, admin, "GET", "/v1/event_reports") == {
        "event_reports": [], "total": 0,
    }

    body = await admin_ok(api, admin, "GET", "/v1/room_reports")
    assert body["total"] == 2 and "next_batch" not in body
    mine, noise = body["room_reports"]  # newest first
    assert noise == {
        "id": noise["id"], "received_ts": noise["received_ts"], "room_id": room_id,
        "user_id": bob.user_id, "reason": "noise", "name": "Noisy", "canonical_alias": None,
        "topic": "all day",
    }
    assert mine["room_id"] == other
    page = await admin_ok(api, admin, "GET", "/v1/room_reports", params={"limit": "1"})
    assert page["room_reports"] == [mine] and page["next_batch"] == 1
    page = await admin_ok(api, admin, "GET", "/v1/room_reports",
                          params={"limit": "1", "from": "1"})
    assert page["room_reports"] == [noise] and "next_batch" not in page
    filtered = await admin_ok(api, admin, "GET", "/v1/room_reports",
                              params={"user_id": bob.user_id})
    assert filtered == {"room_reports": [noise], "total": 1}
    assert await admin_ok(api, admin, "GET", f"/v1/room_reports/{noise['id']}") == noise
    # Each kind under its own path only (the user report came two after alice's).
    for path in (f"/v1/event_reports/{noise['id']}", f"/v1/room_reports/{mine['id'] + 2}"):
        status, answer = await api.request("GET", ADMIN + path, token=admin.token)
        assert (status, answer["errcode"]) == (404, "M_NOT_FOUND")


@pytest.mark.parametrize(("method", "path"), [
    ("GET", "/v1/event_reports"), ("GET", "/v1/event_reports/1"),
    ("DELETE", "/v1/event_reports/1"), ("GET", "/v1/room_reports"),
    ("GET", "/v1/room_reports/1"),
])
async def test_only_admins(api: MatrixApi, method: str, path: str) -> None:
    alice = await api.register("alice")
    status, answer = await api.request(method, ADMIN + path, token=alice.token)
    assert (status, answer["errcode"]) == (403, "M_FORBIDDEN")


@pytest.mark.parametrize(("method", "path", "params"), [
    ("GET", "/v1/event_reports", {"limit": "-1"}),
    ("GET", "/v1/event_reports", {"limit": "ten"}),
    ("GET", "/v1/event_reports", {"from": "-5"}),
    ("GET", "/v1/event_reports", {"from": "1.5"}),
    ("GET", "/v1/event_reports", {"dir": "x"}),
    ("GET", "/v1/event_reports/abc", None),
    ("GET", "/v1/event_reports/-1", None),
    ("GET", "/v1/event_reports/99999999999999999999999", None),
    ("DELETE", "/v1/event_reports/abc", None),
    ("GET", "/v1/room_reports", {"limit": "-3"}),
    ("GET", "/v1/room_reports", {"dir": "down"}),
    ("GET", "/v1/room_reports/x1", None),
])
async def test_bad_input(
    homeserver: RunningServer, api: MatrixApi, method: str, path: str, params: Any
) -> None:
    admin = await make_admin(homeserver, api)
    status, answer = await api.request(method, ADMIN + path, token=admin.token, params=params)
    assert (status, answer["errcode"]) == (400, "M_INVALID_PARAM")

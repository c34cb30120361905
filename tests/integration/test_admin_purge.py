"""History purge (Synapse's purge_history_api.md): old events are deleted from the database
(and from every table derived from them), local users' events only when asked, the room keeps
its state and goes on working, and nothing sent during a purge is lost."""

from __future__ import annotations

import asyncio
import json
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest

from homeserver.services.rooms.remote import Outcome
from tests.admin_api import ADMIN, admin_and_public_room, admin_ok, make_admin
from tests.conftest import MakeServer, RunningServer
from tests.fake_clock import FakeClock
from tests.federation_peers import eventually
from tests.helpers import MatrixApi, User
from tests.remote_rooms import BOB, joined, room_of

pytestmark = pytest.mark.usefixtures("no_server_errors")


async def _purge(
    api: MatrixApi, admin: User, room_id: str, event_id: str | None = None, **body: Any
) -> dict[str, Any]:
    """Start a purge and wait for it to finish; its final status."""
    path = f"/v1/purge_history/{quote(room_id)}"
    if event_id is not None:
        path += f"/{quote(event_id)}"
    started = await admin_ok(api, admin, "POST", path, json=body)
    purge_id = started["purge_id"]
    assert isinstance(purge_id, str)

    async def finished() -> dict[str, Any] | None:
        status = await admin_ok(api, admin, "GET", f"/v1/purge_history_status/{purge_id}")
        assert status["status"] in ("active", "complete", "failed"), status
        return status if status["status"] != "active" else None

    status: dict[str, Any] = await eventually(finished, "the purge to finish")
    return status


async def _rows(homeserver: RunningServer, query: str, *args: Any) -> list[Any]:
    db = homeserver.hs.db
    assert db is not None
    return [r[0] for r in await db.run(lambda conn: conn.fetch(query, *args))]


async def _held(homeserver: RunningServer, event_ids: list[str]) -> set[str]:
    """Which of the events the database still holds anywhere an event's content or a row
    about it lives."""
    found = set()
    for table in ("events", "event_search", "event_edges", "event_auth_edges", "push_actions"):
        found.update(await _rows(
            homeserver, f"SELECT event_id FROM {table} WHERE event_id = ANY($1)", event_ids
        ))
    return found


async def _messages(api: MatrixApi, user: User, room_id: str) -> dict[str, Any]:
    body: dict[str, Any] = await api.ok(
        "GET", f"rooms/{quote(room_id)}/messages", token=user.token,
        params={"dir": "b", "limit": "100"},
    )
    return body


async def _unread(api: MatrixApi, user: User, room_id: str) -> int:
    synced = await api.sync(user)
    count: int = synced["rooms"]["join"][room_id]["unread_notifications"]["notification_count"]
    return count


def _bodies(events: list[dict[str, Any]]) -> list[str]:
    return [e["content"]["body"] for e in events if e["type"] == "m.room.message"]


async def test_purge_up_to_an_event_deletes_the_history_before_it(
    homeserver: RunningServer, api: MatrixApi
) -> None:
    admin, alice, bob, room_id = await admin_and_public_room(homeserver, api)
    old = [await api.send_message(alice, room_id, f"walrus {i} @bob:localhost") for i in range(3)]
    # A redaction among the old events goes too; the event it redacted stays redacted.
    redaction = (await api.ok(
        "PUT", f"rooms/{quote(room_id)}/redact/{quote(old[0])}/r1", json={}, token=alice.token
    ))["event_id"]
    point = await api.send_message(alice, room_id, "point")
    after = await api.send_message(alice, room_id, "after")
    assert await _held(homeserver, [*old, redaction]) == {*old, redaction}
    unread = await _unread(api, bob, room_id)
    assert unread >= 5

    status = await _purge(api, admin, room_id, point, delete_local_events=True)
    assert status == {"status": "complete"}

    # Gone from the database, with their search entries, notifications and edges.
    assert await _held(homeserver, [*old, redaction]) == set()
    assert await _rows(
        homeserver, "SELECT redaction_id FROM event_redactions WHERE redaction_id = $1", redaction
    ) == []
    assert await _held(homeserver, [point, after]) >= {point, after}
    assert await _unread(api, bob, room_id) == unread - len(old)
    search = await api.ok("POST", "search", token=alice.token, json={
        "search_categories": {"room_events": {"search_term": "walrus"}}
    })
    assert search["search_categories"]["room_events"]["results"] == []

    # Paging back stops cleanly at the point, the room's state still below it.
    page = await _messages(api, bob, room_id)
    assert _bodies(page["chunk"]) == ["after", "point"]
    assert "end" not in page
    assert {e["type"] for e in page["chunk"]} >= {"m.room.create", "m.room.member"}
    for event_id in (old[1], redaction):
        status_code, body = await api.request(
            "GET", f"rooms/{quote(room_id)}/context/{quote(event_id)}", token=bob.token
        )
        assert (status_code, body["errcode"]) == (404, "M_NOT_FOUND")
        status_code, _ = await api.request(
            "GET", f"rooms/{quote(room_id)}/event/{quote(event_id)}", token=bob.token
        )
        assert status_code == 404
    context = await api.ok(
        "GET", f"rooms/{quote(room_id)}/context/{quote(point)}", token=bob.token
    )
    assert context["event"]["event_id"] == point

    # The room goes on: new messages, a sync, a newcomer who finds the state whole.
    since = (await api.sync(bob))["next_batch"]
    new = await api.send_message(alice, room_id, "new")
    synced = await api.sync(bob, since=since)
    timeline = synced["rooms"]["join"][room_id]["timeline"]["events"]
    assert [e["event_id"] for e in timeline] == [new]
    carol = await api.register("carol")
    await api.join(carol, room_id)
    joined_members = await api.ok(
        "GET", f"rooms/{quote(room_id)}/joined_members", token=carol.token
    )
    assert set(joined_members["joined"]) == {alice.user_id, bob.user_id, carol.user_id}
    state = await api.ok("GET", f"rooms/{quote(room_id)}/state", token=carol.token)
    assert {e["type"] for e in state} >= {
        "m.room.create", "m.room.power_levels", "m.room.join_rules", "m.room.member"
    }
    first = await api.sync(carol)
    room = first["rooms"]["join"][room_id]
    assert "new" in _bodies(room["timeline"]["events"])
    assert not set(old) & {e["event_id"] for e in room["timeline"]["events"]}


async def test_an_event_a_receipt_points_to_stays(
    homeserver: RunningServer, api: MatrixApi
) -> None:
    admin, alice, bob, room_id = await admin_and_public_room(homeserver, api)
    first, read, unread_one = [await api.send_message(alice, room_id, t) for t in "abc"]
    await api.ok(
        "POST", f"rooms/{quote(room_id)}/receipt/m.read/{quote(read)}", json={},
        token=bob.token,
    )
    point = await api.send_message(alice, room_id, "point")
    assert await _unread(api, bob, room_id) == 2

    await _purge(api, admin, room_id, point, delete_local_events=True)
    # Bob's read position is where it was: only the point is unread now.
    assert set(await _rows(
        homeserver, "SELECT event_id FROM events WHERE event_id = ANY($1)",
        [first, read, unread_one],
    )) == {read}
    assert await _unread(api, bob, room_id) == 1


async def test_purge_up_to_a_time_keeps_the_last_event_before_it(
    make_homeserver: MakeServer, http: aiohttp.ClientSession
) -> None:
    clock = FakeClock()
    homeserver = await make_homeserver(clock=clock)
    api = MatrixApi(homeserver.url, http)
    admin = await make_admin(homeserver, api)
    alice = await api.register("alice")
    room_id = await api.create_room(alice)
    sent = []
    for text in ("one", "two", "three", "four"):
        clock.advance(1)
        sent.append((clock.now_ms(), await api.send_message(alice, room_id, text)))

    # Nothing was sent before the room existed.
    status, body = await api.request(
        "POST", ADMIN + f"/v1/purge_history/{quote(room_id)}", token=admin.token,
        json={"purge_up_to_ts": 1, "delete_local_events": True},
    )
    assert (status, body["errcode"]) == (400, "M_NOT_FOUND")

    # Up to the time of "three": "two", the last one before it, stays.
    status_body = await _purge(
        api, admin, room_id, purge_up_to_ts=sent[2][0], delete_local_events=True
    )
    assert status_body == {"status": "complete"}
    assert await _held(homeserver, [sent[0][1]]) == set()
    assert _bodies((await _messages(api, alice, room_id))["chunk"]) == [
        "four", "three", "two"
    ]

    # A time after everything: the room keeps its last message.
    await _purge(api, admin, room_id, purge_up_to_ts=2**53, delete_local_events=True)
    assert _bodies((await _messages(api, alice, room_id))["chunk"]) == ["four"]


async def _local_pdu(homeserver: RunningServer, event_id: str) -> dict[str, Any]:
    found = await _rows(homeserver, "SELECT json FROM events WHERE event_id = $1", event_id)
    pdu: dict[str, Any] = json.loads(found[0])
    return pdu


async def test_local_users_events_stay_unless_asked(
    homeserver: RunningServer, api: MatrixApi
) -> None:
    admin = await make_admin(homeserver, api)
    builder, me, incoming = await joined(homeserver, api)
    room_id = room_of(builder)
    remote, local = [], []
    for i in range(3):
        event_id, pdu = builder.make(BOB, "m.room.message", {"msgtype": "m.text", "body": f"b{i}"})
        assert (await incoming.receive(room_id, pdu)).outcome is Outcome.ACCEPTED
        builder.apply(event_id, pdu)
        remote.append(event_id)
        mine = await api.send_message(me, room_id, f"m{i}")
        builder.events[mine] = await _local_pdu(homeserver, mine)
        builder.apply(mine, builder.events[mine])
        local.append(mine)
    point = remote[-1]

    await _purge(api, admin, room_id, point)
    assert await _held(homeserver, remote[:-1]) == set()
    assert set(await _rows(
        homeserver, "SELECT event_id FROM events WHERE event_id = ANY($1)", [*local, point]
    )) == {*local, point}

    await _purge(api, admin, room_id, purge_up_to_event_id=point, delete_local_events=True)
    kept = await _rows(
        homeserver, "SELECT event_id FROM events WHERE event_id = ANY($1)", [*local, point]
    )
    # Only the local message sent after the point stays.
    assert set(kept) == {point, local[-1]}


async def test_messages_sent_during_a_purge_are_all_kept(
    homeserver: RunningServer, api: MatrixApi
) -> None:
    admin = await make_admin(homeserver, api)
    alice = await api.register("alice")
    room_id = await api.create_room(alice)
    old = [await api.send_message(alice, room_id, f"old {i}") for i in range(40)]
    point = await api.send_message(alice, room_id, "point")
    purges = homeserver.hs.history_purges
    assert purges is not None
    purges.batch_size = 3  # many short transactions, between which the sends get in

    async def send_during() -> list[str]:
        return [await api.send_message(alice, room_id, f"new {i}") for i in range(15)]

    purge, new = await asyncio.gather(
        _purge(api, admin, room_id, point, delete_local_events=True), send_during()
    )
    assert purge["status"] == "complete"
    messages = await _rows(
        homeserver,
        "SELECT event_id FROM events WHERE room_id = $1 AND type = 'm.room.message'",
        room_id,
    )
    assert set(messages) == {point, *new}
    page = await _messages(api, alice, room_id)
    assert _bodies(page["chunk"]) == [*(f"new {i}" for i in reversed(range(15))), "point"]
    assert not set(old) & {e["event_id"] for e in page["chunk"]}


async def test_purge_is_for_admins_and_refuses_bad_input(
    homeserver: RunningServer, api: MatrixApi
) -> None:
    admin = await make_admin(homeserver, api)
    alice = await api.register("alice")
    room_id = await api.create_room(alice)
    event_id = await api.send_message(alice, room_id, "hi")
    other_room = await api.create_room(alice)
    other_event = await api.send_message(alice, other_room, "elsewhere")
    path = ADMIN + f"/v1/purge_history/{quote(room_id)}"

    status, body = await api.request("POST", path, token=alice.token, json={
        "purge_up_to_event_id": event_id
    })
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN")
    status, body = await api.request(
        "GET", ADMIN + "/v1/purge_history_status/whatever", token=alice.token
    )
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN")

    async def refused(url: str, expected: tuple[int, str], **kwargs: Any) -> None:
        status, body = await api.request("POST", url, token=admin.token, **kwargs)
        assert (status, body["errcode"]) == expected, (kwargs, body)

    await refused(path, (400, "M_BAD_JSON"), json={})
    await refused(path, (400, "M_NOT_JSON"), raw=b"{nope")
    await refused(path, (400, "M_BAD_JSON"), json={"purge_up_to_ts": "1"})
    await refused(path, (400, "M_BAD_JSON"), json={"purge_up_to_ts": True})
    await refused(path, (400, "M_BAD_JSON"), json={"purge_up_to_ts": 1.5})
    await refused(path, (400, "M_INVALID_PARAM"), json={"purge_up_to_ts": -1})
    await refused(path, (400, "M_INVALID_PARAM"), json={"purge_up_to_ts": 2**70})
    await refused(path, (400, "M_BAD_JSON"), json={"purge_up_to_event_id": 5})
    await refused(path, (400, "M_BAD_JSON"), json={
        "purge_up_to_event_id": event_id, "delete_local_events": "yes"
    })
    await refused(path, (400, "M_INVALID_PARAM"), json={"purge_up_to_event_id": "nope"})
    await refused(path, (404, "M_NOT_FOUND"), json={"purge_up_to_event_id": "$" + "A" * 43})
    await refused(path + f"/{quote(other_event)}", (400, "M_INVALID_PARAM"))
    await refused(
        ADMIN + "/v1/purge_history/!unknown:localhost", (404, "M_NOT_FOUND"),
        json={"purge_up_to_ts": 1},
    )
    await refused(
        ADMIN + "/v1/purge_history/not-a-room", (400, "M_INVALID_PARAM"),
        json={"purge_up_to_ts": 1},
    )
    status, body = await api.request(
        "GET", ADMIN + "/v1/purge_history_status/unknown", token=admin.token
    )
    assert (status, body["errcode"]) == (404, "M_NOT_FOUND")

"""Room retention (MSC1763 `m.room.retention`) and disappearing posts: an event past its room's
lifetime is served to no one at once, and the retention sweep then removes it from storage
(proved on a text dump of the whole database) while the room goes on working."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest
from prometheus_client import REGISTRY

from tests.conftest import MakeServer, RunningServer
from tests.database_dump import dump_text
from tests.fake_clock import FakeClock
from tests.helpers import MatrixApi, User

pytestmark = pytest.mark.usefixtures("no_server_errors")

RETENTION = {
    "retention.enabled": True, "retention.allowed_lifetime_min_ms": 0,
    "encryption.default": "off",
}


async def _server(
    make_homeserver: MakeServer, http: aiohttp.ClientSession, clock: FakeClock,
    **overrides: Any,
) -> tuple[RunningServer, MatrixApi]:
    server = await make_homeserver({**RETENTION, **overrides}, clock=clock)
    return server, MatrixApi(server.url, http)


async def _sweep(server: RunningServer) -> None:
    """One round of the retention scheduler (room retention first), at the fake clock's now."""
    sweeps = server.hs.retention_sweeps
    assert sweeps is not None
    assert (await sweeps.run_once())["rooms"]


async def _set_state(
    api: MatrixApi, user: User, room_id: str, event_type: str, content: dict[str, Any]
) -> str:
    body = await api.ok(
        "PUT", f"rooms/{quote(room_id)}/state/{event_type}/", json=content, token=user.token
    )
    event_id: str = body["event_id"]
    return event_id


async def _send(
    api: MatrixApi, user: User, room_id: str, event_type: str, content: dict[str, Any]
) -> str:
    body = await api.ok(
        "PUT", f"rooms/{quote(room_id)}/send/{event_type}/{uuid.uuid4().hex}",
        json=content, token=user.token,
    )
    event_id: str = body["event_id"]
    return event_id


def _marker(what: str) -> str:
    return f"{what}-{uuid.uuid4().hex}"


async def _bodies(api: MatrixApi, user: User, room_id: str) -> list[str]:
    """The message bodies /messages shows, oldest first."""
    page = await api.ok(
        "GET", f"rooms/{quote(room_id)}/messages", token=user.token,
        params={"dir": "b", "limit": "200"},
    )
    return [
        e["content"]["body"] for e in reversed(page["chunk"])
        if e["type"] == "m.room.message" and "body" in e["content"]
    ]


async def _search(api: MatrixApi, user: User, term: str) -> list[str]:
    body = await api.ok("POST", "search", token=user.token, json={
        "search_categories": {"room_events": {"search_term": term}}
    })
    return [r["result"]["event_id"] for r in body["search_categories"]["room_events"]["results"]]


async def _notified(api: MatrixApi, user: User) -> list[str]:
    body = await api.ok("GET", "notifications", token=user.token)
    return [n["event"]["event_id"] for n in body["notifications"]]


async def _timeline(api: MatrixApi, user: User, room_id: str) -> list[str]:
    """The event IDs of an initial /sync's timeline of the room (a fresh device)."""
    device = await api.login(user)
    synced = await api.sync(device, filter='{"room": {"timeline": {"limit": 100}}}')
    return [e["event_id"] for e in synced["rooms"]["join"][room_id]["timeline"]["events"]]


def _purged_total() -> float:
    value = REGISTRY.get_sample_value("moot_retention_purged_events_total", {"sweep": "rooms"})
    return value or 0.0


async def test_expired_posts_disappear_from_reads_then_from_storage(
    make_homeserver: MakeServer, http: aiohttp.ClientSession
) -> None:
    clock = FakeClock()
    server, api = await _server(make_homeserver, http, clock)
    alice, bob = await api.register("alice"), await api.register("bob")
    room_id = await api.create_room(alice, preset="public_chat", name="Status feed")
    await api.join(bob, room_id)
    await _set_state(api, alice, room_id, "m.room.retention", {"max_lifetime": 60_000})

    old_markers = [_marker("old") for _ in range(5)]
    old = [await api.send_message(alice, room_id, m) for m in old_markers]
    edit_marker, reaction_marker = _marker("edit"), _marker("reaction")
    old.append(await _send(api, bob, room_id, "m.room.message", {
        "msgtype": "m.text", "body": "* " + edit_marker,
        "m.new_content": {"msgtype": "m.text", "body": edit_marker},
        "m.relates_to": {"rel_type": "m.replace", "event_id": old[0]},
    }))
    old.append(await _send(api, bob, room_id, "m.reaction", {
        "m.relates_to": {"rel_type": "m.annotation", "event_id": old[1], "key": reaction_marker}
    }))
    old_markers += [edit_marker, reaction_marker]
    # Bob reads up to an old message: a receipt target stays in the DAG, content-less.
    await api.ok(
        "POST", f"rooms/{quote(room_id)}/receipt/m.read/{quote(old[2])}", json={},
        token=bob.token,
    )
    assert await _search(api, bob, old_markers[3]) == [old[3]]
    assert set(old[:5]) <= set(await _notified(api, bob))

    clock.advance(61)
    new_markers = [_marker("new") for _ in range(3)]
    new = [await api.send_message(bob, room_id, m) for m in new_markers]

    # Expired, not yet purged: served to no one.
    for event_id in old:
        status, body = await api.request(
            "GET", f"rooms/{quote(room_id)}/event/{quote(event_id)}", token=bob.token
        )
        assert (status, body["errcode"]) == (404, "M_NOT_FOUND"), event_id
        status, _ = await api.request(
            "GET", f"rooms/{quote(room_id)}/context/{quote(event_id)}", token=bob.token
        )
        assert status == 404, event_id
    assert await _bodies(api, bob, room_id) == new_markers
    assert await _search(api, bob, old_markers[3]) == []
    assert not set(old) & set(await _notified(api, bob))
    assert not set(old) & set(await _timeline(api, bob, room_id))
    status, body = await api.request(
        "GET", f"rooms/{quote(room_id)}/relations/{quote(old[1])}", token=bob.token
    )
    assert status == 404 or not body["chunk"], body
    before = await dump_text(server.hs.config.database.url or "")
    assert all(m in before for m in old_markers)  # hidden, but still stored

    purged = _purged_total()
    await _sweep(server)
    assert _purged_total() - purged >= len(old)

    dump = await dump_text(server.hs.config.database.url or "")
    assert [m for m in old_markers if m in dump] == []
    assert all(m in dump for m in new_markers)

    # The room goes on working, its state whole.
    carol = await api.register("carol")
    await api.join(carol, room_id)
    latest = _marker("latest")
    await api.send_message(carol, room_id, latest)
    assert await _bodies(api, carol, room_id) == [*new_markers, latest]
    state = await api.ok("GET", f"rooms/{quote(room_id)}/state", token=carol.token)
    by_type = {(e["type"], e["state_key"]): e["content"] for e in state}
    assert by_type[("m.room.name", "")] == {"name": "Status feed"}
    assert by_type[("m.room.retention", "")] == {"max_lifetime": 60_000}
    assert {u for t, u in by_type if t == "m.room.member"} == {
        alice.user_id, bob.user_id, carol.user_id
    }
    assert set(new) <= set(await _timeline(api, carol, room_id))

    # A second sweep finds nothing more to do and brings nothing back.
    await _sweep(server)
    assert await _bodies(api, carol, room_id) == [*new_markers, latest]


async def test_lifetimes_are_clamped_and_rooms_without_a_policy_are_untouched(
    make_homeserver: MakeServer, http: aiohttp.ClientSession
) -> None:
    clock = FakeClock()
    server, api = await _server(
        make_homeserver, http, clock, **{
            "retention.allowed_lifetime_min_ms": 10_000,
            "retention.allowed_lifetime_max_ms": 100_000,
        },
    )
    alice = await api.register("alice")
    short = await api.create_room(alice)  # asks for 1 s: kept 10 s
    await _set_state(api, alice, short, "m.room.retention", {"max_lifetime": 1_000})
    long = await api.create_room(alice)  # asks for 1000 s: kept 100 s
    await _set_state(api, alice, long, "m.room.retention", {"max_lifetime": 1_000_000})
    plain = await api.create_room(alice)  # no policy, no default: kept forever
    markers = {room: _marker("m") for room in (short, long, plain)}
    for room, marker in markers.items():
        await api.send_message(alice, room, marker)

    clock.advance(5)
    await _sweep(server)
    for room, marker in markers.items():
        assert await _bodies(api, alice, room) == [marker]

    clock.advance(6)  # 11 s
    await _sweep(server)
    assert await _bodies(api, alice, short) == []
    assert await _bodies(api, alice, long) == [markers[long]]

    clock.advance(90)  # 101 s
    assert await _bodies(api, alice, long) == []  # hidden before any sweep
    await _sweep(server)
    clock.advance(10 * 365 * 86_400)
    await _sweep(server)
    assert await _bodies(api, alice, plain) == [markers[plain]]
    dump = await dump_text(server.hs.config.database.url or "")
    assert (markers[short] in dump, markers[long] in dump, markers[plain] in dump) == (
        False, False, True
    )


async def test_the_default_lifetime_applies_to_rooms_without_a_policy(
    make_homeserver: MakeServer, http: aiohttp.ClientSession
) -> None:
    clock = FakeClock()
    server, api = await _server(
        make_homeserver, http, clock, **{"retention.default_max_lifetime_ms": 30_000}
    )
    alice = await api.register("alice")
    room_id = await api.create_room(alice)
    longer = await api.create_room(alice)
    await _set_state(api, alice, longer, "m.room.retention", {"max_lifetime": 300_000})
    marker, kept = _marker("default"), _marker("longer")
    await api.send_message(alice, room_id, marker)
    await api.send_message(alice, longer, kept)
    clock.advance(31)
    await _sweep(server)
    assert await _bodies(api, alice, room_id) == []
    assert await _bodies(api, alice, longer) == [kept]
    dump = await dump_text(server.hs.config.database.url or "")
    assert marker not in dump and kept in dump


async def test_a_sweep_racing_sends_loses_nothing_and_brings_nothing_back(
    make_homeserver: MakeServer, http: aiohttp.ClientSession
) -> None:
    clock = FakeClock()
    server, api = await _server(make_homeserver, http, clock)
    alice = await api.register("alice")
    room_id = await api.create_room(alice)
    await _set_state(api, alice, room_id, "m.room.retention", {"max_lifetime": 10_000})
    old_markers = [_marker("old") for _ in range(40)]
    for m in old_markers:
        await api.send_message(alice, room_id, m)
    clock.advance(11)
    purges = server.hs.history_purges
    assert purges is not None
    purges.batch_size = 3  # many short transactions, between which the sends get in
    new_markers = [_marker("new") for _ in range(15)]

    async def send_during() -> list[str]:
        return [await api.send_message(alice, room_id, m) for m in new_markers]

    _, new = await asyncio.gather(_sweep(server), send_during())
    assert await _bodies(api, alice, room_id) == new_markers
    assert set(new) <= set(await _timeline(api, alice, room_id))
    dump = await dump_text(server.hs.config.database.url or "")
    assert [m for m in old_markers if m in dump] == []
    assert [m for m in new_markers if m not in dump] == []
    db = server.hs.db
    assert db is not None
    bodies = await db.run(lambda conn: conn.fetch(
        "SELECT moot_event_content(json) ->> 'body' FROM events "
        "WHERE room_id = $1 AND type = 'm.room.message'", room_id,
    ))
    # Every message left is a new one, or a content-less stub of an old one (the anchor).
    assert {r[0] for r in bodies} - {None} == set(new_markers)


async def test_media_only_expired_posts_referred_to_is_deleted(
    make_homeserver: MakeServer, http: aiohttp.ClientSession
) -> None:
    """A disappearing image post takes its file with it (the media sweep after the room
    sweep); a file a newer post still shows stays."""
    clock = FakeClock()
    server, api = await _server(make_homeserver, http, clock)
    alice = await api.register("alice")
    room_id = await api.create_room(alice, name="Status feed")
    await _set_state(api, alice, room_id, "m.room.retention", {"max_lifetime": 60_000})
    alone, shared = (_marker("file").encode() for _ in range(2))
    uris = []
    for data in (alone, shared):
        body = await api.ok(
            "POST", "/_matrix/media/v3/upload", raw=data, token=alice.token,
            headers={"Content-Type": "application/octet-stream"},
        )
        uris.append(body["content_uri"])
    for uri in uris:
        await _send(api, alice, room_id, "m.room.message",
                    {"msgtype": "m.image", "body": "a.png", "url": uri})
    clock.advance(61)
    await _send(api, alice, room_id, "m.room.message",
                {"msgtype": "m.file", "body": "again", "url": uris[1]})
    await _sweep(server)

    files = [p for p in (server.data_dir / "media").rglob("*") if p.is_file()]
    assert not any(alone in p.read_bytes() for p in files)
    assert any(shared in p.read_bytes() for p in files)

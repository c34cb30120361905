"""Redacted content is gone from every Client-Server endpoint that serves events or state.

A marker word goes into a room's name and topic, a member's display name and a message; those
events are redacted, and then every read a member, an invitee or an anonymous client can make
is searched for the marker (issue 22: it reappeared through `prev_content`, the room
directory and invite state, which read the stored original).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import aiohttp

from homeserver.app import Homeserver
from storage import events as events_store
from tests.helpers import MatrixApi, User

if TYPE_CHECKING:
    from tests.conftest import MakeServer

MARKER = "quokkasecret"


@dataclass
class Scene:
    room_id: str
    alice: User  # the room's creator, who redacts
    bob: User  # joined before the redactions
    carol: User  # invited before the redactions
    redacted: list[str]  # the redacted events
    later: list[str]  # events after the redactions (their prev_content is redacted content)
    message: str
    since: str  # bob's sync position before the redactions


async def redacted_scene(api: MatrixApi) -> Scene:
    alice, bob, carol = [await api.register(n) for n in ("alice", "bob", "carol")]
    room_id = await api.create_room(alice, preset="public_chat", visibility="public")
    room = quote(room_id)

    async def put_state(event_type: str, content: dict[str, Any]) -> str:
        """A state event with an empty state key, sent by alice."""
        body = await api.ok(
            "PUT", f"rooms/{room}/state/{event_type}/", json=content, token=alice.token
        )
        return str(body["event_id"])

    async def set_displayname(name: str) -> str:
        """A per-room display name, as clients set one: alice's join event again, named."""
        body = await api.ok(
            "PUT", f"rooms/{room}/state/m.room.member/{quote(alice.user_id)}",
            json={"membership": "join", "displayname": name}, token=alice.token,
        )
        return str(body["event_id"])

    await api.join(bob, room_id)
    name = await put_state("m.room.name", {"name": f"The {MARKER} room"})
    topic = await put_state("m.room.topic", {"topic": f"All about {MARKER}"})
    member = await set_displayname(f"Alice {MARKER}")
    message = await api.send_message(alice, room, f"the {MARKER} is out")
    await api.invite(alice, room, carol)
    since = (await api.sync(bob))["next_batch"]

    for i, event_id in enumerate((name, topic, member, message)):
        await api.ok(
            "PUT", f"rooms/{room}/redact/{quote(event_id)}/r{i}", json={}, token=alice.token
        )
    # New state on top of redacted state: its prev_content is the redacted content.
    later = [await put_state("m.room.topic", {"topic": "plain"}), await set_displayname("Alice")]
    return Scene(room_id, alice, bob, carol, [name, topic, member, message], later, message,
                 since)


def assert_no_marker(where: str, body: Any) -> None:
    text = json.dumps(body)
    assert MARKER not in text, f"{where} still serves redacted content: {text}"


async def test_redacted_content_is_served_by_no_client_endpoint(api: MatrixApi) -> None:
    scene = await redacted_scene(api)
    room = quote(scene.room_id)
    alice, bob, carol = scene.alice, scene.bob, scene.carol

    async def check(where: str, method: str, path: str, user: User | None, **kw: Any) -> Any:
        body = await api.ok(method, path, token=user.token if user else None, **kw)
        assert_no_marker(where, body)
        return body

    # The redactions took effect: the current name is the redacted event, content and all.
    name = await check("/state/m.room.name", "GET", f"rooms/{room}/state/m.room.name/", bob)
    assert name == {}
    await check("/state/m.room.topic", "GET", f"rooms/{room}/state/m.room.topic/", bob)
    await check("/state", "GET", f"rooms/{room}/state", bob)
    await check("/members", "GET", f"rooms/{room}/members", bob)
    await check("/joined_members", "GET", f"rooms/{room}/joined_members", bob)
    for event_id in [*scene.redacted, *scene.later]:
        event = await check(f"/event {event_id}", "GET", f"rooms/{room}/event/{quote(event_id)}",
                            bob)
        if event_id in scene.later:
            assert "prev_content" in event["unsigned"], event
    await check("/messages", "GET", f"rooms/{room}/messages", bob,
                params={"dir": "b", "limit": "100"})
    await check("/context", "GET", f"rooms/{room}/context/{quote(scene.message)}", bob,
                params={"limit": "100"})
    synced = await check("initial /sync", "GET", "sync", bob)
    assert scene.room_id in synced["rooms"]["join"]
    await check("incremental /sync", "GET", "sync", bob, params={"since": scene.since})
    await check("full-state /sync", "GET", "sync", bob,
                params={"since": scene.since, "full_state": "true"})
    invited = await check("invitee's /sync", "GET", "sync", carol)
    assert scene.room_id in invited["rooms"]["invite"]
    found = await api.ok("POST", "search", token=alice.token, json={
        "search_categories": {"room_events": {"search_term": MARKER}},
    })
    assert found["search_categories"]["room_events"]["results"] == []  # highlights echo it
    notified = await check("/notifications", "GET", "notifications", bob)
    assert scene.message in {n["event"]["event_id"] for n in notified["notifications"]}

    listing = await check("GET /publicRooms", "GET", "publicRooms", None)
    [entry] = [r for r in listing["chunk"] if r["room_id"] == scene.room_id]
    assert "name" not in entry and entry["topic"] == "plain", entry
    await check("POST /publicRooms", "POST", "publicRooms", bob, json={})
    searched = await check("POST /publicRooms", "POST", "publicRooms", bob,
                           json={"filter": {"generic_search_term": MARKER}})
    assert searched["chunk"] == []


async def test_redacted_state_stored_uncensored_is_censored_at_start(
    make_homeserver: MakeServer, http: aiohttp.ClientSession
) -> None:
    """A database written before redactions were censored into rows still holds a redacted
    name in full: the next start censors it, so the directory (read with SQL) drops it."""
    server = await make_homeserver()
    api = MatrixApi(server.url, http)
    alice = await api.register("alice")
    room_id = await api.create_room(
        alice, preset="public_chat", visibility="public", name=f"The {MARKER} room"
    )
    state = await api.ok("GET", f"rooms/{quote(room_id)}/state", token=alice.token)
    [name_id] = [e["event_id"] for e in state if e["type"] == "m.room.name"]
    db = server.hs.db
    assert db is not None
    original = (await db.run(lambda c: events_store.get_events(c, [name_id])))[name_id].json
    await api.ok(
        "PUT", f"rooms/{quote(room_id)}/redact/{quote(name_id)}/r1", json={}, token=alice.token
    )
    # The row as such a database holds it: the redaction recorded, the content not pruned.
    await db.run(lambda c: events_store.censor_events(c, [(name_id, room_id, original)]))
    await server.hs.stop()

    restarted = Homeserver(server.hs.config)
    await restarted.start()
    try:
        api = MatrixApi(f"http://127.0.0.1:{restarted.ports['client']}", http)
        listing = await api.ok("GET", "publicRooms")
        assert_no_marker("/publicRooms after a restart", listing)
        assert [r for r in listing["chunk"] if r["room_id"] == room_id]
    finally:
        await restarted.stop()

"""Security audit probes: who may read a room, on every room read endpoint the server serves.

One server, three rooms (invite-only with shared history, public with shared history,
world_readable) and the same cast in each: a joined member; members who left or were banned
after joining; the same two after `/forget`; an outsider; a user banned before ever joining
(also after `/forget`); an invitee kicked before joining; an invitee who refused; a pending
invitee. Before anyone departs, the room has an "early" topic and message; after, a "late"
topic and message and a new member, so each probe can tell the current room from the room as a
departed member last saw it.

The spec's answers (client-server-api "Room History Visibility", rooms.yaml, room_state.yaml):
- a joined member, and anyone while the room is world_readable, reads the current room;
- a member who left (or was kicked or banned) reads the room as it was when they left: state
  at the leave, no event after it; `/joined_members` wants a current member (403);
- anyone else gets 403 M_FORBIDDEN, and 404 M_NOT_FOUND from `/event/{eventId}` ("not found
  or you do not have permission"); a forgotten room counts as never joined (Synapse);
- typing, receipts and read markers need a joined member (403 otherwise); search never
  returns a room's events to a user who may not read them.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest

from tests.audit_helpers import errcode, module_server
from tests.helpers import MatrixApi, User

KINDS: dict[str, dict[str, Any]] = {
    "shared": {"preset": "private_chat"},
    "public": {"preset": "public_chat"},
    "world_readable": {"preset": "public_chat", "initial_state": [{
        "type": "m.room.history_visibility", "state_key": "",
        "content": {"history_visibility": "world_readable"},
    }]},
}

# role -> the membership changes made, in order, before the room's "late" events.
ROLES: dict[str, tuple[str, ...]] = {
    "joined": ("invite", "join"),
    "left": ("invite", "join", "leave"),
    "banned_after_join": ("invite", "join", "ban"),
    "left_forgotten": ("invite", "join", "leave", "forget"),
    "banned_forgotten": ("invite", "join", "ban", "forget"),
    "outsider": (),
    "pre_banned": ("ban",),
    "pre_banned_forgotten": ("ban", "forget"),
    "kicked_invitee": ("invite", "kick"),
    "refused_invitee": ("invite", "leave"),
    "invited": ("invite",),
}
DEPARTED = {"left", "banned_after_join"}
FORGOTTEN = {"left_forgotten", "banned_forgotten", "pre_banned_forgotten"}


@dataclass
class Room:
    room_id: str
    alias: str
    early_event: str
    late_event: str


@dataclass
class World:
    api: MatrixApi
    alice: User  # creator and admin of every room
    carol: User  # joins every room after the departures
    users: dict[str, User]
    rooms: dict[str, Room]


async def _change(api: MatrixApi, alice: User, user: User, room_id: str, step: str) -> None:
    own = {"join": f"rooms/{room_id}/join", "leave": f"rooms/{room_id}/leave",
           "forget": f"rooms/{room_id}/forget"}
    if step in own:
        await api.ok("POST", own[step], json={}, token=user.token)
    else:  # invite, kick, ban: by the room's admin
        await api.ok("POST", f"rooms/{room_id}/{step}", json={"user_id": user.user_id},
                     token=alice.token)


async def _room(api: MatrixApi, world: World, kind: str) -> Room:
    alice = world.alice
    room_id = await api.create_room(alice, **KINDS[kind])
    alias = f"#audit-{kind}:{alice.user_id.split(':', 1)[1]}"
    await api.ok("PUT", f"directory/room/{quote(alias)}", json={"room_id": room_id},
                 token=alice.token)
    await api.ok("PUT", f"rooms/{room_id}/state/m.room.topic", json={"topic": "early topic"},
                 token=alice.token)
    early = await api.send_message(alice, room_id, f"early-secret-{kind}")
    for role, steps in ROLES.items():
        for step in steps:
            await _change(api, alice, world.users[role], room_id, step)
    await api.ok("PUT", f"rooms/{room_id}/state/m.room.topic", json={"topic": "late topic"},
                 token=alice.token)
    await api.invite(alice, room_id, world.carol)
    await api.join(world.carol, room_id)
    late = await api.send_message(alice, room_id, f"late-secret-{kind}")
    return Room(room_id, alias, early, late)


@pytest.fixture(scope="module")
async def world(
    postgres_dsn: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[World]:
    data_dir: Path = tmp_path_factory.mktemp("audit-reads")
    async with module_server(postgres_dsn, data_dir) as server, \
            aiohttp.ClientSession() as http:
        api = MatrixApi(server.url, http)
        alice, carol = await api.register("alice"), await api.register("carol")
        users = {role: await api.register(role.replace("_", "")) for role in ROLES}
        w = World(api, alice, carol, users, {})
        for kind in KINDS:
            w.rooms[kind] = await _room(api, w, kind)
        yield w


# A 500 is logged as an error by the middleware: any error logged fails the test.
pytestmark = pytest.mark.usefixtures("no_server_errors")


# ---- what each endpoint must answer ---------------------------------------------------------

Reply = tuple[int, Any]


def _reader(kind: str, role: str) -> str:
    """'current', 'at_leave' or 'none': what part of the room this user may read."""
    if role == "joined" or kind == "world_readable":
        return "current"
    return "at_leave" if role in DEPARTED else "none"


def _refused(reply: Reply, status: int = 403) -> None:
    code = {403: "M_FORBIDDEN", 404: "M_NOT_FOUND"}[status]
    assert (reply[0], errcode(reply[1])) == (status, code), reply


def _topic_of(state: list[dict[str, Any]]) -> str:
    return next(e["content"]["topic"] for e in state if e["type"] == "m.room.topic")


def _joined(members: list[dict[str, Any]]) -> set[str]:
    return {e["state_key"] for e in members if e["content"].get("membership") == "join"}


def _ids(events: list[dict[str, Any]]) -> set[str]:
    return {e["event_id"] for e in events}


def check_state(reader: str, reply: Reply, w: World, room: Room) -> None:
    if reader == "none":
        return _refused(reply)
    assert reply[0] == 200, reply
    assert _topic_of(reply[1]) == ("late topic" if reader == "current" else "early topic")


def check_state_key(reader: str, reply: Reply, w: World, room: Room) -> None:
    if reader == "none":
        return _refused(reply)
    assert reply == (200, {"topic": "late topic" if reader == "current" else "early topic"})


def check_members(reader: str, reply: Reply, w: World, room: Room) -> None:
    if reader == "none":
        return _refused(reply)
    assert reply[0] == 200, reply
    assert (w.carol.user_id in _joined(reply[1]["chunk"])) == (reader == "current")


def check_joined_members(reader: str, reply: Reply, w: World, room: Room) -> None:
    if reader != "current":
        return _refused(reply)
    assert reply[0] == 200, reply
    assert {w.alice.user_id, w.carol.user_id} <= set(reply[1]["joined"])


def check_messages(reader: str, reply: Reply, w: World, room: Room) -> None:
    if reader == "none":
        return _refused(reply)
    assert reply[0] == 200, reply
    seen = _ids(reply[1]["chunk"])
    assert room.early_event in seen
    assert (room.late_event in seen) == (reader == "current")


def check_context(reader: str, reply: Reply, w: World, room: Room) -> None:
    if reader == "none":
        return _refused(reply)
    assert reply[0] == 200, reply
    assert reply[1]["event"]["event_id"] == room.early_event
    after = _ids(reply[1]["events_after"])
    assert (room.late_event in after) == (reader == "current")


def check_event_early(reader: str, reply: Reply, w: World, room: Room) -> None:
    if reader == "none":
        return _refused(reply, 404)
    assert reply[0] == 200 and reply[1]["event_id"] == room.early_event, reply


def check_event_late(reader: str, reply: Reply, w: World, room: Room) -> None:
    if reader != "current":
        return _refused(reply, 404)
    assert reply[0] == 200 and reply[1]["event_id"] == room.late_event, reply


def check_aliases(reader: str, reply: Reply, w: World, room: Room) -> None:
    if reader == "none":
        return _refused(reply)
    assert reply == (200, {"aliases": [room.alias]})


Probe = Callable[[World, Room, User], Awaitable[Reply]]


def _get(path: str, **params: str) -> Probe:
    async def probe(w: World, room: Room, user: User) -> Reply:
        full = path.format(room=room.room_id, early=room.early_event, late=room.late_event)
        return await w.api.request("GET", full, token=user.token, params=params or None)
    return probe


def _send(method: str, path: str, body: Callable[[Room, User], Any]) -> Probe:
    async def probe(w: World, room: Room, user: User) -> Reply:
        full = path.format(room=room.room_id, early=room.early_event, user=user.user_id)
        return await w.api.request(method, full, json=body(room, user), token=user.token)
    return probe


async def _search(w: World, room: Room, user: User) -> Reply:
    return await w.api.request("POST", "search", token=user.token, json={
        "search_categories": {"room_events": {"search_term": "secret",
                                              "filter": {"rooms": [room.room_id]}}},
    })


READS: dict[str, tuple[Probe, Callable[[str, Reply, World, Room], None]]] = {
    "state": (_get("rooms/{room}/state"), check_state),
    "state_key": (_get("rooms/{room}/state/m.room.topic"), check_state_key),
    "state_key_slash": (_get("rooms/{room}/state/m.room.topic/"), check_state_key),
    "members": (_get("rooms/{room}/members"), check_members),
    "joined_members": (_get("rooms/{room}/joined_members"), check_joined_members),
    "messages": (_get("rooms/{room}/messages", dir="b", limit="100"), check_messages),
    "context": (_get("rooms/{room}/context/{early}", limit="100"), check_context),
    "event_early": (_get("rooms/{room}/event/{early}"), check_event_early),
    "event_late": (_get("rooms/{room}/event/{late}"), check_event_late),
    "aliases": (_get("rooms/{room}/aliases"), check_aliases),
}
WRITES: dict[str, Probe] = {
    "typing": _send("PUT", "rooms/{room}/typing/{user}",
                    lambda room, user: {"typing": True, "timeout": 1000}),
    "receipt": _send("POST", "rooms/{room}/receipt/m.read/{early}", lambda room, user: {}),
    "read_markers": _send("POST", "rooms/{room}/read_markers",
                          lambda room, user: {"m.fully_read": room.early_event}),
}


@pytest.mark.parametrize("endpoint", list(READS))
@pytest.mark.parametrize("role", list(ROLES))
@pytest.mark.parametrize("kind", list(KINDS))
async def test_room_read(world: World, kind: str, role: str, endpoint: str) -> None:
    probe, check = READS[endpoint]
    room = world.rooms[kind]
    check(_reader(kind, role), await probe(world, room, world.users[role]), world, room)


@pytest.mark.parametrize("endpoint", list(WRITES))
@pytest.mark.parametrize("role", list(ROLES))
@pytest.mark.parametrize("kind", list(KINDS))
async def test_room_member_write(world: World, kind: str, role: str, endpoint: str) -> None:
    """Typing, receipts and read markers are for joined members, world_readable or not."""
    reply = await WRITES[endpoint](world, world.rooms[kind], world.users[role])
    if role == "joined":
        assert reply[0] == 200, reply
    else:
        _refused(reply)


@pytest.mark.parametrize("role", list(ROLES))
@pytest.mark.parametrize("kind", list(KINDS))
async def test_room_search(world: World, kind: str, role: str) -> None:
    """Search restricted to the room finds its events only for those who may read them; it
    never finds what a departed member could not see (the late message)."""
    room = world.rooms[kind]
    status, body = await _search(world, room, world.users[role])
    assert status == 200, body
    found = {r["result"]["event_id"] for r in body["search_categories"]["room_events"]["results"]}
    if role == "joined":
        assert {room.early_event, room.late_event} <= found
    elif kind != "world_readable":
        assert room.late_event not in found
        if role not in DEPARTED:
            assert not found


@pytest.mark.parametrize("role", list(ROLES))
@pytest.mark.parametrize("kind", list(KINDS))
async def test_room_in_sync(world: World, kind: str, role: str) -> None:
    """/sync (with left rooms included) gives each user what the read endpoints give: a joined
    member the room, a departed member the room up to their leave, a user who never was a
    member only their own membership events (the room itself if world_readable), and a
    forgotten room not at all."""
    room, user = world.rooms[kind], world.users[role]
    body = await world.api.sync(user, filter=json.dumps({"room": {"include_leave": True}}))
    sections = {name: rooms for name, rooms in body["rooms"].items() if room.room_id in rooms}
    if role == "joined":
        assert list(sections) == ["join"]
    elif role == "invited":
        assert list(sections) == ["invite"]
        return
    elif role in ("outsider", *FORGOTTEN):
        assert not sections
        return
    else:
        assert list(sections) == ["leave"]
    section = next(iter(sections.values()))[room.room_id]
    events = section["state"]["events"] + section["timeline"]["events"]
    topics = {e["content"].get("topic") for e in events if e["type"] == "m.room.topic"}
    if role == "joined":
        assert "late topic" in topics
        return
    assert room.late_event not in _ids(events) and "late topic" not in topics
    if role in DEPARTED:
        assert topics == {"early topic"}
    elif kind != "world_readable":
        others = [e for e in events
                  if (e["type"], e.get("state_key")) != ("m.room.member", user.user_id)]
        assert not others, others
        assert "summary" not in section

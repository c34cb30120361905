"""Security audit probes: changing a room beyond one's power level.

One server, one room per room version (10, and 12 where Alice as the creator has a power
above every level and may not be listed) whose power levels (spec "m.room.power_levels", the
room versions' "Authorization rules") are: Alice 100; the moderators Mod and Eve 50; Bob, Carol 0;
kick/ban/redact 50, state_default 50, and `m.room.power_levels` itself at 50, so that a
moderator may send power levels but only within the rules (no level above their own, no change
to a user at or above their level). Every probe is a request the rules forbid and must answer
403 M_FORBIDDEN; a final check reads the room back and finds it unchanged.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest

from tests.audit_helpers import errcode, module_server
from tests.helpers import MatrixApi, User

LEVELS = {
    "ban": 50, "kick": 50, "redact": 50, "invite": 0, "state_default": 50,
    "events_default": 0, "users_default": 0,
    "events": {"m.room.power_levels": 50, "m.room.history_visibility": 100,
               "m.room.encryption": 100, "m.room.server_acl": 100, "m.room.tombstone": 100},
}


VERSIONS = ("10", "12")


@dataclass
class Room:
    room_id: str
    events: dict[str, str]  # whose message -> its event ID
    power_levels: dict[str, Any]


@dataclass
class World:
    api: MatrixApi
    users: dict[str, User]  # alice, mod, eve, bob, carol
    rooms: dict[str, Room]  # by room version


async def _room(api: MatrixApi, users: dict[str, User], version: str) -> Room:
    listed = {users["mod"].user_id: 50, users["eve"].user_id: 50}
    if version == "10":
        listed[users["alice"].user_id] = 100
    room_id = await api.create_room(users["alice"], preset="public_chat", room_version=version,
                                    power_level_content_override=dict(LEVELS, users=listed))
    for name in ("mod", "eve", "bob", "carol"):
        await api.join(users[name], room_id)
    events = {name: await api.send_message(users[name], room_id, f"by {name}")
              for name in users}
    power_levels = await api.ok("GET", f"rooms/{room_id}/state/m.room.power_levels",
                                token=users["alice"].token)
    return Room(room_id, events, power_levels)


@pytest.fixture(scope="module")
async def world(
    postgres_dsn: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[World]:
    data_dir: Path = tmp_path_factory.mktemp("audit-power")
    async with module_server(postgres_dsn, data_dir) as server, \
            aiohttp.ClientSession() as http:
        api = MatrixApi(server.url, http)
        users = {name: await api.register(name) for name in ("alice", "mod", "eve", "bob",
                                                             "carol")}
        yield World(api, users, {v: await _room(api, users, v) for v in VERSIONS})


# A 500 is logged as an error by the middleware: any error logged fails the test.
pytestmark = pytest.mark.usefixtures("no_server_errors")


Change = Callable[[dict[str, Any], dict[str, str]], None]


def _levels_with(w: World, room: Room, change: Change) -> Any:
    content: dict[str, Any] = {**room.power_levels, "users": dict(room.power_levels["users"]),
                               "events": dict(room.power_levels["events"])}
    change(content, {name: u.user_id for name, u in w.users.items()})
    return content


def _pl(change: Change) -> Callable[[World, Room], Any]:
    """A probe body: the room's power levels with one change."""
    return lambda w, room: _levels_with(w, room, change)


def _set_user(name: str, level: int) -> Change:
    def change(content: dict[str, Any], ids: dict[str, str]) -> None:
        content["users"][ids[name]] = level
    return change


def _set_key(key: str, level: int) -> Change:
    def change(content: dict[str, Any], ids: dict[str, str]) -> None:
        content[key] = level
    return change


def _set_event(event_type: str, level: int) -> Change:
    def change(content: dict[str, Any], ids: dict[str, str]) -> None:
        content["events"][event_type] = level
    return change


def _drop_user(name: str) -> Change:
    def change(content: dict[str, Any], ids: dict[str, str]) -> None:
        content["users"].pop(ids[name], None)
    return change


PL = "state/m.room.power_levels"

# name -> (actor, method, path under rooms/{room}/, body (or a function of the world))
PROBES: dict[str, tuple[str, str, str, Any]] = {
    # Power levels by someone without the power to send them.
    "bob_raises_himself": ("bob", "PUT", PL, _pl(_set_user("bob", 100))),
    "bob_lowers_ban_level": ("bob", "PUT", PL, _pl(_set_key("ban", 0))),
    # A moderator who may send power levels, beyond their own level.
    "mod_raises_himself": ("mod", "PUT", PL, _pl(_set_user("mod", 100))),
    "mod_raises_bob_above_himself": ("mod", "PUT", PL,
                                     _pl(_set_user("bob", 51))),
    "mod_demotes_alice": ("mod", "PUT", PL, _pl(_set_user("alice", 0))),
    "mod_removes_eve": ("mod", "PUT", PL, _pl(_drop_user("eve"))),
    "mod_demotes_equal_eve": ("mod", "PUT", PL, _pl(_set_user("eve", 0))),
    "mod_raises_ban_above_himself": ("mod", "PUT", PL,
                                     _pl(_set_key("ban", 100))),
    "mod_lowers_tombstone_level": ("mod", "PUT", PL,
                                   _pl(_set_event("m.room.tombstone", 0))),
    "mod_raises_users_default": ("mod", "PUT", PL,
                                 _pl(_set_key("users_default", 100))),
    # State events above the sender's level.
    "bob_changes_join_rules": ("bob", "PUT", "state/m.room.join_rules", {"join_rule": "invite"}),
    "bob_names_room": ("bob", "PUT", "state/m.room.name", {"name": "bob's"}),
    "bob_custom_state": ("bob", "PUT", "state/org.example.thing/x", {"v": 1}),
    "mod_history_visibility": ("mod", "PUT", "state/m.room.history_visibility",
                               {"history_visibility": "world_readable"}),
    "mod_encryption": ("mod", "PUT", "state/m.room.encryption",
                       {"algorithm": "m.megolm.v1.aes-sha2"}),
    "mod_server_acl": ("mod", "PUT", "state/m.room.server_acl", {"allow": ["*"], "deny": []}),
    "mod_tombstone": ("mod", "PUT", "state/m.room.tombstone",
                      {"body": "gone", "replacement_room": "!elsewhere:localhost"}),
    # Redactions of others' events without the redact level.
    "bob_redacts_carol": ("bob", "PUT", "redact/{carol_event}/r1", {}),
    "bob_redacts_alice": ("bob", "PUT", "redact/{alice_event}/r2", {}),
    # Kicks and bans of users at or above the sender's level, or without the level.
    "mod_kicks_alice": ("mod", "POST", "kick", {"user_id": "{alice}"}),
    "mod_kicks_equal_eve": ("mod", "POST", "kick", {"user_id": "{eve}"}),
    "mod_bans_alice": ("mod", "POST", "ban", {"user_id": "{alice}"}),
    "mod_bans_equal_eve": ("mod", "POST", "ban", {"user_id": "{eve}"}),
    "bob_kicks_carol": ("bob", "POST", "kick", {"user_id": "{carol}"}),
    "bob_bans_carol": ("bob", "POST", "ban", {"user_id": "{carol}"}),
    # Another user's membership through PUT /state (plain, not a restricted join: item 1).
    "bob_kicks_carol_via_state": ("bob", "PUT", "state/m.room.member/{carol}",
                                  {"membership": "leave"}),
    "bob_bans_carol_via_state": ("bob", "PUT", "state/m.room.member/{carol}",
                                 {"membership": "ban"}),
    "bob_renames_carol_via_state": ("bob", "PUT", "state/m.room.member/{carol}",
                                    {"membership": "join", "displayname": "pwned"}),
    "mod_kicks_alice_via_state": ("mod", "PUT", "state/m.room.member/{alice}",
                                  {"membership": "leave"}),
    "mod_bans_eve_via_state": ("mod", "PUT", "state/m.room.member/{eve}",
                               {"membership": "ban"}),
}


def _fill(value: Any, w: World, room: Room) -> Any:
    if isinstance(value, str):
        return value.format(
            carol_event=quote(room.events["carol"]), alice_event=quote(room.events["alice"]),
            **{name: u.user_id for name, u in w.users.items()},
        )
    if isinstance(value, dict):
        return {k: _fill(v, w, room) for k, v in value.items()}
    return value


# In room version 10 only: Alice, the creator, is listed in `users` (v12 forbids it).
V10_PROBES = {"mod_removes_alice": ("mod", "PUT", PL, _pl(_drop_user("alice")))}


@pytest.mark.parametrize(("version", "name"), [
    (version, name) for version in VERSIONS for name in PROBES
] + [("10", name) for name in V10_PROBES])
async def test_power_level_bypass_is_refused(world: World, version: str, name: str) -> None:
    actor, method, path, body = PROBES.get(name) or V10_PROBES[name]
    room = world.rooms[version]
    content = body(world, room) if callable(body) else _fill(body, world, room)
    status, reply = await world.api.request(
        method, f"rooms/{room.room_id}/{_fill(path, world, room)}", json=content,
        token=world.users[actor].token,
    )
    assert (status, errcode(reply)) == (403, "M_FORBIDDEN"), (status, reply)


@pytest.mark.parametrize("version", VERSIONS)
async def test_the_room_is_unchanged(world: World, version: str) -> None:
    """After every probe: the same power levels, everyone still joined, no one renamed, the
    events unredacted (module order runs this last)."""
    api, alice, room = world.api, world.users["alice"], world.rooms[version]
    path = f"rooms/{room.room_id}"
    assert await api.ok("GET", f"{path}/state/m.room.power_levels",
                        token=alice.token) == room.power_levels
    joined = await api.ok("GET", f"{path}/joined_members", token=alice.token)
    assert set(joined["joined"]) == {u.user_id for u in world.users.values()}
    assert joined["joined"][world.users["carol"].user_id]["display_name"] != "pwned"
    for name, event_id in room.events.items():
        event = await api.ok("GET", f"{path}/event/{event_id}", token=alice.token)
        assert event["content"].get("body") == f"by {name}"
    rules = await api.ok("GET", f"{path}/state/m.room.join_rules", token=alice.token)
    assert rules == {"join_rule": "public"}


# ---- joins and aliases that need more than the sender has ---------------------------------

@pytest.mark.parametrize("join_rule", ["restricted", "knock_restricted"])
async def test_restricted_room_cannot_be_joined_through_put_state(
    world: World, join_rule: str
) -> None:
    """Carol is in no room the allow list names: her own join through PUT /state, naming a
    joined user with invite power as the authoriser, is refused as /join refuses it (issue 22
    item 1: `join_authorised_via_users_server` from a client is never trusted)."""
    api, alice, carol = world.api, world.users["alice"], world.users["carol"]
    allowed_room = await api.create_room(alice, preset="private_chat")
    room_id = await api.create_room(alice, preset="private_chat", room_version="10",
                                    initial_state=[{
                                        "type": "m.room.join_rules", "state_key": "",
                                        "content": {"join_rule": join_rule, "allow": [{
                                            "type": "m.room_membership",
                                            "room_id": allowed_room}]}}])
    status, reply = await api.request("POST", f"rooms/{room_id}/join", json={},
                                      token=carol.token)
    assert (status, errcode(reply)) == (403, "M_FORBIDDEN"), reply
    status, reply = await api.request(
        "PUT", f"rooms/{room_id}/state/m.room.member/{carol.user_id}", token=carol.token,
        json={"membership": "join", "join_authorised_via_users_server": alice.user_id},
    )
    assert (status, errcode(reply)) == (403, "M_FORBIDDEN"), reply
    status, reply = await api.request("GET", f"rooms/{room_id}/state", token=carol.token)
    assert (status, errcode(reply)) == (403, "M_FORBIDDEN"), reply


async def test_no_alias_for_a_room_one_is_not_in(world: World) -> None:
    """An alias names a room only if its creator is in it (issue 22 item 8; Synapse's
    require_membership_for_aliases): otherwise anyone could point names at any room."""
    api, alice = world.api, world.users["alice"]
    outsider = await api.register("outsider")
    room_id = await api.create_room(alice, preset="private_chat")
    alias = f"#not-yours:{alice.user_id.split(':', 1)[1]}"
    status, reply = await api.request("PUT", f"directory/room/{quote(alias)}",
                                      json={"room_id": room_id}, token=outsider.token)
    assert (status, errcode(reply)) == (403, "M_FORBIDDEN"), reply
    status, reply = await api.request("GET", f"directory/room/{quote(alias)}")
    assert (status, errcode(reply)) == (404, "M_NOT_FOUND"), reply

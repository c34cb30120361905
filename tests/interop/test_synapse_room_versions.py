"""Rooms of every version 1-11 shared by Moot and a real Synapse, both ways (issue 16 item 2).

Most rooms on the open network are older than version 10, and most of those were made by
Synapse. For each version a Synapse user makes a room with some history, and a Moot user
joins it through Moot, reads the history from before the join (Moot backfills it from
Synapse), exchanges messages, and sees state changes from Synapse while making one Synapse
sees. Redactions by the Synapse user reach Moot redacted as the version's algorithm says (a
message, and state events whose redacted form differs by version). The other way, a Moot user
makes a room of that version (`createRoom` with `room_version`), and a Synapse user joins it,
reads its history back from Moot, talks, and sees a redaction made on Moot.

The versions differ in what travels: event IDs (`$id:server` with the ID in the PDU in v1-v2,
standard base64 in v3, URL-safe from v4), state resolution (v1 in rooms v1), auth rules
(v1-v5 power levels may be strings, v6+ notification powers, v10 integers) and redaction
(aliases kept to v5, join rules' `allow` from v8, v11 keeps `invite` in power levels and
moves `redacts` into the content). One Synapse and one Moot serve the module (each test has
its own users and rooms), so that a version takes a few seconds each way.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from functools import partial
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest

from tests.federation_peers import Peer, eventually, joined_members, peer_group
from tests.helpers import MatrixApi, User
from tests.synapse_peer import SynapsePeer
from tests.synapse_rooms import (
    bodies,
    equals,
    event,
    exchange_messages,
    has_field,
    join,
    page_back,
    redact,
    set_state,
    state_content,
    state_crosses_both_ways,
    synapse_user,
)

VERSIONS = [str(v) for v in range(1, 12)]

# What a redaction leaves of a power-levels event (the redaction algorithm of rooms/v1.md;
# rooms v11 adds `invite`). Of join rules it leaves `join_rule`, and `allow` from v8; of
# m.room.aliases it leaves `aliases` up to v5 (v6 made aliases an ordinary event).
KEPT_LEVELS = {"ban", "events", "events_default", "kick", "redact", "state_default", "users",
               "users_default"}


def event_id_pattern(room_version: str, server_name: str) -> str:
    """The form of an event ID made by ``server_name`` in a room of ``room_version``."""
    if room_version in ("1", "2"):
        return r"\$[^:]+:" + re.escape(server_name)
    if room_version == "3":
        return r"\$[A-Za-z0-9+/]{43}"
    return r"\$[A-Za-z0-9_-]{43}"


def redacts(redaction: dict[str, Any], room_version: str) -> Any:
    """What a redaction event says it redacts: in the content from v11, at the top before."""
    return redaction["content"].get("redacts") if room_version == "11" else redaction.get(
        "redacts")


@pytest.fixture(scope="module")
async def moot(postgres_dsn: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Peer]:
    async with peer_group(postgres_dsn, tmp_path_factory.mktemp("versions")) as group:
        yield await group.new("moot")


async def _redacted(
    api: MatrixApi, user: User, room_id: str, event_id: str
) -> dict[str, Any] | None:
    """The event, once it is served redacted (with the redaction in `unsigned`)."""
    e = await event(api, user, room_id, event_id)
    return e if e is not None and "redacted_because" in e.get("unsigned", {}) else None


# --- a Moot user in a Synapse room of each version ---------------------------------------------

async def joined_and_backfilled(
    joiner: tuple[MatrixApi, User], host: tuple[MatrixApi, User], room_id: str,
    room_version: str, history: list[str],
) -> None:
    """The joiner's server holds the room at its version with both members (and the host's
    server comes to see the join), and pages the history from before the join back from the
    host's server, a page of 3 at a time, down to the create event, each event once."""
    (api, user), (host_api, host_user) = joiner, host
    both = {user.user_id, host_user.user_id}
    assert await joined_members(api, user, room_id) == both
    create = await state_content(api, user, room_id, "m.room.create")
    assert create is not None and create.get("room_version") == room_version
    await eventually(lambda: equals(joined_members(host_api, host_user, room_id), both),
                     f"{user.user_id}'s join on the host")
    seen = await page_back(api, user, room_id, limit=3)
    assert seen[0]["type"] == "m.room.create"
    assert [e["content"].get("body") for e in seen if e["type"] == "m.room.message"] == history
    assert len({e["event_id"] for e in seen}) == len(seen)


@pytest.mark.parametrize("room_version", VERSIONS)
async def test_a_moot_user_joins_backfills_and_talks_in_a_synapse_room(
    moot: Peer, peer_http: aiohttp.ClientSession, synapse: SynapsePeer, room_version: str
) -> None:
    api = moot.api(peer_http)
    alice = await api.register(f"alice_joins_v{room_version}")
    sapi, bob = await synapse_user(synapse, "bob")
    room_id = await sapi.create_room(bob, preset="public_chat", room_version=room_version)
    history = [f"before the join {i}" for i in range(3)]
    for text in history:
        await sapi.send_message(bob, room_id, text)

    await join(api, alice, room_id, synapse.server_name)
    await joined_and_backfilled((api, alice), (sapi, bob), room_id, room_version, history)

    await exchange_messages((api, alice), (sapi, bob), room_id)
    ours = await api.send_message(alice, room_id, "an event ID of this version")
    assert re.fullmatch(event_id_pattern(room_version, moot.name), ours), ours

    # Synapse's state changes reach Moot, and Moot's (allowed by Synapse's grant) Synapse.
    levels = await state_content(sapi, bob, room_id, "m.room.power_levels")
    assert levels is not None
    granting = {**levels, "users": {**levels["users"], alice.user_id: 50},
                "notifications": {"room": 50}}
    granted = await set_state(sapi, bob, room_id, "m.room.power_levels", granting)
    await eventually(
        lambda: has_field(state_content(api, alice, room_id, "m.room.power_levels"), "users",
                       granting["users"]),
        "Synapse's grant on Moot",
    )
    await set_state(api, alice, room_id, "m.room.topic", {"topic": "set on moot"})
    await eventually(
        lambda: has_field(state_content(sapi, bob, room_id, "m.room.topic"), "topic",
                          "set on moot"),
        "Moot's topic on Synapse",
    )
    await set_state(sapi, bob, room_id, "m.room.topic", {"topic": "set on synapse"})
    await eventually(
        lambda: has_field(state_content(api, alice, room_id, "m.room.topic"), "topic",
                       "set on synapse"),
        "Synapse's topic on Moot",
    )

    # Redactions by Synapse's user: a message, and state events whose redacted form differs by
    # version, each superseded first so that the room's rules stay as they were.
    rules = await set_state(sapi, bob, room_id, "m.room.join_rules", {
        "join_rule": "public", "allow": [{"type": "m.room_membership", "room_id": room_id}],
    })
    aliases = await set_state(sapi, bob, room_id, "m.room.aliases",
                              {"aliases": [f"#v{room_version}:{synapse.server_name}"]},
                              synapse.server_name)
    await set_state(sapi, bob, room_id, "m.room.join_rules", {"join_rule": "public"})
    await set_state(sapi, bob, room_id, "m.room.power_levels",
                    {**granting, "notifications": {"room": 100}})
    doomed = await sapi.send_message(bob, room_id, "to be redacted")
    kept = {
        doomed: set(),
        granted: KEPT_LEVELS | ({"invite"} if room_version == "11" else set()),
        rules: {"join_rule", "allow"} if int(room_version) >= 8 else {"join_rule"},
        aliases: {"aliases"} if int(room_version) <= 5 else set(),
    }
    for target, keys in kept.items():
        redaction = await redact(sapi, bob, room_id, target)
        on_moot = await eventually(partial(_redacted, api, alice, room_id, target),
                                   f"the redaction of {target} on Moot")
        assert set(on_moot["content"]) == keys, on_moot["type"]
        because = on_moot["unsigned"]["redacted_because"]
        assert because["event_id"] == redaction
        assert redacts(because, room_version) == target


# --- a Synapse user in a Moot room of each version ---------------------------------------------

@pytest.mark.parametrize("room_version", VERSIONS)
async def test_a_synapse_user_joins_backfills_and_talks_in_a_moot_room(
    moot: Peer, peer_http: aiohttp.ClientSession, synapse: SynapsePeer, room_version: str
) -> None:
    api = moot.api(peer_http)
    alice = await api.register(f"alice_hosts_v{room_version}")
    room_id = await api.create_room(alice, preset="public_chat", room_version=room_version)
    history = [f"before the join {i}" for i in range(3)]
    for text in history:
        created = await api.send_message(alice, room_id, text)
        assert re.fullmatch(event_id_pattern(room_version, moot.name), created), created

    sapi, bob = await synapse_user(synapse, "bob")
    await join(sapi, bob, room_id, moot.name, "server_name")
    await joined_and_backfilled((sapi, bob), (api, alice), room_id, room_version, history)

    await exchange_messages((sapi, bob), (api, alice), room_id)
    await state_crosses_both_ways((api, alice), (sapi, bob), room_id)

    # A redaction made on Moot is one Synapse applies.
    doomed = await api.send_message(alice, room_id, "to be redacted")
    await eventually(lambda: event(sapi, bob, room_id, doomed), "the message on Synapse")
    await redact(api, alice, room_id, doomed)
    message = await eventually(partial(_redacted, sapi, bob, room_id, doomed),
                               "the redacted message on Synapse")
    assert message["content"] == {}
    assert "to be redacted" not in await bodies(sapi, bob, room_id)


# --- restricted rooms (v8+) --------------------------------------------------------------------

@pytest.mark.parametrize("room_version", ["8", "9", "10", "11"])
async def test_a_moot_user_joins_a_restricted_synapse_room_through_another_rooms_membership(
    moot: Peer, peer_http: aiohttp.ClientSession, synapse: SynapsePeer, room_version: str
) -> None:
    """Synapse vouches for the join (`join_authorised_via_users_server`, rooms v8 and on) of a
    member of the room the join rules allow, and refuses anyone else."""
    api = moot.api(peer_http)
    alice = await api.register(f"alice_member_v{room_version}")
    carol = await api.register(f"carol_outsider_v{room_version}")
    sapi, bob = await synapse_user(synapse, "bob")
    space = await sapi.create_room(bob, preset="public_chat", room_version=room_version)
    room_id = await sapi.create_room(
        bob, preset="private_chat", room_version=room_version, initial_state=[{
            "type": "m.room.join_rules", "state_key": "",
            "content": {"join_rule": "restricted",
                        "allow": [{"type": "m.room_membership", "room_id": space}]},
        }],
    )
    status, body = await api.request(
        "POST", f"join/{quote(room_id)}", token=carol.token, json={},
        params={"via": synapse.server_name},
    )
    assert (status, body.get("errcode")) == (403, "M_FORBIDDEN"), body

    await join(api, alice, space, synapse.server_name)
    await join(api, alice, room_id, synapse.server_name)
    both = {alice.user_id, bob.user_id}
    assert await joined_members(api, alice, room_id) == both
    member = await state_content(api, alice, room_id, "m.room.member", alice.user_id)
    assert member is not None
    assert member.get("join_authorised_via_users_server") == bob.user_id
    await eventually(lambda: equals(joined_members(sapi, bob, room_id), both),
                     "Alice's join on Synapse")
    await exchange_messages((api, alice), (sapi, bob), room_id)

"""Room upgrades beyond the replacement room itself: the space `type` and children carried over,
`additional_creators` (v1.16), local aliases and the directory entry moved, the old room's
levels raised above `users_default` and its bans copied, and each user's tags, `m.direct` entry
and push rules following them into the new room when they join it (the upgrader's at once)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest

from tests.helpers import MatrixApi, User
from tests.room_upgrades import upgrade


async def state_content(api: MatrixApi, user: User, room_id: str, event_type: str) -> Any:
    return await api.ok("GET", f"rooms/{quote(room_id)}/state/{event_type}", token=user.token)


async def test_a_space_keeps_its_type_children_aliases_and_bans(api: MatrixApi) -> None:
    alice, bob, carol = [await api.register(n) for n in ("alice", "bob", "carol")]
    old = await api.create_room(alice, preset="public_chat", name="Garden",
                                room_alias_name="garden", room_version="11",
                                creation_content={"type": "m.space", "m.federate": False})
    child = await api.create_room(alice, preset="public_chat")
    await api.ok("PUT", f"rooms/{quote(old)}/state/m.space.child/{quote(child)}",
                 json={"via": ["localhost"], "order": "a"}, token=alice.token)
    await api.ok("PUT", f"directory/list/room/{quote(old)}", json={"visibility": "public"},
                 token=alice.token)
    levels = await state_content(api, alice, old, "m.room.power_levels")
    await api.ok("PUT", f"rooms/{quote(old)}/state/m.room.power_levels",
                 json={**levels, "users_default": 60}, token=alice.token)
    await api.ok("POST", f"rooms/{quote(old)}/ban", json={"user_id": carol.user_id,
                                                          "reason": "spam"}, token=alice.token)
    await api.join(bob, old)
    last = await api.send_message(bob, old, "last words")

    new = await upgrade(api, alice, old, new_version="12")
    create = await state_content(api, alice, new, "m.room.create")
    assert (create["type"], create["m.federate"]) == ("m.space", False)
    assert create["predecessor"] == {"room_id": old, "event_id": last}
    children = await api.ok("GET", f"rooms/{quote(new)}/state", token=alice.token)
    assert [(e["state_key"], e["content"]["order"]) for e in children
            if e["type"] == "m.space.child"] == [(child, "a")]
    ban = await state_content(api, alice, new, f"m.room.member/{quote(carol.user_id)}")
    assert (ban["membership"], ban["reason"]) == ("ban", "spam")

    alias = await api.ok("GET", "directory/room/%23garden:localhost")
    assert alias["room_id"] == new
    assert (await state_content(api, alice, new, "m.room.canonical_alias"))["alias"] \
        == "#garden:localhost"
    assert await state_content(api, alice, old, "m.room.canonical_alias") == {}
    listed = [r["room_id"] for r in (await api.ok("GET", "publicRooms"))["chunk"]]
    assert new in listed and old not in listed

    restricted = await state_content(api, alice, old, "m.room.power_levels")
    assert restricted["events_default"] == 61 and restricted["invite"] == 61


async def test_additional_creators_where_the_new_version_has_them(api: MatrixApi) -> None:
    alice, bob = await api.register("alice"), await api.register("bob")
    old = await api.create_room(alice, preset="public_chat", room_version="11")
    await api.join(bob, old)
    levels = await state_content(api, alice, old, "m.room.power_levels")
    await api.ok("PUT", f"rooms/{quote(old)}/state/m.room.power_levels",
                 json={**levels, "users": {**levels["users"], bob.user_id: 50}},
                 token=alice.token)
    for body, errcode in (
        ({"new_version": "12", "additional_creators": "@bob:localhost"}, "M_BAD_JSON"),
        ({"new_version": "12", "additional_creators": ["bob"]}, "M_INVALID_PARAM"),
    ):
        status, error = await api.request("POST", f"rooms/{quote(old)}/upgrade", json=body,
                                          token=alice.token)
        assert (status, error["errcode"]) == (400, errcode), body

    new = await upgrade(api, alice, old, new_version="12", additional_creators=[bob.user_id])
    create = await state_content(api, alice, new, "m.room.create")
    assert create["additional_creators"] == [bob.user_id]
    power = await state_content(api, alice, new, "m.room.power_levels")
    assert bob.user_id not in power.get("users", {})  # a creator may not be listed (v12)
    await api.join(bob, new)
    # A creator's power is unbounded: Bob may rename the room without being listed.
    await api.ok("PUT", f"rooms/{quote(new)}/state/m.room.name", json={"name": "Bob's"},
                 token=bob.token)

    plain = await api.create_room(alice, room_version="10")
    newer = await upgrade(api, alice, plain, new_version="11",
                          additional_creators=[bob.user_id])
    assert "additional_creators" not in await state_content(api, alice, newer, "m.room.create")


async def tag_and_rules(api: MatrixApi, user: User, room_id: str, other: str) -> None:
    """A tag on the room, the room in `m.direct`, a room rule and an override on it."""
    await api.ok("PUT", f"user/{quote(user.user_id)}/rooms/{quote(room_id)}/tags/u.work",
                 json={"order": 0.25}, token=user.token)
    await api.ok("PUT", f"user/{quote(user.user_id)}/account_data/m.direct",
                 json={other: [room_id]}, token=user.token)
    await api.ok("PUT", f"pushrules/global/room/{quote(room_id)}",
                 json={"actions": []}, token=user.token)
    await api.ok("PUT", "pushrules/global/override/loud", token=user.token, json={
        "conditions": [{"kind": "event_match", "key": "room_id", "pattern": room_id}],
        "actions": ["notify", {"set_tweak": "sound", "value": "default"}],
    })


async def assert_followed(api: MatrixApi, user: User, new: str, other: str) -> None:
    tags = await api.ok("GET", f"user/{quote(user.user_id)}/rooms/{quote(new)}/tags",
                        token=user.token)
    assert tags["tags"] == {"u.work": {"order": 0.25}}
    direct = await api.ok("GET", f"user/{quote(user.user_id)}/account_data/m.direct",
                          token=user.token)
    assert new in direct[other]
    room_rule = await api.ok("GET", f"pushrules/global/room/{quote(new)}", token=user.token)
    assert room_rule["actions"] == []
    override = await api.ok("GET", f"pushrules/global/override/{quote(new)}", token=user.token)
    assert override["conditions"] == [
        {"kind": "event_match", "key": "room_id", "pattern": new}
    ]
    assert override["actions"][0] == "notify"


async def test_tags_direct_and_push_rules_follow_users_into_the_new_room(
    api: MatrixApi,
) -> None:
    alice, bob = await api.register("alice"), await api.register("bob")
    old = await api.create_room(alice, preset="public_chat", room_version="11")
    await api.join(bob, old)
    await tag_and_rules(api, alice, old, bob.user_id)
    await tag_and_rules(api, bob, old, alice.user_id)

    new = await upgrade(api, alice, old, new_version="12")
    await assert_followed(api, alice, new, bob.user_id)
    status, _ = await api.request(
        "GET", f"pushrules/global/room/{quote(new)}", token=bob.token
    )
    assert status == 404  # Bob has not joined yet
    await api.ok("POST", f"join/{quote(new)}", json={}, token=bob.token)
    await assert_followed(api, bob, new, alice.user_id)
    # The old room's settings stay as they were.
    tags = await api.ok("GET", f"user/{quote(bob.user_id)}/rooms/{quote(old)}/tags",
                        token=bob.token)
    assert tags["tags"] == {"u.work": {"order": 0.25}}


@pytest.mark.parametrize("old_version", ["1", "3", "9"])
async def test_a_room_of_an_old_version_upgrades_to_the_default(
    api: MatrixApi, old_version: str
) -> None:
    """Most rooms an upgrade leaves are old: their tombstone is built with their version's
    event IDs and references, and the new room names it as its predecessor."""
    alice = await api.register("alice")
    old = await api.create_room(alice, preset="public_chat", room_version=old_version)
    last = await api.send_message(alice, old, "before the upgrade")
    new = await upgrade(api, alice, old, new_version="12")
    create = await state_content(api, alice, new, "m.room.create")
    assert create["predecessor"] == {"room_id": old, "event_id": last}
    tombstone = await state_content(api, alice, old, "m.room.tombstone")
    assert tombstone["replacement_room"] == new

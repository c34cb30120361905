"""Memberships across Moot servers: invites of remote users (countersigned by their server),
rejecting a remote invite, leaving a remote room, and the room's member limit enforced at every
path another server can take into the room."""

from __future__ import annotations

import time
import uuid
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest
from prometheus_client import REGISTRY

from federation.client import HttpResponseError
from homeserver.protocol.events import build_event
from homeserver.protocol.restricted_joins import AUTHORISER
from homeserver.protocol.room_versions import get_room_version
from homeserver.protocol.signing import key_id
from tests.federation_peers import Peers, eventually, join_via, remote_invite
from tests.helpers import MatrixApi, User

LIMIT = {"rooms.max_members": 3}


async def _membership(api: MatrixApi, user: User, room_id: str, who: str) -> str | None:
    status, body = await api.request(
        "GET", f"rooms/{quote(room_id)}/state/m.room.member/{quote(who)}", token=user.token
    )
    return body.get("membership") if status == 200 else None


async def _invited_to(api: MatrixApi, user: User, room_id: str) -> list[dict[str, object]]:
    rooms = (await api.sync(user)).get("rooms", {}).get("invite", {})
    events: list[dict[str, object]] = rooms.get(room_id, {}).get("invite_state", {}).get(
        "events", []
    )
    return events


async def test_invite_a_remote_user_who_joins_then_leaves(
    peers: Peers, peer_http: aiohttp.ClientSession
) -> None:
    a, b = await peers.new("a"), await peers.new("b")
    api_a, api_b = a.api(peer_http), b.api(peer_http)
    alice, bob = await api_a.register("alice"), await api_b.register("bob")
    room_id = await api_a.create_room(alice, preset="private_chat", name="secret")
    await api_a.ok("POST", f"rooms/{quote(room_id)}/invite", token=alice.token,
                   json={"user_id": bob.user_id})
    assert await _membership(api_a, alice, room_id, bob.user_id) == "invite"

    invite_state = await eventually(lambda: _invited_to(api_b, bob, room_id), "Bob's invite")
    assert {"m.room.name", "m.room.member"} <= {e["type"] for e in invite_state}
    # B knows nothing of the room but the invite: joining goes through the inviter's server.
    await api_b.ok("POST", f"rooms/{quote(room_id)}/join", token=bob.token, json={})
    await eventually(
        lambda: _is(api_a, alice, room_id, bob.user_id, "join"), "Bob's join on A"
    )
    await api_b.ok("POST", f"rooms/{quote(room_id)}/leave", token=bob.token, json={})
    await eventually(
        lambda: _is(api_a, alice, room_id, bob.user_id, "leave"), "Bob's leave on A"
    )
    joined = await api_b.ok("GET", "joined_rooms", token=bob.token)
    assert room_id not in joined["joined_rooms"]


async def test_a_remote_invite_can_be_rejected(
    peers: Peers, peer_http: aiohttp.ClientSession
) -> None:
    a, b = await peers.new("a"), await peers.new("b")
    api_a, api_b = a.api(peer_http), b.api(peer_http)
    alice, bob = await api_a.register("alice"), await api_b.register("bob")
    room_id = await api_a.create_room(alice, preset="private_chat")
    await api_a.ok("POST", f"rooms/{quote(room_id)}/invite", token=alice.token,
                   json={"user_id": bob.user_id})
    await eventually(lambda: _invited_to(api_b, bob, room_id), "Bob's invite")
    await api_b.ok("POST", f"rooms/{quote(room_id)}/leave", token=bob.token, json={})
    await eventually(
        lambda: _is(api_a, alice, room_id, bob.user_id, "leave"), "the rejection on A"
    )
    left = (await api_b.sync(bob))["rooms"].get("invite", {})
    assert room_id not in left


async def test_a_direct_chat_created_with_a_remote_invitee_reaches_their_server(
    peers: Peers, peer_http: aiohttp.ClientSession
) -> None:
    """createRoom's `invite` list takes the invite handshake for a user of another server
    (Element's "start DM"), and every invite, local or remote, carries `is_direct`."""
    a, b = await peers.new("a"), await peers.new("b")
    api_a, api_b = a.api(peer_http), b.api(peer_http)
    alice, carol = await api_a.register("alice"), await api_a.register("carol")
    bob = await api_b.register("bob")
    room_id = await api_a.create_room(
        alice, preset="trusted_private_chat", is_direct=True,
        invite=[bob.user_id, carol.user_id],
    )

    for api, user in ((api_b, bob), (api_a, carol)):
        invite_state = await eventually(
            lambda api=api, user=user: _invited_to(api, user, room_id),
            f"{user.user_id}'s invite",
        )
        own = [e for e in invite_state
               if e["type"] == "m.room.member" and e["state_key"] == user.user_id]
        assert [(e["content"]["membership"], e["content"].get("is_direct")) for e in own] == [
            ("invite", True)
        ], own
    since = (await api_b.sync(bob))["next_batch"]
    await api_b.ok("POST", f"rooms/{quote(room_id)}/join", token=bob.token, json={})
    await eventually(
        lambda: _is(api_a, alice, room_id, bob.user_id, "join"), "Bob's join on A"
    )
    # Bob's next sync holds the room's state, m.room.encryption (private rooms are encrypted
    # by default) among it, though B has none of the room's events before Bob's join.
    joined = (await api_b.sync(bob, since=since))["rooms"]["join"][room_id]
    state = {e["type"] for e in joined["state"]["events"] + joined["timeline"]["events"]}
    assert {"m.room.create", "m.room.encryption", "m.room.power_levels"} <= state, state


async def _since_rejected(
    api: MatrixApi, user: User, room_id: str, since: str
) -> dict[str, Any]:
    """The rooms of `user`'s incremental sync after rejecting the invite to `room_id`."""
    await api.ok("POST", f"rooms/{quote(room_id)}/leave", token=user.token, json={})
    rooms: dict[str, Any] = (await api.sync(user, since=since))["rooms"]
    return rooms


async def test_an_invite_is_rejected_when_the_inviting_server_cannot_be_reached(
    peers: Peers, peer_http: aiohttp.ClientSession
) -> None:
    """As Synapse: when no server helps, the rejection is made here alone and the invite goes."""
    invite = await remote_invite(peers, peer_http)
    api_b, bob, room_id = invite.api_b, invite.bob, invite.room_id
    since = (await api_b.sync(bob))["next_batch"]
    await invite.a.stop()

    rooms = await _since_rejected(api_b, bob, room_id, since)
    assert room_id not in rooms.get("invite", {})
    assert room_id in rooms.get("leave", {})
    assert room_id not in (await api_b.sync(bob))["rooms"].get("invite", {})


async def test_an_invite_to_a_room_everyone_else_left_is_rejected(
    peers: Peers, peer_http: aiohttp.ClientSession
) -> None:
    """The inviting server is no longer in the room (its make_leave answers 404)."""
    invite = await remote_invite(peers, peer_http)
    api_b, bob, room_id = invite.api_b, invite.bob, invite.room_id
    await invite.api_a.ok(
        "POST", f"rooms/{quote(room_id)}/leave", token=invite.alice.token, json={}
    )
    since = (await api_b.sync(bob))["next_batch"]

    rooms = await _since_rejected(api_b, bob, room_id, since)
    assert room_id not in rooms.get("invite", {})
    assert room_id in rooms.get("leave", {})


async def test_the_member_limit_holds_across_servers(
    peers: Peers, peer_http: aiohttp.ClientSession
) -> None:
    a = await peers.new("a", overrides=LIMIT)
    b = await peers.new("b")  # a larger limit of its own: the room's lower one applies
    api_a, api_b = a.api(peer_http), b.api(peer_http)
    alice = await api_a.register("alice")
    bobs = [await api_b.register(f"bob{i}") for i in range(3)]
    room_id = await api_a.create_room(alice, preset="public_chat")
    await join_via(api_b, bobs[0], room_id, a)
    await join_via(api_b, bobs[1], room_id, a)  # exactly full: 3 of 3

    # One over: refused by A's make_join, and B passes the refusal on.
    status, body = await api_b.request(
        "POST", f"join/{quote(room_id)}", token=bobs[2].token, json={},
        params={"via": a.name},
    )
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN"), body
    assert "full" in body["error"]
    # B is in the room now; a join through B is refused by B itself.
    status, body = await api_b.request(
        "POST", f"rooms/{quote(room_id)}/join", token=bobs[2].token, json={}
    )
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN"), body
    # An invite from A of a B user: refused before any server is asked.
    carol = await api_b.register("carol")
    status, body = await api_a.request(
        "POST", f"rooms/{quote(room_id)}/invite", token=alice.token,
        json={"user_id": carol.user_id},
    )
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN"), body

    # A seat freed by a leave on B is a seat for the next.
    await api_b.ok("POST", f"rooms/{quote(room_id)}/leave", token=bobs[1].token, json={})
    await eventually(
        lambda: _is(api_a, alice, room_id, bobs[1].user_id, "leave"), "the leave on A"
    )
    await api_b.ok("POST", f"rooms/{quote(room_id)}/join", token=bobs[2].token, json={})
    await eventually(
        lambda: _is(api_a, alice, room_id, bobs[2].user_id, "join"), "the new join on A"
    )


async def test_a_join_over_the_limit_from_another_server_is_soft_failed(
    peers: Peers, peer_http: aiohttp.ClientSession
) -> None:
    """A and B are cut off from each other; each admits one more member to a room with one
    seat left. When they meet again, each soft-fails the other's join."""
    a, b = await peers.new("a", overrides=LIMIT), await peers.new("b", overrides=LIMIT)
    api_a, api_b = a.api(peer_http), b.api(peer_http)
    alice, alice2 = await api_a.register("alice"), await api_a.register("alice2")
    bob, bob2 = await api_b.register("bob"), await api_b.register("bob2")
    room_id = await api_a.create_room(alice, preset="public_chat")
    await join_via(api_b, bob, room_id, a)
    await eventually(lambda: _is(api_b, bob, room_id, alice.user_id, "join"), "the room on B")

    await a.federation.outbound.sender.stop()
    await b.federation.outbound.sender.stop()
    await api_a.ok("POST", f"rooms/{quote(room_id)}/join", token=alice2.token, json={})
    await api_b.ok("POST", f"rooms/{quote(room_id)}/join", token=bob2.token, json={})
    before = _soft_failed_room_full()
    await a.federation.outbound.sender.start()
    await b.federation.outbound.sender.start()

    async def both_soft_failed() -> bool:
        return _soft_failed_room_full() >= before + 2

    await eventually(both_soft_failed, "two soft-failed joins")
    assert await _membership(api_a, alice, room_id, bob2.user_id) is None
    assert await _membership(api_b, bob, room_id, alice2.user_id) is None


def _soft_failed_room_full() -> float:
    return REGISTRY.get_sample_value(
        "moot_events_soft_failed_total", {"reason": "room_full"}
    ) or 0.0


async def _is(api: MatrixApi, user: User, room_id: str, who: str, membership: str) -> bool:
    return await _membership(api, user, room_id, who) == membership


async def restricted_room(
    api: MatrixApi, creator: User, rule: str, version: str, **create: Any
) -> tuple[str, str]:
    """(space, room): a public room and a room `rule` restricts to its members."""
    space = await api.create_room(creator, preset="public_chat", room_version=version)
    room_id = await api.create_room(
        creator, preset="private_chat", room_version=version, **create, initial_state=[{
            "type": "m.room.join_rules", "state_key": "",
            "content": {"join_rule": rule,
                        "allow": [{"type": "m.room_membership", "room_id": space}]},
        }],
    )
    return space, room_id


@pytest.mark.parametrize(("rule", "version"), [("restricted", "11"), ("knock_restricted", "12")])
async def test_a_restricted_room_admits_members_of_an_allowed_room(
    peers: Peers, peer_http: aiohttp.ClientSession, rule: str, version: str
) -> None:
    a, b = await peers.new("a"), await peers.new("b")
    api_a, api_b = a.api(peer_http), b.api(peer_http)
    alice = await api_a.register("alice")
    member, stranger = await api_b.register("member"), await api_b.register("stranger")
    space, room_id = await restricted_room(api_a, alice, rule, version)
    await join_via(api_b, member, space, a)
    # A member of the allowed room joins: A's user authorises it and A countersigns.
    await join_via(api_b, member, room_id, a)
    await eventually(
        lambda: _is(api_a, alice, room_id, member.user_id, "join"), "the restricted join on A"
    )
    state = await api_b.ok(
        "GET", f"rooms/{quote(room_id)}/state/m.room.member/{quote(member.user_id)}",
        token=member.token,
    )
    assert state[AUTHORISER] == alice.user_id
    # Someone in none of the allowed rooms is refused.
    status, body = await api_b.request(
        "POST", f"join/{quote(room_id)}", token=stranger.token, json={},
        params={"via": a.name},
    )
    assert status == 403, body
    assert await _membership(api_a, alice, room_id, stranger.user_id) is None


async def test_a_remote_join_with_an_authoriser_the_resident_did_not_grant_is_refused(
    peers: Peers, peer_http: aiohttp.ClientSession
) -> None:
    """B plays a hostile server: joins of a restricted room of A naming an authoriser,
    without A's signature, with a forged one, naming a user who may not invite, or for a user
    in none of the allowed rooms. None gets in, by /send or by send_join."""
    a, b = await peers.new("a"), await peers.new("b")
    api_a, api_b = a.api(peer_http), b.api(peer_http)
    alice = await api_a.register("alice")
    bob, carol, stranger = [await api_b.register(n) for n in ("bob", "carol", "stranger")]
    space, room_id = await restricted_room(
        api_a, alice, "restricted", "12", power_level_content_override={"invite": 50}
    )
    for user in (bob, carol):
        await join_via(api_b, user, space, a)
    await join_via(api_b, bob, room_id, a)  # Bob is in, at level 0: he may not invite
    await eventually(lambda: _is(api_a, alice, room_id, bob.user_id, "join"), "Bob on A")
    room = quote(room_id, safe="")

    async def join_event(user: User, authoriser: str) -> tuple[str, dict[str, Any]]:
        """`user`'s join naming `authoriser`, built by B on A's make_join template (Carol's:
        she qualifies, so A answers) and signed by B only."""
        template = (await b.federation.outbound.client.get_json(
            a.name, f"/_matrix/federation/v1/make_join/{room}/{quote(carol.user_id, safe='')}",
            {"ver": ["12"]},
        ))["event"]
        assert template["content"][AUTHORISER] == alice.user_id
        event_id, pdu = build_event(
            room_version=get_room_version("12"), room_id=room_id, sender=user.user_id,
            event_type="m.room.member", state_key=user.user_id,
            content={"membership": "join", AUTHORISER: authoriser},
            prev_events=template["prev_events"], auth_events=template["auth_events"],
            depth=template["depth"], origin_server_ts=int(time.time() * 1000),
            server_name=b.name, signing_key=b.signing_key,
        )
        return str(event_id), pdu

    async def through_send(event_id: str, pdu: dict[str, Any]) -> None:
        answer = await b.federation.outbound.client.put_json(
            a.name, f"/_matrix/federation/v1/send/{uuid.uuid4().hex}",
            {"origin": b.name, "origin_server_ts": int(time.time() * 1000), "pdus": [pdu],
             "edus": []},
        )
        assert "error" in answer["pdus"][event_id], answer

    async def through_send_join(event_id: str, pdu: dict[str, Any]) -> None:
        with pytest.raises(HttpResponseError) as refused:
            await b.federation.outbound.client.put_json(
                a.name, f"/_matrix/federation/v2/send_join/{room}/{quote(event_id, safe='')}",
                pdu,
            )
        assert refused.value.status == 403, refused.value

    # Not signed by A, whose user it names.
    await through_send(*await join_event(carol, alice.user_id))
    # "Signed" by A with B's signature bytes under A's key ID.
    event_id, pdu = await join_event(carol, alice.user_id)
    [b_signature] = pdu["signatures"][b.name].values()
    a_key = key_id(a.signing_key)
    forged = {**pdu, "signatures": {**pdu["signatures"], a.name: {a_key: b_signature}}}
    await through_send(event_id, forged)
    # Naming Bob, who is joined and whose server signs, but may not invite.
    await through_send_join(*await join_event(carol, bob.user_id))
    await through_send(*await join_event(carol, bob.user_id))
    # Naming Alice, for a user in none of the allowed rooms: A does not countersign.
    await through_send_join(*await join_event(stranger, alice.user_id))

    for user in (carol, stranger):
        assert await _membership(api_a, alice, room_id, user.user_id) is None
    # Carol does qualify. B is in the room but no user of B may invite: B's /join asks A,
    # whose Alice may, through make_join/send_join (as Synapse does).
    await api_b.ok("POST", f"join/{room}", token=carol.token, json={})
    await eventually(lambda: _is(api_a, alice, room_id, carol.user_id, "join"), "Carol on A")
    assert await _is(api_b, bob, room_id, carol.user_id, "join")
    joined = await api_b.ok("GET", "joined_rooms", token=carol.token)
    assert room_id in joined["joined_rooms"]


async def test_a_knock_on_a_full_room_is_refused(
    peers: Peers, peer_http: aiohttp.ClientSession
) -> None:
    a, b = await peers.new("a", overrides=LIMIT), await peers.new("b")
    api_a = a.api(peer_http)
    alice, a2, a3 = [await api_a.register(n) for n in ("alice", "a2", "a3")]
    room_id = await api_a.create_room(alice, preset="private_chat", room_version="12",
                                      initial_state=[{"type": "m.room.join_rules",
                                                      "state_key": "",
                                                      "content": {"join_rule": "knock"}}])
    knock = (f"/_matrix/federation/v1/make_knock/{quote(room_id, safe='')}/"
             f"{quote('@bob:' + b.name, safe='')}")
    answer = await b.federation.outbound.client.get_json(a.name, knock, {"ver": ["12"]})
    assert answer["event"]["content"]["membership"] == "knock"
    for user in (a2, a3):  # invites take the two seats left
        await api_a.ok("POST", f"rooms/{quote(room_id)}/invite", token=alice.token,
                       json={"user_id": user.user_id})
    try:
        await b.federation.outbound.client.get_json(a.name, knock, {"ver": ["12"]})
    except HttpResponseError as e:
        assert (e.status, e.errcode) == (403, "M_FORBIDDEN")
    else:
        raise AssertionError("a knock on a full room was answered")

"""Rooms shared by Moot servers federating over TLS on loopback: remote joins through the
Client-Server API, messages and state in both directions, forks resolved the same way on
every server, and a server killed and restarted while its peers keep sending."""

from __future__ import annotations

from urllib.parse import quote

import aiohttp
from prometheus_client import REGISTRY

from storage import state as state_store
from tests.federation_peers import Peer, Peers, eventually, join_via, joined_members
from tests.helpers import MatrixApi, User

DEADLINE_S = 30.0


async def timeline_bodies(api: MatrixApi, user: User, room_id: str) -> list[str]:
    messages = await api.ok(
        "GET", f"rooms/{quote(room_id)}/messages", token=user.token,
        params={"dir": "b", "limit": "100"},
    )
    return [
        e["content"].get("body") for e in reversed(messages["chunk"])
        if e["type"] == "m.room.message"
    ]


async def shared_room(
    peers: Peers, http: aiohttp.ClientSession, count: int = 2
) -> tuple[list[Peer], list[MatrixApi], list[User], str]:
    """`count` servers, a user on each, all joined to a public room created on the first."""
    servers = [await peers.new(label) for label in "abc"[:count]]
    apis = [s.api(http) for s in servers]
    users = [await api.register(f"user{i}") for i, api in enumerate(apis)]
    room_id = await apis[0].create_room(users[0], preset="public_chat")
    for api, user in zip(apis[1:], users[1:], strict=True):
        await join_via(api, user, room_id, servers[0])
    return servers, apis, users, room_id


async def test_a_remote_user_joins_and_messages_flow_both_ways(
    peers: Peers, peer_http: aiohttp.ClientSession
) -> None:
    _, (api_a, api_b), (alice, bob), room_id = await shared_room(peers, peer_http)

    joined = await api_b.ok("GET", "joined_rooms", token=bob.token)
    assert room_id in joined["joined_rooms"]
    members_on_b = await api_b.ok(
        "GET", f"rooms/{quote(room_id)}/joined_members", token=bob.token
    )
    assert set(members_on_b["joined"]) == {alice.user_id, bob.user_id}
    # A learnt of Bob's join through send_join.
    await eventually(
        lambda: _joined_members(api_a, alice, room_id, {alice.user_id, bob.user_id}),
        "Bob's join on A",
    )

    await api_a.send_message(alice, room_id, "hello from a")
    await eventually(
        lambda: _has(api_b, bob, room_id, "hello from a"), "A's message on B"
    )
    await api_b.send_message(bob, room_id, "hello from b")
    await eventually(
        lambda: _has(api_a, alice, room_id, "hello from b"), "B's message on A"
    )
    # State set on A is state on B (B's state changes travel in the fork test below).
    await api_a.ok(
        "PUT", f"rooms/{quote(room_id)}/state/m.room.topic", token=alice.token,
        json={"topic": "set on a"},
    )
    await eventually(lambda: _topic(api_b, bob, room_id, "set on a"), "A's topic on B")
    # Bob may not set it: B refuses locally, as the auth rules say.
    status, body = await api_b.request(
        "PUT", f"rooms/{quote(room_id)}/state/m.room.topic", token=bob.token,
        json={"topic": "set on b"},
    )
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN")


async def test_three_servers_see_every_message_and_a_fork_resolves_the_same_everywhere(
    peers: Peers, peer_http: aiohttp.ClientSession
) -> None:
    servers, apis, users, room_id = await shared_room(peers, peer_http, count=3)
    a, b = servers[:2]
    alice, bob, carol = users
    for api, user in zip(apis, users, strict=True):
        await api.send_message(user, room_id, f"hi from {user.user_id}")
    for api, user in zip(apis, users, strict=True):
        for sender in users:
            await eventually(
                lambda api=api, user=user, sender=sender: _has(
                    api, user, room_id, f"hi from {sender.user_id}"
                ), f"{sender.user_id}'s message at {user.user_id}",
            )

    # Alice makes Bob an admin; everyone learns of it.
    levels = await apis[0].ok(
        "GET", f"rooms/{quote(room_id)}/state/m.room.power_levels", token=alice.token
    )
    levels["users"][bob.user_id] = 100
    await apis[0].ok(
        "PUT", f"rooms/{quote(room_id)}/state/m.room.power_levels", token=alice.token,
        json=levels,
    )
    await eventually(lambda: _power(apis[1], bob, room_id, bob.user_id, 100), "Bob's promotion")

    # A partition between A and B: each acts on what it knows. Alice demotes Bob while Bob
    # bans Carol.
    await a.federation.outbound.sender.stop()
    await b.federation.outbound.sender.stop()
    levels["users"][bob.user_id] = 0
    await apis[0].ok(
        "PUT", f"rooms/{quote(room_id)}/state/m.room.power_levels", token=alice.token,
        json=levels,
    )
    await apis[1].ok(
        "POST", f"rooms/{quote(room_id)}/ban", token=bob.token, json={"user_id": carol.user_id}
    )
    await a.federation.outbound.sender.start()
    await b.federation.outbound.sender.start()
    # Once both events are everywhere, one more event names both heads (B has both as
    # forward extremities) and every server holds the same state.
    await eventually(lambda: _power(apis[1], bob, room_id, bob.user_id, 0), "the demotion on B")
    await apis[1].send_message(bob, room_id, "after the fork")
    for api, user in zip(apis[:2], users[:2], strict=True):
        await eventually(
            lambda api=api, user=user: _has(api, user, room_id, "after the fork"),
            f"the merge at {user.user_id}",
        )
    await eventually(
        lambda: _same_current_state(servers, room_id), "the same state on all three servers"
    )


async def _current_state(peer: Peer, room_id: str) -> dict[tuple[str, str], str]:
    assert peer.hs is not None and peer.hs.db is not None
    return await peer.hs.db.run(lambda c: state_store.get_current_state(c, room_id))


async def _same_current_state(servers: list[Peer], room_id: str) -> bool:
    states = [await _current_state(peer, room_id) for peer in servers]
    return all(s == states[0] for s in states[1:])


async def _power(api: MatrixApi, user: User, room_id: str, who: str, level: int) -> bool:
    levels = await api.ok(
        "GET", f"rooms/{quote(room_id)}/state/m.room.power_levels", token=user.token
    )
    return bool(levels.get("users", {}).get(who) == level)


async def _topic(api: MatrixApi, user: User, room_id: str, topic: str) -> bool:
    status, body = await api.request(
        "GET", f"rooms/{quote(room_id)}/state/m.room.topic", token=user.token
    )
    return status == 200 and body.get("topic") == topic


async def _joined_members(api: MatrixApi, user: User, room_id: str, want: set[str]) -> bool:
    return await joined_members(api, user, room_id) == want


async def _has(api: MatrixApi, user: User, room_id: str, body: str) -> bool:
    return body in await timeline_bodies(api, user, room_id)


async def test_a_remote_room_is_joined_by_its_alias(
    peers: Peers, peer_http: aiohttp.ClientSession
) -> None:
    a, b = await peers.new("a"), await peers.new("b")
    api_a, api_b = a.api(peer_http), b.api(peer_http)
    alice, bob = await api_a.register("alice"), await api_b.register("bob")
    room_id = await api_a.create_room(alice, preset="public_chat", room_alias_name="lobby")
    alias = f"#lobby:{a.name}"
    # No `via`: B asks A's directory for the room and the servers that can help.
    joined = await api_b.ok("POST", f"join/{quote(alias)}", token=bob.token, json={})
    assert joined["room_id"] == room_id
    await api_a.send_message(alice, room_id, "welcome")
    await eventually(lambda: _has(api_b, bob, room_id, "welcome"), "A's message on B")


async def test_a_room_left_by_every_local_member_is_left_cleanly_and_joined_again(
    peers: Peers, peer_http: aiohttp.ClientSession
) -> None:
    (a, b), (api_a, api_b), (alice, bob), room_id = await shared_room(peers, peer_http)
    await api_b.ok("POST", f"rooms/{quote(room_id)}/leave", token=bob.token, json={})
    await eventually(
        lambda: _joined_members(api_a, alice, room_id, {alice.user_id}), "Bob's leave on A"
    )
    # B is out: A's events no longer go to B (neither queued for it nor sent to it).
    sent_before = _sent_to(b)
    await api_a.send_message(alice, room_id, "while b is away")
    assert a.hs is not None and a.hs.db is not None
    queued = await a.hs.db.run(lambda c: c.fetchval(
        "SELECT count(*) FROM federation_outbox_pdus WHERE destination = $1", b.name
    ))
    assert (queued, _sent_to(b)) == (0, sent_before)
    # Joining again needs no `via`: B remembers which servers were in the room.
    await api_b.ok("POST", f"join/{quote(room_id)}", token=bob.token, json={})
    await api_a.send_message(alice, room_id, "welcome back")
    await eventually(lambda: _has(api_b, bob, room_id, "welcome back"), "A's message on B")


def _sent_to(peer: Peer) -> float:
    return REGISTRY.get_sample_value(
        "moot_federation_transactions_sent_total", {"destination": peer.name}
    ) or 0.0

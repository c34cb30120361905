"""What other servers and test suites expect of the federation API beyond the happy path: the
deprecated paths (the single-key notary query; v1 send_join, send_leave and invite with their
array answers, which the spec has since dropped from its API files, so checked by hand here),
reads at events that have no state here, and events that reach into another room
(prev_events, auth_events, a redaction's target, also one that arrives after the redaction),
refused or ignored.

Peer b plays the other server with real keys: its events are built and signed by hand and
sent through b's federation client, as a server that misbehaves would send them.
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import quote

import aiohttp

from federation.client import HttpResponseError, path_segment
from homeserver.protocol.events import build_event
from homeserver.protocol.signing import key_id
from homeserver.services.rooms.remote import Outcome
from storage import state as state_store
from tests.federation_helpers import validate_ss_response
from tests.federation_peers import Peers, eventually, join_via
from tests.helpers import MatrixApi, User
from tests.shared_rooms import Room, error, forge, send_pdus, shared_room, stored

V1 = "/_matrix/federation/v1"


async def second_room(room: Room) -> str:
    """Another public room of a that Bob of b joined too."""
    other = await room.api.create_room(room.alice, preset="public_chat")
    await join_via(room.api_b, room.bob, other, room.a)
    await eventually(lambda: _joined(room.api, room.alice, other, room.bob), "Bob in it")
    return other


async def _joined(api: MatrixApi, user: User, room_id: str, member: User) -> bool:
    status, body = await api.request(
        "GET", f"rooms/{quote(room_id)}/state/m.room.member/{quote(member.user_id)}",
        token=user.token,
    )
    return status == 200 and body.get("membership") == "join"


# ---- deprecated paths ---------------------------------------------------------------------------

async def test_the_single_key_notary_path_answers_with_the_servers_keys(
    peers: Peers, peer_http: aiohttp.ClientSession
) -> None:
    b, c = await peers.new("b"), await peers.new("c")
    kid = key_id(b.signing_key)
    url = f"{c.federation_url}/_matrix/key/v2/query/{path_segment(b.name)}/{quote(kid)}"
    async with peer_http.get(url) as resp:
        assert resp.status == 200, await resp.text()
        answer = await resp.json()
    validate_ss_response("keys_query.yaml", "/query/{serverName}", "GET", 200, answer)
    [entry] = answer["server_keys"]
    assert entry["server_name"] == b.name and kid in entry["verify_keys"]
    assert set(entry["signatures"]) == {b.name, c.name}


async def test_v1_send_join_and_send_leave_answer_in_the_array_form(
    peers: Peers, peer_http: aiohttp.ClientSession
) -> None:
    room = await shared_room(peers, peer_http)
    carol = await room.api_b.register("carol")
    client, r = room.b.federation.outbound.client, room.room

    async def signed_from_template(kind: str) -> tuple[str, dict[str, Any]]:
        template = (await client.get_json(
            room.a.name, f"{V1}/make_{kind}/{r}/{quote(carol.user_id, safe='')}",
            {"ver": [room.version.identifier]},
        ))["event"]
        event_id, pdu = build_event(
            room_version=room.version, room_id=room.room_id, sender=carol.user_id,
            event_type="m.room.member", state_key=carol.user_id, content=template["content"],
            prev_events=template["prev_events"], auth_events=template["auth_events"],
            depth=template["depth"], origin_server_ts=int(time.time() * 1000),
            server_name=room.b.name, signing_key=room.b.signing_key,
        )
        return str(event_id), pdu

    join_id, join = await signed_from_template("join")
    answer = await client.put_json(
        room.a.name, f"{V1}/send_join/{r}/{path_segment(join_id)}", join
    )
    status, body = answer
    assert status == 200
    members = {e["state_key"] for e in body["state"] if e["type"] == "m.room.member"}
    assert room.alice.user_id in members and body["auth_chain"]
    assert await _joined(room.api, room.alice, room.room_id, carol)

    leave_id, leave = await signed_from_template("leave")
    answer = await client.put_json(
        room.a.name, f"{V1}/send_leave/{r}/{path_segment(leave_id)}", leave
    )
    assert answer == [200, {}]
    assert not await _joined(room.api, room.alice, room.room_id, carol)


async def test_v1_invite_is_countersigned_in_the_array_form(
    peers: Peers, peer_http: aiohttp.ClientSession
) -> None:
    a, b = await peers.new("a"), await peers.new("b")
    api_a, api_b = a.api(peer_http), b.api(peer_http)
    alice, bob = await api_a.register("alice"), await api_b.register("bob")
    room_id = await api_b.create_room(bob, preset="private_chat")
    assert b.hs is not None and b.hs.federation is not None
    version, template = await b.hs.federation.outbound.joins.local.template(
        room_id, bob.user_id, "m.room.member", {"membership": "invite"}, alice.user_id
    )
    event_id, pdu = build_event(
        room_version=version, room_id=room_id, sender=bob.user_id, event_type="m.room.member",
        state_key=alice.user_id, content=template["content"],
        prev_events=template["prev_events"], auth_events=template["auth_events"],
        depth=template["depth"], origin_server_ts=int(time.time() * 1000),
        server_name=b.name, signing_key=b.signing_key,
    )
    create = {"type": "m.room.create", "state_key": "", "sender": bob.user_id,
              "content": {"room_version": version.identifier}}
    path = f"{V1}/invite/{path_segment(room_id)}/{path_segment(str(event_id))}"

    # No room version anywhere: the spec's assumption is version 1, whose events carry their
    # ID, so this room v12 event is malformed as one.
    try:
        await b.federation.outbound.client.put_json(a.name, path, pdu)
        raise AssertionError("a v12 event taken for room version 1 was accepted")
    except HttpResponseError as e:
        assert (e.status, e.body["errcode"]) == (400, "M_BAD_JSON"), e.body

    body = {**pdu, "unsigned": {"invite_room_state": [create]}}
    answer = await b.federation.outbound.client.put_json(a.name, path, body)
    status, signed = answer
    assert status == 200
    assert set(signed["event"]["signatures"]) == {a.name, b.name}
    invites = (await api_a.sync(alice)).get("rooms", {}).get("invite", {})
    assert room_id in invites


# ---- reads at events without state here ---------------------------------------------------------

async def test_state_at_an_outlier_or_a_rejected_event_is_not_found(
    peers: Peers, peer_http: aiohttp.ClientSession
) -> None:
    room = await shared_room(peers, peer_http)
    hs = room.a.hs
    assert hs is not None and hs.incoming is not None and hs.federation is not None
    outlier, pdu = await forge(
        room, room.room_id, room.bob.user_id, "m.room.message", {"msgtype": "m.text", "body": "o"}
    )
    assert outlier in await hs.federation.outbound.pdus.outliers.store(room.room_id, [pdu])
    rejected, pdu = await forge(
        room, room.room_id, "@mallory:" + room.b.name, "m.room.message",
        {"msgtype": "m.text", "body": "x"}, auth_keys=[("m.room.power_levels", "")],
    )
    assert (await hs.incoming.receive(room.room_id, pdu)).outcome is Outcome.REJECTED
    for event_id in (outlier, rejected):
        for read in ("state", "state_ids"):
            assert await error(
                room, "GET", f"/{read}/{room.room}", query={"event_id": event_id}
            ) == (404, "M_NOT_FOUND"), (read, event_id)


async def test_backfill_and_missing_events_serve_nothing_of_another_room(
    peers: Peers, peer_http: aiohttp.ClientSession
) -> None:
    """Sytest's "Backfill checks the events requested belong to the room": an event of another
    room named as a starting point is ignored (200, as Synapse answers), and nothing reached
    from it is served."""
    room = await shared_room(peers, peer_http)
    other = await second_room(room)
    here = await room.api.send_message(room.alice, room.room_id, "of this room")
    secret = await room.api.send_message(room.alice, other, "of the other room")
    answers = [
        (await room.ok("GET", f"/backfill/{room.room}", query={"v": secret, "limit": "10"}))[
            "pdus"
        ],
        (await room.ok("POST", f"/get_missing_events/{room.room}", body={
            "earliest_events": [], "latest_events": [secret], "limit": 10,
        }))["events"],
    ]
    assert answers == [[], []]
    # Named beside an event of the room: the walk goes from that one only.
    backfilled = (await room.ok(
        "GET", f"/backfill/{room.room}", query={"v": [secret, here], "limit": "10"}
    ))["pdus"]
    assert here in {room.event_id(p) for p in backfilled}
    assert {p.get("room_id") for p in backfilled} <= {room.room_id, None}  # v12 create: none
    assert "of the other room" not in str(backfilled)


# ---- events reaching into another room ----------------------------------------------------------

async def test_an_event_whose_prev_events_are_in_another_room_is_refused(
    peers: Peers, peer_http: aiohttp.ClientSession
) -> None:
    room = await shared_room(peers, peer_http)
    other = await second_room(room)
    elsewhere = await room.api.send_message(room.alice, other, "a head of the other room")
    event_id, pdu = await forge(
        room, room.room_id, room.bob.user_id, "m.room.message",
        {"msgtype": "m.text", "body": "grafted"}, prev_events=[elsewhere],
    )
    answer = await send_pdus(room, pdu)
    assert "another room" in answer[event_id].get("error", ""), answer
    assert not await stored(room, event_id)


async def test_an_event_whose_auth_events_are_in_another_room_is_rejected(
    peers: Peers, peer_http: aiohttp.ClientSession
) -> None:
    room = await shared_room(peers, peer_http)
    other = await second_room(room)
    hs = room.a.hs
    assert hs is not None and hs.db is not None
    state = await hs.db.run(lambda c: state_store.get_current_state(c, room.room_id))
    other_state = await hs.db.run(lambda c: state_store.get_current_state(c, other))
    auth = [state[("m.room.power_levels", "")],
            other_state[("m.room.member", room.bob.user_id)]]
    if room.version.create_event_in_auth_events:
        auth.append(state[("m.room.create", "")])
    event_id, pdu = await forge(
        room, room.room_id, room.bob.user_id, "m.room.message",
        {"msgtype": "m.text", "body": "borrowed"}, auth_events=auth,
    )
    # A state event so authorised does not enter the room's state either.
    member_id, member = await forge(
        room, room.room_id, room.bob.user_id, "m.room.member",
        {"membership": "join", "displayname": "borrowed"}, state_key=room.bob.user_id,
        auth_events=auth,
    )
    answer = await send_pdus(room, pdu, member)
    for rejected in (event_id, member_id):
        assert "another room" in answer[rejected].get("error", ""), answer
    messages = await room.api.ok(
        "GET", f"rooms/{quote(room.room_id)}/messages", token=room.alice.token,
        params={"dir": "b", "limit": "50"},
    )
    assert not {event_id, member_id} & {e["event_id"] for e in messages["chunk"]}
    assert await hs.db.run(lambda c: state_store.get_current_state(c, room.room_id)) == state


async def test_a_redaction_of_an_event_of_another_room_is_ignored(
    peers: Peers, peer_http: aiohttp.ClientSession
) -> None:
    room = await shared_room(peers, peer_http)
    other = await second_room(room)
    # Bob's own message: were the room not checked, his server could redact it anywhere.
    target = await room.api_b.send_message(room.bob, other, "stays")

    async def arrived() -> bool:
        status, _ = await room.api.request(
            "GET", f"rooms/{quote(other)}/event/{quote(target)}", token=room.alice.token
        )
        return status == 200

    await eventually(arrived, "Bob's message on a")
    assert room.version.updated_redaction_rules  # `redacts` in the content (v11+)
    event_id, pdu = await forge(
        room, room.room_id, room.bob.user_id, "m.room.redaction",
        {"reason": "across rooms", "redacts": target},
    )
    assert await send_pdus(room, pdu) == {event_id: {}}
    event = await room.api.ok(
        "GET", f"rooms/{quote(other)}/event/{quote(target)}", token=room.alice.token
    )
    assert event["content"].get("body") == "stays"
    assert "redacted_because" not in event.get("unsigned", {})


async def test_a_redaction_arriving_before_its_target_redacts_nothing_of_another_room(
    peers: Peers, peer_http: aiohttp.ClientSession
) -> None:
    """A redaction of an event not yet seen is kept for the event's arrival; when the event
    arrives in another room, the redaction does not take effect on it."""
    room = await shared_room(peers, peer_http)
    other = await second_room(room)
    # Bob may redact anyone's events in the room: one not yet seen too.
    levels = await room.api.ok(
        "GET", f"rooms/{quote(room.room_id)}/state/m.room.power_levels", token=room.alice.token
    )
    levels["users"] = {**levels.get("users", {}), room.bob.user_id: 50}
    await room.set_state("m.room.power_levels", levels)
    target_id, target = await forge(
        room, other, room.bob.user_id, "m.room.message", {"msgtype": "m.text", "body": "stays"},
    )
    redaction_id, redaction = await forge(
        room, room.room_id, room.bob.user_id, "m.room.redaction",
        {"reason": "ahead of its target", "redacts": target_id},
    )
    assert await send_pdus(room, redaction) == {redaction_id: {}}
    assert await send_pdus(room, target) == {target_id: {}}
    event = await room.api.ok(
        "GET", f"rooms/{quote(other)}/event/{quote(target_id)}", token=room.alice.token
    )
    assert event["content"].get("body") == "stays"
    assert "redacted_because" not in event.get("unsigned", {})

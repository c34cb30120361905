"""The Server-Server room reads, asked of a real Moot server by the real servers of its peers
over TLS: single events, the state before an event, auth chains, missing events, backfill, and
who may ask (a server with a user in the room, admitted by the room's server ACL)."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any
from urllib.parse import quote

import aiohttp

from federation.client import path_segment
from homeserver.protocol.events import build_event
from homeserver.services.rooms.remote import Outcome
from storage import events as events_store
from tests.federation_helpers import validate_ss_response
from tests.federation_peers import Peers, eventually
from tests.shared_rooms import V1, Room, error, shared_room


def assert_chain_complete(room: Room, pdus: list[dict[str, Any]], chain: list[Any]) -> None:
    """Every auth event of the events and of the chain itself is in the chain (the create
    event too, which room version 12 implies rather than lists)."""
    chain_ids = {room.event_id(e) for e in chain}
    create_id = "$" + room.room_id[1:]
    for pdu in [*pdus, *chain]:
        if pdu["type"] != "m.room.create":
            assert set(pdu["auth_events"]) | {create_id} <= chain_ids, pdu["type"]


async def test_an_event_and_the_state_before_and_after_a_state_event(
    peers: Peers, peer_http: aiohttp.ClientSession
) -> None:
    room = await shared_room(peers, peer_http)
    first = await room.set_state("m.room.topic", {"topic": "first"})
    second = await room.set_state("m.room.topic", {"topic": "second"})
    message = await room.api.send_message(room.alice, room.room_id, "after the topics")

    answer = await room.ok("GET", f"/event/{path_segment(second)}")
    validate_ss_response("events.yaml", "/event/{eventId}", "get", 200, answer)
    assert answer["origin"] == room.a.name
    [pdu] = answer["pdus"]
    assert room.event_id(pdu) == second and pdu["content"] == {"topic": "second"}

    current = await room.current_state()
    assert current[("m.room.topic", "")] == second
    # Before the second topic its own key holds the first; before the message, the second.
    ids = await room.ok("GET", f"/state_ids/{room.room}", query={"event_id": second})
    validate_ss_response("events.yaml", "/state_ids/{roomId}", "get", 200, ids)
    assert set(ids["pdu_ids"]) == (set(current.values()) - {second}) | {first}
    ids = await room.ok("GET", f"/state_ids/{room.room}", query={"event_id": message})
    assert set(ids["pdu_ids"]) == set(current.values())

    state = await room.ok("GET", f"/state/{room.room}", query={"event_id": message})
    validate_ss_response("events.yaml", "/state/{roomId}", "get", 200, state)
    assert {room.event_id(e) for e in state["pdus"]} == set(current.values())
    assert {room.event_id(e) for e in state["auth_chain"]} == set(ids["auth_chain_ids"])
    assert_chain_complete(room, state["pdus"], state["auth_chain"])

    # State events that came from b: before Bob's join there is no Bob (nor any topic yet);
    # before his new display name, his join.
    bob_key = ("m.room.member", room.bob.user_id)
    join = current[bob_key]
    ids = await room.ok("GET", f"/state_ids/{room.room}", query={"event_id": join})
    assert set(ids["pdu_ids"]) == set(current.values()) - {join, second}
    # Bob renames himself once b holds the message, so the rename follows every event above.
    deadline = time.monotonic() + 30
    while (await room.api_b.request(
        "GET", f"rooms/{quote(room.room_id)}/event/{quote(message)}", token=room.bob.token
    ))[0] != 200:
        assert time.monotonic() < deadline, "the message never reached b"
        await asyncio.sleep(0.05)
    await room.api_b.ok(
        "PUT", f"rooms/{quote(room.room_id)}/state/m.room.member/{quote(room.bob.user_id)}",
        token=room.bob.token, json={"membership": "join", "displayname": "Bob of b"},
    )
    deadline = time.monotonic() + 30
    while (await room.current_state())[bob_key] == join:
        assert time.monotonic() < deadline, "Bob's new name never reached a"
        await asyncio.sleep(0.05)
    renamed = (await room.current_state())[bob_key]
    ids = await room.ok("GET", f"/state_ids/{room.room}", query={"event_id": renamed})
    assert set(ids["pdu_ids"]) == set(current.values())


async def test_the_auth_chain_of_an_event_is_complete(
    peers: Peers, peer_http: aiohttp.ClientSession
) -> None:
    room = await shared_room(peers, peer_http)
    message = await room.api.send_message(room.alice, room.room_id, "hello")

    answer = await room.ok("GET", f"/event_auth/{room.room}/{path_segment(message)}")
    validate_ss_response("event_auth.yaml", "/event_auth/{roomId}/{eventId}", "get", 200, answer)
    [pdu] = (await room.ok("GET", f"/event/{path_segment(message)}"))["pdus"]
    assert_chain_complete(room, [pdu], answer["auth_chain"])
    types = {e["type"] for e in answer["auth_chain"]}
    assert types == {"m.room.create", "m.room.power_levels", "m.room.member"}
    assert message not in {room.event_id(e) for e in answer["auth_chain"]}


async def test_a_redacted_event_goes_out_redacted_with_its_id(
    peers: Peers, peer_http: aiohttp.ClientSession
) -> None:
    room = await shared_room(peers, peer_http)
    message = await room.api.send_message(room.alice, room.room_id, "secret")
    await room.api.ok(
        "PUT", f"rooms/{quote(room.room_id)}/redact/{quote(message)}/r1",
        token=room.alice.token, json={},
    )
    [pdu] = (await room.ok("GET", f"/event/{path_segment(message)}"))["pdus"]
    assert pdu["content"] == {} and room.event_id(pdu) == message


async def linear_history(room: Room, count: int) -> tuple[list[str], dict[str, int]]:
    """`count` messages on a (one line of history), and the depth of each."""
    ids = [await room.api.send_message(room.alice, room.room_id, f"m{i}") for i in range(count)]
    depths = {}
    for event_id in ids:
        [pdu] = (await room.ok("GET", f"/event/{path_segment(event_id)}"))["pdus"]
        depths[event_id] = pdu["depth"]
    return ids, depths


async def test_missing_events_stop_at_earliest_limit_and_min_depth(
    peers: Peers, peer_http: aiohttp.ClientSession
) -> None:
    room = await shared_room(peers, peer_http)
    m, depths = await linear_history(room, 15)
    path = f"/get_missing_events/{room.room}"

    async def missing(**body: Any) -> list[str]:
        answer = await room.ok("POST", path, body=body)
        validate_ss_response(
            "backfill.yaml", "/get_missing_events/{roomId}", "post", 200, answer
        )
        return [room.event_id(e) for e in answer["events"]]

    # Nearest to the latest event first, returned oldest first; the limit defaults to 10.
    assert await missing(earliest_events=[m[3]], latest_events=[m[14]], limit=5) == m[9:14]
    assert await missing(earliest_events=[m[3]], latest_events=[m[14]]) == m[4:14]
    assert await missing(earliest_events=[m[3]], latest_events=[m[14]], limit=20) == m[4:14]
    assert await missing(
        earliest_events=[m[3]], latest_events=[m[14]], limit=20, min_depth=depths[m[8]]
    ) == m[8:14]
    assert await missing(earliest_events=[m[12]], latest_events=[m[13], m[14]]) == []
    # An earliest event we never saw stops nothing; the walk still ends at the limit.
    assert await missing(earliest_events=["$unknown"], latest_events=[m[14]], limit=3) == (
        m[11:14]
    )


async def test_backfill_walks_back_newest_first_up_to_the_limit(
    peers: Peers, peer_http: aiohttp.ClientSession
) -> None:
    room = await shared_room(peers, peer_http)
    m, depths = await linear_history(room, 15)
    path = f"/backfill/{room.room}"

    async def backfill(v: list[str], limit: int) -> list[dict[str, Any]]:
        answer = await room.ok("GET", path, query={"v": v, "limit": str(limit)})
        validate_ss_response("backfill.yaml", "/backfill/{roomId}", "get", 200, answer)
        assert answer["origin"] == room.a.name
        pdus: list[dict[str, Any]] = answer["pdus"]
        return pdus

    pdus = await backfill([m[14]], 5)
    assert [room.event_id(e) for e in pdus] == m[14:9:-1]
    assert [e["depth"] for e in pdus] == sorted((e["depth"] for e in pdus), reverse=True)
    pdus = await backfill([m[14], m[6]], 3)
    assert [room.event_id(e) for e in pdus] == m[14:11:-1]
    pdus = await backfill([m[6]], 1000)
    # Everything up to m6, back to the create event (the cap of 100 is far off).
    assert [room.event_id(e) for e in pdus][:7] == m[6::-1]
    assert pdus[-1]["type"] == "m.room.create"
    assert len(pdus) == depths[m[6]]  # one event per depth, from 1
    assert await backfill([m[3]], 0) == []


async def test_who_may_read_and_what_is_not_found(
    peers: Peers, peer_http: aiohttp.ClientSession
) -> None:
    room = await shared_room(peers, peer_http)
    message = await room.api.send_message(room.alice, room.room_id, "hello")
    private = await room.api.create_room(room.alice, preset="private_chat")
    elsewhere = await room.api.send_message(room.alice, private, "not for b")
    c = await peers.new("c")
    ev, r = path_segment(message), room.room
    reads: list[tuple[str, str, dict[str, Any]]] = [
        ("GET", f"/event/{ev}", {}),
        ("GET", f"/state/{r}", {"query": {"event_id": message}}),
        ("GET", f"/state_ids/{r}", {"query": {"event_id": message}}),
        ("GET", f"/event_auth/{r}/{ev}", {}),
        ("GET", f"/backfill/{r}", {"query": {"v": message, "limit": "5"}}),
        ("POST", f"/get_missing_events/{r}",
         {"body": {"earliest_events": [], "latest_events": [message]}}),
    ]
    for method, path, kwargs in reads:
        # c has no user in the room.
        assert await error(room, method, path, asker=c, **kwargs) == (403, "M_FORBIDDEN")
        # Unsigned.
        async with peer_http.request(method, room.a.federation_url + V1 + path) as response:
            assert response.status == 401
            assert (await response.json())["errcode"] == "M_UNAUTHORIZED"

    # An event of a room b is not in.
    assert await error(room, "GET", f"/event/{path_segment(elsewhere)}") == (403, "M_FORBIDDEN")
    # Rooms and events a does not hold, and an event of another room named under this one.
    unknown_room = path_segment("!unknown:" + room.a.name)
    not_found = (404, "M_NOT_FOUND")
    for event_id in ("$unknown", elsewhere):
        e = path_segment(event_id)
        assert await error(room, "GET", f"/state_ids/{r}", query={"event_id": event_id}) == (
            not_found
        )
        assert await error(room, "GET", f"/state/{r}", query={"event_id": event_id}) == (
            not_found
        )
        assert await error(room, "GET", f"/event_auth/{r}/{e}") == not_found
        # The walks start from the room's events only (as Synapse's): the others are ignored.
        backfilled = await room.ok(
            "GET", f"/backfill/{r}", query={"v": [message, event_id], "limit": "5"}
        )
        assert message in {room.event_id(p) for p in backfilled["pdus"]}
        assert {p.get("room_id") for p in backfilled["pdus"]} <= {room.room_id, None}
        assert await room.ok(
            "POST", f"/get_missing_events/{r}",
            body={"earliest_events": [], "latest_events": [event_id]},
        ) == {"events": []}
    assert await error(room, "GET", "/event/%24unknown") == not_found
    assert await error(
        room, "GET", f"/state_ids/{unknown_room}", query={"event_id": message}
    ) == not_found
    assert await error(room, "GET", f"/event_auth/{unknown_room}/{ev}") == not_found


async def test_malformed_requests_are_bad_requests(
    peers: Peers, peer_http: aiohttp.ClientSession
) -> None:
    room = await shared_room(peers, peer_http)
    message = await room.api.send_message(room.alice, room.room_id, "hello")
    r = room.room
    missing = f"/get_missing_events/{r}"
    cases: list[tuple[str, str, dict[str, Any], str]] = [
        ("GET", f"/state/{r}", {}, "M_MISSING_PARAM"),
        ("GET", f"/state_ids/{r}", {}, "M_MISSING_PARAM"),
        ("GET", "/state_ids/not-a-room", {"query": {"event_id": message}}, "M_INVALID_PARAM"),
        ("GET", f"/backfill/{r}", {"query": {"limit": "5"}}, "M_MISSING_PARAM"),
        ("GET", f"/backfill/{r}", {"query": {"v": message}}, "M_MISSING_PARAM"),
        ("GET", f"/backfill/{r}", {"query": {"v": message, "limit": "x"}}, "M_INVALID_PARAM"),
        ("POST", missing, {"body": ["not", "an", "object"]}, "M_BAD_JSON"),
        ("POST", missing, {"body": {"latest_events": [message]}}, "M_MISSING_PARAM"),
        ("POST", missing, {"body": {"earliest_events": [], "latest_events": message}},
         "M_BAD_JSON"),
        ("POST", missing, {"body": {"earliest_events": [1], "latest_events": [message]}},
         "M_BAD_JSON"),
        ("POST", missing,
         {"body": {"earliest_events": [], "latest_events": [message], "limit": "5"}},
         "M_BAD_JSON"),
        ("POST", missing,
         {"body": {"earliest_events": [], "latest_events": [message], "min_depth": -1}},
         "M_INVALID_PARAM"),
    ]
    for method, path, kwargs, errcode in cases:
        assert await error(room, method, path, **kwargs) == (400, errcode), (path, kwargs)


async def test_a_server_the_acl_denies_may_not_read(
    peers: Peers, peer_http: aiohttp.ClientSession
) -> None:
    room = await shared_room(peers, peer_http)
    message = await room.api.send_message(room.alice, room.room_id, "hello")
    await room.ok("GET", f"/event_auth/{room.room}/{path_segment(message)}")
    # Every peer here is an IP literal: refusing those refuses b, though its user is joined.
    await room.set_state("m.room.server_acl", {"allow": ["*"], "allow_ip_literals": False})
    status, body = await room.ask("GET", f"/event_auth/{room.room}/{path_segment(message)}")
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN")
    assert "ACL" in body["error"]


async def test_history_hidden_by_joined_visibility_goes_out_redacted(
    peers: Peers, peer_http: aiohttp.ClientSession
) -> None:
    async def before_join(room: Room) -> None:
        await room.api.send_message(room.alice, room.room_id, "shared")
        await room.set_state("m.room.history_visibility", {"history_visibility": "joined"})
        await room.api.send_message(room.alice, room.room_id, "hidden")

    room = await shared_room(peers, peer_http, before_join)
    after = await room.api.send_message(room.alice, room.room_id, "after")

    # Each event as the state at it says: `shared` then, `joined` without b's user, `joined`
    # with him. The hidden one still comes, redacted, so that b can walk the DAG through it.
    def bodies(pdus: list[dict[str, Any]]) -> list[Any]:
        return [e["content"].get("body") for e in pdus if e["type"] == "m.room.message"]

    answer = await room.ok("GET", f"/backfill/{room.room}", query={"v": after, "limit": "100"})
    assert bodies(answer["pdus"]) == ["after", None, "shared"]
    hidden = next(e for e in answer["pdus"] if e["type"] == "m.room.message" and not e["content"])
    hidden_id = room.event_id(hidden)
    [pdu] = (await room.ok("GET", f"/event/{path_segment(hidden_id)}"))["pdus"]
    assert pdu["content"] == {} and room.event_id(pdu) == hidden_id
    answer = await room.ok("POST", f"/get_missing_events/{room.room}", body={
        "earliest_events": [], "latest_events": [after], "limit": 3,
    })
    assert None in bodies(answer["events"])


async def test_a_rejected_event_is_never_served(
    peers: Peers, peer_http: aiohttp.ClientSession
) -> None:
    room = await shared_room(peers, peer_http)
    assert room.a.hs is not None and room.a.hs.db is not None and room.a.hs.incoming
    heads = await room.a.hs.db.run(
        lambda c: events_store.get_forward_extremities(c, room.room_id)
    )
    power_levels = (await room.current_state())[("m.room.power_levels", "")]
    # A user of b who never joined: a hands it to its room engine as if b had sent it.
    rejected, pdu = build_event(
        room_version=room.version, room_id=room.room_id, sender="@mallory:" + room.b.name,
        event_type="m.room.message", content={"msgtype": "m.text", "body": "x"},
        state_key=None, prev_events=[h.event_id for h in heads], auth_events=[power_levels],
        depth=max(h.depth for h in heads) + 1, origin_server_ts=int(time.time() * 1000),
        server_name=room.b.name, signing_key=room.b.signing_key,
    )
    received = await room.a.hs.incoming.receive(room.room_id, pdu)
    assert received.outcome is Outcome.REJECTED

    assert await error(room, "GET", f"/event/{path_segment(rejected)}") == (404, "M_NOT_FOUND")
    # Backfill walks from the room's servable events only: from a rejected one, nowhere.
    assert (await room.ok(
        "GET", f"/backfill/{room.room}", query={"v": rejected, "limit": "5"}
    ))["pdus"] == []
    assert await error(
        room, "GET", f"/event_auth/{room.room}/{path_segment(rejected)}"
    ) == (404, "M_NOT_FOUND")


MARKER = "quokkasecret"


async def test_redacted_content_goes_out_to_no_server_and_no_remote_client(
    peers: Peers, peer_http: aiohttp.ClientSession
) -> None:
    """After redactions of a name, a topic and a message, neither a's federation reads
    (/event, /state, /backfill) nor b's clients (who got the events over federation) see the
    redacted words; the name stays current state, with empty content."""
    room = await shared_room(peers, peer_http)
    redacted = [
        await room.set_state("m.room.name", {"name": MARKER}),
        await room.set_state("m.room.topic", {"topic": MARKER}),
        await room.api.send_message(room.alice, room.room_id, MARKER),
    ]
    for i, event_id in enumerate(redacted):
        await room.api.ok(
            "PUT", f"rooms/{quote(room.room_id)}/redact/{quote(event_id)}/r{i}",
            token=room.alice.token, json={},
        )
    latest = await room.set_state("m.room.topic", {"topic": "plain"})

    served = [await room.ok("GET", f"/event/{path_segment(e)}") for e in [*redacted, latest]]
    served.append(await room.ok("GET", f"/state/{room.room}", query={"event_id": latest}))
    served.append(await room.ok(
        "GET", f"/backfill/{room.room}", query={"v": latest, "limit": "100"}
    ))
    assert MARKER not in json.dumps(served)

    name_path = f"rooms/{quote(room.room_id)}/state/m.room.name/"

    async def name_redacted_on_b() -> bool:
        status, body = await room.api_b.request("GET", name_path, token=room.bob.token)
        return status == 200 and body == {}

    await eventually(name_redacted_on_b, "b to apply the redaction of the name")
    await eventually(
        lambda: topic_on_b(room, "plain"), "b to receive the topic after the redactions"
    )
    seen_by_bob = [
        await room.api_b.ok("GET", f"rooms/{quote(room.room_id)}/state", token=room.bob.token),
        await room.api_b.ok(
            "GET", f"rooms/{quote(room.room_id)}/messages", token=room.bob.token,
            params={"dir": "b", "limit": "100"},
        ),
        await room.api_b.sync(room.bob),
    ]
    assert MARKER not in json.dumps(seen_by_bob)


async def topic_on_b(room: Room, topic: str) -> bool:
    status, body = await room.api_b.request(
        "GET", f"rooms/{quote(room.room_id)}/state/m.room.topic/", token=room.bob.token
    )
    return status == 200 and body.get("topic") == topic


async def test_an_event_arriving_after_its_redaction_is_stored_redacted(
    peers: Peers, peer_http: aiohttp.ClientSession
) -> None:
    """b's redaction of a name event reaches a before the name event itself: a stores the
    name already redacted, so its room directory (which reads stored state) never shows it."""
    room = await shared_room(peers, peer_http)
    await room.api.ok(
        "PUT", f"directory/list/room/{quote(room.room_id)}", token=room.alice.token,
        json={"visibility": "public"},
    )
    levels = await room.api.ok(
        "GET", f"rooms/{quote(room.room_id)}/state/m.room.power_levels/", token=room.alice.token
    )
    levels["users"][room.bob.user_id] = 100
    await room.set_state("m.room.power_levels", levels)
    assert room.a.hs is not None and room.a.hs.db is not None and room.a.hs.incoming
    db = room.a.hs.db
    heads = await db.run(lambda c: events_store.get_forward_extremities(c, room.room_id))
    state = await room.current_state()
    auth = [state[("m.room.power_levels", "")], state[("m.room.member", room.bob.user_id)]]
    if not room.version.room_id_from_create_event:
        auth.append(state[("m.room.create", "")])

    def bob_event(event_type: str, content: dict[str, Any], **kw: Any) -> tuple[str, Any]:
        return build_event(
            room_version=room.version, room_id=room.room_id, sender=room.bob.user_id,
            event_type=event_type, content=content, prev_events=[h.event_id for h in heads],
            auth_events=auth, depth=max(h.depth for h in heads) + 1,
            origin_server_ts=int(time.time() * 1000), server_name=room.b.name,
            signing_key=room.b.signing_key, **kw,
        )

    name_id, name = bob_event("m.room.name", {"name": MARKER}, state_key="")
    _, redaction = bob_event("m.room.redaction", {}, state_key=None, redacts=name_id)
    assert (await room.a.hs.incoming.receive(room.room_id, redaction)).outcome is Outcome.ACCEPTED
    assert (await room.a.hs.incoming.receive(room.room_id, name)).outcome is Outcome.ACCEPTED

    assert (await room.current_state())[("m.room.name", "")] == name_id
    listing = await room.api.ok("GET", "publicRooms")
    assert MARKER not in json.dumps(listing)
    [entry] = [r for r in listing["chunk"] if r["room_id"] == room.room_id]
    assert "name" not in entry
    [pdu] = (await room.ok("GET", f"/event/{path_segment(name_id)}"))["pdus"]
    assert pdu["content"] == {}

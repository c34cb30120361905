"""What a hostile or broken peer sends over `PUT /send/{txnId}` is refused or rejected as the
spec says, never answered with a 500 and never a change of the room that was not allowed.

Two real servers: A holds a public room that B's user joined through A. The tests then play B
by hand: PDUs built on A's forward extremities with auth events from A's current state, signed
with B's real key (or not), in transactions signed by B's own federation client (or not). Each
case compares A's current state, forward extremities and what A's user sees in /messages
before and after (server-server-api.md "Checks performed on receipt of a PDU",
"Transactions", "Request Authentication", "Server Access Control Lists").
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest

from federation.client import HttpResponseError
from federation.request_auth import authorization_header
from federation.transactions import MAX_EDUS, MAX_PDUS, MAX_TRANSACTION_BYTES
from homeserver.protocol.auth_events import auth_types_for_event
from homeserver.protocol.canonical_json import encode_canonical_json
from homeserver.protocol.events import build_event
from homeserver.protocol.hashing import add_content_hash, compute_event_id
from homeserver.protocol.room_versions import RoomVersion, get_room_version
from homeserver.protocol.signing import SigningKey, generate_signing_key, sign_event
from storage import events as events_store
from storage import rooms as rooms_store
from storage import state as state_store
from storage.database import Database
from tests.federation_helpers import validate_ss_response
from tests.federation_peers import Peer, join_and_wait, peer_group
from tests.helpers import MatrixApi, User

SEND = "/_matrix/federation/v1/send/"


@pytest.fixture(scope="module")
async def servers(
    postgres_dsn: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[tuple[Peer, Peer]]:
    async with peer_group(postgres_dsn, tmp_path_factory.mktemp("negative")) as group:
        yield await group.new("a"), await group.new("b")


# A 500 is logged as an error by the middleware: any error logged fails the test.
pytestmark = pytest.mark.usefixtures("no_server_errors")


@dataclass
class Room:
    a: Peer
    b: Peer
    http: aiohttp.ClientSession
    api_a: MatrixApi
    api_b: MatrixApi
    alice: User  # of A, the room's creator
    bob: User  # of B, joined through A
    room_id: str
    version: RoomVersion


@pytest.fixture
async def room(servers: tuple[Peer, Peer], peer_http: aiohttp.ClientSession) -> Room:
    return await shared_room(servers, peer_http)


async def shared_room(
    servers: tuple[Peer, Peer], http: aiohttp.ClientSession, **create: Any
) -> Room:
    """A fresh public room of A (`create`: more of /createRoom's body) that a fresh user of B
    has joined."""
    a, b = servers
    api_a, api_b = a.api(http), b.api(http)
    tag = uuid.uuid4().hex[:8]
    alice, bob = await api_a.register(f"alice{tag}"), await api_b.register(f"bob{tag}")
    room_id = await api_a.create_room(alice, preset="public_chat", **create)
    await join_and_wait(api_b, bob, room_id, a, api_a, alice)
    version = await db(a).run(lambda c: rooms_store.get_room_version(c, room_id))
    assert version is not None
    return Room(a, b, http, api_a, api_b, alice, bob, room_id, get_room_version(version))


def db(peer: Peer) -> Database:
    assert peer.hs is not None and peer.hs.db is not None
    return peer.hs.db


def now_ms() -> int:
    return int(time.time() * 1000)


# ---- playing B by hand -------------------------------------------------------------------------


async def forge(
    room: Room, sender: str, event_type: str, content: dict[str, Any],
    state_key: str | None = None, *, prev_events: list[str] | None = None,
    state: dict[tuple[str, str], str] | None = None, signing_key: SigningKey | None = None,
    redacts: str | None = None,
) -> tuple[str, dict[str, Any]]:
    """A PDU signed as B (by default with B's real key) on A's forward extremities (or
    `prev_events`), with auth events from A's current state (or `state`)."""

    async def read(conn: Any) -> tuple[list[str], dict[tuple[str, str], str], int]:
        prev = prev_events
        if prev is None:
            prev = [e.event_id for e in await events_store.get_forward_extremities(
                conn, room.room_id)]
        depth = max(e.depth for e in (await events_store.get_events(conn, prev)).values())
        current = state if state is not None else await state_store.get_current_state(
            conn, room.room_id)
        return prev, current, depth + 1

    prev, current, depth = await db(room.a).run(read)
    keys = auth_types_for_event(event_type, sender, state_key, content, room.version)
    event_id, pdu = build_event(
        room_version=room.version, room_id=room.room_id, sender=sender, event_type=event_type,
        content=content, state_key=state_key, prev_events=prev,
        auth_events=[current[k] for k in keys if k in current], depth=depth,
        origin_server_ts=now_ms(), server_name=room.b.name,
        signing_key=signing_key or room.b.signing_key, redacts=redacts,
    )
    return str(event_id), pdu


async def message(room: Room, body: str, sender: str | None = None) -> tuple[str, dict[str, Any]]:
    return await forge(room, sender or room.bob.user_id, "m.room.message",
                       {"msgtype": "m.text", "body": body})


def resign(room: Room, pdu: dict[str, Any], *, rehash: bool = True) -> tuple[str, dict[str, Any]]:
    """`pdu` as edited, signed again by B (its content hash recomputed unless `rehash` is
    False); for events build_event refuses to make."""
    unsigned = {k: v for k, v in pdu.items() if k not in ("signatures", "hashes")}
    hashed = add_content_hash(unsigned) if rehash else {**unsigned, "hashes": pdu["hashes"]}
    signed = sign_event({**hashed, "signatures": {}}, room.b.name, room.b.signing_key,
                        room.version)
    return str(compute_event_id(signed, room.version)), signed


def transaction(room: Room, pdus: list[Any], edus: list[Any] | None = None) -> dict[str, Any]:
    return {"origin": room.b.name, "origin_server_ts": now_ms(), "pdus": pdus,
            "edus": edus or []}


async def send(room: Room, body: Any, txn: str | None = None) -> dict[str, Any]:
    """A transaction signed and sent by B's own federation client; A must answer 200."""
    answer: dict[str, Any] = await room.b.federation.outbound.client.put_json(
        room.a.name, SEND + (txn or uuid.uuid4().hex), body
    )
    validate_ss_response("transactions.yaml", "/send/{txnId}", "put", 200, answer)
    return answer


async def refused(room: Room, body: Any, txn: str | None = None) -> tuple[int, str | None]:
    """Status and errcode of a transaction A refuses as a whole."""
    with pytest.raises(HttpResponseError) as info:
        await room.b.federation.outbound.client.put_json(
            room.a.name, SEND + (txn or uuid.uuid4().hex), body
        )
    return info.value.status, info.value.errcode


async def put_raw(
    room: Room, txn: str, body: bytes, authorization: str | None
) -> tuple[int, Any]:
    """A /send to A as it goes on the wire, with whatever Authorization header is given."""
    headers = {"Content-Type": "application/json"}
    if authorization is not None:
        headers["Authorization"] = authorization
    async with room.http.put(
        f"{room.a.federation_url}{SEND}{txn}", data=body, headers=headers
    ) as response:
        text = await response.text()
        return response.status, json.loads(text) if text else None


def x_matrix(
    room: Room, txn: str, content: Any, *, origin: str | None = None,
    destination: str | None = None, key: SigningKey | None = None,
) -> str:
    return authorization_header(
        "PUT", SEND + txn, origin or room.b.name, destination or room.a.name, content,
        key or room.b.signing_key,
    )


# ---- what A holds and shows --------------------------------------------------------------------


@dataclass(frozen=True)
class Snapshot:
    state: dict[tuple[str, str], str]
    extremities: frozenset[str]
    timeline: tuple[str, ...]  # event IDs Alice's /messages shows, newest first


async def snapshot(room: Room) -> Snapshot:
    async def read(conn: Any) -> tuple[dict[tuple[str, str], str], frozenset[str]]:
        state = await state_store.get_current_state(conn, room.room_id)
        heads = await events_store.get_forward_extremities(conn, room.room_id)
        return state, frozenset(e.event_id for e in heads)

    state, extremities = await db(room.a).run(read)
    return Snapshot(state, extremities, tuple(e["event_id"] for e in await timeline(room)))


async def timeline(room: Room) -> list[dict[str, Any]]:
    messages = await room.api_a.ok(
        "GET", f"rooms/{quote(room.room_id)}/messages", token=room.alice.token,
        params={"dir": "b", "limit": "100"},
    )
    chunk: list[dict[str, Any]] = messages["chunk"]
    return chunk


async def stored(room: Room, event_id: str) -> dict[str, Any] | None:
    """A's row for the event: how it was judged, and the JSON kept."""
    row = await db(room.a).run(lambda c: c.fetchrow(
        "SELECT rejection_reason, soft_failed, outlier, stream_ordering, json FROM events"
        " WHERE event_id = $1", event_id,
    ))
    return dict(row) if row is not None else None


# ---- the cases ----------------------------------------------------------------------------------


async def test_events_whose_signatures_do_not_verify_are_dropped(room: Room) -> None:
    before = await snapshot(room)
    bob = room.bob.user_id
    # Signed with a key B never published, under the ID of B's real key.
    impostor = generate_signing_key(room.b.signing_key.version)
    wrong_key = await forge(room, bob, "m.room.message", {"msgtype": "m.text", "body": "1"},
                            signing_key=impostor)
    # Content changed after signing, its hash recomputed: the hash matches, the signature not.
    tampered_id, tampered = await message(room, "2")
    tampered = {**tampered, "content": {"msgtype": "m.text", "body": "2, edited"}}
    tampered["hashes"] = add_content_hash(tampered)["hashes"]
    tampered_id = str(compute_event_id(tampered, room.version))
    # No signature of B at all.
    unsigned_id, unsigned = await message(room, "3")
    unsigned = {**unsigned, "signatures": {}}
    # A sender of a third server (that did not sign), and one of A itself (that did not either).
    third = await forge(room, "@mallory:c.example", "m.room.message",
                        {"msgtype": "m.text", "body": "4"})
    of_a = await forge(room, room.alice.user_id, "m.room.message",
                       {"msgtype": "m.text", "body": "5"})
    # Signed under C's name with a key no server has: C's keys cannot be had at all.
    unreachable_signer = await forge(room, "@mallory:127.0.0.1:1", "m.room.message",
                                     {"msgtype": "m.text", "body": "6"})
    unreachable_signer[1]["signatures"] = {
        "127.0.0.1:1": unreachable_signer[1]["signatures"][room.b.name]
    }
    bad = [wrong_key, (tampered_id, tampered), (unsigned_id, unsigned), third, of_a,
           unreachable_signer]
    good_id, good = await message(room, "genuine")

    answer = await send(room, transaction(room, [pdu for _, pdu in bad] + [good]))

    assert answer["pdus"][good_id] == {}
    for event_id, _ in bad:
        assert answer["pdus"][event_id]["error"], event_id
        assert await stored(room, event_id) is None, event_id  # dropped, not even rejected
    after = await snapshot(room)
    assert after.state == before.state
    assert after.timeline == (good_id, *before.timeline)
    assert (await timeline(room))[0]["content"]["body"] == "genuine"


async def test_a_wrong_content_hash_keeps_only_the_redacted_event(room: Room) -> None:
    bob = room.bob.user_id
    # A message whose body changed after signing: its signature (over the redacted event)
    # still verifies, its content hash does not. Spec: redacted, then processed.
    message_id, pdu = await message(room, "the original")
    pdu = {**pdu, "content": {"msgtype": "m.text", "body": "changed on the way"}}
    answer = await send(room, transaction(room, [pdu]))
    assert answer["pdus"] == {message_id: {}}
    [seen] = [e for e in await timeline(room) if e["event_id"] == message_id]
    assert (seen["type"], seen["sender"], seen["content"]) == ("m.room.message", bob, {})
    row = await stored(room, message_id)
    assert row is not None and "body" not in json.loads(row["json"])["content"]

    # A state event takes effect only as its redacted form: Bob's membership stays a join,
    # the display name that came with it does not.
    member_id, member = await forge(
        room, bob, "m.room.member", {"membership": "join", "displayname": "Bob"}, bob
    )
    member = {**member, "content": {"membership": "join", "displayname": "Mallory"}}
    answer = await send(room, transaction(room, [member]))
    assert answer["pdus"] == {member_id: {}}
    state = await snapshot(room)
    assert state.state[("m.room.member", bob)] == member_id
    content = await room.api_a.ok(
        "GET", f"rooms/{quote(room.room_id)}/state/m.room.member/{quote(bob)}",
        token=room.alice.token,
    )
    assert content == {"membership": "join"}
    members = await room.api_a.ok(
        "GET", f"rooms/{quote(room.room_id)}/joined_members", token=room.alice.token
    )
    assert members["joined"][bob].get("display_name") is None


async def test_events_failing_auth_are_rejected_and_never_seen(room: Room) -> None:
    carol = await room.api_b.register(f"carol{uuid.uuid4().hex[:8]}")  # of B, never joined
    before = await snapshot(room)
    outsider_id, outsider = await message(room, "not a member", sender=carol.user_id)
    levels_id, levels = await promoted_power_levels(room)  # Bob (power 0) gives himself 100
    answer = await send(room, transaction(room, [outsider, levels]))

    for event_id in (outsider_id, levels_id):
        assert answer["pdus"][event_id]["error"], event_id
        row = await stored(room, event_id)
        assert row is not None and row["rejection_reason"], event_id  # kept, as rejected
        assert row["stream_ordering"] is None
    assert await snapshot(room) == before


async def promoted_power_levels(room: Room) -> tuple[str, dict[str, Any]]:
    current = await room.api_a.ok(
        "GET", f"rooms/{quote(room.room_id)}/state/m.room.power_levels", token=room.alice.token
    )
    current["users"] = {**current.get("users", {}), room.bob.user_id: 100}
    return await forge(room, room.bob.user_id, "m.room.power_levels", current, "")


async def test_an_event_allowed_at_its_prev_events_but_not_now_is_soft_failed(room: Room) -> None:
    bob = room.bob.user_id
    fork = await snapshot(room)
    await room.api_a.ok(
        "POST", f"rooms/{quote(room.room_id)}/ban", token=room.alice.token,
        json={"user_id": bob, "reason": "spam"},
    )
    before = await snapshot(room)
    ban_id = before.state[("m.room.member", bob)]
    # Bob, unaware of his ban, changes his display name on top of the state before it.
    late_id, late = await forge(
        room, bob, "m.room.member", {"membership": "join", "displayname": "Late Bob"}, bob,
        prev_events=sorted(fork.extremities), state=fork.state,
    )
    answer = await send(room, transaction(room, [late]))

    assert answer["pdus"] == {late_id: {}}  # processed: soft-failing is no error of B's
    row = await stored(room, late_id)
    assert row is not None
    assert (row["rejection_reason"], row["soft_failed"], row["stream_ordering"]) == (
        None, True, None)
    assert await snapshot(room) == before
    assert before.state[("m.room.member", bob)] == ban_id


async def test_transactions_over_the_limits_are_refused_whole(room: Room) -> None:
    before = await snapshot(room)
    pdus = [(await message(room, f"flood {i}"))[1] for i in range(MAX_PDUS + 1)]
    typing = {"edu_type": "m.typing", "content": {
        "room_id": room.room_id, "user_id": room.bob.user_id, "typing": True}}
    txn = uuid.uuid4().hex
    assert await refused(room, transaction(room, pdus), txn) == (400, "M_BAD_JSON")
    assert await refused(room, transaction(room, [], [typing] * (MAX_EDUS + 1))) == (
        400, "M_BAD_JSON")

    # A body over the federation listener's limit, signed correctly: 413 before any parsing.
    big_txn = uuid.uuid4().hex
    big = transaction(room, [], [padding(MAX_TRANSACTION_BYTES)])
    # Encoding and signing megabytes takes a while: off the loop the servers share.
    raw = await asyncio.to_thread(encode_canonical_json, big)
    header = await asyncio.to_thread(x_matrix, room, big_txn, big)
    status, body = await put_raw(room, big_txn, raw, header)
    assert (status, body["errcode"]) == (413, "M_TOO_LARGE")
    assert await snapshot(room) == before
    # The limit is the largest sound transaction, above the client API's 1 MiB.
    assert await send(room, transaction(room, [], [padding(2 * 1024 * 1024)])) == {"pdus": {}}

    # Nothing of the refused transaction was remembered: its ID is free for a sound one, and
    # a transaction at both limits is taken.
    answer = await send(room, transaction(room, pdus[:MAX_PDUS], [typing] * MAX_EDUS), txn)
    assert len(answer["pdus"]) == MAX_PDUS
    assert all(result == {} for result in answer["pdus"].values())


def padding(size: int) -> dict[str, Any]:
    """An EDU of a type nobody handles, `size` bytes and more."""
    return {"edu_type": "org.example.padding", "content": {"x": "x" * size}}


async def test_a_replayed_transaction_gets_the_first_answer_and_changes_nothing(
    room: Room,
) -> None:
    txn = uuid.uuid4().hex
    first_id, first = await message(room, "once")
    body = transaction(room, [first])
    answer = await send(room, body, txn)
    assert answer == {"pdus": {first_id: {}}}
    before = await snapshot(room)

    assert await send(room, body, txn) == answer
    other_id, other = await message(room, "smuggled under an old ID")
    assert await send(room, transaction(room, [other]), txn) == answer

    assert await stored(room, other_id) is None
    after = await snapshot(room)
    assert after == before
    assert after.timeline.count(first_id) == 1


async def test_requests_not_signed_by_their_origin_are_refused(room: Room) -> None:
    before = await snapshot(room)
    event_id, pdu = await message(room, "never delivered")
    body = transaction(room, [pdu])
    raw = encode_canonical_json(body)

    def txn() -> str:
        return uuid.uuid4().hex

    cases: dict[str, tuple[str, str | None]] = {}
    t = txn()
    # A fresh key under the ID of B's real key.
    cases["wrong key"] = (t, x_matrix(room, t, body, key=generate_signing_key(
        room.b.signing_key.version)))
    t = txn()
    cases["unsigned"] = (t, None)
    t = txn()
    cases["for another destination"] = (t, x_matrix(room, t, body, destination="c.example"))
    t = txn()
    # A real signature of B over another request (another txnId).
    cases["over another request"] = (t, x_matrix(room, txn(), body))
    t = txn()
    cases["over another body"] = (t, x_matrix(room, t, transaction(room, [])))
    t = txn()
    # An origin whose keys nobody can fetch.
    cases["by an unknown server"] = (t, x_matrix(room, t, body, origin="127.0.0.1:1"))
    t = txn()
    cases["as the receiver itself"] = (t, x_matrix(room, t, body, origin=room.a.name))
    t = txn()
    cases["not X-Matrix"] = (t, "Bearer " + "x" * 20)
    for what, (t, authorization) in cases.items():
        status, answer = await put_raw(room, t, raw, authorization)
        assert (status, answer["errcode"]) == (401, "M_UNAUTHORIZED"), what

    # Signed by B, but the body says it comes from elsewhere.
    forged_origin = {**body, "origin": "c.example"}
    assert await refused(room, forged_origin) == (403, "M_FORBIDDEN")

    assert await stored(room, event_id) is None
    assert await snapshot(room) == before
    # The transaction IDs were not used up: the same one signed properly goes through.
    t, _ = cases["wrong key"]
    assert await send(room, body, t) == {"pdus": {event_id: {}}}


async def test_malformed_bodies_are_bad_requests_and_malformed_pdus_fail_alone(
    room: Room,
) -> None:
    before = await snapshot(room)
    t = uuid.uuid4().hex
    status, answer = await put_raw(room, t, b"{not json", x_matrix(room, t, None))
    assert (status, answer["errcode"]) == (400, "M_NOT_JSON")
    for body in (
        ["a", "list"],
        transaction(room, {"not": "a list"}),  # type: ignore[arg-type]
        {**transaction(room, []), "edus": "nope"},
        transaction(room, ["a PDU that is not an object"]),
        transaction(room, [], [17]),
    ):
        assert await refused(room, body) == (400, "M_BAD_JSON"), body

    _, sound = await message(room, "a template")
    nowhere = "$" + "A" * 43
    broken = {
        "no depth integer": {**sound, "depth": "12"},
        "no prev_events key": {k: v for k, v in sound.items() if k != "prev_events"},
        "no prev_events": {**sound, "prev_events": [], "depth": 1},
        "a prev event nobody has": {**sound, "prev_events": [nowhere]},
        "an auth event nobody has": {**sound, "auth_events": [*sound["auth_events"], nowhere]},
        "a sender that is no user ID": {**sound, "sender": "not a user"},
        "content that is no object": {**sound, "content": "text"},
        "a type that is no string": {**sound, "type": 5},
        "a state key that is no string": {**sound, "type": "m.room.topic", "state_key": 3},
        "over 64 KiB": {**sound, "content": {"msgtype": "m.text", "body": "x" * 70_000}},
    }
    reported = {what: resign(room, pdu) for what, pdu in broken.items()}
    reported["signatures that are no object"] = (
        str(compute_event_id(sound, room.version)), {**sound, "signatures": "none"}
    )
    # Events of no room this server is in have no event ID it could compute.
    unreported = [
        {k: v for k, v in sound.items() if k != "room_id"},
        resign(room, {**sound, "room_id": "!nowhere:" + room.b.name})[1],
    ]
    answer = await send(room, transaction(
        room, unreported + [pdu for _, pdu in reported.values()]
    ))

    assert set(answer["pdus"]) == {event_id for event_id, _ in reported.values()}
    for what, (event_id, _) in reported.items():
        assert answer["pdus"][event_id]["error"], what
        assert await stored(room, event_id) is None, what
    assert await snapshot(room) == before


async def test_a_second_create_event_cannot_enter_a_room(
    servers: tuple[Peer, Peer], peer_http: aiohttp.ClientSession
) -> None:
    # Before v12 a create event names its room, so B can claim to start A's room again: the
    # event passes the create rules on its own, but has nowhere to go in the room's DAG.
    room = await shared_room(servers, peer_http, room_version="11")
    before = await snapshot(room)
    event_id, create = build_event(
        room_version=room.version, room_id=room.room_id, sender=room.bob.user_id,
        event_type="m.room.create", content={"room_version": "11", "creator": room.bob.user_id},
        state_key="", prev_events=[], auth_events=[], depth=1, origin_server_ts=now_ms(),
        server_name=room.b.name, signing_key=room.b.signing_key,
    )
    # The room's own create event, sent again, is only known.
    own_id = before.state[("m.room.create", "")]
    row = await stored(room, own_id)
    assert row is not None
    answer = await send(room, transaction(room, [create, json.loads(row["json"])]))
    assert answer["pdus"][event_id]["error"]
    assert answer["pdus"][own_id] == {}
    assert await stored(room, event_id) is None
    assert await snapshot(room) == before


async def test_a_server_the_room_acl_denies_has_its_pdus_refused(room: Room) -> None:
    # Both servers are 127.0.0.1 with another port; the ACL is a rule for remote servers, so A
    # denying its own host name refuses B's PDUs and not A's own sends.
    await room.api_a.ok(
        "PUT", f"rooms/{quote(room.room_id)}/state/m.room.server_acl", token=room.alice.token,
        json={"allow": ["*"], "deny": ["127.0.0.1"], "allow_ip_literals": True},
    )
    before = await snapshot(room)
    event_id, pdu = await message(room, "from a denied server")
    answer = await send(room, transaction(room, [pdu]))
    assert "ACL" in answer["pdus"][event_id]["error"]
    assert await stored(room, event_id) is None
    assert await snapshot(room) == before


async def test_an_event_naming_an_event_twice_fails_alone(room: Room) -> None:
    """Duplicate auth or prev events are a format error of that event (they once broke the
    storing of every event of the room in the transaction)."""
    _, sound = await message(room, "a template")
    twice_auth = resign(room, {**sound, "auth_events": [*sound["auth_events"],
                                                        sound["auth_events"][0]]})
    twice_prev = resign(room, {**sound, "prev_events": sound["prev_events"] * 2,
                               "content": {"msgtype": "m.text", "body": "twice"}})
    good_id, good = await message(room, "a sound event beside them")

    answer = await send(room, transaction(room, [twice_auth[1], twice_prev[1], good]))

    for event_id, _ in (twice_auth, twice_prev):
        assert "more than once" in answer["pdus"][event_id]["error"]
        assert await stored(room, event_id) is None
    assert answer["pdus"][good_id] == {}
    assert good_id in [e["event_id"] for e in await timeline(room)]


async def test_redactions_that_do_not_take_effect_leave_the_event_intact(room: Room) -> None:
    """A's message stays whole against B's redactions that must not take effect: one by a user
    without the redact power; one by a moderator since demoted, dated back (by its prev
    events and auth state) to when he had the power; and, in a v11+ room, one naming its
    target only by the top-level `redacts`, which means nothing there. A redaction is stored
    censored for good, so each is checked against A's row itself."""
    bob, rid = room.bob.user_id, quote(room.room_id)
    text = f"keep me {uuid.uuid4().hex}"
    target = await room.api_a.send_message(room.alice, room.room_id, text)

    async def intact() -> bool:
        row = await stored(room, target)
        return row is not None and text in row["json"]

    powerless_id, powerless = await forge(room, bob, "m.room.redaction", {}, redacts=target)
    assert (await send(room, transaction(room, [powerless])))["pdus"] == {powerless_id: {}}
    assert await intact()

    levels = await room.api_a.ok(
        "GET", f"rooms/{rid}/state/m.room.power_levels/", token=room.alice.token
    )
    await room.api_a.ok(
        "PUT", f"rooms/{rid}/state/m.room.power_levels/", token=room.alice.token,
        json={**levels, "users": {**levels["users"], bob: 50}},
    )
    moderator = await snapshot(room)
    if room.version.redacts_in_content:
        _, named = await forge(room, bob, "m.room.redaction", {}, redacts=target)
        top_level_id, top_level = resign(room, {**named, "content": {}, "redacts": target})
        await send(room, transaction(room, [top_level]))
        assert (await stored(room, top_level_id)) is not None
        assert await intact()
    await room.api_a.ok(
        "PUT", f"rooms/{rid}/state/m.room.power_levels/", token=room.alice.token, json=levels
    )
    _, dated_back = await forge(
        room, bob, "m.room.redaction", {}, redacts=target,
        prev_events=sorted(moderator.extremities), state=moderator.state,
    )
    await send(room, transaction(room, [dated_back]))
    assert await intact()

"""Transactions to application services (application-service-api "Pushing events" and
"Pushing ephemeral data"), against a loopback appservice that records what it receives: which
events reach it (by member, alias, room ID and sender interest, and no others), ephemeral data
only when it asked, and delivery that survives an appservice that fails, goes away and comes
back, and a restart of the server: everything once, in order, a failed transaction retried
under the same txnId with the same body."""

from __future__ import annotations

import asyncio
import dataclasses
import re
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest

from homeserver.app import Homeserver
from homeserver.config import AppServicesConfig
from homeserver.protocol.backoff import Backoff
from tests.appservice_peer import LoopbackAppService
from tests.conftest import MakeServer, RunningServer
from tests.database_dump import dump_text
from tests.federation_peers import eventually
from tests.helpers import MatrixApi, User
from tests.metrics_scrape import sample, scrape

pytestmark = pytest.mark.usefixtures("no_server_errors")

QUICK = Backoff(base_s=0.02, max_s=0.2)


def users(regex: str) -> dict[str, Any]:
    return {"users": [{"regex": regex, "exclusive": False}], "aliases": [], "rooms": []}


async def start(
    make_homeserver: MakeServer, tmp_path: Path,
    *services: tuple[LoopbackAppService, dict[str, Any]],
) -> RunningServer:
    """A server with these appservices registered (each with its registration overrides),
    retrying quickly."""
    paths = []
    for service, overrides in services:
        await service.up()
        paths.append(service.write_registration(tmp_path, **overrides))
    server = await make_homeserver({"appservices.registration_files": paths})
    assert server.hs.appservice_sender is not None
    server.hs.appservice_sender.backoff = QUICK
    return server


async def failing_bridge(
    make_homeserver: MakeServer, tmp_path: Path, http: aiohttp.ClientSession, name: str
) -> tuple[LoopbackAppService, RunningServer, MatrixApi, User, str]:
    """An appservice answering 503 to every transaction, a server, a user of the
    appservice's namespace and a room of theirs (whose events the appservice is owed)."""
    bridge = LoopbackAppService(name)
    bridge.transaction_status = 503
    namespaces = users(f"@_{name}_.*:localhost")
    server = await start(make_homeserver, tmp_path, (bridge, {"namespaces": namespaces}))
    api = MatrixApi(server.url, http)
    ghost = await api.register(f"_{name}_ghost")
    return bridge, server, api, ghost, await api.create_room(ghost)


def memberships(service: LoopbackAppService, room_id: str) -> list[tuple[str, str]]:
    return [
        (e["state_key"], e["content"]["membership"]) for e in service.events()
        if e["type"] == "m.room.member" and e["room_id"] == room_id
    ]


async def test_events_reach_an_appservice_through_its_namespaces_and_no_others(
    make_homeserver: MakeServer, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    bridge = LoopbackAppService("routing")
    namespaces = users("@_bridge_.*:localhost")
    namespaces["aliases"] = [{"regex": "#_bridge_.*:localhost", "exclusive": False}]
    server = await start(make_homeserver, tmp_path, (bridge, {"namespaces": namespaces}))
    api = MatrixApi(server.url, http)
    alice = await api.register("alice")
    ghost = await api.register("_bridge_ghost")

    # Member interest: from the invite of a namespaced user to their leave.
    room_a = await api.create_room(alice)
    before = await api.send_message(alice, room_a, "before the ghost came")
    await api.invite(alice, room_a, ghost)
    invited = await api.send_message(alice, room_a, "while the ghost is invited")
    await api.join(ghost, room_a)
    joined = await api.send_message(alice, room_a, "while the ghost is joined")
    await api.ok("POST", f"rooms/{quote(room_a)}/leave", json={}, token=ghost.token)
    after = await api.send_message(alice, room_a, "after the ghost left")
    # Alias interest: while a local alias in the namespace points at the room.
    room_b = await api.create_room(alice)
    alias = quote("#_bridge_b:localhost")
    await api.ok("PUT", f"directory/room/{alias}", json={"room_id": room_b}, token=alice.token)
    aliased = await api.send_message(alice, room_b, "the room has a bridged alias")
    await api.ok("DELETE", f"directory/room/{alias}", token=alice.token)
    unaliased = await api.send_message(alice, room_b, "the alias is gone")
    # An alias outside the namespace interests nobody.
    room_c = await api.create_room(alice)
    await api.ok(
        "PUT", f"directory/room/{quote('#other_c:localhost')}", json={"room_id": room_c},
        token=alice.token,
    )
    unrelated = await api.send_message(alice, room_c, "nobody's business")
    # Sender interest: the ghost's own room, to the last event (which also ends the test).
    room_d = await api.create_room(ghost)
    marker = await api.send_message(ghost, room_d, "marker")

    await eventually(lambda: _has(bridge, marker), "the marker to reach the appservice")
    ids = bridge.event_ids()
    assert [e for e in ids if e in {invited, joined, aliased, marker}] == [
        invited, joined, aliased, marker
    ]
    for unwanted in (before, after, unaliased, unrelated):
        assert unwanted not in ids
    assert memberships(bridge, room_a) == [
        (ghost.user_id, "invite"), (ghost.user_id, "join"), (ghost.user_id, "leave")
    ]
    # The whole of the ghost's room, from its creation; nothing at all of room C.
    room_d_types = [e["type"] for e in bridge.events() if e["room_id"] == room_d]
    assert room_d_types[0] == "m.room.create" and room_d_types[-1] == "m.room.message"
    assert all(e["room_id"] != room_c for e in bridge.events())
    # Client-format events, authenticated with the hs_token.
    event = next(e for e in bridge.events() if e["event_id"] == marker)
    assert event["sender"] == ghost.user_id and event["content"]["body"] == "marker"
    assert "hashes" not in event and "signatures" not in event
    assert {a.authorization for a in bridge.attempts} == {f"Bearer {bridge.hs_token}"}
    assert all("ephemeral" not in a.body for a in bridge.attempts)


async def test_a_room_id_namespace_brings_the_rooms_events(
    make_homeserver: MakeServer, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """Room IDs are chosen by the server, so the registration naming one is written after
    the room exists and the server restarted with it."""
    server = await make_homeserver()
    api = MatrixApi(server.url, http)
    alice = await api.register("alice")
    room, other = await api.create_room(alice), await api.create_room(alice)
    before = await api.send_message(alice, room, "before the registration")
    await server.hs.stop()

    bridge = LoopbackAppService("room-ns")
    await bridge.up()
    namespaces = {"users": [], "aliases": [], "rooms": [
        {"regex": re.escape(room), "exclusive": False}
    ]}
    path = bridge.write_registration(tmp_path, namespaces=namespaces)
    config = dataclasses.replace(
        server.hs.config, appservices=AppServicesConfig(registration_files=(path,))
    )
    restarted = Homeserver(config)
    await restarted.start()
    try:
        api = MatrixApi(f"http://127.0.0.1:{restarted.ports['client']}", http)
        elsewhere = await api.send_message(alice, other, "another room")
        inside = await api.send_message(alice, room, "inside the bridged room")
        await eventually(lambda: _has(bridge, inside), "the room's event")
        assert before not in bridge.event_ids() and elsewhere not in bridge.event_ids()
    finally:
        await restarted.stop()


async def test_ephemeral_data_goes_only_to_an_appservice_that_asked_for_it(
    make_homeserver: MakeServer, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    wanting = LoopbackAppService("eph-yes", hs_token="hs-yes")
    plain = LoopbackAppService("eph-no", hs_token="hs-no")
    namespaces = users("@_eph_.*:localhost")
    server = await start(
        make_homeserver, tmp_path,
        (wanting, {"namespaces": namespaces, "receive_ephemeral": True}),
        (plain, {"namespaces": namespaces}),
    )
    api = MatrixApi(server.url, http)
    alice = await api.register("alice")
    ghost = await api.register("_eph_ghost")
    room = await api.create_room(alice, invite=[ghost.user_id])
    await api.join(ghost, room)
    message = await api.send_message(alice, room, "read me")
    await api.ok(
        "PUT", f"rooms/{quote(room)}/typing/{quote(alice.user_id)}",
        json={"typing": True, "timeout": 30000}, token=alice.token,
    )
    # A private receipt of a user no appservice holds reaches none; the public one does.
    await api.ok(
        "POST", f"rooms/{quote(room)}/receipt/m.read.private/{quote(message)}", json={},
        token=alice.token,
    )
    await api.ok(
        "POST", f"rooms/{quote(room)}/receipt/m.read/{quote(message)}", json={},
        token=alice.token,
    )
    await api.ok(
        "PUT", f"presence/{quote(alice.user_id)}/status", json={"presence": "online"},
        token=alice.token,
    )

    def of_type(kind: str) -> list[dict[str, Any]]:
        return [e for e in wanting.ephemeral() if e["type"] == kind]

    await eventually(lambda: _async(of_type("m.presence")), "alice's presence")
    [typing] = [e for e in of_type("m.typing") if e["content"]["user_ids"]]
    assert typing == {"type": "m.typing", "room_id": room, "content": {"user_ids": [alice.user_id]}}
    receipts = of_type("m.receipt")
    assert [list(r["content"][message]) for r in receipts] == [["m.read"]]
    assert receipts[0]["room_id"] == room
    assert alice.user_id in receipts[0]["content"][message]["m.read"]
    assert of_type("m.presence")[0]["sender"] == alice.user_id
    for txn in wanting.accepted():
        assert txn.body.get("ephemeral") == txn.body.get("de.sorunome.msc2409.ephemeral")
    # Queued with the first appservice's rows: once a later event reaches the second, it
    # would have had them too.
    marker = await api.send_message(alice, room, "marker")
    await eventually(lambda: _has(plain, marker), "the marker")
    assert all(
        "ephemeral" not in t.body and "de.sorunome.msc2409.ephemeral" not in t.body
        for t in plain.attempts
    )
    assert message in plain.event_ids()


async def test_an_appservice_that_fails_then_goes_away_gets_everything_once_and_in_order(
    make_homeserver: MakeServer, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    bridge, server, api, ghost, room = await failing_bridge(
        make_homeserver, tmp_path, http, "outage"
    )
    before = await scrape(server, http)
    assert sample(before, "moot_appservice_transactions_sent_total", appservice="outage") == 0
    sent = [await api.send_message(ghost, room, "first")]
    await eventually(lambda: _async(len(bridge.attempts) >= 3), "retries of a failing txn")
    await bridge.down()
    for i in range(130):  # more than one transaction's worth
        sent.append(await api.send_message(ghost, room, f"while down {i}"))
    waiting = await scrape(server, http)
    assert sample(waiting, "moot_appservice_queue_depth", appservice="outage") >= 130
    assert sample(waiting, "moot_appservice_queue_oldest_age_seconds", appservice="outage") > 0
    bridge.transaction_status = 200
    await bridge.up()

    await eventually(lambda: _has(bridge, sent[-1]), "the backlog")
    failed = [a for a in bridge.attempts if a.answered == 503]
    accepted = bridge.accepted()
    # The failed transaction, retried unchanged, is the first one accepted.
    assert len({(a.txn_id, a.raw) for a in failed}) == 1
    assert (accepted[0].txn_id, accepted[0].raw) == (failed[0].txn_id, failed[0].raw)
    ids = bridge.event_ids()
    assert len(ids) == len(set(ids))  # no event in two transactions
    assert [e for e in ids if e in set(sent)] == sent
    assert all(len(t.body["events"]) <= 100 for t in accepted)
    assert len(accepted) >= 3
    txn_ids = [int(t.txn_id) for t in accepted]
    assert txn_ids == sorted(txn_ids)

    async def drained() -> bool:
        text = await scrape(server, http)
        return sample(text, "moot_appservice_queue_depth", appservice="outage") == 0
    await eventually(drained, "the queue to empty")
    after = await scrape(server, http)
    assert sample(after, "moot_appservice_transactions_failed_total", appservice="outage") >= 3
    assert sample(after, "moot_appservice_transactions_sent_total", appservice="outage") >= 3
    assert sample(after, "moot_appservice_queue_oldest_age_seconds", appservice="outage") == 0


async def test_a_restart_resumes_the_backlog_with_the_unacknowledged_transaction_first(
    make_homeserver: MakeServer, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    bridge, server, api, ghost, room = await failing_bridge(
        make_homeserver, tmp_path, http, "restart"
    )
    sent = [await api.send_message(ghost, room, f"before {i}") for i in range(5)]
    await eventually(lambda: _async(len(bridge.attempts) >= 2), "a failing attempt")
    await bridge.down()
    sent += [await api.send_message(ghost, room, f"queued {i}") for i in range(5)]
    await server.hs.stop()
    tried = bridge.attempts[0]

    bridge.transaction_status = 200
    await bridge.up()
    restarted = Homeserver(server.hs.config)
    await restarted.start()
    try:
        await eventually(lambda: _has(bridge, sent[-1]), "the backlog after the restart")
    finally:
        await restarted.stop()
    accepted = bridge.accepted()
    assert (accepted[0].txn_id, accepted[0].raw) == (tried.txn_id, tried.raw)
    ids = bridge.event_ids()
    assert len(ids) == len(set(ids))
    assert [e for e in ids if e in set(sent)] == sent


def _has(service: LoopbackAppService, event_id: str) -> Any:
    return _async(event_id in service.event_ids())


async def _async(value: Any) -> Any:
    return value


async def test_a_ping_from_an_appservice_in_backoff_has_its_backlog_sent_at_once(
    make_homeserver: MakeServer, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """Bridges ping when they start: the answer shows the appservice is up again."""
    bridge, server, api, ghost, room = await failing_bridge(
        make_homeserver, tmp_path, http, "pingback"
    )
    waiting = await api.send_message(ghost, room, "waiting for the bridge")
    assert server.hs.appservice_sender is not None
    # An hour's wait after the next failure: only the ping can explain a prompt retry.
    server.hs.appservice_sender.backoff = Backoff(base_s=3600.0, max_s=3600.0)
    tried = len(bridge.attempts)
    await eventually(lambda: _async(len(bridge.attempts) > tried), "a failure under it")
    bridge.transaction_status = 200
    await api.ok(
        "POST", "/_matrix/client/v1/appservice/pingback/ping", json={}, token=bridge.as_token
    )
    await eventually(lambda: _has(bridge, waiting), "the retry after the ping")


async def test_a_ping_while_a_transaction_is_in_flight_is_not_lost(
    make_homeserver: MakeServer, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """The bridge pings while the attempt it will fail is still open: the ping still means
    it is up, so the failure is retried at once rather than after the backoff."""
    bridge, server, api, ghost, room = await failing_bridge(
        make_homeserver, tmp_path, http, "inflight"
    )
    gate = bridge.transaction_gate = asyncio.Event()
    waiting = await api.send_message(ghost, room, "waiting for the bridge")
    await eventually(lambda: _async(bridge.held > 0), "an attempt held open")
    assert server.hs.appservice_sender is not None
    server.hs.appservice_sender.backoff = Backoff(base_s=3600.0, max_s=3600.0)
    bridge.transaction_status = 200  # the held attempt still fails
    await api.ok(
        "POST", "/_matrix/client/v1/appservice/inflight/ping", json={}, token=bridge.as_token
    )
    bridge.transaction_gate = None
    gate.set()
    await eventually(lambda: _has(bridge, waiting), "the retry after the ping")


async def test_a_redaction_takes_its_event_out_of_a_transaction_still_owed(
    make_homeserver: MakeServer, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """A transaction an appservice keeps failing holds a message; the message is redacted:
    the retry under the same txnId no longer carries it, and no row of the database holds
    its text (issue 20: what is deleted is gone, even from a queue to a service that is
    down)."""
    bridge, server, api, ghost, room = await failing_bridge(
        make_homeserver, tmp_path, http, "forget"
    )
    bridge.transaction_status = 200  # the room's creation goes through
    await eventually(lambda: _async(bool(bridge.accepted())), "the room's creation")
    bridge.transaction_status = 503
    marker = "zqforget2f9a61c0"
    needle = marker.encode()
    secret = await api.send_message(ghost, room, marker)
    await eventually(
        lambda: _async(any(needle in a.raw for a in bridge.attempts)), "a failing attempt"
    )
    await api.ok(
        "PUT", f"rooms/{room}/redact/{quote(secret)}/r1", json={}, token=ghost.token
    )
    assert marker not in await dump_text(server.hs.config.database.url or "")
    owed = next(a for a in bridge.attempts if needle in a.raw)
    tried = len(bridge.attempts)
    bridge.transaction_status = 200
    await eventually(
        lambda: _async(any(a.txn_id == owed.txn_id for a in bridge.accepted())),
        "the owed transaction",
    )
    first = next(a for a in bridge.accepted() if a.txn_id == owed.txn_id)
    assert len(bridge.attempts) > tried and needle not in first.raw
    assert secret not in [e["event_id"] for e in first.body["events"]]

"""Delivery to push gateways, over HTTP to a recording gateway on loopback: what is sent for
each kind of event and format, badge updates after a read receipt, rejected pushkeys, a
gateway that is down for a while, a restart with pushes queued, and the address policy that
keeps users' gateway URLs off this server's own network."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from prometheus_client import REGISTRY

from homeserver.app import Homeserver
from homeserver.protocol.backoff import Backoff
from homeserver.services import push_sender as push_sender_module
from storage.push_deliveries import DELETE_QUEUED
from tests.conftest import MakeServer, RunningServer
from tests.federation_helpers import free_port
from tests.federation_peers import eventually
from tests.helpers import MatrixApi, User
from tests.push_gateway import NOTIFY_PATH, RecordingGateway
from tests.push_rooms import GroupRoom, group_room, send
from tests.statements import counting, pool_statements

pytestmark = pytest.mark.usefixtures("no_server_errors")

ALLOW_PRIVATE = {"push.allow_private_addresses": True}
FAST = Backoff(base_s=0.05, max_s=0.2)
APP_ID = "org.example.app"


def pusher_body(url: str, pushkey: str, **data: Any) -> dict[str, Any]:
    return {
        "kind": "http", "app_id": APP_ID, "pushkey": pushkey, "app_display_name": "Example",
        "device_display_name": "Phone", "lang": "en", "data": {"url": url, **data},
    }


def metric(name: str) -> float:
    return REGISTRY.get_sample_value(name, {"kind": "http"}) or 0.0


@pytest.fixture
async def gateway() -> AsyncIterator[RecordingGateway]:
    gw = RecordingGateway()
    await gw.start()
    yield gw
    await gw.stop()


@pytest.fixture
async def server(make_homeserver: MakeServer) -> RunningServer:
    running = await make_homeserver(ALLOW_PRIVATE)
    assert running.hs.push_sender is not None
    running.hs.push_sender.backoff = FAST
    return running


@pytest.fixture
async def api(server: RunningServer, http: aiohttp.ClientSession) -> MatrixApi:
    return MatrixApi(server.url, http)


@pytest.fixture
async def room(api: MatrixApi) -> GroupRoom:
    """The group room with a name, an alias and Alice's display name."""
    return await group_room(
        api, "Alice Liddell", preset="public_chat", name="Lobby", room_alias_name="lobby"
    )


async def set_pusher(api: MatrixApi, user: User, body: dict[str, Any]) -> None:
    await api.ok("POST", "pushers/set", json=body, token=user.token)


async def received(gateway: RecordingGateway, count: int, what: str) -> list[dict[str, Any]]:
    async def enough() -> bool:
        return len(gateway.received) >= count

    await eventually(enough, what)
    return gateway.received


# ---- what the room writer pays -----------------------------------------------------------

QUEUEING = "INSERT INTO push_deliveries"
SENDER_TASKS = "push "  # the push sender's tasks: one per pusher, and its queue reader


async def test_a_batch_queues_pushes_only_when_a_notified_user_holds_a_pusher(
    api: MatrixApi, room: GroupRoom, gateway: RecordingGateway, server: RunningServer
) -> None:
    db = server.hs.db
    assert db is not None
    async with pool_statements(db) as statements:
        await api.send_message(room.alice, room.room_id, "nobody holds a pusher")
    assert counting(statements, "INSERT INTO push_actions") == 1  # it notified Bob and Carol
    assert counting(statements, QUEUEING) == 0

    body = pusher_body(gateway.url, "bob-key")
    await set_pusher(api, room.bob, body)
    async with pool_statements(db) as statements:
        pushed = await api.send_message(room.alice, room.room_id, "Bob holds one")
    assert counting(statements, QUEUEING) == 1
    assert (await received(gateway, 1, "Bob's push"))[0]["event_id"] == pushed

    await set_pusher(api, room.bob, {**body, "kind": None})  # deleted: back to no statement
    async with pool_statements(db) as statements:
        await api.send_message(room.alice, room.room_id, "nobody again")
    assert counting(statements, "INSERT INTO push_actions") == 1
    assert counting(statements, QUEUEING) == 0


async def test_a_push_costs_the_sender_few_statements(
    api: MatrixApi, room: GroupRoom, gateway: RecordingGateway, server: RunningServer
) -> None:
    """Read from the caches, deleted with the next read or a deletion for several: at most
    two statements a push even when each push is alone in the queue (and the caches' first
    loads)."""
    assert server.hs.db is not None
    await set_pusher(api, room.bob, pusher_body(gateway.url, "bob-key"))
    pushes = 10
    async with pool_statements(server.hs.db, SENDER_TASKS) as statements:
        sent = [await api.send_message(room.alice, room.room_id, f"m{i}") for i in range(pushes)]
        await received(gateway, pushes, "every push")
    assert gateway.events() == sent
    print(f"{len(statements)} statements for {pushes} pushes")
    assert len(statements) <= 2 * pushes + 3, statements
    assert len(gateway.connections) == 1  # one kept-alive connection carried them all


async def eight_pushers_after_a_first_wave(
    api: MatrixApi, room: GroupRoom, gateway: RecordingGateway
) -> None:
    """Six more members join; they, Bob and Carol each hold a pusher; a first message reaches
    all eight (which fills the caches and the users' counts)."""
    others = [await api.register(f"member{i}") for i in range(6)]
    for user in others:
        await api.join(user, room.room_id)
    for user in [room.bob, room.carol, *others]:
        await set_pusher(api, user, pusher_body(gateway.url, f"{user.user_id}-key"))
    await api.send_message(room.alice, room.room_id, "the first wave")
    await received(gateway, 8, "the first wave")


async def test_a_wave_of_pushes_to_many_pushers_reads_every_queue_at_once(
    api: MatrixApi, room: GroupRoom, gateway: RecordingGateway, server: RunningServer
) -> None:
    """Every pusher's queue is read by one statement; what was delivered is deleted with a
    later read or in one deletion for all; the requests' bodies come from memory once the
    caches hold the users' counts."""
    db = server.hs.db
    assert db is not None
    await eight_pushers_after_a_first_wave(api, room, gateway)

    async def queue_empty() -> bool:
        async with db.connection() as conn:
            return await conn.fetchval("SELECT count(*) FROM push_deliveries") == 0

    await eventually(queue_empty, "the first wave's rows to be deleted")
    async with pool_statements(db, SENDER_TASKS) as statements:
        wave = await api.send_message(room.alice, room.room_id, "the second wave")
        await received(gateway, 16, "the second wave")
        await eventually(queue_empty, "the second wave's rows to be deleted")
    assert gateway.events().count(wave) == 8
    reads = [s for s in statements if "WITH delivered" in s.query]
    deletions = [s for s in statements if s.query == DELETE_QUEUED]
    print(f"{len(statements)} statements for a wave of 8 pushes")
    # Nothing read for a request's body, no row deleted alone. (On a busy machine the read
    # may come before the writer's caches hold the new event: then the event and the room's
    # state are read once with it, for all eight pushes.)
    assert len(statements) - len(reads) - len(deletions) <= 3, statements
    assert len(reads[0].args[0]) == 8  # the first read found every pusher's row
    assert len(gateway.connections) == 1  # the eight requests pipelined on one connection
    deleted = [p for r in reads for p in r.args[4]] + [p for d in deletions for p in d.args[0]]
    assert len(deleted) == 8


async def test_an_event_missing_from_memory_is_read_once_for_all_its_pushers(
    api: MatrixApi, room: GroupRoom, gateway: RecordingGateway, server: RunningServer
) -> None:
    """As in a push worker, which writes no events: what the bodies need and memory lacks
    (the event, the room's state) is read once for all the rows a queue read found, not once
    per pusher."""
    db, sender = server.hs.db, server.hs.push_sender
    assert db is not None and sender is not None
    await eight_pushers_after_a_first_wave(api, room, gateway)
    slots = sender._db_slots
    for _ in range(push_sender_module.DB_CONNECTIONS):  # the queue waits to be read
        await slots.acquire()
    try:
        wave = await api.send_message(room.alice, room.room_id, "the second wave")
    finally:
        sender.rooms.events.clear()  # type: ignore[attr-defined]
        sender.current_state.clear()
        async with pool_statements(db, SENDER_TASKS) as statements:
            for _ in range(push_sender_module.DB_CONNECTIONS):
                slots.release()
            await received(gateway, 16, "the second wave")
    assert gateway.events().count(wave) == 8
    event_reads = [s for s in statements if "FROM events e WHERE e.event_id = ANY" in s.query]
    state_reads = [s for s in statements if "JOIN current_state" in s.query]
    assert len(event_reads) <= 2 and len(state_reads) == 1, statements  # (the 2nd: state)
    assert wave in event_reads[0].args[0]


async def test_a_renamed_room_is_pushed_under_its_new_name(
    api: MatrixApi, room: GroupRoom, gateway: RecordingGateway
) -> None:
    """The room's name comes from the current-state cache, which a state change empties."""
    await set_pusher(api, room.bob, pusher_body(gateway.url, "bob-key"))
    before = await api.send_message(room.alice, room.room_id, "before")
    await received(gateway, 1, "the first push")
    await api.ok("PUT", f"rooms/{room.room_id}/state/m.room.name/", json={"name": "Hall"},
                 token=room.alice.token)
    after = await api.send_message(room.alice, room.room_id, "after")

    async def both() -> bool:
        return after in gateway.events()

    await eventually(both, "the second push")
    names = {n["event_id"]: n["room_name"] for n in gateway.received if "event_id" in n}
    assert (names[before], names[after]) == ("Lobby", "Hall")


# ---- what is sent ---------------------------------------------------------------------------

async def test_a_message_sends_everything_the_spec_lists(
    api: MatrixApi, room: GroupRoom, gateway: RecordingGateway
) -> None:
    await set_pusher(api, room.bob, pusher_body(gateway.url, "bob-key", extra="kept"))
    first = await api.send_message(room.alice, room.room_id, "hello")
    mention = await send(api, room.alice, room.room_id, "m.room.message", {
        "msgtype": "m.text", "body": "hey bob", "m.mentions": {"user_ids": [room.bob.user_id]},
    })
    notes = await received(gateway, 2, "two pushes")
    device = notes[0]["devices"][0]
    assert isinstance(device.pop("pushkey_ts"), int)
    assert notes[0] == {
        "event_id": first, "room_id": room.room_id, "type": "m.room.message",
        "sender": room.alice.user_id, "sender_display_name": "Alice Liddell",
        "room_name": "Lobby", "room_alias": "#lobby:localhost", "prio": "high",
        "content": {"msgtype": "m.text", "body": "hello"}, "counts": {"unread": 1},
        "devices": [{"app_id": APP_ID, "pushkey": "bob-key", "data": {"extra": "kept"},
                     "tweaks": {}}],
    }
    assert notes[1]["event_id"] == mention
    assert notes[1]["counts"] == {"unread": 2}
    assert notes[1]["devices"][0]["tweaks"] == {"sound": "default", "highlight": True}
    assert len(gateway.received) == 2  # Alice's own pusherless account, Carol's: nothing


async def test_an_encrypted_event_goes_without_its_content(
    api: MatrixApi, room: GroupRoom, gateway: RecordingGateway
) -> None:
    await set_pusher(api, room.bob, pusher_body(gateway.url, "bob-key"))
    event_id = await send(api, room.alice, room.room_id, "m.room.encrypted", {
        "algorithm": "m.megolm.v1.aes-sha2", "ciphertext": "c", "sender_key": "k",
        "session_id": "s", "device_id": "D",
    })
    [note] = await received(gateway, 1, "the push")
    assert (note["event_id"], note["type"], note["prio"]) == (event_id, "m.room.encrypted", "high")
    assert "content" not in note


async def test_an_invite_is_pushed_to_its_target(
    api: MatrixApi, room: GroupRoom, gateway: RecordingGateway
) -> None:
    dave = await api.register("dave")
    await set_pusher(api, dave, pusher_body(gateway.url, "dave-key"))
    await api.invite(room.alice, room.room_id, dave)
    [note] = await received(gateway, 1, "the invite's push")
    assert note["type"] == "m.room.member"
    assert note["user_is_target"] is True
    assert note["prio"] == "high"
    assert note["content"]["membership"] == "invite"
    assert note["room_name"] == "Lobby"


async def test_event_id_only_and_a_badge_update_after_a_read_receipt(
    api: MatrixApi, room: GroupRoom, gateway: RecordingGateway
) -> None:
    await set_pusher(api, room.bob, pusher_body(gateway.url, "bob-key", format="event_id_only"))
    first = await api.send_message(room.alice, room.room_id, "one")
    second = await api.send_message(room.alice, room.room_id, "two")
    notes = await received(gateway, 2, "two pushes")
    assert [set(n) for n in notes] == [{"event_id", "room_id", "counts", "prio", "devices"}] * 2
    assert [(n["event_id"], n["counts"]) for n in notes] == [
        (first, {"unread": 1}), (second, {"unread": 2}),
    ]
    assert notes[0]["devices"][0]["data"] == {"format": "event_id_only"}
    await api.ok("POST", f"rooms/{room.room_id}/receipt/m.read/{second}", json={},
                 token=room.bob.token)
    [*_, badge] = await received(gateway, 3, "the badge update")
    device = badge["devices"][0]
    assert badge == {"counts": {"unread": 0}, "devices": [device]}
    assert (device["pushkey"], device["tweaks"]) == ("bob-key", {})


async def test_a_rejected_pushkey_loses_its_pusher(
    api: MatrixApi, room: GroupRoom, gateway: RecordingGateway
) -> None:
    rejected_before = metric("moot_push_rejected_total")
    gateway.rejecting.add("bob-key")
    await set_pusher(api, room.bob, pusher_body(gateway.url, "bob-key"))
    await set_pusher(api, room.carol, pusher_body(gateway.url, "carol-key"))
    await api.send_message(room.alice, room.room_id, "one")

    async def gone() -> bool:
        body = await api.ok("GET", "pushers", token=room.bob.token)
        return body == {"pushers": []}

    await eventually(gone, "Bob's rejected pusher to be deleted")
    assert metric("moot_push_rejected_total") == rejected_before + 1
    later = await api.send_message(room.alice, room.room_id, "two")

    async def carol_has_it() -> bool:
        return later in gateway.events("carol-key")

    await eventually(carol_has_it, "Carol's push of the second message")
    assert len(gateway.events("bob-key")) == 1
    assert len((await api.ok("GET", "pushers", token=room.carol.token))["pushers"]) == 1


# ---- durability -----------------------------------------------------------------------------

async def test_a_gateway_down_for_a_while_gets_everything_once_in_order(
    api: MatrixApi, room: GroupRoom, gateway: RecordingGateway, server: RunningServer
) -> None:
    sender = server.hs.push_sender
    assert sender is not None
    sent_before, failed_before = metric("moot_push_sent_total"), metric("moot_push_failed_total")
    await set_pusher(api, room.bob, pusher_body(gateway.url, "bob-key"))
    gateway.down = True
    sent = [await api.send_message(room.alice, room.room_id, f"m{i}") for i in range(5)]

    async def retried() -> bool:
        return gateway.refused >= 3

    await eventually(retried, "three refused attempts")
    await sender.refresh_gauges()
    assert metric("moot_push_queue_depth") == 5
    assert metric("moot_push_queue_oldest_age_seconds") >= 0
    gateway.down = False

    async def caught_up() -> bool:
        return len(gateway.events()) >= 5

    await eventually(caught_up, "the backlog")
    sent.append(await api.send_message(room.alice, room.room_id, "after"))
    await received(gateway, 6, "the push after the outage")
    assert gateway.events() == sent
    assert len(gateway.received) == 6
    assert metric("moot_push_sent_total") == sent_before + 6
    assert metric("moot_push_failed_total") >= failed_before + 3

    async def drained() -> bool:  # the last delivered row is deleted a moment later
        assert sender is not None
        await sender.refresh_gauges()
        return metric("moot_push_queue_depth") == 0

    await eventually(drained, "the delivered rows' deletion")


async def test_pushes_older_than_a_day_are_dropped_without_a_request(
    api: MatrixApi, room: GroupRoom, gateway: RecordingGateway, server: RunningServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A gateway down for more than a day: its backlog must drain without one (possibly
    # 20 s) request per row, or it would grow faster than it drains.
    monkeypatch.setattr(push_sender_module, "DELIVERY_EXPIRY_MS", 0)  # every row is a day old
    db = server.hs.db
    assert db is not None
    await set_pusher(api, room.bob, pusher_body(gateway.url, "bob-key"))
    gateway.down = True
    for i in range(3):
        await api.send_message(room.alice, room.room_id, f"stale {i}")

    async def queue_empty() -> bool:
        async with db.connection() as conn:
            return await conn.fetchval("SELECT count(*) FROM push_deliveries") == 0

    await eventually(queue_empty, "the stale rows to be dropped")
    assert gateway.refused == 0
    assert gateway.received == []


async def test_pushes_queued_when_the_server_stops_go_out_after_its_restart(
    make_homeserver: MakeServer, http: aiohttp.ClientSession
) -> None:
    port = free_port()  # the gateway is not there yet: every attempt fails
    server = await make_homeserver(ALLOW_PRIVATE)
    api = MatrixApi(server.url, http)
    alice, bob = await api.register("alice"), await api.register("bob")
    room_id = await api.create_room(alice, preset="public_chat")
    await api.join(bob, room_id)
    await set_pusher(api, bob, pusher_body(f"http://127.0.0.1:{port}{NOTIFY_PATH}", "bob-key"))
    failed_before = metric("moot_push_failed_total")
    sent = [await api.send_message(alice, room_id, f"m{i}") for i in range(3)]

    async def attempted() -> bool:
        return metric("moot_push_failed_total") > failed_before

    await eventually(attempted, "a failed attempt")
    await server.hs.stop()

    gateway = RecordingGateway()
    await gateway.start(port)
    restarted = Homeserver(server.hs.config)
    await restarted.start()
    try:
        async def delivered() -> bool:
            return len(gateway.events()) >= 3

        await eventually(delivered, "the queued pushes after the restart")
        assert gateway.events() == sent
    finally:
        await restarted.stop()
        await gateway.stop()


async def test_a_20_s_outage_is_caught_up_within_30_s_of_its_end(
    make_homeserver: MakeServer,
) -> None:
    """A server's schedule (1 s doubling, capped at 5 minutes): a gateway down from its first
    failed attempt at t=0 until t=20 s is tried again by t=50 s."""
    server = await make_homeserver(ALLOW_PRIVATE)
    assert server.hs.push_sender is not None
    backoff = server.hs.push_sender.backoff
    assert (backoff.delay_s(1), backoff.max_s) == (1.0, 300.0)
    t, failures = 0.0, 0
    while t < 20:
        failures += 1
        t += backoff.delay_s(failures)
    assert t <= 20 + 30


# ---- the address policy -------------------------------------------------------------------

@pytest.mark.parametrize(
    "host",
    ["127.0.0.1:8080", "10.1.2.3", "169.254.169.254", "[::1]", "[fe80::1]", "localhost:8080",
     "192.168.1.1", "2130706433", "[::ffff:127.0.0.1]", "0x7f.1", "a..b"],
)
async def test_gateways_on_private_addresses_are_refused(
    make_homeserver: MakeServer, http: aiohttp.ClientSession, host: str
) -> None:
    server = await make_homeserver()
    api = MatrixApi(server.url, http)
    alice = await api.register("alice")
    status, body = await api.request(
        "POST", "pushers/set", json=pusher_body(f"http://{host}{NOTIFY_PATH}", "k"),
        token=alice.token,
    )
    assert (status, body["errcode"]) == (400, "M_INVALID_PARAM"), body
    assert await api.ok("GET", "pushers", token=alice.token) == {"pushers": []}


async def test_a_stored_private_gateway_gets_nothing_once_the_key_is_off(
    make_homeserver: MakeServer, http: aiohttp.ClientSession, gateway: RecordingGateway
) -> None:
    """The check at delivery holds even for a pusher stored while private addresses were
    allowed (or a name that resolved elsewhere then)."""
    allowed = await make_homeserver(ALLOW_PRIVATE)
    api = MatrixApi(allowed.url, http)
    alice, bob = await api.register("alice"), await api.register("bob")
    room_id = await api.create_room(alice, preset="public_chat")
    await api.join(bob, room_id)
    await set_pusher(api, bob, pusher_body(gateway.url, "bob-key"))
    await allowed.hs.stop()

    strict = await make_homeserver()
    api = MatrixApi(strict.url, http)
    failed_before = metric("moot_push_failed_total")
    await api.send_message(alice, room_id, "hello")

    async def refused() -> bool:
        return metric("moot_push_failed_total") > failed_before

    await eventually(refused, "the refused delivery")
    assert gateway.received == []


async def test_email_pushers_are_refused(api: MatrixApi) -> None:
    alice = await api.register("alice")
    body = pusher_body("unused", "alice@example.org") | {
        "kind": "email", "data": {}
    }
    status, answer = await api.request("POST", "pushers/set", json=body, token=alice.token)
    assert (status, answer["errcode"]) == (400, "M_INVALID_PARAM"), answer
    assert await api.ok("GET", "pushers", token=alice.token) == {"pushers": []}


async def test_a_push_still_queued_when_its_event_expires_is_not_sent(
    make_homeserver: MakeServer, http: aiohttp.ClientSession, gateway: RecordingGateway,
) -> None:
    """A disappearing post whose push waited out a gateway outage longer than the post's
    lifetime: the push goes nowhere (its content is served to no one once it expired)."""
    server = await make_homeserver({
        **ALLOW_PRIVATE, "retention.enabled": True, "retention.allowed_lifetime_min_ms": 0,
        "encryption.default": "off",
    })
    assert server.hs.push_sender is not None
    server.hs.push_sender.backoff = FAST
    api = MatrixApi(server.url, http)
    room = await group_room(api, "Alice Liddell", preset="public_chat")
    await api.ok(
        "PUT", f"rooms/{room.room_id}/state/m.room.retention/",
        json={"max_lifetime": 1000}, token=room.alice.token,
    )
    await set_pusher(api, room.bob, pusher_body(gateway.url, "bob-key"))
    gateway.down = True
    await api.send_message(room.alice, room.room_id, "disappearing")

    async def retried() -> bool:
        return gateway.refused >= 2

    await eventually(retried, "refused attempts")
    await asyncio.sleep(1.2)  # the post's lifetime is over
    gateway.down = False
    after = await api.send_message(room.alice, room.room_id, "after")
    await received(gateway, 1, "the push after the outage")
    await asyncio.sleep(0.3)  # nothing else comes
    assert gateway.events() == [after]

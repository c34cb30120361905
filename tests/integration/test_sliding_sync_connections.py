"""Simplified sliding sync connections: the /versions flag, `pos` per (device, conn_id),
starting over, M_UNKNOWN_POS for every pos the connection cannot continue from, long-polls that
wake on each kind of change (and time out empty), and a server restart that never yields a
wrong delta.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from homeserver.app import Homeserver
from homeserver.config import load_config
from tests.conftest import MakeServer, RunningServer, throwaway_database, write_test_config
from tests.fake_clock import FakeClock
from tests.helpers import MatrixApi
from tests.sliding_sync import (
    FEATURE,
    LONG_POLL_MS,
    PATH,
    WAKE_DEADLINE_S,
    Connection,
    bodies,
    extension,
    room_list,
    room_of_two,
    rooms,
    subscription,
    timeline,
    woken,
)

pytestmark = pytest.mark.usefixtures("no_server_errors")

ALL = {"lists": {"all": room_list(timeline_limit=5)}}


async def test_versions_advertises_the_feature(api: MatrixApi) -> None:
    versions = await api.ok("GET", "/_matrix/client/versions")
    assert versions["unstable_features"][FEATURE] is True


async def test_the_endpoint_needs_an_access_token(api: MatrixApi) -> None:
    status, body = await api.request("POST", PATH, json={})
    assert (status, body["errcode"]) == (401, "M_MISSING_TOKEN")
    status, body = await api.request("POST", PATH, json={}, token="nonsense")
    assert (status, body["errcode"]) == (401, "M_UNKNOWN_TOKEN")


async def test_first_request_is_initial_then_only_deltas(api: MatrixApi) -> None:
    alice, _, room_id = await room_of_two(api)
    quiet_room = await api.create_room(alice, name="Quiet")
    await api.send_message(alice, room_id, "before")
    conn = Connection(api, alice, ALL)
    first = await conn.sync()
    assert set(rooms(first)) == {room_id, quiet_room}
    assert rooms(first)[room_id]["initial"] is True
    assert bodies(rooms(first)[room_id])[-1] == "before"

    unchanged = await conn.sync()
    assert rooms(unchanged) == {}
    assert unchanged["pos"]

    event_id = await api.send_message(alice, room_id, "after")
    delta = await conn.sync()
    assert set(rooms(delta)) == {room_id}
    room = rooms(delta)[room_id]
    assert not room.get("initial")
    assert [e["event_id"] for e in timeline(room)] == [event_id]


async def test_a_request_without_pos_starts_over(api: MatrixApi) -> None:
    alice, _, room_id = await room_of_two(api)
    await api.send_message(alice, room_id, "hello")
    conn = Connection(api, alice, ALL)
    await conn.sync()
    assert rooms(await conn.sync()) == {}
    again = await conn.restart()
    assert rooms(again)[room_id]["initial"] is True
    assert bodies(rooms(again)[room_id]) == ["hello"]


async def test_retrying_the_latest_pos_gives_the_same_delta(api: MatrixApi) -> None:
    """MSC4186: the server must handle several requests with the latest pos (a client retries
    or cancels and resends)."""
    alice, _, room_id = await room_of_two(api)
    conn = Connection(api, alice, ALL)
    await conn.sync()
    event_id = await api.send_message(alice, room_id, "once")
    latest = conn.pos
    first = await conn.sync()
    conn.pos = latest
    second = await conn.sync()
    for answer in (first, second):
        assert [e["event_id"] for e in timeline(rooms(answer)[room_id])] == [event_id]


async def test_pos_is_kept_per_conn_id(api: MatrixApi) -> None:
    alice, _, room_id = await room_of_two(api)
    plain = Connection(api, alice, ALL)
    a = Connection(api, alice, ALL, conn_id="a")
    b = Connection(api, alice, ALL, conn_id="b")
    for conn in (plain, a, b):
        await conn.sync()
    event_id = await api.send_message(alice, room_id, "to every connection")
    # `a` moves on; `b` and the connection without conn_id still see the message.
    assert [e["event_id"] for e in timeline(rooms(await a.sync())[room_id])] == [event_id]
    assert rooms(await a.sync()) == {}
    for conn in (b, plain):
        assert [e["event_id"] for e in timeline(rooms(await conn.sync())[room_id])] == [event_id]
    # A pos belongs to its conn_id: `a`'s pos is unknown to `b` and to the unnamed connection.
    await Connection(api, alice, ALL, conn_id="b").expect_unknown_pos(a.pos)
    await Connection(api, alice, ALL).expect_unknown_pos(a.pos)
    await Connection(api, alice, ALL, conn_id="a").expect_unknown_pos(plain.pos)


async def test_pos_of_another_device_or_user_is_unknown(api: MatrixApi) -> None:
    alice, bob, _ = await room_of_two(api)
    alice_phone = await api.login(alice)
    conn = Connection(api, alice, ALL)
    await conn.sync()
    await conn.sync()
    assert conn.pos is not None
    await Connection(api, alice_phone, ALL).expect_unknown_pos(conn.pos)
    await Connection(api, bob, ALL).expect_unknown_pos(conn.pos)
    # Neither attempt disturbed the owner's connection.
    assert rooms(await conn.sync()) == {}


async def test_unknown_pos_values(api: MatrixApi) -> None:
    alice, _, _ = await room_of_two(api)
    conn = Connection(api, alice, ALL)
    await conn.sync()
    assert conn.pos is not None
    # A pos shaped like the server's own but never issued (the digits moved far ahead).
    ahead = "".join("9" if c.isdigit() else c for c in conn.pos) + "9"
    await conn.expect_unknown_pos(ahead)
    # Garbage cannot be continued from either; M_UNKNOWN_POS lets the client recover.
    for garbage in ("garbage", "0", "-1", "s1_2_3", "/", "", "x" * 300, "\u00e9"):
        status, answer = await conn.request(pos=garbage)
        assert status == 400, (garbage, status, answer)
        assert answer["errcode"] in ("M_UNKNOWN_POS", "M_INVALID_PARAM"), (garbage, answer)


def alterations(pos: str) -> list[str]:
    """`pos` with one character replaced by another of its kind, at every index (digits both
    up and down)."""
    found = []
    for index, c in enumerate(pos):
        if c.isdigit():
            others = {str((int(c) + 1) % 10), str((int(c) - 1) % 10)}
        elif c.isalpha():
            others = {"b" if c.lower() == "a" else "a"}
        else:
            others = {"_" if c != "_" else "."}
        found += [pos[:index] + other + pos[index + 1:] for other in sorted(others)]
    return found


async def test_an_altered_pos_is_unknown(api: MatrixApi) -> None:
    """A pos is opaque: one the server never issued, however close to a real one, cannot be
    continued from (it would give a delta from a point the server never stood at)."""
    alice, _, room_id = await room_of_two(api)
    conn = Connection(api, alice, ALL)
    await conn.sync()
    for i in range(12):  # streams with positions of two digits
        await api.send_message(alice, room_id, f"moves the streams on {i}")
    await conn.sync()
    assert conn.pos is not None
    accepted = []
    for forged in alterations(conn.pos):
        status, answer = await conn.request(pos=forged)
        if status == 200:
            accepted.append(forged)
        else:
            assert answer["errcode"] in ("M_UNKNOWN_POS", "M_INVALID_PARAM"), (forged, answer)
    assert accepted == [], (conn.pos, accepted)
    assert rooms(await conn.sync()) == {}


async def test_pos_from_another_server_is_unknown(
    homeserver: RunningServer, http: Any, postgres_dsn: str, tmp_path: Any
) -> None:
    """A well-formed pos this server never issued: the same user on another server (another
    database) got it."""
    api = MatrixApi(homeserver.url, http)
    alice = await api.register("alice")
    await api.create_room(alice)
    async with throwaway_database(postgres_dsn) as other_db:
        other = Homeserver(load_config(write_test_config(tmp_path / "other", other_db)))
        await other.start()
        try:
            other_api = MatrixApi(f"http://127.0.0.1:{other.ports['client']}", http)
            other_alice = await other_api.register("alice")
            for _ in range(3):
                await other_api.create_room(other_alice)
            foreign = Connection(other_api, other_alice, ALL)
            await foreign.sync()
            await foreign.sync()
        finally:
            await other.stop()
    conn = Connection(api, alice, ALL)
    await conn.sync()
    await conn.expect_unknown_pos(foreign.pos)


async def test_a_request_without_pos_replaces_the_connection(api: MatrixApi) -> None:
    alice, _, _ = await room_of_two(api)
    old = Connection(api, alice, ALL, conn_id="main")
    await old.sync()
    await old.sync()
    new = Connection(api, alice, ALL, conn_id="main")
    await new.sync()
    await old.expect_unknown_pos()
    assert rooms(await new.sync()) == {}
    # Another conn_id was not replaced.
    other = Connection(api, alice, ALL, conn_id="other")
    await other.sync()
    await Connection(api, alice, ALL, conn_id="main").sync()
    assert rooms(await other.sync()) == {}


async def test_an_idle_connection_expires(make_homeserver: MakeServer, http: Any) -> None:
    clock = FakeClock()
    server = await make_homeserver(clock=clock)
    api = MatrixApi(server.url, http)
    alice = await api.register("alice")
    await api.create_room(alice)
    conn = Connection(api, alice, ALL)
    await conn.sync()
    # Synapse expires connections unused for 7 days: idle time counts, not age.
    for _ in range(3):
        clock.advance(5 * 24 * 3600)
        await conn.sync()
    clock.advance(8 * 24 * 3600)
    await conn.expect_unknown_pos()
    assert rooms(await conn.restart())


async def test_connections_per_device_are_bounded(api: MatrixApi) -> None:
    """An outsider cannot grow the server's memory with connections: past a bound, the
    least recently used connection of the device is forgotten (its pos is unknown) while the
    newest still work."""
    alice = await api.register("alice")
    await api.create_room(alice)
    conns = [Connection(api, alice, ALL, conn_id=f"c{i}") for i in range(200)]
    for conn in conns:
        await conn.sync()
    await conns[0].expect_unknown_pos()
    assert rooms(await conns[-1].sync()) == {}


@pytest.mark.parametrize(("set_presence", "expected"), [
    (None, "online"), ("online", "online"), ("unavailable", "unavailable"),
    ("offline", "offline"),
])
async def test_set_presence(api: MatrixApi, set_presence: str | None, expected: str) -> None:
    """MSC4186: polling marks the user online unless `set_presence` says otherwise."""
    alice = await api.register("alice")
    await Connection(api, alice, ALL).sync(set_presence=set_presence)
    status = await api.ok("GET", f"presence/{alice.user_id}/status", token=alice.token)
    assert status["presence"] == expected


# -- long-polls --------------------------------------------------------------------------------


async def test_a_long_poll_without_changes_returns_empty_at_its_timeout(api: MatrixApi) -> None:
    alice, _, _ = await room_of_two(api)
    conn = Connection(api, alice, {**ALL, "extensions": {
        "to_device": {"enabled": True}, "typing": {"enabled": True},
        "receipts": {"enabled": True}, "account_data": {"enabled": True},
    }})
    await conn.sync()
    started = time.monotonic()
    answer = await conn.sync(timeout_ms=400)
    assert time.monotonic() - started >= 0.35
    assert rooms(answer) == {}
    assert extension(answer, "to_device").get("events", []) == []
    assert extension(answer, "typing").get("rooms", {}) == {}
    assert extension(answer, "receipts").get("rooms", {}) == {}
    assert extension(answer, "account_data").get("global", []) == []


async def test_timeout_is_ignored_without_pos(api: MatrixApi) -> None:
    alice, _, room_id = await room_of_two(api)
    # Answered before the wake deadline, a third of the timeout asked for: it did not wait.
    answer = await asyncio.wait_for(
        Connection(api, alice, ALL).sync(timeout_ms=LONG_POLL_MS), WAKE_DEADLINE_S
    )
    assert room_id in rooms(answer)


async def test_a_long_poll_wakes_on_a_message(api: MatrixApi) -> None:
    alice, bob, room_id = await room_of_two(api)
    conn = Connection(api, bob, ALL)
    await conn.sync()
    poll = await conn.waiting()
    event_id = await api.send_message(alice, room_id, "wake up")
    answer = await woken(poll)
    assert [e["event_id"] for e in timeline(rooms(answer)[room_id])] == [event_id]


async def test_a_long_poll_wakes_on_an_invite(api: MatrixApi) -> None:
    alice, bob, _ = await room_of_two(api)
    secret = await api.create_room(alice, name="Secret")
    conn = Connection(api, bob, ALL)
    await conn.sync()
    poll = await conn.waiting()
    await api.invite(alice, secret, bob)
    answer = await woken(poll)
    invite_state = rooms(answer)[secret]["invite_state"]
    mine = [e for e in invite_state if e["type"] == "m.room.member"
            and e["state_key"] == bob.user_id]
    assert mine and mine[0]["content"]["membership"] == "invite"


async def test_a_long_poll_wakes_on_a_to_device_message(api: MatrixApi) -> None:
    alice, bob, _ = await room_of_two(api)
    conn = Connection(api, bob, {**ALL, "extensions": {"to_device": {"enabled": True}}})
    since = extension(await conn.sync(), "to_device")["next_batch"]
    conn.body["extensions"]["to_device"]["since"] = since
    poll = await conn.waiting()
    await api.ok(
        "PUT", "sendToDevice/org.example.ping/t1", token=alice.token,
        json={"messages": {bob.user_id: {bob.device_id: {"n": 1}}}},
    )
    events = extension(await woken(poll), "to_device")["events"]
    assert [(e["type"], e["sender"], e["content"]) for e in events] == [
        ("org.example.ping", alice.user_id, {"n": 1})
    ]


async def test_a_long_poll_wakes_on_typing(api: MatrixApi) -> None:
    alice, bob, room_id = await room_of_two(api)
    conn = Connection(api, bob, {**ALL, "extensions": {"typing": {"enabled": True}}})
    await conn.sync()
    poll = await conn.waiting()
    await api.ok("PUT", f"rooms/{room_id}/typing/{alice.user_id}", token=alice.token,
                 json={"typing": True, "timeout": 30000})
    typing = extension(await woken(poll), "typing")["rooms"][room_id]
    assert typing == {"type": "m.typing", "content": {"user_ids": [alice.user_id]}}


async def test_a_long_poll_wakes_on_a_receipt(api: MatrixApi) -> None:
    alice, bob, room_id = await room_of_two(api)
    event_id = await api.send_message(bob, room_id, "read me")
    conn = Connection(api, bob, {**ALL, "extensions": {"receipts": {"enabled": True}}})
    await conn.sync()
    poll = await conn.waiting()
    await api.ok("POST", f"rooms/{room_id}/receipt/m.read/{event_id}", json={},
                 token=alice.token)
    receipt = extension(await woken(poll), "receipts")["rooms"][room_id]
    assert receipt["type"] == "m.receipt"
    assert alice.user_id in receipt["content"][event_id]["m.read"]


async def test_a_long_poll_wakes_for_a_subscribed_room(api: MatrixApi) -> None:
    alice, bob, room_id = await room_of_two(api)
    conn = Connection(api, bob, {"room_subscriptions": {room_id: subscription()}})
    await conn.sync()
    poll = await conn.waiting()
    event_id = await api.send_message(alice, room_id, "subscribed")
    answer = await woken(poll)
    assert [e["event_id"] for e in timeline(rooms(answer)[room_id])] == [event_id]


async def test_a_long_poll_ignores_rooms_outside_its_lists(api: MatrixApi) -> None:
    """A change the response would not show does not end the wait."""
    alice, bob, room_id = await room_of_two(api)
    other = await api.create_room(alice, preset="public_chat")
    await api.join(bob, other)
    # The connection follows `room_id` only: a message in `other` is not a change of it.
    conn = Connection(api, bob, {"room_subscriptions": {room_id: subscription()}})
    await conn.sync()
    started = time.monotonic()
    await api.send_message(alice, other, "elsewhere")
    answer = await conn.sync(timeout_ms=400)
    assert time.monotonic() - started >= 0.35
    assert rooms(answer) == {}


async def test_a_cancelled_long_poll_is_resent_with_the_same_pos(api: MatrixApi) -> None:
    """MSC4186: a client cancels an in-flight request (at the HTTP level) and resends with the
    same pos, maybe with another body; the server must carry on from that pos."""
    alice, bob, room_id = await room_of_two(api)
    conn = Connection(api, bob, ALL)
    await conn.sync()
    poll = await conn.waiting()
    poll.cancel()
    with pytest.raises(asyncio.CancelledError):
        await poll
    conn.body = {"lists": {"all": room_list(timeline_limit=2)}}
    poll = await conn.waiting()
    event_id = await api.send_message(alice, room_id, "after the cancel")
    answer = await woken(poll)
    assert [e["event_id"] for e in timeline(rooms(answer)[room_id])] == [event_id]


# -- restarts ----------------------------------------------------------------------------------


async def restarted(server: RunningServer) -> Homeserver:
    """The same server (same config and database) stopped and started again."""
    await server.hs.stop()
    hs = Homeserver(server.hs.config)
    await hs.start()
    return hs


async def test_after_a_restart_a_pos_continues_correctly_or_is_unknown(
    homeserver: RunningServer, http: Any
) -> None:
    api = MatrixApi(homeserver.url, http)
    alice, bob, room_id = await room_of_two(api)
    quiet = await api.create_room(alice, name="Quiet")
    conn = Connection(api, bob, ALL)
    await conn.sync()
    before = await api.send_message(alice, room_id, "sent before the restart")
    hs = await restarted(homeserver)
    try:
        # The same client (it numbers its transaction IDs on) at the restarted server's port.
        api.base_url = f"http://127.0.0.1:{hs.ports['client']}"
        after = await api.send_message(alice, room_id, "sent after the restart")
        status, answer = await conn.request()
        if status == 400:
            assert answer["errcode"] == "M_UNKNOWN_POS", answer
            fresh = await conn.restart()
            assert bodies(rooms(fresh)[room_id])[-1] == "sent after the restart"
            return
        assert status == 200, answer
        # A delta: both new messages, nothing older; an unchanged room only as a full resend.
        room = rooms(answer)[room_id]
        ids = [e["event_id"] for e in timeline(room)]
        shown = (bodies(room), room.get("initial"), answer["pos"])
        if room.get("initial"):
            assert ids[-2:] == [before, after], shown
        else:
            assert ids == [before, after], shown
        assert quiet not in rooms(answer) or rooms(answer)[quiet].get("initial") is True
        conn.pos = answer["pos"]
        assert rooms(await conn.sync()) == {}
    finally:
        await hs.stop()


async def test_new_connections_work_after_a_restart(homeserver: RunningServer, http: Any) -> None:
    api = MatrixApi(homeserver.url, http)
    alice, _, room_id = await room_of_two(api)
    await api.send_message(alice, room_id, "kept")
    hs = await restarted(homeserver)
    try:
        api.base_url = f"http://127.0.0.1:{hs.ports['client']}"
        answer = await Connection(api, alice, ALL).sync()
        assert bodies(rooms(answer)[room_id]) == ["kept"]
    finally:
        await hs.stop()


async def test_first_responses_after_a_restart_show_what_changed_since(
    homeserver: RunningServer, http: Any
) -> None:
    """Rooms' state and newest events, held in memory, start over with the process: a rename
    and messages after the restart are shown, and a timeline reaching back before the restart
    holds the events from before it too."""
    api = MatrixApi(homeserver.url, http)
    alice, bob, room_id = await room_of_two(api)
    before = [await api.send_message(bob, room_id, f"before {i}") for i in range(2)]
    named = {"lists": {"all": room_list(timeline_limit=2, required_state=[["m.room.name", ""]])}}
    assert rooms(await Connection(api, alice, named).sync())[room_id]["name"] == "Two"
    hs = await restarted(homeserver)
    try:
        api.base_url = f"http://127.0.0.1:{hs.ports['client']}"
        renamed = (await api.ok("PUT", f"rooms/{room_id}/state/m.room.name/", token=alice.token,
                                json={"name": "Three"}))["event_id"]
        after = await api.send_message(bob, room_id, "after")
        for limit, expected in ((2, [renamed, after]), (4, [*before, renamed, after])):
            body = {"lists": {"all": room_list(timeline_limit=limit,
                                               required_state=[["m.room.name", ""]])}}
            room = rooms(await Connection(api, alice, body).sync())[room_id]
            assert room["name"] == "Three"
            assert [e["event_id"] for e in timeline(room)] == expected
            assert room["limited"] is True
    finally:
        await hs.stop()


async def test_concurrent_requests_on_one_connection_do_not_fail(api: MatrixApi) -> None:
    """A client cancels and resends with the same pos; both answers are well-formed."""
    alice, _, room_id = await room_of_two(api)
    conn = Connection(api, alice, ALL)
    await conn.sync()
    first = asyncio.create_task(conn.request(timeout_ms=30_000))
    second = asyncio.create_task(conn.request(timeout_ms=30_000))
    event_id = await api.send_message(alice, room_id, "both")
    for status, answer in await asyncio.wait_for(asyncio.gather(first, second), 10):
        assert status == 200, answer
        assert event_id in [e["event_id"] for e in timeline(rooms(answer)[room_id])]

"""Simplified sliding sync served by a /sync worker (`run --worker sync1`), beside the main
process on one database: the worker answers it as the main process does, its long-polls wake
on changes made through the main process (messages, typing held in the main process's memory,
to-device), a pos carried between the processes or across a SIGKILL either continues with a
correct delta or is refused with M_UNKNOWN_POS, never a wrong delta.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.interop.conftest import CHECKOUT
from tests.sliding_sync import (
    LONG_POLL_MS,
    PATH,
    Connection,
    bodies,
    extension,
    room_list,
    rooms,
    timeline,
    woken,
)
from tests.worker_cluster import Cluster, worker_cluster

BODY = {"lists": {"all": room_list(timeline_limit=10)}}


@pytest.fixture
async def pair(database_url: str, tmp_path: Path) -> AsyncIterator[Cluster]:
    """The main process and worker `sync1` on one database, from one config file."""
    async with worker_cluster(database_url, tmp_path) as running:
        yield running


NGINX = CHECKOUT / "deploy" / "nginx-workers.conf"
LOCATION = re.compile(r"location ~ (\S+) \{\s*proxy_pass http://(\w+);")


def proxied_to(path: str) -> str:
    """The upstream deploy/nginx-workers.conf sends `path` to (regex locations, in order)."""
    for pattern, upstream in LOCATION.findall(NGINX.read_text()):
        if re.search(pattern, path):
            return str(upstream)
    raise AssertionError(f"no location for {path}")


def test_the_proxy_sends_sliding_sync_where_it_sends_sync() -> None:
    assert proxied_to(PATH) == proxied_to("/_matrix/client/v3/sync") == "moot_sync"
    assert proxied_to(PATH + "x") == proxied_to("/_matrix/client/v3/joined_rooms") \
        == "moot_main"


async def test_the_worker_serves_sliding_sync(pair: Cluster) -> None:
    versions = await pair.on_worker.ok("GET", "/_matrix/client/versions")
    assert versions["unstable_features"]["org.matrix.simplified_msc3575"] is True
    alice, _, room_id = await pair.room_of_two()
    await pair.on_main.send_message(alice, room_id, "through main")
    answer = await Connection(pair.on_worker, alice, BODY).sync()
    assert bodies(rooms(answer)[room_id]) == ["through main"]


async def test_first_responses_on_both_processes_show_state_changed_through_main(
    pair: Cluster,
) -> None:
    """The main process keeps rooms' state and member counts in memory; the worker hears of
    no change to them and must not answer from an older copy."""
    alice, _, room_id = await pair.room_of_two()
    carol = await pair.on_main.register("carol")
    await pair.on_main.ok("PUT", f"rooms/{room_id}/state/m.room.name/", token=alice.token,
                          json={"name": "Two"})
    body = {"lists": {"all": room_list(timeline_limit=1, required_state=[["m.room.name", ""]])}}
    for api in (pair.on_worker, pair.on_main, pair.on_worker):
        room = rooms(await Connection(api, alice, body).sync())[room_id]
        assert (room["name"], room["joined_count"], room["invited_count"]) == ("Two", 2, 0)
    await pair.on_main.ok("PUT", f"rooms/{room_id}/state/m.room.name/", token=alice.token,
                          json={"name": "Renamed"})
    await pair.on_main.invite(alice, room_id, carol)
    for api in (pair.on_worker, pair.on_main):
        room = rooms(await Connection(api, alice, body).sync())[room_id]
        assert (room["name"], room["joined_count"], room["invited_count"]) == ("Renamed", 2, 1)


async def test_a_send_through_main_wakes_the_workers_long_poll(pair: Cluster) -> None:
    alice, bob, room_id = await pair.room_of_two()
    conn = Connection(pair.on_worker, bob, BODY)
    await conn.sync()
    for i in range(3):
        poll = conn.long_poll()
        event_id = await pair.on_main.send_message(alice, room_id, f"ping {i}")
        answer = await woken(poll)
        assert [e["event_id"] for e in timeline(rooms(answer)[room_id])] == [event_id]


async def test_typing_through_main_reaches_the_worker_once(pair: Cluster) -> None:
    """Typing lives in the main process's memory; the worker learns it by replication. Each
    change is delivered once: the next long-poll does not return the same typists again."""
    alice, bob, room_id = await pair.room_of_two()
    conn = Connection(pair.on_worker, bob, {**BODY, "extensions": {"typing": {"enabled": True}}})
    await conn.sync()
    for typing in (True, False, True):
        poll = conn.long_poll()
        await pair.on_main.ok("PUT", f"rooms/{room_id}/typing/{alice.user_id}",
                              token=alice.token, json={"typing": typing, "timeout": 30000})
        answer = await woken(poll)
        expected = [alice.user_id] if typing else []
        assert extension(answer, "typing")["rooms"][room_id]["content"]["user_ids"] == expected
        typed_pos = conn.pos
        again = await conn.sync(timeout_ms=1000)
        assert extension(again, "typing").get("rooms", {}) == {}, (typed_pos, again)


async def test_to_device_through_main_reaches_the_worker(pair: Cluster) -> None:
    alice, bob, _ = await pair.room_of_two()
    conn = Connection(pair.on_worker, bob, {**BODY, "extensions": {"to_device": {"enabled": True}}})
    for i in range(3):
        since = extension(await conn.sync(), "to_device")["next_batch"]
        conn.body["extensions"]["to_device"]["since"] = since
        poll = conn.long_poll()
        await pair.on_main.ok("PUT", f"sendToDevice/org.example.ping/t{i}", token=alice.token,
                              json={"messages": {bob.user_id: {bob.device_id: {"n": i}}}})
        answer = await woken(poll)
        assert [e["content"] for e in extension(answer, "to_device")["events"]] == [{"n": i}]
        conn.body["extensions"]["to_device"]["since"] = extension(answer, "to_device")[
            "next_batch"]


async def continue_or_unknown(
    conn: Connection, expected: list[str], room_id: str
) -> None:
    """The next request from `conn.pos` either continues with exactly the `expected` new
    events of `room_id` (or resends the room whole) or is refused with M_UNKNOWN_POS. It
    long-polls: a worker may hear of an event sent through the main process a moment later."""
    status, answer = await conn.request(timeout_ms=LONG_POLL_MS)
    if status == 400:
        assert answer["errcode"] == "M_UNKNOWN_POS", answer
        conn.pos = None
        fresh = await conn.sync()
        assert [e["event_id"] for e in timeline(rooms(fresh)[room_id])][-len(expected):] \
            == expected
        return
    assert status == 200, answer
    room = rooms(answer)[room_id]
    ids = [e["event_id"] for e in timeline(room)]
    if room.get("initial"):
        assert ids[-len(expected):] == expected
    else:
        assert ids == expected
    conn.pos = answer["pos"]


async def test_a_pos_carried_between_the_processes(pair: Cluster) -> None:
    alice, bob, room_id = await pair.room_of_two()
    conn = Connection(pair.on_main, bob, BODY)
    await conn.sync()
    for i, api in enumerate((pair.on_worker, pair.on_main, pair.on_worker)):
        event_id = await pair.on_main.send_message(alice, room_id, f"hop {i}")
        conn.api = api
        await continue_or_unknown(conn, [event_id], room_id)


async def test_a_pos_across_a_sigkill_of_the_worker(pair: Cluster) -> None:
    alice, bob, room_id = await pair.room_of_two()
    conn = Connection(pair.on_worker, bob, BODY)
    await conn.sync()
    before = await pair.on_main.send_message(alice, room_id, "before the kill")
    await pair.worker.kill()
    during = await pair.on_main.send_message(alice, room_id, "while the worker is down")
    await pair.worker.start()
    await continue_or_unknown(conn, [before, during], room_id)
    assert rooms(await conn.sync()) == {}


async def test_bad_input_to_the_worker_is_a_400(pair: Cluster) -> None:
    alice, _, _ = await pair.room_of_two()
    status, answer = await pair.on_worker.request(
        "POST", PATH, json={"lists": {"all": {"ranges": [[0]], "timeline_limit": 1,
                                               "required_state": []}}}, token=alice.token)
    assert status == 400 and answer["errcode"] in ("M_BAD_JSON", "M_INVALID_PARAM"), answer
    status, answer = await pair.on_worker.request(
        "POST", PATH, json={}, token=alice.token, params={"pos": "nonsense"})
    assert status == 400 and answer["errcode"] in ("M_UNKNOWN_POS", "M_INVALID_PARAM"), answer


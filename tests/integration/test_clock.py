"""The server's one clock (`Homeserver.clock`) is the time its services read: a test that
moves it sees presence age, events and receipts stamped by it, with no sleeping."""

from __future__ import annotations

import aiohttp

from tests.conftest import MakeServer
from tests.fake_clock import FakeClock
from tests.helpers import MatrixApi


async def test_services_read_the_servers_clock(
    make_homeserver: MakeServer, http: aiohttp.ClientSession
) -> None:
    clock = FakeClock()
    api = MatrixApi((await make_homeserver(clock=clock)).url, http)
    alice, bob = await api.register("alice"), await api.register("bob")
    status = f"presence/{alice.user_id}/status"
    await api.ok("PUT", status, json={"presence": "online"}, token=alice.token)
    clock.advance(90)
    presence = await api.ok("GET", status, token=alice.token)
    assert presence["last_active_ago"] == 90_000
    assert presence["currently_active"] is False  # active within the last minute: no longer

    room_id = await api.create_room(alice, preset="public_chat")
    await api.join(bob, room_id)
    event_id = await api.send_message(alice, room_id, "read me")
    event = await api.ok("GET", f"rooms/{room_id}/event/{event_id}", token=bob.token)
    assert event["origin_server_ts"] == clock.ms
    await api.ok(
        "POST", f"rooms/{room_id}/receipt/m.read/{event_id}", json={}, token=bob.token
    )
    events = (await api.sync(alice))["rooms"]["join"][room_id]["ephemeral"]["events"]
    receipt = next(e["content"] for e in events if e["type"] == "m.receipt")
    assert receipt[event_id]["m.read"][bob.user_id]["ts"] == clock.ms

"""What local users can make this server owe other servers is bounded: destinations that
never answer expire with their queue, and their names do not become metric series."""

from __future__ import annotations

import asyncio
import time

import aiohttp

from tests.conftest import MakeServer, RunningServer
from tests.federation_helpers import free_port
from tests.federation_peers import Peers, join_and_wait
from tests.helpers import MatrixApi
from tests.metrics_scrape import sample, scrape

EXPIRED = "moot_federation_destinations_expired_total"
QUEUED = "moot_federation_outbox_queued_items"


def value(text: str, metric: str, **labels: str) -> float:
    try:
        return sample(text, metric, **labels)
    except AssertionError:  # no such series yet
        return 0.0


async def send_to_device(api: MatrixApi, token: str, servers: list[str], txn: str) -> None:
    messages = {f"@someone:{server}": {"*": {"body": "hi"}} for server in servers}
    await api.ok("PUT", f"sendToDevice/m.test/{txn}", json={"messages": messages}, token=token)


async def test_destinations_that_never_answer_expire_and_share_one_metric_label(
    make_homeserver: MakeServer, http: aiohttp.ClientSession
) -> None:
    server: RunningServer = await make_homeserver({
        "federation.destination_expiry_ms": 1500, "federation.metrics_destinations": 1,
    })
    api = MatrixApi(server.url, http)
    alice = await api.register("alice")
    # Nothing listens there, and private addresses are refused anyway: none will answer.
    nowhere = [f"127.0.0.1:{free_port()}" for _ in range(4)]
    before = await scrape(server, http)

    await send_to_device(api, alice.token, nowhere, "t1")
    during = await scrape(server, http)
    assert sum(f'destination="{name}"' in during for name in nowhere) <= 1

    # The page is rendered in a thread (`asyncio.to_thread(generate_latest)`), so one scrape
    # may see an expiry counted before its queue is taken off the gauge: wait for both.
    def drained(text: str) -> bool:
        return value(text, EXPIRED) >= value(before, EXPIRED) + 4 and value(
            text, QUEUED, destination="other"
        ) == value(before, QUEUED, destination="other")

    deadline = time.monotonic() + 30
    while not drained(text := await scrape(server, http)):
        assert time.monotonic() < deadline, "the destinations did not expire with their queues"
        await asyncio.sleep(0.2)
    assert not any(f'destination="{name}"' in text for name in nowhere)


async def test_requests_naming_too_many_other_servers_are_refused(
    make_homeserver: MakeServer, http: aiohttp.ClientSession
) -> None:
    server = await make_homeserver({
        "federation.max_servers_per_request": 3, "federation.max_servers_per_user": 5,
    })
    api = MatrixApi(server.url, http)
    alice = await api.register("alice")
    # Private addresses are refused (the default): nothing is ever sent to these.
    others = [f"127.0.0.1:{10_000 + i}" for i in range(7)]
    users = [f"@u:{name}" for name in others]

    too_many = [
        ("PUT", "sendToDevice/m.test/big", {
            "messages": {u: {"*": {"body": "hi"}} for u in users[:4]},
        }),
        ("POST", "keys/query", {"device_keys": {u: [] for u in users[:4]}}),
        ("POST", "keys/claim", {
            "one_time_keys": {u: {"DEV": "signed_curve25519"} for u in users[:4]},
        }),
        ("POST", "createRoom", {"invite": users[:4]}),
    ]
    for method, path, body in too_many:
        status, answer = await api.request(method, path, json=body, token=alice.token)
        assert (status, answer["errcode"]) == (413, "M_TOO_LARGE"), (path, answer)

    await send_to_device(api, alice.token, others[:3], "t1")
    await api.ok("POST", "keys/query", json={"device_keys": {u: [] for u in users[2:5]}},
                 token=alice.token)
    status, answer = await api.request(
        "PUT", "sendToDevice/m.test/t2", token=alice.token,
        json={"messages": {users[5]: {"*": {"body": "one server too many"}}}},
    )
    assert (status, answer["errcode"]) == (429, "M_LIMIT_EXCEEDED"), answer
    assert answer["retry_after_ms"] > 0
    await send_to_device(api, alice.token, others[:2], "t3")  # counted already: free
    bob = await api.register("bob")
    await send_to_device(api, bob.token, others[5:], "t4")  # a budget of his own


async def test_servers_sharing_a_room_with_the_user_are_free_of_the_caps(
    peers: Peers, peer_http: aiohttp.ClientSession
) -> None:
    """A member of rooms spread over many servers asks them all for keys at once: those
    servers cost nothing against the caps; only servers the user shares no room with do."""
    a = await peers.new("a", overrides={
        "federation.max_servers_per_request": 1, "federation.max_servers_per_user": 1,
    })
    b, c = await peers.new("b"), await peers.new("c")
    api_a = a.api(peer_http)
    alice = await api_a.register("alice")
    room_id = await api_a.create_room(alice, preset="public_chat")
    guests = []
    for peer in (b, c):
        api = peer.api(peer_http)
        guest = await api.register("guest")
        await join_and_wait(api, guest, room_id, a, api_a, alice)
        guests.append(guest.user_id)

    await api_a.ok("POST", "keys/query", json={"device_keys": {u: [] for u in guests}},
                   token=alice.token)
    strangers = [f"@u:127.0.0.1:{free_port()}" for _ in range(2)]
    status, answer = await api_a.request(
        "POST", "keys/query", token=alice.token,
        json={"device_keys": {u: [] for u in [*guests, *strangers]}},
    )
    assert (status, answer["errcode"]) == (413, "M_TOO_LARGE"), answer
    await api_a.ok("POST", "keys/query", json={"device_keys": {strangers[0]: []}},
                   token=alice.token)

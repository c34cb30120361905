"""The servers this one federates with, through the admin API: a destination that accepted our
events and then went down shows its failures and the rooms it shares with us, and
`reset_connection` makes the sender try it again at once, long before its backoff ends."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import aiohttp
import pytest

from homeserver.protocol.backoff import Backoff
from tests.admin_api import ADMIN
from tests.federation_peers import Peer, Peers, eventually, join_and_wait
from tests.helpers import PASSWORD, MatrixApi, User

pytestmark = pytest.mark.usefixtures("no_server_errors")

PATH = ADMIN + "/v1/federation/destinations"


async def admin_of(peer: Peer, api: MatrixApi) -> User:
    assert peer.hs is not None and peer.hs.accounts is not None
    user_id = await peer.hs.accounts.create_user("root", PASSWORD, admin=True)
    return await api.login(User(user_id, "", "", PASSWORD))


async def ok(api: MatrixApi, admin: User, method: str, path: str, **kwargs: Any) -> Any:
    status, body = await api.request(method, path, token=admin.token, **kwargs)
    assert status == 200, (method, path, status, body)
    return body


async def test_a_destination_that_went_down_and_its_reset(
    peers: Peers, peer_http: aiohttp.ClientSession
) -> None:
    a, b = await peers.new("a"), await peers.new("b")
    api_a, api_b = a.api(peer_http), b.api(peer_http)
    admin = await admin_of(a, api_a)
    alice, bob = await api_a.register("alice"), await api_b.register("bob")
    room_id = await api_a.create_room(alice, preset="public_chat")
    await join_and_wait(api_b, bob, room_id, a, api_a, alice)
    one = f"{PATH}/{quote(b.name)}"

    await api_a.send_message(alice, room_id, "while B is up")

    async def delivered() -> Any:
        status, body = await api_a.request("GET", one, token=admin.token)  # 404 until then
        return body if status == 200 and body["last_successful_stream_ordering"] else None

    healthy = await eventually(delivered, "A's message delivered to B")
    assert (healthy["retry_last_ts"], healthy["retry_interval"], healthy["failure_ts"]) == (
        0, 0, None
    )
    status, body = await api_a.request("POST", f"{one}/reset_connection", token=admin.token,
                                       json={})
    assert status == 400, body  # nothing to reset

    # B goes down; an hour's backoff from the first failure, so only the reset explains a retry.
    sender = a.federation.outbound.sender
    sender.backoff = Backoff(base_s=3600.0, max_s=3600.0)
    await b.stop()
    await api_a.send_message(alice, room_id, "while B is down")

    async def failing() -> Any:
        body = await ok(api_a, admin, "GET", one)
        return body if body["retry_last_ts"] else None

    failed = await eventually(failing, "A's transaction to B failing")
    assert failed["retry_interval"] == 3_600_000
    assert failed["failure_ts"] == failed["retry_last_ts"]
    assert failed["last_successful_stream_ordering"] == healthy["last_successful_stream_ordering"]

    listing = await ok(api_a, admin, "GET", PATH)
    assert failed in listing["destinations"] and listing["total"] == len(listing["destinations"])
    port = b.name.rsplit(":", 1)[1]
    filtered = await ok(api_a, admin, "GET", PATH, params={"destination": port})
    assert filtered == {"destinations": [failed], "total": 1}
    by_failure = await ok(api_a, admin, "GET", PATH,
                          params={"order_by": "retry_last_ts", "dir": "b", "limit": "1"})
    assert by_failure["destinations"] == [failed]
    assert ("next_token" in by_failure) == (listing["total"] > 1)

    rooms = await ok(api_a, admin, "GET", f"{one}/rooms")
    assert [r["room_id"] for r in rooms["rooms"]] == [room_id] and rooms["total"] == 1
    assert isinstance(rooms["rooms"][0]["stream_ordering"], int)

    await ok(api_a, admin, "POST", f"{one}/reset_connection", json={})

    async def retried() -> Any:
        body = await ok(api_a, admin, "GET", one)
        return body["retry_last_ts"] > failed["retry_last_ts"]

    await eventually(retried, "A retrying B at once")
    again = await ok(api_a, admin, "GET", one)
    assert again["failure_ts"] > failed["failure_ts"]  # a new run of failures


@pytest.mark.parametrize(("method", "suffix"), [
    ("GET", ""), ("GET", "/example.org"), ("GET", "/example.org/rooms"),
    ("POST", "/example.org/reset_connection"),
])
async def test_only_admins(peers: Peers, peer_http: aiohttp.ClientSession, method: str,
                           suffix: str) -> None:
    a = await peers.new("a")
    api = a.api(peer_http)
    alice = await api.register("alice")
    status, body = await api.request(method, PATH + suffix, token=alice.token, json={})
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN")


@pytest.mark.parametrize(("method", "suffix", "params", "status", "errcode"), [
    ("GET", "", {"order_by": "age"}, 400, "M_INVALID_PARAM"),
    ("GET", "", {"limit": "-1"}, 400, "M_INVALID_PARAM"),
    ("GET", "", {"from": "x"}, 400, "M_INVALID_PARAM"),
    ("GET", "", {"dir": "up"}, 400, "M_INVALID_PARAM"),
    ("GET", "/nowhere.example", None, 404, "M_NOT_FOUND"),
    ("GET", "/not a server!", None, 400, "M_INVALID_PARAM"),
    ("GET", "/nowhere.example/rooms", None, 404, "M_NOT_FOUND"),
    ("GET", "/not a server!/rooms", None, 400, "M_INVALID_PARAM"),
    ("POST", "/nowhere.example/reset_connection", None, 404, "M_NOT_FOUND"),
])
async def test_bad_input(
    peers: Peers, peer_http: aiohttp.ClientSession, method: str, suffix: str, params: Any,
    status: int, errcode: str,
) -> None:
    a = await peers.new("a")
    api = a.api(peer_http)
    admin = await admin_of(a, api)
    got, body = await api.request(method, PATH + quote(suffix), token=admin.token,
                                  params=params, json={} if method == "POST" else None)
    assert (got, body["errcode"]) == (status, errcode), body

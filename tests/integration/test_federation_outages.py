"""What a client sees of another server while that server is down or hangs, and after it is
back: the rejection of its invite (made here alone, in bounded time), the device lists of its
users (kept from its last answer, its name in `failures`, refreshed once it answers again),
and its keys as a notary hands them on (the last seen, expired or not).
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
from aiohttp import web

from federation.client import path_segment
from federation.joins import LEAVE_ATTEMPT_TIMEOUT_S
from homeserver.protocol.signing import (
    generate_signing_key,
    key_id,
    sign_json,
    verify_key_base64,
)
from tests.edu_helpers import changed, pair, sync_until, token
from tests.federation_helpers import StandIn, free_port, json_handler, validate_ss_response
from tests.federation_peers import Peers, eventually, remote_invite
from tests.helpers import MatrixApi, User
from tests.olm_device import OlmDevice


async def _keys_query(api: MatrixApi, user: User, wanted: dict[str, list[str]]) -> Any:
    return await api.ok("POST", "keys/query", json={"device_keys": wanted}, token=user.token)


async def test_an_invite_from_a_server_that_hangs_is_rejected_in_bounded_time(
    peers: Peers, peer_http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    invite = await remote_invite(peers, peer_http)
    a, api_b, bob, room_id = invite.a, invite.api_b, invite.bob, invite.room_id
    since = (await api_b.sync(bob))["next_batch"]
    # A's port now answers TLS and takes requests, but never answers them.
    await a.stop()
    release = asyncio.Event()

    async def hang(request: web.Request) -> web.StreamResponse:
        await release.wait()
        return web.json_response({}, status=503)

    hung = StandIn(tmp_path / "hung", port=a.port)
    hung.prefix_handlers["/_matrix/federation/"] = hang
    await hung.start()
    try:
        # Without a bound of its own, the leave would wait out the request timeout (60 s).
        async with asyncio.timeout(LEAVE_ATTEMPT_TIMEOUT_S + 15):
            await api_b.ok("POST", f"rooms/{quote(room_id)}/leave", token=bob.token, json={})
        asked = [r.path.split("/")[4] for r in hung.requests]
        assert asked.count("make_leave") == 1 and "send_leave" not in asked, asked
    finally:
        release.set()
        await hung.stop()
    rooms = (await api_b.sync(bob, since=since))["rooms"]
    assert room_id not in rooms.get("invite", {})
    assert room_id in rooms.get("leave", {})


async def test_device_lists_stay_while_their_server_is_down_and_resync_after(
    peers: Peers, peer_http: aiohttp.ClientSession
) -> None:
    p = await pair(peers, peer_http)
    phone = OlmDevice(p.api_b, p.bob)
    await phone.upload_ok(device_keys=phone.device_keys())
    # Carol of B shares no room with anyone of A: what B says of her is not kept.
    carol = await p.api_b.register("carol")
    carols = OlmDevice(p.api_b, carol)
    await carols.upload_ok(device_keys=carols.device_keys())
    wanted: dict[str, list[str]] = {p.bob.user_id: [], carol.user_id: []}
    first = await _keys_query(p.api_a, p.alice, wanted)
    assert first["failures"] == {}
    assert set(first["device_keys"][p.bob.user_id]) == {p.bob.device_id}
    assert set(first["device_keys"][carol.user_id]) == {carol.device_id}

    await p.b.stop()
    down = await _keys_query(p.api_a, p.alice, wanted)
    assert list(down["failures"]) == [p.b.name]
    assert down["device_keys"] == {p.bob.user_id: first["device_keys"][p.bob.user_id]}
    # Asked for one device, the kept list answers for that one.
    one = await _keys_query(p.api_a, p.alice, {p.bob.user_id: [p.bob.device_id, "GONE"]})
    assert set(one["device_keys"][p.bob.user_id]) == {p.bob.device_id}

    # Back, Bob adds a laptop: its update reaches A, and A's next query sees both devices.
    await p.b.start()
    api_b = p.b.api(peer_http)
    since = await token(p.api_a, p.alice)
    laptop = OlmDevice(api_b, await api_b.login(p.bob))
    await laptop.upload_ok(device_keys=laptop.device_keys())
    await sync_until(
        p.api_a, p.alice, since, lambda body: p.bob.user_id in changed(body),
        "Bob's laptop, on A",
    )
    after = await _keys_query(p.api_a, p.alice, {p.bob.user_id: []})
    assert after["failures"] == {}
    assert set(after["device_keys"][p.bob.user_id]) == {p.bob.device_id, laptop.user.device_id}

    # Down again: the list kept is the new one.
    await p.b.stop()
    again = await _keys_query(p.api_a, p.alice, {p.bob.user_id: []})
    assert list(again["failures"]) == [p.b.name]
    assert again["device_keys"] == after["device_keys"]


async def test_the_notary_hands_on_an_expired_key_of_a_server_that_is_down(
    peers: Peers, peer_http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """keys_query.yaml: the keys SHOULD be valid until `minimum_valid_until_ts` (now, when not
    given); when nothing better can be had, the last response seen is handed on as it was,
    its old `valid_until_ts` with it ("Notary servers can return keys for servers that are
    offline ... by using cached responses")."""
    c = await peers.new("c")
    origin = StandIn(tmp_path / "origin", port=free_port())
    key = generate_signing_key("short")
    valid_until = int(time.time() * 1000) + 3000
    origin.handlers["/_matrix/key/v2/server"] = json_handler(sign_json({
        "server_name": origin.server_name, "valid_until_ts": valid_until,
        "verify_keys": {key_id(key): {"key": verify_key_base64(key)}}, "old_verify_keys": {},
    }, origin.server_name, key))
    await origin.start()
    url = (f"{c.federation_url}/_matrix/key/v2/query/{path_segment(origin.server_name)}/"
           f"{quote(key_id(key))}")

    async def notary_answer() -> Any:
        async with peer_http.get(url) as resp:
            assert resp.status == 200, await resp.text()
            answer = await resp.json()
        validate_ss_response("keys_query.yaml", "/query/{serverName}", "GET", 200, answer)
        return answer

    [fresh] = (await notary_answer())["server_keys"]
    assert fresh["valid_until_ts"] == valid_until
    await origin.stop()

    async def expired() -> bool:
        return time.time() * 1000 > valid_until

    await eventually(expired, "the key's validity to end")
    [stale] = (await notary_answer())["server_keys"]
    assert stale["valid_until_ts"] == valid_until < time.time() * 1000
    assert key_id(key) in stale["verify_keys"]
    assert set(stale["signatures"]) == {origin.server_name, c.name}

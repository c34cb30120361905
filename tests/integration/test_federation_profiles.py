"""Profiles across two real Moot servers over TLS: extended fields served by `query/profile`
(whole, or one `field`), and a rename reaching a room of the other server as a member event.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest

from federation.client import HttpResponseError
from tests.federation_helpers import validate_ss_response
from tests.federation_peers import Peer, eventually, join_and_wait, peer_group
from tests.helpers import validate_response

V1 = "/_matrix/federation/v1"


@pytest.fixture(scope="module")
async def pair(
    postgres_dsn: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[tuple[Peer, Peer]]:
    async with peer_group(postgres_dsn, tmp_path_factory.mktemp("profiles")) as group:
        yield await group.new("a"), await group.new("b")


async def test_query_profile_serves_extended_fields(
    pair: tuple[Peer, Peer], http: aiohttp.ClientSession
) -> None:
    a, b = pair
    api_b = b.api(http)
    bob = await api_b.register("tz_bob")
    for key, value in (("m.tz", "Europe/Berlin"), ("org.example.role", {"title": "cook"})):
        await api_b.ok("PUT", f"profile/{quote(bob.user_id)}/{key}", json={key: value},
                       token=bob.token)
    ask = a.federation.outbound.client.get_json

    whole = await ask(b.name, V1 + "/query/profile", {"user_id": bob.user_id})
    validate_ss_response("query.yaml", "/query/profile", "GET", 200, whole)
    assert whole == {"displayname": "tz_bob", "m.tz": "Europe/Berlin",
                     "org.example.role": {"title": "cook"}}
    one = await ask(b.name, V1 + "/query/profile", {"user_id": bob.user_id, "field": "m.tz"})
    validate_ss_response("query.yaml", "/query/profile", "GET", 200, one)
    assert one == {"m.tz": "Europe/Berlin"}
    with pytest.raises(HttpResponseError) as info:
        await ask(b.name, V1 + "/query/profile", {"user_id": bob.user_id, "field": "a.b"})
    assert (info.value.status, info.value.errcode) == (404, "M_NOT_FOUND")

    # A client of a reads the fields through its own server.
    api_a = a.api(http)
    got = await api_a.ok("GET", f"profile/{quote(bob.user_id)}/m.tz")
    validate_response("profile.yaml", "/profile/{userId}/{keyName}", "get", 200, got)
    assert got == {"m.tz": "Europe/Berlin"}


async def test_a_rename_reaches_a_room_of_another_server(
    pair: tuple[Peer, Peer], http: aiohttp.ClientSession
) -> None:
    a, b = pair
    api_a, api_b = a.api(http), b.api(http)
    alice = await api_a.register("renamer")
    bob = await api_b.register("host")
    room_id = await api_b.create_room(bob, preset="public_chat")
    await join_and_wait(api_a, alice, room_id, b, api_b, bob)

    await api_a.ok("PUT", f"profile/{quote(alice.user_id)}/displayname",
                   json={"displayname": "Alice far away"}, token=alice.token)

    async def seen_on_b() -> Any:
        status, content = await api_b.request(
            "GET", f"rooms/{quote(room_id)}/state/m.room.member/{quote(alice.user_id)}",
            token=bob.token,
        )
        return status == 200 and content.get("displayname") == "Alice far away"

    await eventually(seen_on_b, "alice's new name on b")

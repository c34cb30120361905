"""Guests leave a room whose guest access was revoked even when the server stopped between
committing the change and sending their leaves (spec "Guest Access": the server MUST set their
membership to `leave`): the next start finds them."""

from __future__ import annotations

from urllib.parse import quote

import aiohttp
import pytest

from homeserver.app import Homeserver
from homeserver.services.guest_access import GuestEviction
from tests.conftest import MakeServer
from tests.federation_peers import eventually
from tests.guests import GUESTS, guest_room, membership, register_guest
from tests.helpers import MatrixApi

pytestmark = pytest.mark.usefixtures("no_server_errors")


async def test_guests_left_behind_by_a_stopped_server_leave_at_the_next_start(
    make_homeserver: MakeServer, http: aiohttp.ClientSession
) -> None:
    server = await make_homeserver(GUESTS)
    api = MatrixApi(server.url, http)
    owner = await api.register("owner")
    member = await api.register("member")
    room_id = await guest_room(api, owner)
    other_room = await guest_room(api, owner)
    guests = [await register_guest(api) for _ in range(2)]
    for user in (member, *guests):
        await api.join(user, room_id)
    await api.join(guests[0], other_room)
    # The process "stops" right after the commit: its eviction task is gone, so the revocation
    # is stored but nobody acts on it.
    [eviction] = [
        t for t in server.hs._background
        if t.get_coro().__qualname__ == GuestEviction.run.__qualname__  # type: ignore[union-attr]
    ]
    eviction.cancel()
    await api.ok("PUT", f"rooms/{quote(room_id)}/state/m.room.guest_access",
                 json={"guest_access": "forbidden"}, token=owner.token)
    assert await membership(api, owner, room_id, guests[0].user_id) == "join"
    await server.hs.stop()

    restarted = Homeserver(server.hs.config)
    await restarted.start()
    try:
        api = MatrixApi(f"http://127.0.0.1:{restarted.ports['client']}", http)

        async def guests_left() -> bool:
            return all([await membership(api, owner, room_id, g.user_id) == "leave"
                        for g in guests])

        await eventually(guests_left, "the guests to leave after the restart")
        assert await membership(api, owner, room_id, member.user_id) == "join"
        # A room whose guest access still lets guests in keeps them.
        assert await membership(api, owner, other_room, guests[0].user_id) == "join"
    finally:
        await restarted.stop()

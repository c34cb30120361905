"""A room blocked by this server's admin (admin API `PUT /v1/rooms/{roomId}/block`) refuses
invites of this server's users from other servers too, not only from local users."""

from __future__ import annotations

import aiohttp
import pytest

from tests.admin_api import ADMIN
from tests.federation_peers import Peers
from tests.helpers import PASSWORD, User

pytestmark = pytest.mark.usefixtures("no_server_errors")


async def test_an_invite_from_another_server_into_a_blocked_room_is_refused(
    peers: Peers, peer_http: aiohttp.ClientSession
) -> None:
    a, b = await peers.new("a"), await peers.new("b")
    api_a, api_b = a.api(peer_http), b.api(peer_http)
    assert a.hs is not None and a.hs.accounts is not None
    admin_id = await a.hs.accounts.create_user("root", PASSWORD, admin=True)
    admin = await api_a.login(User(admin_id, "", "", PASSWORD))
    alice, bob = await api_a.register("alice"), await api_b.register("bob")
    blocked = await api_b.create_room(bob, preset="private_chat")
    other = await api_b.create_room(bob, preset="private_chat")
    await api_a.ok(
        "PUT", f"{ADMIN}/v1/rooms/{blocked}/block", json={"block": True}, token=admin.token
    )

    status, body = await api_b.request(
        "POST", f"rooms/{blocked}/invite", json={"user_id": alice.user_id}, token=bob.token
    )
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN"), body
    await api_b.ok(
        "POST", f"rooms/{other}/invite", json={"user_id": alice.user_id}, token=bob.token
    )
    invites = (await api_a.sync(alice)).get("rooms", {}).get("invite", {})
    assert other in invites and blocked not in invites

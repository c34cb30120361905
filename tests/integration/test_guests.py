"""Guest accounts (spec "Guest Access", `registration.allow_guests`) against running servers:
registration, the endpoints a guest may use, joining only `can_join` rooms, leaving when guest
access is revoked (locally and over federation), and the upgrade to a full account that keeps
the user ID."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from urllib.parse import quote

import aiohttp
import pytest

from homeserver.api import client_routes
from homeserver.api.guests import GUEST_ROUTES, route_template
from tests.conftest import MakeServer
from tests.federation_peers import Peer, Peers, eventually, join_and_wait
from tests.guests import GUESTS, guest_room, membership, register_guest
from tests.helpers import MatrixApi, User, validate_response

pytestmark = pytest.mark.usefixtures("no_server_errors")


@pytest.fixture
async def guest_api(make_homeserver: MakeServer, http: aiohttp.ClientSession) -> MatrixApi:
    return MatrixApi((await make_homeserver(GUESTS)).url, http)


async def test_guests_are_off_by_default(api: MatrixApi) -> None:
    status, error = await api.request("POST", "register", json={}, params={"kind": "guest"})
    assert (status, error["errcode"]) == (403, "M_FORBIDDEN")
    validate_response("registration.yaml", "/register", "post", 403, error)


async def test_a_guest_registers_without_authentication(guest_api: MatrixApi) -> None:
    # Everything but the device's display name is ignored for guests.
    guest = await register_guest(guest_api, {"username": "chosen", "password": "x",
                                             "initial_device_display_name": "Kiosk"})
    assert not guest.user_id.startswith("@chosen:")
    whoami = await guest_api.ok("GET", "account/whoami", token=guest.token)
    validate_response("whoami.yaml", "/account/whoami", "get", 200, whoami)
    assert whoami == {"user_id": guest.user_id, "device_id": guest.device_id, "is_guest": True}
    caps = await guest_api.ok("GET", "capabilities", token=guest.token)
    validate_response("capabilities.yaml", "/capabilities", "get", 200, caps)
    assert caps["capabilities"]["m.profile_fields"] == {
        "enabled": True, "allowed": ["displayname"]
    }
    assert caps["capabilities"]["m.set_avatar_url"] == {"enabled": False}
    devices = await guest_api.ok("GET", "devices", token=guest.token)
    assert [d["display_name"] for d in devices["devices"]] == ["Kiosk"]
    user = await guest_api.register("full")
    assert (await guest_api.ok("GET", "account/whoami", token=user.token))["is_guest"] is False


async def test_guest_registrations_count_against_the_registration_limit(
    make_homeserver: MakeServer, http: aiohttp.ClientSession
) -> None:
    server = await make_homeserver({
        **GUESTS, "rate_limits.enabled": True,
        "rate_limits.registration": {"per_second": 0.001, "burst": 2},
    })
    api = MatrixApi(server.url, http)
    for _ in range(2):
        await register_guest(api)
    status, error = await api.request("POST", "register", json={}, params={"kind": "guest"})
    assert (status, error["errcode"]) == (429, "M_LIMIT_EXCEEDED")
    validate_response("registration.yaml", "/register", "post", 429, error)


async def test_a_guest_uses_only_the_guest_endpoints(guest_api: MatrixApi) -> None:
    owner = await guest_api.register("owner")
    room_id = await guest_room(guest_api, owner, access="forbidden")
    await guest_api.send_message(owner, room_id, "hello world")
    guest = await register_guest(guest_api)

    # Reading a world-readable room needs no join.
    page = await guest_api.ok("GET", f"rooms/{quote(room_id)}/messages", token=guest.token,
                              params={"dir": "b"})
    assert any(e["content"].get("body") == "hello world" for e in page["chunk"])
    await guest_api.ok("GET", "sync", token=guest.token)
    status, upload = await guest_api.request(
        "POST", "/_matrix/media/v3/upload", raw=b"a picture", token=owner.token,
        headers={"Content-Type": "text/plain"},
    )
    assert status == 200, upload
    media = upload["content_uri"].removeprefix("mxc://")
    async with guest_api.session.get(
        f"{guest_api.base_url}/_matrix/client/v1/media/download/{media}",
        headers={"Authorization": f"Bearer {guest.token}"},
    ) as resp:
        assert (resp.status, await resp.read()) == (200, b"a picture")
    await guest_api.ok("PUT", f"profile/{quote(guest.user_id)}/displayname",
                       json={"displayname": "Visitor"}, token=guest.token)
    for method, path, body in (
        ("POST", "createRoom", {}),
        ("PUT", f"user/{quote(guest.user_id)}/account_data/a.b", {}),
        ("PUT", f"profile/{quote(guest.user_id)}/avatar_url", {"avatar_url": "mxc://a/b"}),
        ("PUT", f"profile/{quote(guest.user_id)}/m.tz", {"m.tz": "UTC"}),
        ("POST", f"rooms/{quote(room_id)}/invite", {"user_id": owner.user_id}),
        ("GET", "joined_rooms", None),
        ("GET", "/_matrix/client/r0/joined_rooms", None),
    ):
        status, error = await guest_api.request(method, path, json=body, token=guest.token)
        assert (status, error["errcode"]) == (403, "M_GUEST_ACCESS_FORBIDDEN"), path


async def test_every_other_authenticated_route_refuses_guests(guest_api: MatrixApi) -> None:
    """Over the live route table: a route that asks for an access token and is not a guest
    route answers a guest 403 M_GUEST_ACCESS_FORBIDDEN, whatever it would do for others."""
    guest = await register_guest(guest_api)
    checked = 0
    for route in client_routes():
        method, path = getattr(route, "method", None), getattr(route, "path", None)
        if not isinstance(path, str) or method not in ("GET", "PUT", "POST", "DELETE"):
            continue
        if (method, route_template(path)) in GUEST_ROUTES:
            continue
        filled = re.sub(r"{(\w+)}", "x", path)
        status, error = await guest_api.request(method, filled, json={})
        errcode = error.get("errcode") if isinstance(error, dict) else None
        if (status, errcode) != (401, "M_MISSING_TOKEN"):
            continue  # served without a token (/health answers text), or refused before auth
        status, error = await guest_api.request(method, filled, json={}, token=guest.token)
        assert (status, error["errcode"]) == (403, "M_GUEST_ACCESS_FORBIDDEN"), (method, path)
        checked += 1
    assert checked > 100
    # The guest's session survived every one of them.
    assert (await guest_api.ok("GET", "account/whoami", token=guest.token))["is_guest"]


async def test_a_guest_joins_only_rooms_that_let_guests_join(guest_api: MatrixApi) -> None:
    owner = await guest_api.register("owner")
    closed = await guest_room(guest_api, owner, access="forbidden")
    plain = await guest_api.create_room(owner, preset="public_chat")
    open_room = await guest_room(guest_api, owner)
    guest = await register_guest(guest_api)
    for room_id in (closed, plain):
        for path in (f"rooms/{quote(room_id)}/join", f"join/{quote(room_id)}"):
            status, error = await guest_api.request("POST", path, json={}, token=guest.token)
            assert (status, error["errcode"]) == (403, "M_FORBIDDEN"), path
    body = await guest_api.ok("POST", f"rooms/{quote(open_room)}/join", json={},
                              token=guest.token)
    validate_response("joining.yaml", "/rooms/{roomId}/join", "post", 200, body)
    await guest_api.send_message(guest, open_room, "hi as a guest")
    assert await membership(guest_api, owner, open_room, guest.user_id) == "join"


async def test_guests_leave_when_guest_access_is_revoked(guest_api: MatrixApi) -> None:
    owner = await guest_api.register("owner")
    member = await guest_api.register("member")
    room_id = await guest_room(guest_api, owner)
    guests = [await register_guest(guest_api) for _ in range(2)]
    for user in (member, *guests):
        await guest_api.join(user, room_id)

    await guest_api.ok("PUT", f"rooms/{quote(room_id)}/state/m.room.guest_access",
                       json={"guest_access": "forbidden"}, token=owner.token)

    async def guests_left() -> bool:
        return all([await membership(guest_api, owner, room_id, g.user_id) == "leave"
                    for g in guests])

    await eventually(guests_left, "the guests to leave")
    assert await membership(guest_api, owner, room_id, member.user_id) == "join"
    # Letting guests in again lets them rejoin.
    await guest_api.ok("PUT", f"rooms/{quote(room_id)}/state/m.room.guest_access",
                       json={"guest_access": "can_join"}, token=owner.token)
    await guest_api.join(guests[0], room_id)


async def test_a_guest_upgrades_to_a_full_account_with_its_user_id(
    guest_api: MatrixApi,
) -> None:
    guest = await register_guest(guest_api)
    localpart = guest.user_id[1:].split(":")[0]
    # Another guest's user ID is not up for the taking.
    other = await register_guest(guest_api)
    status, error = await guest_api.request("POST", "register", json={
        "username": localpart, "password": "a strong passphrase here",
        "guest_access_token": other.token, "auth": {"type": "m.login.dummy"},
    })
    assert (status, error["errcode"]) == (400, "M_INVALID_USERNAME")

    body = await guest_api.ok("POST", "register", json={
        "username": localpart, "password": "a strong passphrase here",
        "guest_access_token": guest.token, "auth": {"type": "m.login.dummy"},
    })
    validate_response("registration.yaml", "/register", "post", 200, body)
    assert body["user_id"] == guest.user_id
    full = User(body["user_id"], body["access_token"], body["device_id"], "")
    for token in (full.token, guest.token):  # the guest's own token is a full account's now
        whoami = await guest_api.ok("GET", "account/whoami", token=token)
        assert (whoami["user_id"], whoami["is_guest"]) == (guest.user_id, False)
    await guest_api.create_room(full)
    await guest_api.ok("POST", "login", json={
        "type": "m.login.password", "identifier": {"type": "m.id.user", "user": localpart},
        "password": "a strong passphrase here",
    })
    # A full account's token upgrades nothing.
    status, error = await guest_api.request("POST", "register", json={
        "username": "someone", "guest_access_token": full.token,
        "auth": {"type": "m.login.dummy"},
    })
    assert (status, error["errcode"]) == (403, "M_FORBIDDEN")


@pytest.fixture
async def guest_peers(peers: Peers) -> AsyncIterator[tuple[Peer, Peer]]:
    yield await peers.new("a", overrides=GUESTS), await peers.new("b")


async def test_a_guest_leaves_a_room_of_another_server(
    guest_peers: tuple[Peer, Peer], peer_http: aiohttp.ClientSession
) -> None:
    """b's room revokes guest access: a's guest leaves, and b sees the leave."""
    a, b = guest_peers
    api_a, api_b = a.api(peer_http), b.api(peer_http)
    host = await api_b.register("host")
    local = await api_a.register("local")
    room_id = await guest_room(api_b, host)
    guest = await register_guest(api_a)
    # Before a is in the room it has no state to check the room's guest access against.
    status, error = await api_a.request("POST", f"join/{quote(room_id)}", json={},
                                        params={"server_name": b.name},
                                        token=guest.token)
    assert (status, error["errcode"]) == (403, "M_FORBIDDEN")
    await join_and_wait(api_a, local, room_id, b, api_b, host)
    # a is in the room: its guest joins there, checked against a's copy of the state.
    await api_a.join(guest, room_id)

    async def joined_on_b() -> bool:
        return await membership(api_b, host, room_id, guest.user_id) == "join"

    await eventually(joined_on_b, "the guest's join on b")
    await api_b.ok("PUT", f"rooms/{quote(room_id)}/state/m.room.guest_access",
                   json={"guest_access": "forbidden"}, token=host.token)

    async def left_on_b() -> bool:
        return await membership(api_b, host, room_id, guest.user_id) == "leave"

    await eventually(left_on_b, "the guest's leave on b")
    assert await membership(api_b, host, room_id, local.user_id) == "join"

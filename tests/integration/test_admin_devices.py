"""A user's devices, rooms and sessions through the admin API: listing, creating, renaming
and deleting devices (a deletion ends the device's tokens, keys and place in the device list,
as the user's own does), the rooms a user is joined to, and whois."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest

from tests.admin_api import ADMIN, admin_ok, make_admin
from tests.conftest import RunningServer
from tests.e2e_keys import query
from tests.helpers import MatrixApi, User
from tests.olm_device import OlmDevice

pytestmark = pytest.mark.usefixtures("no_server_errors")

AGENT = "Moot-Tests/1.0 (admin devices)"


def devices_path(user: User | str, device_id: str | None = None) -> str:
    user_id = user if isinstance(user, str) else user.user_id
    path = f"/v2/users/{quote(user_id)}/devices"
    return path if device_id is None else f"{path}/{quote(device_id)}"


async def test_listing_showing_creating_and_renaming_devices(
    homeserver: RunningServer, api: MatrixApi
) -> None:
    admin = await make_admin(homeserver, api)
    alice = await api.register("alice")
    # Seen with a user agent (a fresh token: the first request with it records where from).
    phone = await api.login(alice, device_id="PHONE")
    await api.ok("GET", "account/whoami", token=phone.token, headers={"User-Agent": AGENT})

    body = await admin_ok(api, admin, "GET", devices_path(alice))
    assert body["total"] == 2
    by_id = {d["device_id"]: d for d in body["devices"]}
    assert set(by_id) == {alice.device_id, "PHONE"}
    seen = by_id["PHONE"]
    assert seen["user_id"] == alice.user_id and seen["last_seen_user_agent"] == AGENT
    assert seen["last_seen_ip"] == "127.0.0.1" and isinstance(seen["last_seen_ts"], int)
    assert "display_name" not in seen

    await admin_ok(api, admin, "POST", devices_path(alice), json={"device_id": "MADE"})
    await admin_ok(api, admin, "POST", devices_path(alice), json={"device_id": "MADE"})  # no-op
    made = await admin_ok(api, admin, "GET", devices_path(alice, "MADE"))
    assert made["device_id"] == "MADE" and made["last_seen_ts"] is None
    await admin_ok(api, admin, "PUT", devices_path(alice, "MADE"), json={"display_name": "Kiosk"})
    made = await admin_ok(api, admin, "GET", devices_path(alice, "MADE"))
    assert made["display_name"] == "Kiosk"
    # The user sees it too, as one of theirs; the client API shows no user agent.
    own = await api.ok("GET", "devices", token=alice.token)
    assert {"device_id": "MADE", "display_name": "Kiosk"} in own["devices"]
    assert all("last_seen_user_agent" not in d for d in own["devices"])


async def test_deleting_devices_ends_their_tokens_keys_and_device_list_entries(
    homeserver: RunningServer, api: MatrixApi
) -> None:
    admin = await make_admin(homeserver, api)
    alice = await api.register("alice")
    bob = await api.register("bob")
    room_id = await api.create_room(alice, preset="public_chat")
    await api.join(bob, room_id)
    phone = await api.login(alice, device_id="PHONE")
    tablet = await api.login(alice, device_id="TABLET")
    for user in (phone, tablet):
        device = OlmDevice(api, user)
        await device.upload_ok(device_keys=device.device_keys())
    since = (await api.sync(bob))["next_batch"]

    await admin_ok(api, admin, "DELETE", devices_path(alice, "PHONE"))
    await admin_ok(api, admin, "POST", f"/v2/users/{quote(alice.user_id)}/delete_devices",
                   json={"devices": ["TABLET", "NEVER-EXISTED"]})

    for gone in (phone, tablet):
        status, body = await api.request("GET", "account/whoami", token=gone.token)
        assert (status, body["errcode"]) == (401, "M_UNKNOWN_TOKEN")
    keys = await query(api, bob, {alice.user_id: []})
    assert set(keys["device_keys"].get(alice.user_id, {})) <= {alice.device_id}
    changes = await api.sync(bob, since=since, timeout=0)
    assert alice.user_id in changes["device_lists"]["changed"]
    listed = await admin_ok(api, admin, "GET", devices_path(alice))
    assert [d["device_id"] for d in listed["devices"]] == [alice.device_id]
    # A device that is gone: 404, and deleting it again is no error (as for its owner).
    status, body = await api.request("GET", ADMIN + devices_path(alice, "PHONE"),
                                     token=admin.token)
    assert (status, body["errcode"]) == (404, "M_NOT_FOUND")
    await admin_ok(api, admin, "DELETE", devices_path(alice, "PHONE"))


async def test_joined_rooms_and_whois(homeserver: RunningServer, api: MatrixApi) -> None:
    admin = await make_admin(homeserver, api)
    alice = await api.register("alice")
    first = await api.create_room(alice)
    second = await api.create_room(alice)
    left = await api.create_room(alice)
    await api.ok("POST", f"rooms/{left}/leave", json={}, token=alice.token)

    body = await admin_ok(api, admin, "GET", f"/v1/users/{quote(alice.user_id)}/joined_rooms")
    assert body == {"joined_rooms": sorted([first, second]), "total": 2}
    nobody = await admin_ok(api, admin, "GET", "/v1/users/@nobody:elsewhere.example/joined_rooms")
    assert nobody == {"joined_rooms": [], "total": 0}

    await api.ok("GET", "account/whoami", token=(await api.login(alice, "PHONE")).token,
                 headers={"User-Agent": AGENT})
    for path in (ADMIN + f"/v1/whois/{quote(alice.user_id)}", f"admin/whois/{alice.user_id}"):
        status, whois = await api.request("GET", path, token=admin.token)
        assert status == 200, whois
        assert whois["user_id"] == alice.user_id
        [session] = whois["devices"]["PHONE"]["sessions"]
        [connection] = session["connections"]
        assert connection["user_agent"] == AGENT and connection["ip"] == "127.0.0.1"


ALICE = "@alice:localhost"


@pytest.mark.parametrize(("method", "path", "body"), [
    ("GET", devices_path(ALICE), None),
    ("POST", devices_path(ALICE), {"device_id": "X"}),
    ("GET", devices_path(ALICE, "X"), None),
    ("PUT", devices_path(ALICE, "X"), {"display_name": "x"}),
    ("DELETE", devices_path(ALICE, "X"), None),
    ("POST", f"/v2/users/{quote(ALICE)}/delete_devices", {"devices": ["X"]}),
    ("GET", f"/v1/users/{quote(ALICE)}/joined_rooms", None),
    ("GET", f"/v1/whois/{quote(ALICE)}", None),
])
async def test_only_admins(api: MatrixApi, method: str, path: str, body: Any) -> None:
    alice = await api.register("alice")
    status, answer = await api.request(method, ADMIN + path, token=alice.token, json=body)
    assert (status, answer["errcode"]) == (403, "M_FORBIDDEN")


@pytest.mark.parametrize(("method", "path", "body", "status", "errcode"), [
    ("GET", devices_path("@nobody:localhost"), None, 404, "M_NOT_FOUND"),
    ("GET", devices_path("@alice:elsewhere.example"), None, 400, "M_INVALID_PARAM"),
    ("GET", devices_path("not-a-user"), None, 400, "M_INVALID_PARAM"),
    ("POST", devices_path("@nobody:localhost"), {"device_id": "X"}, 404, "M_NOT_FOUND"),
    ("POST", devices_path(ALICE), {"device_id": 7}, 400, "M_BAD_JSON"),
    ("POST", devices_path(ALICE), {}, 400, "M_BAD_JSON"),
    ("POST", devices_path(ALICE), {"device_id": ""}, 400, "M_INVALID_PARAM"),
    ("GET", devices_path(ALICE, "NOPE"), None, 404, "M_NOT_FOUND"),
    ("PUT", devices_path(ALICE, "NOPE"), {"display_name": "x"}, 404, "M_NOT_FOUND"),
    ("PUT", devices_path(ALICE, "NOPE"), {"display_name": ["x"]}, 400, "M_BAD_JSON"),
    ("DELETE", devices_path("@nobody:localhost", "X"), None, 404, "M_NOT_FOUND"),
    ("POST", f"/v2/users/{quote(ALICE)}/delete_devices", {}, 400, "M_MISSING_PARAM"),
    ("POST", f"/v2/users/{quote(ALICE)}/delete_devices", {"devices": "X"}, 400, "M_BAD_JSON"),
    ("POST", f"/v2/users/{quote(ALICE)}/delete_devices", {"devices": [1]}, 400, "M_BAD_JSON"),
    ("GET", "/v1/users/not-a-user/joined_rooms", None, 400, "M_INVALID_PARAM"),
    ("GET", "/v1/whois/@nobody:localhost", None, 404, "M_NOT_FOUND"),
    ("GET", "/v1/whois/@alice:elsewhere.example", None, 400, "M_INVALID_PARAM"),
])
async def test_bad_input(
    homeserver: RunningServer, api: MatrixApi, method: str, path: str, body: Any, status: int,
    errcode: str,
) -> None:
    admin = await make_admin(homeserver, api)
    await api.register("alice")
    got, answer = await api.request(method, ADMIN + path, token=admin.token, json=body)
    assert (got, answer["errcode"]) == (status, errcode), answer

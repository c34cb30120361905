"""Device management over HTTP: /devices, /devices/{deviceId} and /delete_devices, including the
User-Interactive Authentication the deletions need (sessions, wrong passwords, session reuse)
and what a deletion takes with it (tokens, end-to-end keys, a device-list change).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import aiohttp
import pytest

from tests.auth_flows import PASSWORD_STAGE, challenge, login, password_auth, with_uia
from tests.bad_input import assert_sane, bodies, collect, send_body
from tests.e2e_keys import claim, query
from tests.helpers import PASSWORD, MatrixApi, validate_response
from tests.olm_device import OlmDevice

if TYPE_CHECKING:
    from tests.conftest import MakeServer


DEVICE_PATH = ("device_management.yaml", "/devices/{deviceId}")
BULK_PATH = ("device_management.yaml", "/delete_devices")


async def test_list_and_get_devices(api: MatrixApi) -> None:
    alice = await api.register("alice")
    phone = await login(api, alice, initial_device_display_name="Phone", device_id="PHONE")
    body = await api.ok("GET", "devices", token=alice.token)
    validate_response("device_management.yaml", "/devices", "get", 200, body)
    by_id = {d["device_id"]: d for d in body["devices"]}
    assert set(by_id) == {alice.device_id, phone.device_id}
    assert by_id["PHONE"]["display_name"] == "Phone"
    assert by_id[alice.device_id]["last_seen_ip"] == "127.0.0.1"
    assert isinstance(by_id[alice.device_id]["last_seen_ts"], int)

    one = await api.ok("GET", "devices/PHONE", token=alice.token)
    validate_response(*DEVICE_PATH, "get", 200, one)
    assert one["device_id"] == "PHONE" and one["display_name"] == "Phone"


async def test_get_unknown_or_foreign_device_is_404(api: MatrixApi) -> None:
    alice, bob = await api.register("alice"), await api.register("bob")
    for device_id in ("NOPE", bob.device_id, "x" * 300):
        status, body = await api.request("GET", f"devices/{device_id}", token=alice.token)
        assert (status, body["errcode"]) == (404, "M_NOT_FOUND")
    status, body = await api.request("GET", "devices")
    assert (status, body["errcode"]) == (401, "M_MISSING_TOKEN")


async def test_rename_device(api: MatrixApi) -> None:
    alice = await api.register("alice")
    path = f"devices/{alice.device_id}"
    body = await api.ok("PUT", path, json={"display_name": "Laptop"}, token=alice.token)
    validate_response(*DEVICE_PATH, "put", 200, body)
    assert (await api.ok("GET", path, token=alice.token))["display_name"] == "Laptop"
    # No display name: nothing changes, still a 200 for a known device.
    assert await api.ok("PUT", path, json={}, token=alice.token) == {}
    assert (await api.ok("GET", path, token=alice.token))["display_name"] == "Laptop"


@pytest.mark.parametrize(
    ("path", "body", "status", "errcode"),
    [
        ("devices/NOPE", {"display_name": "x"}, 404, "M_NOT_FOUND"),
        ("devices/NOPE", {}, 404, "M_NOT_FOUND"),
        ("devices/{mine}", {"display_name": 5}, 400, "M_BAD_JSON"),
        ("devices/{mine}", {"display_name": "x" * 300}, 400, "M_INVALID_PARAM"),
        ("devices/{mine}", [], 400, "M_BAD_JSON"),
    ],
)
async def test_rename_device_errors(
    api: MatrixApi, path: str, body: Any, status: int, errcode: str
) -> None:
    alice = await api.register("alice")
    got, result = await api.request(
        "PUT", path.format(mine=alice.device_id), json=body, token=alice.token
    )
    assert (got, result["errcode"]) == (status, errcode)
    got, result = await api.request(
        "PUT", f"devices/{alice.device_id}", raw=b"{nope", token=alice.token
    )
    assert (got, result["errcode"]) == (400, "M_NOT_JSON")


async def test_delete_device_with_uia_kills_its_token(api: MatrixApi) -> None:
    alice = await api.register("alice")
    phone = await login(api, alice, device_id="PHONE")
    status, body = await with_uia(api, alice, "delete", "devices/PHONE", {}, DEVICE_PATH)
    assert status == 200, body
    validate_response(*DEVICE_PATH, "delete", 200, body)
    status, body = await api.request("GET", "account/whoami", token=phone.token)
    assert (status, body["errcode"], body["soft_logout"]) == (401, "M_UNKNOWN_TOKEN", False)
    devices = await api.ok("GET", "devices", token=alice.token)
    assert [d["device_id"] for d in devices["devices"]] == [alice.device_id]
    # Deleting a device that is already gone still needs UIA, and then succeeds.
    status, body = await with_uia(api, alice, "delete", "devices/PHONE", {}, DEVICE_PATH)
    assert status == 200, body


async def test_delete_device_without_a_body_is_challenged(api: MatrixApi) -> None:
    alice = await api.register("alice")
    status, body = await api.request("DELETE", f"devices/{alice.device_id}", token=alice.token)
    assert status == 401 and body["flows"] == [{"stages": [PASSWORD_STAGE]}]


async def test_wrong_password_is_401_forbidden_with_flows(api: MatrixApi) -> None:
    alice = await api.register("alice")
    await login(api, alice, device_id="PHONE")
    session = await challenge(api, "delete", "devices/PHONE", {}, alice.token, DEVICE_PATH)
    status, body = await api.request(
        "DELETE", "devices/PHONE", json={"auth": password_auth(alice, session, "wrong")},
        token=alice.token,
    )
    assert (status, body["errcode"]) == (401, "M_FORBIDDEN"), body
    validate_response(*DEVICE_PATH, "delete", 401, body)
    assert body["flows"] == [{"stages": [PASSWORD_STAGE]}] and body["session"] == session
    assert body["completed"] == []
    # The same session then completes with the right password.
    status, body = await api.request(
        "DELETE", "devices/PHONE", json={"auth": password_auth(alice, session)},
        token=alice.token,
    )
    assert status == 200, body


async def test_deleting_a_device_needs_its_owners_password(api: MatrixApi) -> None:
    """Bob's identifier and password, with Alice's token, delete nothing of hers: 403 (as
    Synapse answers "Invalid auth"), before any password is checked; the session then still
    completes with Alice's own password."""
    alice, bob = await api.register("alice"), await api.register("bob")
    await login(api, alice, device_id="PHONE")
    await login(api, alice, device_id="TABLET")
    for target, method, path, body, schema in (
        ("PHONE", "delete", "devices/PHONE", {}, DEVICE_PATH),
        ("TABLET", "post", "delete_devices", {"devices": ["TABLET"]}, BULK_PATH),
    ):
        session = await challenge(api, method, path, body, alice.token, schema)
        for auth in (password_auth(bob, session), password_auth(bob)):
            status, result = await api.request(
                method, path, json={**body, "auth": auth}, token=alice.token
            )
            assert (status, result["errcode"]) == (403, "M_FORBIDDEN"), (path, result)
        devices = await api.ok("GET", "devices", token=alice.token)
        assert target in {d["device_id"] for d in devices["devices"]}
        status, result = await api.request(
            method, path, json={**body, "auth": password_auth(alice, session)},
            token=alice.token,
        )
        assert status == 200, result
    devices = await api.ok("GET", "devices", token=alice.token)
    assert [d["device_id"] for d in devices["devices"]] == [alice.device_id]


async def test_completed_session_answers_only_the_request_that_completed_it(
    api: MatrixApi,
) -> None:
    """Stages may change the body (clients add fields); once complete, the session answers
    the completing request again and no other body at its endpoint."""
    alice = await api.register("alice")
    for device in ("PHONE", "TABLET", "WATCH"):
        await login(api, alice, device_id=device)
    session = await challenge(
        api, "post", "delete_devices", {"devices": ["NONE"]}, alice.token, BULK_PATH
    )
    done = {"devices": ["PHONE"], "auth": password_auth(alice, session)}
    await api.ok("POST", "delete_devices", json=done, token=alice.token)
    await api.ok("POST", "delete_devices", json=done, token=alice.token)  # a lost response
    status, body = await api.request(
        "POST", "delete_devices", json={"devices": ["TABLET", "WATCH"], "auth": done["auth"]},
        token=alice.token,
    )
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN"), body
    devices = await api.ok("GET", "devices", token=alice.token)
    assert sorted(d["device_id"] for d in devices["devices"]) == sorted(
        [alice.device_id, "TABLET", "WATCH"]
    )


async def test_session_is_bound_to_its_request_and_user(api: MatrixApi) -> None:
    alice, bob = await api.register("alice"), await api.register("bob")
    await login(api, alice, device_id="PHONE")
    await login(api, alice, device_id="TABLET")
    session = await challenge(api, "delete", "devices/PHONE", {}, alice.token, DEVICE_PATH)
    auth = {"auth": password_auth(alice, session)}
    # Another device (another path) or another endpoint: the session does not carry over.
    status, body = await api.request("DELETE", "devices/TABLET", json=auth, token=alice.token)
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN"), body
    status, body = await api.request(
        "POST", "delete_devices", json={"devices": ["TABLET"], **auth}, token=alice.token
    )
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN"), body
    # Another user presenting it is refused too.
    status, body = await api.request(
        "DELETE", "devices/PHONE", json={"auth": password_auth(bob, session)}, token=bob.token
    )
    assert status == 403, body
    # An unknown session is a plain error.
    status, body = await api.request(
        "DELETE", "devices/PHONE", json={"auth": password_auth(alice, "no-such-session")},
        token=alice.token,
    )
    assert (status, body["errcode"]) == (400, "M_UNKNOWN")

    status, body = await api.request("DELETE", "devices/PHONE", json=auth, token=alice.token)
    assert status == 200, body
    # Retrying the completed request (a lost response) gives its result again.
    status, body = await api.request(
        "DELETE", "devices/PHONE", json={"auth": {"session": session}}, token=alice.token
    )
    assert status == 200, body
    devices = await api.ok("GET", "devices", token=alice.token)
    assert sorted(d["device_id"] for d in devices["devices"]) == sorted(
        [alice.device_id, "TABLET"]
    )


async def test_session_only_retry_before_completion_is_challenged(api: MatrixApi) -> None:
    alice = await api.register("alice")
    session = await challenge(api, "delete", "devices/X", {}, alice.token, DEVICE_PATH)
    status, body = await api.request(
        "DELETE", "devices/X", json={"auth": {"session": session}}, token=alice.token
    )
    assert status == 401 and "errcode" not in body and body["session"] == session
    status, body = await api.request(
        "DELETE", "devices/X", json={"auth": {"type": "m.login.dummy", "session": session}},
        token=alice.token,
    )
    assert (status, body["errcode"]) == (401, "M_UNRECOGNIZED"), body
    assert body["flows"] == [{"stages": [PASSWORD_STAGE]}]


async def test_password_without_a_session_or_identifier(api: MatrixApi) -> None:
    """A client may answer the stage at once; the identifier defaults to the token's owner."""
    alice = await api.register("alice")
    await login(api, alice, device_id="PHONE")
    status, body = await api.request(
        "DELETE", "devices/PHONE", json={"auth": {"type": PASSWORD_STAGE, "password": PASSWORD}},
        token=alice.token,
    )
    assert status == 200, body
    status, body = await api.request(
        "DELETE", "devices/PHONE", json={"auth": {"type": PASSWORD_STAGE}}, token=alice.token
    )
    assert (status, body["errcode"]) == (400, "M_MISSING_PARAM")


async def test_delete_devices_in_bulk(api: MatrixApi) -> None:
    alice = await api.register("alice")
    phone = await login(api, alice, device_id="PHONE")
    tablet = await login(api, alice, device_id="TABLET")
    body = {"devices": ["PHONE", "TABLET", "NEVER-EXISTED"]}
    status, result = await with_uia(api, alice, "post", "delete_devices", body, BULK_PATH)
    assert status == 200, result
    validate_response(*BULK_PATH, "post", 200, result)
    for gone in (phone, tablet):
        status, _ = await api.request("GET", "account/whoami", token=gone.token)
        assert status == 401
    devices = await api.ok("GET", "devices", token=alice.token)
    assert [d["device_id"] for d in devices["devices"]] == [alice.device_id]


@pytest.mark.parametrize(
    ("body", "errcode"),
    [({}, "M_MISSING_PARAM"), ({"devices": "PHONE"}, "M_BAD_JSON"),
     ({"devices": [1]}, "M_BAD_JSON"), ({"devices": [], "auth": "x"}, "M_BAD_JSON"),
     ({"devices": [], "auth": {"type": 5}}, "M_BAD_JSON"),
     ({"devices": [], "auth": {"type": PASSWORD_STAGE, "identifier": {"type": "m.id.user"}}},
      "M_BAD_JSON")],
)
async def test_delete_devices_malformed(api: MatrixApi, body: Any, errcode: str) -> None:
    alice = await api.register("alice")
    status, result = await api.request("POST", "delete_devices", json=body, token=alice.token)
    assert (status, result["errcode"]) == (400, errcode)


async def test_deleting_a_device_drops_its_keys_and_is_a_device_list_change(
    api: MatrixApi,
) -> None:
    alice, bob = await api.register("alice"), await api.register("bob")
    room = await api.create_room(alice, preset="public_chat")
    await api.join(bob, room)
    phone = OlmDevice(api, await login(api, alice, device_id="PHONE"))
    await phone.upload_ok(device_keys=phone.device_keys(), one_time_keys=phone.one_time_keys(1))
    since = (await api.sync(bob))["next_batch"]

    status, body = await with_uia(api, alice, "delete", "devices/PHONE", {}, DEVICE_PATH)
    assert status == 200, body
    assert (await query(api, bob, {alice.user_id: ["PHONE"]}))["device_keys"] == {
        alice.user_id: {}
    }
    assert (await claim(api, bob, phone.wanted()))["one_time_keys"] == {}
    changes = await api.sync(bob, since=since)
    assert changes["device_lists"]["changed"] == [alice.user_id]


async def test_wrong_passwords_are_rate_limited(
    make_homeserver: MakeServer, http: aiohttp.ClientSession
) -> None:
    server = await make_homeserver(overrides={"rate_limits.enabled": True})
    api = MatrixApi(server.url, http)
    alice = await api.register("alice")
    statuses = []
    for _ in range(8):
        status, body = await api.request(
            "DELETE", f"devices/{alice.device_id}",
            json={"auth": password_auth(alice, password="wrong")}, token=alice.token,
        )
        statuses.append((status, body["errcode"]))
    assert statuses[0] == (401, "M_FORBIDDEN")
    assert statuses[-1] == (429, "M_LIMIT_EXCEEDED")
    # An exhausted bucket refuses even the right password, or guessing would go on.
    status, body = await api.request(
        "DELETE", f"devices/{alice.device_id}", json={"auth": password_auth(alice)},
        token=alice.token,
    )
    assert (status, body["errcode"]) == (429, "M_LIMIT_EXCEEDED")


@pytest.mark.parametrize(
    "endpoint", ["PUT devices/{device}", "DELETE devices/{device}", "POST delete_devices"]
)
async def test_device_endpoints_survive_arbitrary_bodies(api: MatrixApi, endpoint: str) -> None:
    alice = await api.register("alice")
    method, template = endpoint.split(" ")
    path = template.format(device=quote(alice.device_id))
    for kind, value in collect(bodies):
        status, body = await send_body(api, method, path, alice.token, kind, value)
        assert_sane(status, body, (endpoint, value))

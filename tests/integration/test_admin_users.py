"""Synapse's user admin API on Moot: shared-secret registration, the account list, one
account's details, an admin creating and changing accounts, deactivation (with erasure),
password resets and the server-admin flag. Every endpoint refuses non-admins (403) and
answers bad input with a 4xx Matrix error."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

import pytest

from tests.admin_api import ADMIN, admin_ok, make_admin
from tests.conftest import MakeServer, RunningServer
from tests.fake_clock import FakeClock
from tests.helpers import PASSWORD, MatrixApi, User

pytestmark = pytest.mark.usefixtures("no_server_errors")

SECRET = "s3cret-for-tests"
NEW_PASSWORD = "another-password-7"


def mac_of(nonce: str, username: str, password: str, admin: bool, user_type: str = "") -> str:
    """The MAC as Synapse's register_api.md makes it."""
    parts = [nonce, username, password, "admin" if admin else "notadmin"]
    if user_type:
        parts.append(user_type)
    message = b"\x00".join(p.encode() for p in parts)
    return hmac.new(SECRET.encode(), message, hashlib.sha1).hexdigest()


async def nonce(api: MatrixApi) -> str:
    body = await api.ok("GET", ADMIN + "/v1/register")
    value: str = body["nonce"]
    return value


async def shared_secret_register(
    api: MatrixApi, username: str, *, admin: bool = False, **extra: Any
) -> tuple[int, Any]:
    n = await nonce(api)
    body = {
        "nonce": n, "username": username, "password": PASSWORD, "admin": admin,
        "mac": mac_of(n, username, PASSWORD, admin, extra.get("user_type") or ""), **extra,
    }
    return await api.request("POST", ADMIN + "/v1/register", json=body)


async def refused(api: MatrixApi, user: User, method: str, path: str, **kw: Any) -> None:
    """A non-admin is refused `path` with 403 M_FORBIDDEN."""
    status, body = await api.request(method, ADMIN + path, token=user.token, **kw)
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN"), (method, path, status, body)


async def bad(
    api: MatrixApi, admin: User, method: str, path: str, status: int = 400, **kw: Any
) -> str:
    """An admin's request that fails with `status` and a Matrix error; its errcode."""
    got, body = await api.request(method, ADMIN + path, token=admin.token, **kw)
    assert got == status and isinstance(body["errcode"], str), (method, path, got, body)
    errcode: str = body["errcode"]
    return errcode


async def whoami_status(api: MatrixApi, token: str) -> int:
    status, _ = await api.request("GET", "account/whoami", token=token)
    return status


async def test_shared_secret_registration(make_homeserver: MakeServer, http: Any) -> None:
    server = await make_homeserver({"registration.shared_secret": SECRET})
    api = MatrixApi(server.url, http)

    status, body = await shared_secret_register(
        api, "Boss", admin=True, displayname="The Boss"
    )
    assert status == 200, body
    assert body["user_id"] == f"@boss:{server.server_name}"  # the localpart in lower case
    assert body["home_server"] == server.server_name and body["device_id"]
    boss = User(body["user_id"], body["access_token"], body["device_id"])
    details = await admin_ok(api, boss, "GET", f"/v2/users/{boss.user_id}")
    assert details["admin"] is True and details["displayname"] == "The Boss"

    status, body = await shared_secret_register(api, "helper", user_type="bot")
    assert status == 200, body
    details = await admin_ok(api, boss, "GET", f"/v2/users/{body['user_id']}")
    assert (details["admin"], details["user_type"]) == (False, "bot")
    status, body = await shared_secret_register(api, "helper")
    assert (status, body["errcode"]) == (400, "M_USER_IN_USE")

    # A wrong MAC is refused and uses the nonce up; so does any second use.
    n = await nonce(api)
    wrong = {"nonce": n, "username": "eve", "password": PASSWORD, "admin": True,
             "mac": mac_of(n, "eve", PASSWORD, False)}
    status, body = await api.request("POST", ADMIN + "/v1/register", json=wrong)
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN")
    right = wrong | {"mac": mac_of(n, "eve", PASSWORD, True)}
    status, body = await api.request("POST", ADMIN + "/v1/register", json=right)
    assert status == 400 and body["error"] == "unrecognised nonce"

    # Bad input: 400 with a Matrix error, the nonce taken first as Synapse does.
    for fields in (
        {"username": "x"},  # no nonce
        {"nonce": await nonce(api), "password": PASSWORD, "mac": "00"},  # no username
        {"nonce": await nonce(api), "username": 5, "password": PASSWORD, "mac": "00"},
        {"nonce": await nonce(api), "username": "x", "password": PASSWORD},  # no mac
        {"nonce": await nonce(api), "username": "x", "password": PASSWORD, "mac": "0",
         "admin": "yes"},
        {"nonce": await nonce(api), "username": "x", "password": "p" * 600, "mac": "0"},
        {"nonce": 7, "username": "x", "password": PASSWORD, "mac": "0"},
    ):
        status, body = await api.request("POST", ADMIN + "/v1/register", json=fields)
        assert status == 400 and body["errcode"].startswith("M_"), (fields, status, body)
    status, body = await shared_secret_register(api, "robot", user_type="robot")
    assert (status, body["errcode"]) == (400, "M_INVALID_PARAM")
    status, body = await api.request("POST", ADMIN + "/v1/register", raw=b"[1]")
    assert (status, body["errcode"]) == (400, "M_BAD_JSON")


async def test_shared_secret_registration_refuses_lone_surrogates(
    make_homeserver: MakeServer, http: Any
) -> None:
    """JSON may escape a lone surrogate (`"\\ud800"`), which no UTF-8 encodes: the MAC
    cannot be computed over it, and anyone may send it (no token is needed), so it must
    be a 400, not a 500."""
    server = await make_homeserver({"registration.shared_secret": SECRET})
    api = MatrixApi(server.url, http)
    for field in ("username", "password", "mac", "displayname", "user_type"):
        n = await nonce(api)
        fields = {"nonce": n, "username": "x", "password": PASSWORD,
                  "mac": mac_of(n, "x", PASSWORD, False)}  # right, but for `field`
        raw = json.dumps(fields | {field: "a\ud800"}).encode()
        assert b"\\ud800" in raw
        status, body = await api.request("POST", ADMIN + "/v1/register", raw=raw)
        assert 400 <= status < 500 and body["errcode"].startswith("M_"), (field, status, body)


async def test_shared_secret_nonces_expire(make_homeserver: MakeServer, http: Any) -> None:
    clock = FakeClock()
    server = await make_homeserver({"registration.shared_secret": SECRET}, clock=clock)
    api = MatrixApi(server.url, http)
    n = await nonce(api)
    clock.advance(61)
    body = {"nonce": n, "username": "late", "password": PASSWORD,
            "mac": mac_of(n, "late", PASSWORD, False)}
    status, answer = await api.request("POST", ADMIN + "/v1/register", json=body)
    assert status == 400 and answer["error"] == "unrecognised nonce"


async def test_shared_secret_registration_is_off_without_a_secret(
    homeserver: RunningServer, api: MatrixApi
) -> None:
    for method, body in (("GET", None), ("POST", {"nonce": "n", "username": "x"})):
        status, answer = await api.request(method, ADMIN + "/v1/register", json=body)
        assert status == 400, answer
        assert answer["error"] == "Shared secret registration is not enabled"


async def test_listing_users(make_homeserver: MakeServer, http: Any) -> None:
    homeserver = await make_homeserver({"registration.allow_guests": True})
    api = MatrixApi(homeserver.url, http)
    admin = await make_admin(homeserver, api)
    alice = await api.register("alice")
    await api.ok("PUT", f"profile/{alice.user_id}/displayname", token=alice.token,
                 json={"displayname": "Wonder Land"})
    await api.register("bob")
    carol = await api.register("carol")
    await admin_ok(api, admin, "POST", f"/v1/deactivate/{carol.user_id}", json={})
    status, guest = await api.request("POST", "register?kind=guest", json={})
    assert status == 200, guest

    def names(body: dict[str, Any]) -> list[str]:
        return [user["name"].split(":")[0] for user in body["users"]]

    body = await admin_ok(api, admin, "GET", "/v2/users")
    assert names(body) == sorted(names(body)) and body["total"] == len(body["users"]) == 4
    assert "next_token" not in body and "@carol" not in names(body)
    listed = next(u for u in body["users"] if u["name"] == alice.user_id)
    assert listed | {"creation_ts": 0, "last_seen_ts": 0} == {
        "name": alice.user_id, "is_guest": False, "admin": False, "user_type": None,
        "deactivated": False, "erased": False, "shadow_banned": False,
        "displayname": "Wonder Land", "avatar_url": None, "creation_ts": 0,
        "last_seen_ts": 0, "locked": False,
    }
    assert listed["creation_ts"] > 10**12  # milliseconds in the list, as Synapse

    async def listed_names(version: str = "v2", **params: str) -> list[str]:
        return names(await admin_ok(api, admin, "GET", f"/{version}/users", params=params))

    assert await listed_names(name="WONDER") == ["@alice"]  # the display name, any case
    assert await listed_names(name="bo") == ["@bob"]  # the localpart
    assert await listed_names(user_id="ali") == ["@alice"]
    assert await listed_names(admins="true") == ["@root"]
    assert "@root" not in await listed_names(admins="false")
    assert len(await listed_names(guests="false")) == 3
    assert "@carol" in await listed_names(deactivated="true")  # v2: adds them
    assert await listed_names("v3", deactivated="true") == ["@carol"]  # v3: only them
    assert "@carol" not in await listed_names("v3", deactivated="false")
    assert len(await listed_names("v3")) == 5

    page = await admin_ok(api, admin, "GET", "/v2/users", params={"limit": "2"})
    assert (len(page["users"]), page["total"], page["next_token"]) == (2, 4, "2")
    rest = await admin_ok(api, admin, "GET", "/v2/users",
                          params={"limit": "2", "from": page["next_token"]})
    assert "next_token" not in rest
    assert names(page) + names(rest) == await listed_names()
    newest_first = await listed_names(order_by="creation_ts", dir="b")
    assert newest_first[-1] == "@root" and len(newest_first) == 4

    alice_refused = alice
    for version in ("v2", "v3"):
        await refused(api, alice_refused, "GET", f"/{version}/users")
        for params in ({"limit": "-1"}, {"limit": "0"}, {"limit": "x"}, {"from": "-3"},
                       {"order_by": "password_hash"}, {"dir": "up"}, {"guests": "maybe"},
                       {"deactivated": "1"}, {"admins": "yes"}):
            assert await bad(api, admin, "GET", f"/{version}/users",
                             params=params) == "M_INVALID_PARAM"


async def test_user_details(homeserver: RunningServer, api: MatrixApi) -> None:
    admin = await make_admin(homeserver, api)
    alice = await api.register("alice")
    details = await admin_ok(api, admin, "GET", f"/v2/users/{alice.user_id}")
    assert details["name"] == alice.user_id and details["displayname"] == "alice"
    assert (details["threepids"], details["external_ids"]) == ([], [])
    assert details["admin"] is False and details["deactivated"] is False
    assert details["erased"] is False and details["last_seen_ts"] > 10**12
    assert 10**9 < details["creation_ts"] < 10**11  # seconds here, as Synapse's details

    await refused(api, alice, "GET", f"/v2/users/{admin.user_id}")
    assert await bad(api, admin, "GET", "/v2/users/@nobody:localhost", 404) == "M_NOT_FOUND"
    assert await bad(api, admin, "GET", "/v2/users/@alice:elsewhere.example") == "M_INVALID_PARAM"
    assert await bad(api, admin, "GET", "/v2/users/not-a-user-id") == "M_INVALID_PARAM"


async def test_creating_and_changing_users(homeserver: RunningServer, api: MatrixApi) -> None:
    admin = await make_admin(homeserver, api)
    dave_id = f"@dave:{homeserver.server_name}"
    status, created = await api.request(
        "PUT", ADMIN + f"/v2/users/{dave_id}", token=admin.token,
        json={"password": PASSWORD, "displayname": "Dave", "avatar_url": "mxc://x/y",
              "user_type": "support"},
    )
    assert status == 201, created
    assert (created["displayname"], created["avatar_url"]) == ("Dave", "mxc://x/y")
    assert (created["admin"], created["user_type"]) == (False, "support")
    dave = await api.login(User(dave_id, "", "", PASSWORD))

    changed = await admin_ok(api, admin, "PUT", f"/v2/users/{dave_id}",
                             json={"displayname": "David", "avatar_url": "", "user_type": None})
    assert (changed["displayname"], changed["avatar_url"], changed["user_type"]) == (
        "David", None, None)
    profile = await api.ok("GET", f"profile/{dave_id}")
    assert profile == {"displayname": "David"}

    # A new password logs every device out unless logout_devices is false.
    await admin_ok(api, admin, "PUT", f"/v2/users/{dave_id}",
                   json={"password": NEW_PASSWORD, "logout_devices": False})
    assert await whoami_status(api, dave.token) == 200
    await admin_ok(api, admin, "PUT", f"/v2/users/{dave_id}", json={"password": PASSWORD})
    assert await whoami_status(api, dave.token) == 401

    changed = await admin_ok(api, admin, "PUT", f"/v2/users/{dave_id}", json={"admin": True})
    assert changed["admin"] is True
    dave = await api.login(User(dave_id, "", "", PASSWORD))
    assert await whoami_status(api, dave.token) == 200

    # Deactivation, then re-activation, which needs a new password.
    changed = await admin_ok(api, admin, "PUT", f"/v2/users/{dave_id}",
                             json={"deactivated": True})
    assert changed["deactivated"] is True
    assert await whoami_status(api, dave.token) == 401
    assert await bad(api, admin, "PUT", f"/v2/users/{dave_id}",
                     json={"deactivated": False}) == "M_INVALID_PARAM"
    changed = await admin_ok(api, admin, "PUT", f"/v2/users/{dave_id}",
                             json={"deactivated": False, "password": NEW_PASSWORD})
    assert changed["deactivated"] is False
    await api.login(User(dave_id, "", "", NEW_PASSWORD))

    alice = await api.register("alice")
    await refused(api, alice, "PUT", f"/v2/users/{alice.user_id}", json={"admin": True})
    assert await bad(api, admin, "PUT", f"/v2/users/{admin.user_id}",
                     json={"admin": False}) == "M_INVALID_PARAM"  # no demoting oneself
    for body in ({"admin": "yes"}, {"deactivated": 1}, {"password": 5},
                 {"displayname": ["x"]}, {"avatar_url": "https://x/y"},
                 {"user_type": "robot"}, {"logout_devices": "no"}, {"locked": True},
                 {"threepids": [{"medium": "email", "address": "a@b.c"}]}):
        await bad(api, admin, "PUT", f"/v2/users/{alice.user_id}", json=body)
    assert await bad(api, admin, "PUT", "/v2/users/@x:elsewhere.example",
                     json={}) == "M_INVALID_PARAM"
    assert await bad(api, admin, "PUT", f"/v2/users/@Upper:{homeserver.server_name}",
                     json={}) == "M_INVALID_USERNAME"
    assert await bad(api, admin, "PUT", f"/v2/users/{alice.user_id}",
                     raw=b"not json") == "M_NOT_JSON"
    # Nothing of the refused changes happened.
    details = await admin_ok(api, admin, "GET", f"/v2/users/{alice.user_id}")
    assert (details["admin"], details["displayname"]) == (False, "alice")


async def test_deactivating_and_erasing(homeserver: RunningServer, api: MatrixApi) -> None:
    admin = await make_admin(homeserver, api)
    alice, bob = await api.register("alice"), await api.register("bob")
    room_id = await api.create_room(alice, preset="public_chat")
    await api.join(bob, room_id)
    await api.ok("PUT", f"profile/{bob.user_id}/avatar_url", token=bob.token,
                 json={"avatar_url": "mxc://x/bob"})

    await refused(api, alice, "POST", f"/v1/deactivate/{bob.user_id}", json={})
    for body in ({"erase": "yes"}, {"erase": 1}):
        assert await bad(api, admin, "POST", f"/v1/deactivate/{bob.user_id}",
                         json=body) == "M_BAD_JSON"
    assert await bad(api, admin, "POST", "/v1/deactivate/@nobody:localhost", 404,
                     json={}) == "M_NOT_FOUND"
    assert await bad(api, admin, "POST", "/v1/deactivate/@bob:elsewhere.example",
                     json={}) == "M_INVALID_PARAM"
    assert await whoami_status(api, bob.token) == 200

    answer = await admin_ok(api, admin, "POST", f"/v1/deactivate/{bob.user_id}",
                            json={"erase": True})
    assert answer == {"id_server_unbind_result": "success"}
    assert await whoami_status(api, bob.token) == 401
    member = await api.ok("GET", f"rooms/{room_id}/state/m.room.member/{bob.user_id}",
                          token=alice.token)
    assert member["membership"] == "leave"
    details = await admin_ok(api, admin, "GET", f"/v2/users/{bob.user_id}")
    assert (details["deactivated"], details["erased"]) == (True, True)
    assert (details["displayname"], details["avatar_url"]) == (None, None)

    # An empty body is allowed, and deactivation without erasure keeps the profile.
    carol = await api.register("carol")
    status, answer = await api.request("POST", ADMIN + f"/v1/deactivate/{carol.user_id}",
                                       token=admin.token)
    assert status == 200, answer
    details = await admin_ok(api, admin, "GET", f"/v2/users/{carol.user_id}")
    assert (details["deactivated"], details["erased"], details["displayname"]) == (
        True, False, "carol")


async def test_resetting_passwords(homeserver: RunningServer, api: MatrixApi) -> None:
    admin = await make_admin(homeserver, api)
    alice = await api.register("alice")
    path = f"/v1/reset_password/{alice.user_id}"
    await refused(api, alice, "POST", path, json={"new_password": NEW_PASSWORD})
    for body in ({}, {"new_password": 5}, {"new_password": NEW_PASSWORD, "logout_devices": 0}):
        assert await bad(api, admin, "POST", path, json=body) == "M_BAD_JSON"
    assert await bad(api, admin, "POST", "/v1/reset_password/@nobody:localhost", 404,
                     json={"new_password": NEW_PASSWORD}) == "M_NOT_FOUND"

    assert await admin_ok(api, admin, "POST", path,
                          json={"new_password": NEW_PASSWORD, "logout_devices": False}) == {}
    assert await whoami_status(api, alice.token) == 200
    status, _ = await api.request("POST", "login", json={
        "type": "m.login.password", "password": PASSWORD,
        "identifier": {"type": "m.id.user", "user": alice.user_id}})
    assert status == 403
    await admin_ok(api, admin, "POST", path, json={"new_password": PASSWORD})
    assert await whoami_status(api, alice.token) == 401
    await api.login(alice)

    # An admin resetting their own password keeps the device they asked from.
    await admin_ok(api, admin, "POST", f"/v1/reset_password/{admin.user_id}",
                   json={"new_password": PASSWORD})
    assert await whoami_status(api, admin.token) == 200


async def test_the_admin_flag(homeserver: RunningServer, api: MatrixApi) -> None:
    admin = await make_admin(homeserver, api)
    alice = await api.register("alice")
    path = f"/v1/users/{alice.user_id}/admin"
    await refused(api, alice, "GET", path)
    await refused(api, alice, "PUT", path, json={"admin": True})
    assert await admin_ok(api, admin, "GET", path) == {"admin": False}

    assert await admin_ok(api, admin, "PUT", path, json={"admin": True}) == {}
    assert await admin_ok(api, alice, "GET", path) == {"admin": True}  # at once, no cache
    assert await admin_ok(api, alice, "PUT", f"/v1/users/{admin.user_id}/admin",
                          json={"admin": False}) == {}
    await refused(api, admin, "GET", path)
    assert await bad(api, alice, "PUT", path, json={"admin": False}) == "M_INVALID_PARAM"

    for body in ({}, {"admin": "true"}, {"admin": None}):
        assert await bad(api, alice, "PUT", path, json=body) == "M_BAD_JSON"
    assert await bad(api, alice, "GET", "/v1/users/@nobody:localhost/admin", 404) == "M_NOT_FOUND"
    assert await bad(api, alice, "PUT", "/v1/users/@x:elsewhere.example/admin",
                     json={"admin": True}) == "M_INVALID_PARAM"

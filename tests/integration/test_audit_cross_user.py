"""Security audit probes: one user reaching another's data, UIA sessions and refresh tokens.

One server for the module. Alice owns a little of everything (account data, room account data,
tags, a second device, device keys, a filter, a key backup, a pusher, push rules, a to-device
message waiting); Bob, an ordinary user who shares a room with her, tries to read, change or
delete each of them through the client API, naming Alice's user ID, device ID, filter ID or
backup version. Every attempt is refused (403 M_FORBIDDEN where the spec names another user in
the path, 404 where the thing is looked up among Bob's own, 400 where a body names another
user), and a read-back as Alice shows nothing changed.

UIA (client-server-api "User-interactive authentication API"): a session belongs to the user
and to the request that opened it. Refresh tokens (refresh.yaml): a refresh token revoked by
the use of its successor cannot be used again.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.audit_helpers import errcode, module_server
from tests.helpers import MatrixApi, User
from tests.olm_device import OlmDevice


@dataclass
class World:
    api: MatrixApi
    alice: User
    bob: User
    alice_device: str  # a second device of Alice's
    alice_curve25519: str  # its identity key
    room_id: str  # Alice's and Bob's shared room
    filter_id: str
    backup_version: str



@pytest.fixture(scope="module")
async def world(
    postgres_dsn: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[World]:
    data_dir: Path = tmp_path_factory.mktemp("audit-cross-user")
    async with module_server(postgres_dsn, data_dir) as server, \
            aiohttp.ClientSession() as http:
        api = MatrixApi(server.url, http)
        alice, bob = await api.register("alice"), await api.register("bob")
        second = await api.login(alice, "ALICEDEV2")
        room_id = await api.create_room(alice, preset="public_chat")
        await api.join(bob, room_id)
        a = alice.user_id
        await api.ok("PUT", f"user/{a}/account_data/org.example.secret",
                     json={"secret": "alice"}, token=alice.token)
        await api.ok("PUT", f"user/{a}/rooms/{room_id}/account_data/org.example.secret",
                     json={"secret": "alice"}, token=alice.token)
        await api.ok("PUT", f"user/{a}/rooms/{room_id}/tags/u.secret", json={"order": 0.5},
                     token=alice.token)
        olm_device = OlmDevice(api, second)
        await api.ok("POST", "keys/upload", token=second.token,
                     json={"device_keys": olm_device.device_keys()})
        filter_id = (await api.ok("POST", f"user/{a}/filter", json={"room": {"timeline": {
            "limit": 7}}}, token=alice.token))["filter_id"]
        version = (await api.ok("POST", "room_keys/version", token=alice.token, json={
            "algorithm": "m.megolm_backup.v1.curve25519-aes-sha2",
            "auth_data": {"public_key": "alicebackupkey"},
        }))["version"]
        await api.ok("PUT", f"room_keys/keys/{room_id}/alicesession", token=alice.token,
                     params={"version": version}, json={
                         "first_message_index": 0, "forwarded_count": 0, "is_verified": True,
                         "session_data": {"ciphertext": "alice's room key"}})
        await api.ok("POST", "pushers/set", token=alice.token, json={
            "kind": "http", "app_id": "org.example.app", "pushkey": "alicepushkey",
            "app_display_name": "App", "device_display_name": "Phone", "lang": "en",
            "data": {"url": "https://push.example.org/_matrix/push/v1/notify"},
        })
        await api.ok("PUT", "pushrules/global/override/alicerule", token=alice.token, json={
            "actions": ["notify"], "conditions": [],
        })
        yield World(api, alice, bob, second.device_id, olm_device.curve25519, room_id, filter_id,
                    version)


# A 500 is logged as an error by the middleware: any error logged fails the test.
pytestmark = pytest.mark.usefixtures("no_server_errors")


# (method, path, body, the statuses allowed): {a} Alice's user ID, {room}, {dev} her second
# device, {filter} her filter, {version} her backup version.
PROBES: dict[str, tuple[str, str, Any, set[int]]] = {
    "get_account_data": ("GET", "user/{a}/account_data/org.example.secret", None, {403}),
    "put_account_data": ("PUT", "user/{a}/account_data/org.example.secret", {"secret": "bob"},
                         {403}),
    "get_room_account_data": ("GET", "user/{a}/rooms/{room}/account_data/org.example.secret",
                              None, {403}),
    "put_room_account_data": ("PUT", "user/{a}/rooms/{room}/account_data/org.example.secret",
                              {"secret": "bob"}, {403}),
    "get_tags": ("GET", "user/{a}/rooms/{room}/tags", None, {403}),
    "put_tag": ("PUT", "user/{a}/rooms/{room}/tags/u.bob", {"order": 0.1}, {403}),
    "delete_tag": ("DELETE", "user/{a}/rooms/{room}/tags/u.secret", None, {403}),
    "get_filter": ("GET", "user/{a}/filter/{filter}", None, {403}),
    "post_filter": ("POST", "user/{a}/filter", {"room": {}}, {403}),
    "put_displayname": ("PUT", "profile/{a}/displayname", {"displayname": "bob was here"},
                        {403}),
    "put_avatar": ("PUT", "profile/{a}/avatar_url", {"avatar_url": "mxc://x/bob"}, {403}),
    "put_presence": ("PUT", "presence/{a}/status", {"presence": "online"}, {403}),
    "typing_as_alice": ("PUT", "rooms/{room}/typing/{a}", {"typing": True, "timeout": 1000},
                        {403}),
    "get_device": ("GET", "devices/{dev}", None, {404}),
    "put_device": ("PUT", "devices/{dev}", {"display_name": "bob was here"}, {404}),
    "delete_device": ("DELETE", "devices/{dev}", {}, {401, 404}),
    "delete_devices": ("POST", "delete_devices", {"devices": ["{dev}"]}, {401}),
    "get_backup_version": ("GET", "room_keys/version/{version}", None, {404}),
    "put_backup_version": ("PUT", "room_keys/version/{version}", {
        "algorithm": "m.megolm_backup.v1.curve25519-aes-sha2",
        "auth_data": {"public_key": "bobkey"}, "version": "{version}"}, {404}),
    "delete_backup_version": ("DELETE", "room_keys/version/{version}", None, {404}),
    "get_backup_keys": ("GET", "room_keys/keys?version={version}", None, {404}),
    "put_backup_keys": ("PUT", "room_keys/keys/{room}/bobsession?version={version}", {
        "first_message_index": 0, "forwarded_count": 0, "is_verified": True,
        "session_data": {"ciphertext": "bob's"}}, {404}),
    "delete_backup_keys": ("DELETE", "room_keys/keys?version={version}", None, {404}),
}


def fill(value: Any, w: World) -> Any:
    if isinstance(value, str):
        return value.format(a=w.alice.user_id, room=w.room_id, dev=w.alice_device,
                            filter=w.filter_id, version=w.backup_version)
    if isinstance(value, dict):
        return {fill(k, w): fill(v, w) for k, v in value.items()}
    if isinstance(value, list):
        return [fill(v, w) for v in value]
    return value


@pytest.mark.parametrize("name", list(PROBES))
async def test_bob_cannot_reach_alices_data(world: World, name: str) -> None:
    method, path, body, allowed = PROBES[name]
    path = fill(path, world)
    params = None
    if "?" in path:
        path, query = path.split("?", 1)
        params = dict([query.split("=", 1)])
    status, reply = await world.api.request(
        method, path, json=fill(body, world), token=world.bob.token, params=params
    )
    assert status in allowed, (status, reply)
    if status != 401:  # a UIA challenge has no errcode
        assert errcode(reply) is not None, reply


async def test_bob_cannot_upload_keys_for_alices_device(world: World) -> None:
    """Well-formed device keys, signed by their own key, naming Alice and her device: the
    server takes device keys only for the access token's own user and device."""
    impostor = User(world.alice.user_id, world.bob.token, world.alice_device)
    keys = OlmDevice(world.api, impostor).device_keys()
    status, reply = await world.api.request("POST", "keys/upload", token=world.bob.token,
                                            json={"device_keys": keys})
    assert (status, errcode(reply)) == (400, "M_INVALID_PARAM"), reply


async def test_alices_data_is_unchanged(world: World) -> None:
    """Read back as Alice after every probe above (module order runs this last)."""
    api, alice, a, room = world.api, world.alice, world.alice.user_id, world.room_id
    assert await api.ok("GET", f"user/{a}/account_data/org.example.secret",
                        token=alice.token) == {"secret": "alice"}
    assert await api.ok("GET", f"user/{a}/rooms/{room}/account_data/org.example.secret",
                        token=alice.token) == {"secret": "alice"}
    tags = await api.ok("GET", f"user/{a}/rooms/{room}/tags", token=alice.token)
    assert tags == {"tags": {"u.secret": {"order": 0.5}}}
    device = await api.ok("GET", f"devices/{world.alice_device}", token=alice.token)
    assert device.get("display_name") != "bob was here"
    profile = await api.ok("GET", f"profile/{a}", token=alice.token)
    assert profile.get("displayname") != "bob was here"
    keys = await api.ok("POST", "keys/query", json={"device_keys": {a: []}}, token=alice.token)
    own = keys["device_keys"][a][world.alice_device]["keys"]
    assert own[f"curve25519:{world.alice_device}"] == world.alice_curve25519
    version = await api.ok("GET", "room_keys/version", token=alice.token)
    assert (version["version"], version["auth_data"]) == (
        world.backup_version, {"public_key": "alicebackupkey"})
    backed_up = await api.ok("GET", "room_keys/keys", token=alice.token,
                             params={"version": world.backup_version})
    assert list(backed_up["rooms"]) == [room]
    pushers = await api.ok("GET", "pushers", token=alice.token)
    assert [p["pushkey"] for p in pushers["pushers"]] == ["alicepushkey"]


async def test_pushers_and_push_rules_are_per_user(world: World) -> None:
    """Bob sees neither Alice's pusher nor her rule, and deleting 'her' pusher or rule by its
    keys touches only his own (none)."""
    api, bob, alice = world.api, world.bob, world.alice
    assert (await api.ok("GET", "pushers", token=bob.token))["pushers"] == []
    status, reply = await api.request("GET", "pushrules/global/override/alicerule",
                                      token=bob.token)
    assert (status, errcode(reply)) == (404, "M_NOT_FOUND")
    status, reply = await api.request("DELETE", "pushrules/global/override/alicerule",
                                      token=bob.token)
    assert (status, errcode(reply)) == (404, "M_NOT_FOUND")
    await api.ok("POST", "pushers/set", token=bob.token, json={
        "kind": None, "app_id": "org.example.app", "pushkey": "alicepushkey"})
    pushers = await api.ok("GET", "pushers", token=alice.token)
    assert [p["pushkey"] for p in pushers["pushers"]] == ["alicepushkey"]
    await api.ok("GET", "pushrules/global/override/alicerule", token=alice.token)


async def test_to_device_messages_reach_only_their_recipient(world: World) -> None:
    """Bob sends to Alice's device; Bob's own /sync (any device of his) never shows it, and
    Alice's device gets it."""
    api, alice, bob = world.api, world.alice, world.bob
    second = await api.login(alice, world.alice_device)
    await api.ok("PUT", "sendToDevice/org.example.note/probe1", token=bob.token, json={
        "messages": {alice.user_id: {world.alice_device: {"note": "for alice"}}}})
    bobs = await api.sync(bob, timeout=0)
    assert not bobs.get("to_device", {}).get("events")
    alices = await api.sync(second, timeout=0)
    assert [e["content"] for e in alices["to_device"]["events"]] == [{"note": "for alice"}]


# ---- UIA sessions ---------------------------------------------------------------------------

async def _open(api: MatrixApi, user: User, method: str, path: str, body: Any) -> str:
    status, reply = await api.request(method, path, json=body, token=user.token)
    assert status == 401 and "session" in reply, (status, reply)
    session: str = reply["session"]
    return session


def _password(user: User, session: str) -> dict[str, Any]:
    return {"type": "m.login.password", "session": session, "password": user.password,
            "identifier": {"type": "m.id.user", "user": user.user_id}}


async def test_uia_session_belongs_to_its_user(world: World) -> None:
    """Alice opens a session to delete her device SAMEID; Bob, with a device of the same ID,
    sends the very same request with her session and her password: refused."""
    api = world.api
    alice = await api.login(world.alice, "SAMEID")
    bob = await api.login(world.bob, "SAMEID")
    session = await _open(api, alice, "DELETE", "devices/SAMEID", {})
    status, reply = await api.request("DELETE", "devices/SAMEID", token=bob.token,
                                      json={"auth": _password(world.alice, session)})
    assert (status, errcode(reply)) == (403, "M_FORBIDDEN"), reply
    # Nor with his own password.
    status, reply = await api.request("DELETE", "devices/SAMEID", token=bob.token,
                                      json={"auth": _password(world.bob, session)})
    assert (status, errcode(reply)) == (403, "M_FORBIDDEN"), reply
    await api.ok("GET", "devices/SAMEID", token=bob.token)  # still there


async def test_uia_session_authorises_only_its_request(world: World) -> None:
    """A session Alice completed to delete one device cannot delete another device, change
    her password or deactivate her account."""
    api = world.api
    doomed = await api.login(world.alice, "DOOMED")
    spare = await api.login(world.alice, "SPARE")
    session = await _open(api, doomed, "DELETE", "devices/DOOMED", {})
    await api.ok("DELETE", "devices/DOOMED", token=spare.token,
                 json={"auth": _password(world.alice, session)})
    auth = {"type": "m.login.password", "session": session}
    for method, path, body in (
        ("DELETE", "devices/SPARE", {"auth": auth}),
        ("POST", "delete_devices", {"devices": ["SPARE"], "auth": auth}),
        ("POST", "account/password", {"new_password": "stolen password 1", "auth": auth}),
        ("POST", "account/deactivate", {"auth": auth}),
    ):
        status, reply = await api.request(method, path, json=body, token=spare.token)
        assert (status, errcode(reply)) == (403, "M_FORBIDDEN"), (path, status, reply)
    await api.ok("GET", "devices/SPARE", token=spare.token)
    await api.login(world.alice)  # the password is unchanged


async def test_uia_session_replay_after_completion_reaches_nothing_else(world: World) -> None:
    """Replaying a completed session with the very request it completed gets that call's
    result again (the spec lets a retry of a completed flow get "the result of the API call");
    with any other request, or after its lifetime, it authorises nothing (above)."""
    api = world.api
    target = await api.login(world.alice, "REPLAYED")
    other = await api.login(world.alice, "OTHER")
    session = await _open(api, target, "DELETE", "devices/REPLAYED", {})
    await api.ok("DELETE", "devices/REPLAYED", token=other.token,
                 json={"auth": _password(world.alice, session)})
    status, reply = await api.request("GET", "account/whoami", token=target.token)
    assert (status, errcode(reply)) == (401, "M_UNKNOWN_TOKEN")
    auth = {"type": "m.login.password", "session": session}
    status, reply = await api.request("DELETE", "devices/REPLAYED", token=other.token,
                                      json={"auth": auth})
    assert status in (200, 401, 404), (status, reply)
    status, reply = await api.request("DELETE", "devices/OTHER", token=other.token,
                                      json={"auth": auth})
    assert (status, errcode(reply)) == (403, "M_FORBIDDEN"), reply
    await api.ok("GET", "devices/OTHER", token=other.token)


# ---- refresh tokens -------------------------------------------------------------------------

async def _refreshing_login(api: MatrixApi, user: User) -> tuple[str, str]:
    body = await api.ok("POST", "login", json={
        "type": "m.login.password", "identifier": {"type": "m.id.user", "user": user.user_id},
        "password": user.password, "refresh_token": True,
    })
    return body["access_token"], body["refresh_token"]


async def _refresh(api: MatrixApi, token: str) -> tuple[int, Any]:
    return await api.request("POST", "refresh", json={"refresh_token": token})


async def test_refresh_token_is_revoked_once_its_successor_is_used(world: World) -> None:
    api = world.api
    _, first = await _refreshing_login(api, world.bob)
    status, pair = await _refresh(api, first)
    assert status == 200, pair
    await api.ok("GET", "account/whoami", token=pair["access_token"])
    status, reply = await _refresh(api, first)
    assert (status, errcode(reply)) == (401, "M_UNKNOWN_TOKEN"), reply
    # The successor works once, and then it too is spent once its own successor is used.
    status, third = await _refresh(api, pair["refresh_token"])
    assert status == 200, third
    await api.ok("GET", "account/whoami", token=third["access_token"])
    status, reply = await _refresh(api, pair["refresh_token"])
    assert (status, errcode(reply)) == (401, "M_UNKNOWN_TOKEN"), reply


async def test_a_lost_refresh_response_supersedes_the_pair_it_gave(world: World) -> None:
    """Refreshing the same token twice (the first answer lost: refresh.yaml lets the old token
    stay valid until the new pair is used) leaves only the newest pair usable."""
    api = world.api
    _, first = await _refreshing_login(api, world.bob)
    status, lost = await _refresh(api, first)
    assert status == 200, lost
    status, kept = await _refresh(api, first)
    assert status == 200, kept
    status, reply = await _refresh(api, lost["refresh_token"])
    assert (status, errcode(reply)) == (401, "M_UNKNOWN_TOKEN"), reply
    status, reply = await api.request("GET", "account/whoami", token=lost["access_token"])
    assert (status, errcode(reply)) == (401, "M_UNKNOWN_TOKEN"), reply
    await api.ok("GET", "account/whoami", token=kept["access_token"])


async def test_an_access_token_is_not_a_refresh_token(world: World) -> None:
    api = world.api
    access, _ = await _refreshing_login(api, world.bob)
    status, reply = await _refresh(api, access)
    assert (status, errcode(reply)) == (401, "M_UNKNOWN_TOKEN"), reply

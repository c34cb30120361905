"""/keys/upload, /keys/query and /keys/claim over HTTP with keys made by python-olm: what is
uploaded comes back byte for byte, key material is stored as sent (never decoded or verified:
clients do that), identity keys never change, every malformed key object is a 400, and each
one-time key is handed out exactly once even under concurrent claims.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.e2e_keys import claim, query
from tests.helpers import MatrixApi, User, validate_response
from tests.olm_device import OTK_ALGORITHM, OlmDevice, canonical


async def device(api: MatrixApi, localpart: str) -> OlmDevice:
    return OlmDevice(api, await api.register(localpart))


async def test_upload_and_query_round_trip_byte_identical(api: MatrixApi) -> None:
    alice, bob = await device(api, "alice"), await device(api, "bob")
    device_keys = alice.device_keys()
    otks = alice.one_time_keys(5)
    body = await alice.upload_ok(
        device_keys=device_keys, one_time_keys=otks, fallback_keys=alice.fallback_key()
    )
    validate_response("keys.yaml", "/keys/upload", "post", 200, body)
    assert body == {"one_time_key_counts": {OTK_ALGORITHM: 5}}

    result = await query(api, bob.user, {alice.user.user_id: []})
    served = result["device_keys"][alice.user.user_id][alice.user.device_id]
    assert served.pop("unsigned") == {}  # registered without a display name
    assert canonical(served) == canonical(device_keys)
    assert result["failures"] == {}
    # Asking for one device, or for an unknown one.
    only = await query(api, bob.user, {alice.user.user_id: [alice.user.device_id]})
    assert list(only["device_keys"][alice.user.user_id]) == [alice.user.device_id]
    none = await query(api, bob.user, {alice.user.user_id: ["NOSUCHDEVICE"]})
    assert none["device_keys"] == {alice.user.user_id: {}}

    claimed = await claim(api, bob.user, alice.wanted())
    [(key_id, key)] = claimed["one_time_keys"][alice.user.user_id][alice.user.device_id].items()
    assert canonical(key) == canonical(otks[key_id])


async def test_device_display_name_is_served_unsigned(api: MatrixApi) -> None:
    carol = await api.register("carol")
    body = await api.ok("POST", "login", json={
        "type": "m.login.password", "identifier": {"type": "m.id.user", "user": "carol"},
        "password": carol.password, "initial_device_display_name": "Carol's phone",
    })
    phone = OlmDevice(api, User(carol.user_id, body["access_token"], body["device_id"]))
    await phone.upload_ok(device_keys=phone.device_keys())
    result = await query(api, carol, {carol.user_id: [phone.user.device_id]})
    served = result["device_keys"][carol.user_id][phone.user.device_id]
    assert served["unsigned"] == {"device_display_name": "Carol's phone"}


async def test_identity_keys_never_change(api: MatrixApi) -> None:
    alice = await device(api, "alice")
    keys = alice.device_keys()
    await alice.upload_ok(device_keys=keys)
    await alice.upload_ok(device_keys=keys)  # identical again: fine
    impostor = OlmDevice(api, alice.user)  # a fresh olm account on the same device ID
    status, body = await impostor.upload(device_keys=impostor.device_keys())
    assert status == 400 and body["errcode"] == "M_INVALID_PARAM", body
    assert "identity keys" in body["error"]


async def test_placeholder_and_unverified_keys_stored_as_sent(api: MatrixApi) -> None:
    """Test suites upload placeholder keys and clients verify signatures themselves: the
    server stores whatever well-shaped keys it is given and serves them back verbatim."""
    alice, bob = await api.register("alice"), await api.register("bob")
    minimal = {"user_id": alice.user_id, "device_id": alice.device_id}  # as sytest uploads
    one_time = {
        "my_algorithm:my_id_1": "my+base64+key",
        "signed_curve25519:AAAAHQ": {"key": "not really a key",
                                     "signatures": {alice.user_id: {"ed25519:X": "bogus"}}},
        "signed_curve25519:AAAAHg": "a string where an object is usual",
    }
    status, body = await api.request("POST", "keys/upload", token=alice.token, json={
        "device_keys": minimal, "one_time_keys": one_time,
    })
    assert status == 200, body
    assert body["one_time_key_counts"] == {"my_algorithm": 1, "signed_curve25519": 2}
    placeholder = {
        **minimal, "algorithms": ["m.olm.v1.curve25519-aes-sha2"],
        "keys": {f"ed25519:{alice.device_id}": "placeholder-ed25519",
                 f"curve25519:{alice.device_id}": "placeholder-curve25519"},
        "signatures": {alice.user_id: {f"ed25519:{alice.device_id}": "not a signature"}},
    }
    await api.ok("POST", "keys/upload", token=alice.token, json={
        "device_keys": placeholder,
        "fallback_keys": {"signed_curve25519:F": {"key": "k", "fallback": True,
                                                  "signatures": {}}},
    })
    served = (await query(api, bob, {alice.user_id: []}))["device_keys"][alice.user_id]
    assert served[alice.device_id] == {**placeholder, "unsigned": {}}
    claimed = await claim(api, bob, {alice.user_id: {alice.device_id: "my_algorithm"}})
    assert claimed["one_time_keys"] == {
        alice.user_id: {alice.device_id: {"my_algorithm:my_id_1": "my+base64+key"}}
    }


async def test_mismatched_user_or_device_refused(api: MatrixApi) -> None:
    alice, bob = await device(api, "alice"), await device(api, "bob")
    wrong_device = User(alice.user.user_id, "", "OTHERDEVICE")
    wrong_user = User(bob.user.user_id, "", alice.user.device_id)
    for user in (wrong_device, wrong_user):
        forged = OlmDevice(api, user)
        status, body = await alice.upload(device_keys=forged.device_keys())
        assert (status, body["errcode"]) == (400, "M_INVALID_PARAM"), body


@pytest.mark.parametrize(("body", "errcode"), [
    ({"device_keys": "nope"}, "M_BAD_JSON"),
    ({"one_time_keys": []}, "M_BAD_JSON"),
    ({"one_time_keys": {"signed_curve25519": {"key": "x"}}}, "M_BAD_JSON"),
    ({"one_time_keys": {"curve25519:AAAA": 12}}, "M_BAD_JSON"),
    ({"fallback_keys": {"curve25519:A": "c2hvcnQ", "curve25519:B": "c2hvcnQ"}}, "M_BAD_JSON"),
])
async def test_malformed_upload_is_400(api: MatrixApi, body: dict[str, Any], errcode: str) -> None:
    alice = await device(api, "alice")
    status, response = await alice.upload(**body)
    assert (status, response["errcode"]) == (400, errcode), response


@pytest.mark.parametrize(("device_keys_change", "errcode"), [
    ({"algorithms": "m.olm"}, "M_BAD_JSON"),
    ({"keys": {"ed25519:X": 1}}, "M_BAD_JSON"),
    ({"signatures": []}, "M_BAD_JSON"),
])
async def test_malformed_device_keys_are_400(
    api: MatrixApi, device_keys_change: dict[str, Any], errcode: str
) -> None:
    alice = await device(api, "alice")
    status, response = await alice.upload(device_keys={**alice.device_keys(), **device_keys_change})
    assert (status, response["errcode"]) == (400, errcode), response


@pytest.mark.parametrize(("path", "body", "errcode"), [
    ("keys/upload", None, "M_NOT_JSON"),
    ("keys/query", {}, "M_MISSING_PARAM"),
    ("keys/query", {"device_keys": {"@a:localhost": "DEV"}}, "M_BAD_JSON"),
    ("keys/query", {"device_keys": {"not a user": []}}, "M_INVALID_PARAM"),
    ("keys/query", {"device_keys": {}, "timeout": "soon"}, "M_BAD_JSON"),
    ("keys/claim", {}, "M_MISSING_PARAM"),
    ("keys/claim", {"one_time_keys": {"@a:localhost": ["DEV"]}}, "M_BAD_JSON"),
    ("keys/claim", {"one_time_keys": {"@a:localhost": {"DEV": 1}}}, "M_BAD_JSON"),
    ("keys/claim", {"one_time_keys": {"@:": {"DEV": "signed_curve25519"}}}, "M_INVALID_PARAM"),
])
async def test_malformed_requests_are_400(
    api: MatrixApi, path: str, body: Any, errcode: str
) -> None:
    alice = await api.register("alice")
    raw = b"{not json" if body is None else None
    status, response = await api.request("POST", path, json=body, raw=raw, token=alice.token)
    assert (status, response["errcode"]) == (400, errcode), response


async def test_keys_endpoints_need_a_token(api: MatrixApi) -> None:
    for path in ("keys/upload", "keys/query", "keys/claim"):
        status, body = await api.request("POST", path, json={})
        assert (status, body["errcode"]) == (401, "M_MISSING_TOKEN")


async def test_one_time_key_content_cannot_change(api: MatrixApi) -> None:
    alice = await device(api, "alice")
    await alice.upload_ok(device_keys=alice.device_keys())
    otks = alice.one_time_keys(2)
    assert (await alice.upload_ok(one_time_keys=otks))["one_time_key_counts"][OTK_ALGORITHM] == 2
    # The same keys again (a retried request) change nothing.
    assert (await alice.upload_ok(one_time_keys=otks))["one_time_key_counts"][OTK_ALGORITHM] == 2
    name = next(iter(otks))
    replacement = alice.sign({"key": alice.curve25519})
    status, body = await alice.upload(one_time_keys={name: replacement})
    assert (status, body["errcode"]) == (400, "M_INVALID_PARAM"), body


async def test_claim_exactly_once_under_concurrency(api: MatrixApi) -> None:
    alice = await device(api, "alice")
    otks = alice.one_time_keys(20)
    fallback = alice.fallback_key()
    await alice.upload_ok(
        device_keys=alice.device_keys(), one_time_keys=otks, fallback_keys=fallback
    )
    claimers = [await api.register(f"claimer{i}") for i in range(4)]
    results = await asyncio.gather(
        *(claim(api, claimers[i % 4], alice.wanted()) for i in range(40))
    )
    handed_out = [
        next(iter(r["one_time_keys"][alice.user.user_id][alice.user.device_id].items()))
        for r in results
    ]
    one_time = [key_id for key_id, _ in handed_out if key_id in otks]
    fallbacks = [(key_id, key) for key_id, key in handed_out if key_id in fallback]
    assert sorted(one_time) == sorted(otks)  # each of the 20 keys exactly once
    assert len(fallbacks) == 20
    assert all(canonical(key) == canonical(fallback[key_id]) for key_id, key in fallbacks)


async def test_fallback_key_when_exhausted_and_counts_in_sync(api: MatrixApi) -> None:
    alice, bob = await device(api, "alice"), await device(api, "bob")
    fallback = alice.fallback_key()
    await alice.upload_ok(
        device_keys=alice.device_keys(), one_time_keys=alice.one_time_keys(2),
        fallback_keys=fallback,
    )
    sync = await api.sync(alice.user)
    assert sync["device_one_time_keys_count"] == {OTK_ALGORITHM: 2}
    assert sync["device_unused_fallback_key_types"] == [OTK_ALGORITHM]
    for _ in range(2):
        claimed = await claim(api, bob.user, alice.wanted())
        assert next(iter(claimed["one_time_keys"][alice.user.user_id][alice.user.device_id])) \
            not in fallback
    sync = await api.sync(alice.user, since=sync["next_batch"])
    assert sync["device_one_time_keys_count"] == {OTK_ALGORITHM: 0}
    assert sync["device_unused_fallback_key_types"] == [OTK_ALGORITHM]

    for _ in range(2):  # the fallback key is handed out again and again, marked used
        claimed = await claim(api, bob.user, alice.wanted())
        assert claimed["one_time_keys"][alice.user.user_id][alice.user.device_id] == fallback
    sync = await api.sync(alice.user, since=sync["next_batch"])
    assert sync["device_unused_fallback_key_types"] == []

    # Re-uploading the same fallback key keeps it used; a new one starts unused.
    await alice.upload_ok(fallback_keys=fallback)
    assert (await api.sync(alice.user))["device_unused_fallback_key_types"] == []
    await alice.upload_ok(fallback_keys=alice.fallback_key())
    assert (await api.sync(alice.user))["device_unused_fallback_key_types"] == [OTK_ALGORITHM]


async def test_claim_without_keys_and_for_remote_users(api: MatrixApi) -> None:
    alice, bob = await device(api, "alice"), await device(api, "bob")
    result = await claim(
        api, bob.user, {**alice.wanted(), "@someone:remote.example": {"DEV": OTK_ALGORITHM}}
    )
    assert result["one_time_keys"] == {}
    assert list(result["failures"]) == ["remote.example"]
    queried = await query(api, bob.user, {"@someone:remote.example": []})
    assert list(queried["failures"]) == ["remote.example"]


async def test_logout_removes_the_device_keys(api: MatrixApi) -> None:
    alice, bob = await device(api, "alice"), await device(api, "bob")
    await alice.upload_ok(device_keys=alice.device_keys(), one_time_keys=alice.one_time_keys(1))
    await api.ok("POST", "logout", json={}, token=alice.user.token)
    result = await query(api, bob.user, {alice.user.user_id: []})
    assert result["device_keys"] == {alice.user.user_id: {}}
    claimed = await claim(api, bob.user, alice.wanted())
    assert claimed["one_time_keys"] == {}

"""Cross-signing over HTTP: uploading master, self-signing and user-signing keys, who sees which
key, User-Interactive Authentication before a master key is replaced, and signatures uploaded
by those keys merged into /keys/query (or reported per key in `failures`).
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e_keys import Identity, upload_identity, upload_signing_keys
from tests.helpers import MatrixApi, User, validate_response
from tests.olm_device import CrossSigningKey, OlmDevice, add_signature


async def query(api: MatrixApi, user: User, *users: User) -> dict[str, Any]:
    body: dict[str, Any] = await api.ok(
        "POST", "keys/query", json={"device_keys": {u.user_id: [] for u in users}},
        token=user.token,
    )
    validate_response("keys.yaml", "/keys/query", "post", 200, body)
    return body


async def upload_signatures(api: MatrixApi, user: User, body: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = await api.ok(
        "POST", "keys/signatures/upload", json=body, token=user.token
    )
    validate_response("cross_signing.yaml", "/keys/signatures/upload", "post", 200, result)
    return result


async def test_upload_and_query_cross_signing_keys(api: MatrixApi) -> None:
    alice, bob = await api.register("alice"), await api.register("bob")
    identity = await upload_identity(api, alice)
    expected = identity.body()

    own = await query(api, alice, alice)
    assert own["master_keys"] == {alice.user_id: expected["master_key"]}
    assert own["self_signing_keys"] == {alice.user_id: expected["self_signing_key"]}
    assert own["user_signing_keys"] == {alice.user_id: expected["user_signing_key"]}

    theirs = await query(api, bob, alice)
    assert theirs["master_keys"] == {alice.user_id: expected["master_key"]}
    assert theirs["self_signing_keys"] == {alice.user_id: expected["self_signing_key"]}
    assert theirs["user_signing_keys"] == {}  # only ever shown to its owner


async def test_replacing_the_master_key_needs_the_password(api: MatrixApi) -> None:
    alice = await api.register("alice")
    first = await upload_identity(api, alice)
    # The same keys again (a lost response retried) need no authentication.
    assert (await upload_signing_keys(api, alice, first.body()))[0] == 200

    second = Identity(alice)
    status, body = await upload_signing_keys(api, alice, second.body())
    assert status == 401, body
    assert body["flows"] == [{"stages": ["m.login.password"]}]
    session = body["session"]
    assert isinstance(session, str) and session
    assert "errcode" not in body

    auth = {"type": "m.login.password", "session": session,
            "identifier": {"type": "m.id.user", "user": alice.user_id}}
    status, body = await upload_signing_keys(
        api, alice, {**second.body(), "auth": {**auth, "password": "wrong"}}
    )
    assert (status, body["errcode"]) == (401, "M_FORBIDDEN"), body
    assert body["flows"] == [{"stages": ["m.login.password"]}]

    status, body = await upload_signing_keys(
        api, alice, {**second.body(), "auth": {**auth, "password": alice.password}}
    )
    assert status == 200, body
    assert (await query(api, alice, alice))["master_keys"][alice.user_id] == second.master.key()


async def test_cross_signing_key_errors(api: MatrixApi) -> None:
    alice, bob = await api.register("alice"), await api.register("bob")
    identity = Identity(alice)
    stranger = CrossSigningKey(alice.user_id, "master")

    async def refused(body: dict[str, Any], status: int, errcode: str) -> None:
        got_status, got = await upload_signing_keys(api, alice, body)
        assert (got_status, got.get("errcode")) == (status, errcode), got

    # No master key at all for a self-signing key.
    await refused({"self_signing_key": identity.self_signing.key(signed_by=identity.master)},
                  400, "M_MISSING_PARAM")
    bobs = CrossSigningKey(bob.user_id, "master")
    await refused({"master_key": bobs.key()}, 400, "M_INVALID_PARAM")
    wrong_usage = {**identity.master.key(), "usage": ["self_signing"]}
    await refused({"master_key": wrong_usage}, 400, "M_BAD_JSON")
    two_keys = {**identity.master.key(), "keys": {stranger.key_id: stranger.public,
                                                  identity.master.key_id: identity.master.public}}
    await refused({"master_key": two_keys}, 400, "M_BAD_JSON")
    await refused({"master_key": {**identity.master.key(), "keys": {"ed25519:x": 1}}},
                  400, "M_BAD_JSON")
    await refused({"master_key": "not an object"}, 400, "M_BAD_JSON")
    # A key whose public key is the ID of one of the user's devices.
    device_id_key = CrossSigningKey(alice.user_id, "master")
    status, body = await api.request("POST", "login", json={
        "type": "m.login.password", "identifier": {"type": "m.id.user", "user": "alice"},
        "password": alice.password, "device_id": device_id_key.public,
    })
    assert status == 200, body
    await refused({"master_key": device_id_key.key()}, 403, "M_FORBIDDEN")


async def test_placeholder_cross_signing_keys_stored_as_sent(api: MatrixApi) -> None:
    """Key material is the clients' to verify: placeholder keys and signatures the server
    cannot check are stored and served as sent, and so are signatures uploaded later."""
    alice, bob = await api.register("alice"), await api.register("bob")

    def key(usage: str, signed: bool) -> dict[str, Any]:
        sigs = {alice.user_id: {"ed25519:master+key": f"sig-{usage}"}} if signed else {}
        return {"user_id": alice.user_id, "usage": [usage],
                "keys": {f"ed25519:{usage}+key": f"{usage}+key"}, "signatures": sigs}

    body = {"master_key": key("master", False), "self_signing_key": key("self_signing", True),
            "user_signing_key": key("user_signing", True)}
    status, answer = await upload_signing_keys(api, alice, body)
    assert status == 200, answer
    served = await query(api, bob, alice)
    assert served["master_keys"] == {alice.user_id: body["master_key"]}
    assert served["self_signing_keys"] == {alice.user_id: body["self_signing_key"]}

    device_keys = {"user_id": alice.user_id, "device_id": alice.device_id,
                   "algorithms": [], "keys": {}, "signatures": {}}
    await api.ok("POST", "keys/upload", json={"device_keys": device_keys}, token=alice.token)
    signed = add_signature(device_keys, alice.user_id, "ed25519:self_signing+key", "unchecked")
    result = await upload_signatures(api, alice, {alice.user_id: {alice.device_id: signed}})
    assert result["failures"] == {}
    served_device = (await query(api, bob, alice))["device_keys"][alice.user_id][alice.device_id]
    assert served_device["signatures"] == signed["signatures"]


async def test_a_cross_signing_key_must_be_named_after_itself(api: MatrixApi) -> None:
    """The one structural rule of a key's name: `ed25519:<public key>`. A master key named
    after one of the user's devices would make that device's signatures ambiguous."""
    alice = await api.register("alice")
    body = {"master_key": {"user_id": alice.user_id, "usage": ["master"],
                           "keys": {f"ed25519:{alice.device_id}": "other+key"}}}
    status, answer = await upload_signing_keys(api, alice, body)
    assert (status, answer["errcode"]) == (400, "M_BAD_JSON"), answer


async def test_signatures_upload_merged_into_query(api: MatrixApi) -> None:
    alice, bob = await api.register("alice"), await api.register("bob")
    phone = OlmDevice(api, alice)
    device_keys = phone.device_keys()
    await phone.upload_ok(device_keys=device_keys)
    identity = await upload_identity(api, alice)

    signed = identity.self_signing.sign(device_keys)
    result = await upload_signatures(api, alice, {alice.user_id: {alice.device_id: signed}})
    assert result["failures"] == {}
    served = (await query(api, bob, alice))["device_keys"][alice.user_id][alice.device_id]
    assert served["signatures"][alice.user_id] == signed["signatures"][alice.user_id]

    # The device signs the master key (migration from device verification).
    master = phone.sign(identity.master.key())
    assert (await upload_signatures(api, alice, {alice.user_id: {identity.master.public: master}})
            )["failures"] == {}
    served_master = (await query(api, bob, alice))["master_keys"][alice.user_id]
    assert served_master["signatures"][alice.user_id][phone.key_id] == \
        master["signatures"][alice.user_id][phone.key_id]

    # Bob's user-signing key signs Alice's master key: only Bob sees that signature.
    bob_identity = await upload_identity(api, bob)
    by_bob = bob_identity.user_signing.sign(identity.master.key())
    assert (await upload_signatures(api, bob, {alice.user_id: {identity.master.public: by_bob}})
            )["failures"] == {}
    bob_view = (await query(api, bob, alice))["master_keys"][alice.user_id]
    assert bob_view["signatures"][bob.user_id] == by_bob["signatures"][bob.user_id]
    carol = await api.register("carol")
    assert bob.user_id not in (await query(api, carol, alice))["master_keys"][alice.user_id][
        "signatures"]


@pytest.mark.parametrize("fault", ["no_signature", "tampered", "unknown_key", "not_object"])
async def test_signature_failures_reported_per_key(api: MatrixApi, fault: str) -> None:
    alice = await api.register("alice")
    phone = OlmDevice(api, alice)
    device_keys = phone.device_keys()
    await phone.upload_ok(device_keys=device_keys)
    identity = await upload_identity(api, alice)
    signed: Any = identity.self_signing.sign(device_keys)
    key_id, errcode = alice.device_id, "M_INVALID_SIGNATURE"
    if fault == "no_signature":  # signed, but not by the self-signing key
        signed = identity.master.sign(device_keys)
    elif fault == "tampered":
        signed = {**signed, "algorithms": ["m.megolm.v1.aes-sha2"]}
    elif fault == "unknown_key":
        key_id, errcode = "NOSUCHDEVICE", "M_NOT_FOUND"
    else:
        signed, errcode = "not an object", "M_BAD_JSON"
    good = identity.self_signing.sign(device_keys)
    result = await upload_signatures(api, alice, {alice.user_id: {key_id: signed}})
    assert result["failures"][alice.user_id][key_id]["errcode"] == errcode, result
    # A good signature in the same request as a failing one is still stored.
    if key_id != alice.device_id:
        result = await upload_signatures(
            api, alice, {alice.user_id: {key_id: signed, alice.device_id: good}}
        )
        assert list(result["failures"][alice.user_id]) == [key_id]


async def test_signatures_upload_body_must_be_objects(api: MatrixApi) -> None:
    alice = await api.register("alice")
    status, body = await api.request(
        "POST", "keys/signatures/upload", json={alice.user_id: ["x"]}, token=alice.token
    )
    assert (status, body["errcode"]) == (400, "M_BAD_JSON")

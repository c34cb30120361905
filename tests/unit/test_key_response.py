"""Checking key responses (server-server-api.md "Retrieving server keys", keys.yaml)."""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest

from federation.key_response import (
    MAX_KEY_VALIDITY_MS,
    KeyResponseError,
    check_key_response,
    check_notary_signature,
)
from federation.own_keys import OwnKeys
from homeserver.protocol.signing import (
    generate_signing_key,
    key_id,
    sign_json,
    verify_key_base64,
    verify_key_of,
)

NOW = 1_700_000_000_000
SERVER = "origin.example"
KEY = generate_signing_key("a1")
OTHER = generate_signing_key("b2")


def response(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "server_name": SERVER,
        "valid_until_ts": NOW + 3600_000,
        "verify_keys": {key_id(KEY): {"key": verify_key_base64(KEY)}},
        "old_verify_keys": {
            "ed25519:old": {"key": verify_key_base64(OTHER), "expired_ts": NOW - 1000}
        },
    }
    body.update(changes)
    return sign_json(body, SERVER, KEY)


def test_a_self_signed_response_is_accepted() -> None:
    checked = check_key_response(response(), SERVER, NOW)
    assert checked.server_name == SERVER and checked.valid_until_ts == NOW + 3600_000
    keys = {k.key_id: k for k in checked.keys}
    assert keys["ed25519:a1"].valid_until_ts == NOW + 3600_000
    assert keys["ed25519:a1"].expired_ts is None
    assert keys["ed25519:old"].valid_until_ts == keys["ed25519:old"].expired_ts == NOW - 1000


def test_our_own_key_response_passes_our_own_check() -> None:
    own = OwnKeys("127.0.0.1:18448", KEY)
    assert check_key_response(own.response(NOW), "127.0.0.1:18448", NOW).keys


def test_validity_is_capped_at_seven_days() -> None:
    checked = check_key_response(response(valid_until_ts=NOW + 365 * 86400_000), SERVER, NOW)
    assert checked.valid_until_ts == NOW + 365 * 86400_000  # handed on unchanged
    assert checked.keys[0].valid_until_ts == NOW + MAX_KEY_VALIDITY_MS


def test_only_the_servers_own_signatures_are_kept() -> None:
    countersigned = sign_json(response(), "notary.example", OTHER)
    checked = check_key_response(countersigned, SERVER, NOW)
    assert set(checked.response["signatures"]) == {SERVER}
    assert check_key_response(checked.response, SERVER, NOW) == checked


def test_response_for_another_server_is_refused() -> None:
    refusal = re.escape("is for 'origin.example', not 'evil.example'")
    with pytest.raises(KeyResponseError, match=refusal):
        check_key_response(response(), "evil.example", NOW)


def test_unsigned_and_wrongly_signed_responses_are_refused() -> None:
    unsigned = response()
    del unsigned["signatures"]
    with pytest.raises(KeyResponseError, match="not signed by"):
        check_key_response(unsigned, SERVER, NOW)
    # Signed by a key the response does not list: proves nothing.
    body = {k: v for k, v in response().items() if k != "signatures"}
    with pytest.raises(KeyResponseError, match="not signed with any key"):
        check_key_response(sign_json(body, SERVER, OTHER), SERVER, NOW)
    # Someone else's signature does not stand in for the server's.
    with pytest.raises(KeyResponseError, match="not signed by"):
        check_key_response(sign_json(body, "notary.example", KEY), SERVER, NOW)


def test_a_tampered_response_is_refused() -> None:
    tampered = response()
    tampered["valid_until_ts"] += 1
    with pytest.raises(KeyResponseError, match="bad self-signature"):
        check_key_response(tampered, SERVER, NOW)
    swapped = response()
    swapped["verify_keys"]["ed25519:a1"]["key"] = verify_key_base64(OTHER)
    with pytest.raises(KeyResponseError, match="bad self-signature"):
        check_key_response(swapped, SERVER, NOW)


def test_one_bad_signature_among_good_ones_refuses_the_whole_response() -> None:
    body = response(verify_keys={
        key_id(KEY): {"key": verify_key_base64(KEY)},
        key_id(OTHER): {"key": verify_key_base64(OTHER)},
    })
    good = sign_json(body, SERVER, OTHER)
    assert len(check_key_response(good, SERVER, NOW).keys) == 3
    bad = copy.deepcopy(good)
    bad["signatures"][SERVER][key_id(OTHER)] = good["signatures"][SERVER][key_id(KEY)]
    with pytest.raises(KeyResponseError, match="bad self-signature ed25519:b2"):
        check_key_response(bad, SERVER, NOW)


@pytest.mark.parametrize(
    "changes",
    [
        {"valid_until_ts": "soon"},
        {"valid_until_ts": True},
        {"valid_until_ts": -1},
        {"verify_keys": []},
        {"verify_keys": {"ed25519:a1": {}}},
        {"verify_keys": {"ed25519:a-1": {"key": "x"}}},
        {"old_verify_keys": {"ed25519:old": {"key": verify_key_base64(OTHER)}}},
        {"old_verify_keys": {"ed25519:old": {"key": "!!", "expired_ts": 1}}},
    ],
)
def test_malformed_responses_are_refused(changes: dict[str, Any]) -> None:
    with pytest.raises(KeyResponseError):
        check_key_response(response(**changes), SERVER, NOW)


def test_other_algorithms_are_skipped_not_refused() -> None:
    body = response(verify_keys={
        key_id(KEY): {"key": verify_key_base64(KEY)},
        "curve25519:x": {"key": "whatever"},
    })
    assert {k.key_id for k in check_key_response(body, SERVER, NOW).keys} == {
        "ed25519:a1", "ed25519:old"
    }


def test_not_an_object() -> None:
    with pytest.raises(KeyResponseError, match="not an object"):
        check_key_response([], SERVER, NOW)


def test_notary_signature() -> None:
    notary_key = generate_signing_key("n")
    countersigned = sign_json(response(), "notary.example", notary_key)
    check_notary_signature(countersigned, "notary.example", "ed25519:n", verify_key_of(notary_key))
    with pytest.raises(KeyResponseError, match="bad notary signature"):
        check_notary_signature(countersigned, "notary.example", "ed25519:n", verify_key_of(KEY))
    with pytest.raises(KeyResponseError):
        check_notary_signature(response(), "notary.example", "ed25519:n", verify_key_of(notary_key))

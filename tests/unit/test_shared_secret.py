"""Shared-secret registration's nonces (services/shared_secret.py): single use, expiring, and
bounded however many an outsider asks for; and the MAC of Synapse's register_api.md example."""

from __future__ import annotations

from typing import cast

import pytest

from homeserver.errors import MatrixError
from homeserver.services.accounts import AccountsService
from homeserver.services.shared_secret import (
    MAX_NONCES,
    NONCE_LIFETIME_S,
    SharedSecretRegistration,
    SharedSecretRequest,
    registration_mac,
)
from tests.fake_clock import FakeClock


def registration(clock: FakeClock, secret: str | None = "secret") -> SharedSecretRegistration:
    # The nonces never reach the accounts service.
    return SharedSecretRegistration(cast(AccountsService, None), secret, clock)


def refused(reg: SharedSecretRegistration, nonce: str) -> str:
    with pytest.raises(MatrixError) as raised:
        reg.take_nonce(nonce)
    assert raised.value.status == 400
    return raised.value.error


def test_a_nonce_is_good_once() -> None:
    reg = registration(FakeClock())
    nonce = reg.new_nonce()
    reg.take_nonce(nonce)
    assert refused(reg, nonce) == "unrecognised nonce"
    assert refused(reg, "made-up") == "unrecognised nonce"


def test_a_nonce_expires() -> None:
    clock = FakeClock()
    reg = registration(clock)
    old = reg.new_nonce()
    clock.advance(NONCE_LIFETIME_S / 2)
    fresh = reg.new_nonce()
    clock.advance(NONCE_LIFETIME_S / 2 + 1)
    assert refused(reg, old) == "unrecognised nonce"
    reg.take_nonce(fresh)


def test_nonces_are_bounded_oldest_first() -> None:
    reg = registration(FakeClock())
    first = reg.new_nonce()
    later = [reg.new_nonce() for _ in range(MAX_NONCES)]
    assert refused(reg, first) == "unrecognised nonce"
    for nonce in later:
        reg.take_nonce(nonce)


def test_without_a_secret_nothing_is_handed_out() -> None:
    reg = registration(FakeClock(), secret=None)
    with pytest.raises(MatrixError) as raised:
        reg.new_nonce()
    assert raised.value.error == "Shared secret registration is not enabled"


def test_the_mac_is_synapses() -> None:
    # `printf '%s\0%s\0%s\0%s' thisisanonce pepper_roni pizza admin | openssl sha1 -hmac
    # shared_secret`, the recipe of Synapse's docs/admin_api/register_api.md.
    req = SharedSecretRequest("thisisanonce", "pepper_roni", "pizza", True, mac="")
    assert registration_mac("shared_secret", req) == "48715842ad67d5dc9a9ee938a3bda4fcfae8d7c7"
    # ... and with a user type, which follows after one more NUL.
    bot = SharedSecretRequest(
        "thisisanonce", "pepper_roni", "pizza", False, mac="", user_type="bot"
    )
    assert registration_mac("shared_secret", bot) == "b269635cb53e1adc15073ae7ffbd000b836b3105"

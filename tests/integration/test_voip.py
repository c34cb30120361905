"""`GET /voip/turnServer`: TURN REST credentials from `voip.*`, and `{}` without TURN.

The password is checked against a value computed outside Python (`openssl dgst -sha1 -hmac`,
then `base64`), the computation coturn's `use-auth-secret` makes on its side.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from homeserver.config import ConfigError, parse_config
from tests.conftest import MakeServer
from tests.fake_clock import START_MS, FakeClock
from tests.helpers import MatrixApi, validate_response

pytestmark = pytest.mark.usefixtures("no_server_errors")

TURN = "/_matrix/client/v3/voip/turnServer"
SECRET = "coturn-static-auth-secret"
URIS = ["turn:turn.example.com:3478?transport=udp", "turns:turn.example.com:5349?transport=tcp"]
# printf '%s' "1700003600:@turn_user:localhost" \
#   | openssl dgst -sha1 -hmac coturn-static-auth-secret -binary | base64
OPENSSL_PASSWORD = "HwywH20IZyaI/Cyzykj/3p5S4x8="


async def turn_answer(
    make_homeserver: MakeServer, http: aiohttp.ClientSession, overrides: dict[str, Any],
    clock: FakeClock,
) -> tuple[int, Any]:
    api = MatrixApi((await make_homeserver(overrides, clock=clock)).url, http)
    user = await api.register("turn_user")
    return await api.request("GET", TURN, token=user.token)


async def test_credentials_are_the_turn_rest_api_s(
    make_homeserver: MakeServer, http: aiohttp.ClientSession
) -> None:
    clock = FakeClock()
    status, body = await turn_answer(make_homeserver, http, {
        "voip.turn_uris": URIS, "voip.turn_shared_secret": SECRET,
        "voip.turn_user_lifetime_ms": 3_600_000,
    }, clock)
    assert status == 200, body
    validate_response("voip.yaml", "/voip/turnServer", "get", 200, body)
    expiry_s = (START_MS + 3_600_000) // 1000
    assert body == {
        "username": f"{expiry_s}:@turn_user:localhost",
        "password": OPENSSL_PASSWORD,
        "ttl": 3600,
        "uris": URIS,
    }


async def test_the_expiry_follows_the_clock_and_the_lifetime(
    make_homeserver: MakeServer, http: aiohttp.ClientSession
) -> None:
    clock = FakeClock()
    api = MatrixApi((await make_homeserver({
        "voip.turn_uris": URIS[:1], "voip.turn_shared_secret": SECRET,
        "voip.turn_user_lifetime_ms": 86_400_500,
    }, clock=clock)).url, http)
    user = await api.register("turn_user")
    first = (await api.request("GET", TURN, token=user.token))[1]
    clock.advance(120)
    later = (await api.request("GET", TURN, token=user.token))[1]
    assert first["ttl"] == later["ttl"] == 86_400
    assert first["username"] == f"{(START_MS + 86_400_500) // 1000}:{user.user_id}"
    assert later["username"] == f"{(START_MS + 120_000 + 86_400_500) // 1000}:{user.user_id}"
    assert later["password"] != first["password"]


async def test_without_turn_the_answer_is_empty(
    make_homeserver: MakeServer, http: aiohttp.ClientSession
) -> None:
    """Synapse's answer when no TURN server is configured; clients read it as "no TURN"."""
    status, body = await turn_answer(make_homeserver, http, {}, FakeClock())
    assert (status, body) == (200, {})


async def test_credentials_need_an_access_token(
    make_homeserver: MakeServer, http: aiohttp.ClientSession
) -> None:
    api = MatrixApi((await make_homeserver({
        "voip.turn_uris": URIS, "voip.turn_shared_secret": SECRET,
    })).url, http)
    status, body = await api.request("GET", TURN)
    assert status == 401 and body["errcode"] == "M_MISSING_TOKEN"


@pytest.mark.parametrize(("key", "value", "message"), [
    ("voip.turn_uris", URIS, "turn_uris and turn_shared_secret go together"),
    ("voip.turn_shared_secret", SECRET, "turn_uris and turn_shared_secret go together"),
    ("voip.turn_user_lifetime_ms", 999, "voip.turn_user_lifetime_ms: must be at least 1000"),
    ("voip.turn_uris", "turn:one.example.com", r"voip.turn_uris: expected a list"),
])
def test_half_a_turn_config_is_refused(key: str, value: Any, message: str) -> None:
    section, leaf = key.split(".")
    with pytest.raises(ConfigError, match=message):
        parse_config(yaml.safe_dump({section: {leaf: value}}), Path("/srv/moot"))

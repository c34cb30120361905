"""Moot servers federating over TLS on loopback: keys, signed requests, the notary API.

Each server has its own database, a federation listener on a port chosen before it starts
(its server name is `127.0.0.1:<port>`, so peers connect straight to it), and the insecure
federation switches on (self-signed certificates, loopback peers), as `init
--insecure-federation` writes them.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest
import yaml
import yarl

from federation.client import HttpResponseError, path_segment
from federation.keyring import KeyLookupError
from federation.request_auth import authorization_header
from homeserver.cli import main as cli_main
from homeserver.config import load_config
from homeserver.protocol.signing import SigningKey, generate_signing_key, key_id
from tests.federation_helpers import validate_ss_response
from tests.federation_peers import Peer, Peers, register

PROFILE = "/_matrix/federation/v1/query/profile"


@pytest.fixture
def http(peer_http: aiohttp.ClientSession) -> aiohttp.ClientSession:
    return peer_http


def profile_uri(user_id: str, field: str | None = None) -> str:
    query = f"?user_id={quote(user_id, safe='')}"
    if field is not None:
        query += f"&field={field}"
    return PROFILE + query


async def send_raw(
    http: aiohttp.ClientSession, to: Peer, uri: str, authorization: str | None,
    method: str = "GET", body: bytes | None = None,
) -> tuple[int, Any]:
    headers = {"Authorization": authorization} if authorization is not None else {}
    # encoded=True: the request line must carry the URI exactly as it was signed.
    url = yarl.URL(to.federation_url + uri, encoded=True)
    async with http.request(method, url, headers=headers, data=body) as resp:
        return resp.status, await resp.json(content_type=None)


# --- keys and a signed request between two servers -----------------------------------------

async def test_a_fetches_bs_keys_and_asks_b_for_a_profile(
    peers: Peers, http: aiohttp.ClientSession
) -> None:
    a, b = await peers.new("a"), await peers.new("b")
    alice = await register(b, http, "alice")
    b_key = b.signing_key
    found = await a.federation.outbound.keyring.get_verify_key(
        b.name, key_id(b_key), for_requests=True
    )
    assert found.encode() == b_key.verify_key.encode()  # type: ignore[attr-defined]

    profile = await a.federation.outbound.client.get_json(b.name, PROFILE, {"user_id": alice})
    assert profile == {"displayname": "Alice of b"}
    validate_ss_response("query.yaml", "/query/profile", "GET", 200, profile)
    assert await a.federation.outbound.client.get_json(
        b.name, PROFILE, {"user_id": alice, "field": "displayname"}
    ) == {"displayname": "Alice of b"}
    # B verified A's signature with A's key, which B fetched from A and cached.
    b_db = b.hs.db if b.hs else None
    assert b_db is not None
    cached = await b_db.run(lambda c: c.fetchval(
        "SELECT fetched_from FROM server_verify_keys WHERE server_name = $1", a.name
    ))
    assert cached == a.name


@pytest.mark.parametrize(
    ("query", "status", "errcode"),
    [
        ({"user_id": "@nobody:{b}"}, 404, "M_NOT_FOUND"),
        ({"user_id": "@alice:{b}", "field": "avatar_url"}, 404, "M_NOT_FOUND"),
        ({"user_id": "@alice:{b}", "field": "m.tz"}, 404, "M_NOT_FOUND"),
        ({"user_id": "@alice:elsewhere.example"}, 400, "M_INVALID_PARAM"),
        ({"user_id": "not a user"}, 400, "M_INVALID_PARAM"),
        ({}, 400, "M_MISSING_PARAM"),
    ],
)
async def test_profile_query_errors(
    peers: Peers, http: aiohttp.ClientSession, query: dict[str, str], status: int,
    errcode: str,
) -> None:
    a, b = await peers.new("a"), await peers.new("b")
    await register(b, http, "alice")
    filled = {k: v.format(b=b.name) for k, v in query.items()}
    with pytest.raises(HttpResponseError) as info:
        await a.federation.outbound.client.get_json(b.name, PROFILE, filled)
    assert (info.value.status, info.value.errcode) == (status, errcode)
    if status == 404:
        validate_ss_response("query.yaml", "/query/profile", "GET", 404, info.value.body)


async def test_unsigned_forged_and_misaddressed_requests_get_401(
    peers: Peers, http: aiohttp.ClientSession
) -> None:
    a, b = await peers.new("a"), await peers.new("b")
    alice = await register(b, http, "alice")
    uri = profile_uri(alice)
    a_key = a.signing_key

    def signed(uri: str = uri, *, origin: str = a.name, destination: str = b.name,
               key: SigningKey = a_key, method: str = "GET") -> str:
        return authorization_header(method, uri, origin, destination, None, key)

    # The genuine request works when sent by hand too.
    assert await send_raw(http, b, uri, signed()) == (200, {"displayname": "Alice of b"})

    impostor = generate_signing_key(a_key.version)  # same key ID, another key
    unknown = generate_signing_key("not_a_key_of_a")
    cases = {
        "no header": None,
        "bearer token": "Bearer abc",
        "garbage": "X-Matrix garbage",
        "missing sig": f'X-Matrix origin="{a.name}",destination="{b.name}",key="ed25519:x"',
        "forged signature": signed(key=impostor),
        "wrong destination": signed(destination="127.0.0.1:1"),
        "destination with another case": signed(destination=b.name.upper() + "X"),
        "key A does not have": signed(key=unknown),
        "replayed for another URI": signed(profile_uri(alice, "displayname")),
        "replayed for another method": signed(method="POST"),
        "origin that does not exist": signed(origin="127.0.0.1:1"),
        "origin that is not a server": signed(origin="bad origin"),
        "origin with a non-numeric port": signed(origin="127.0.0.1:port"),
        "origin with an empty port": signed(origin=a.name.partition(":")[0] + ":"),
        "destination with a non-numeric port": signed(destination=b.name + "x"),
        "unquoted origin with a non-numeric port":
            signed().replace(f'origin="{a.name}"', "origin=localhost:abc"),
    }
    for what, header in cases.items():
        status, body = await send_raw(http, b, uri, header)
        assert (status, body.get("errcode")) == (401, "M_UNAUTHORIZED"), (what, status, body)
        assert isinstance(body.get("error"), str)

    status, body = await send_raw(http, b, uri, signed(), body=b"{not json")
    assert (status, body["errcode"]) == (400, "M_NOT_JSON")


async def test_keys_cached_in_postgres_survive_a_restart_while_the_peer_is_down(
    peers: Peers, http: aiohttp.ClientSession
) -> None:
    a, b = await peers.new("a"), await peers.new("b")
    alice = await register(a, http, "alice")
    # B signs requests to A; A fetches B's key to check the first one.
    assert await b.federation.outbound.client.get_json(a.name, PROFILE, {"user_id": alice}) == {
        "displayname": "Alice of a"
    }
    uri = profile_uri(alice, "displayname")
    signed_earlier = authorization_header("GET", uri, b.name, a.name, None, b.signing_key)
    await b.stop()
    await a.stop()
    await a.start()
    assert await send_raw(http, a, uri, signed_earlier) == (200, {"displayname": "Alice of a"})
    # B is really down: anything that needs its keys anew fails cleanly.
    with pytest.raises(KeyLookupError):
        await a.federation.outbound.keyring.get_verify_key(b.name, "ed25519:other")


# --- the notary API -----------------------------------------------------------------------------

async def test_notary_fallback_when_the_origin_is_down(
    peers: Peers, http: aiohttp.ClientSession
) -> None:
    """B is down; A cannot fetch B's key from B and asks C, which saw B's keys earlier."""
    b = await peers.new("b")
    c = await peers.new("c")
    a = await peers.new("a", notaries=(c.name,))
    alice = await register(a, http, "alice")
    await c.federation.outbound.keyring.get_verify_key(b.name, key_id(b.signing_key))
    uri = profile_uri(alice)
    signed_by_b = authorization_header("GET", uri, b.name, a.name, None, b.signing_key)
    await b.stop()

    assert await send_raw(http, a, uri, signed_by_b) == (200, {"displayname": "Alice of a"})
    assert a.hs is not None and a.hs.db is not None
    rows = await a.hs.db.run(lambda conn: conn.fetch(
        "SELECT server_name, fetched_from FROM server_verify_keys ORDER BY server_name"
    ))
    assert {(r["server_name"], r["fetched_from"]) for r in rows} == {
        (b.name, c.name),  # B's key, vouched for by C
        (c.name, c.name),  # C's own key, to check C's signature
    }


async def test_without_a_notary_an_unreachable_origin_means_401(
    peers: Peers, http: aiohttp.ClientSession
) -> None:
    a = await peers.new("a")
    b = await peers.new("b", start=False)  # never started: its port refuses connections
    alice = await register(a, http, "alice")
    uri = profile_uri(alice)
    signed_by_b = authorization_header("GET", uri, b.name, a.name, None,
                                       generate_signing_key("b"))
    status, body = await send_raw(http, a, uri, signed_by_b)
    assert (status, body["errcode"]) == (401, "M_UNAUTHORIZED")
    # Why the key could not be had (connection refused at which address) is ours to log.
    assert body["error"] == "Failed to verify the request's signature"


async def test_notary_api_serves_own_and_cached_keys_signed(
    peers: Peers, http: aiohttp.ClientSession
) -> None:
    b, c = await peers.new("b"), await peers.new("c")
    c_key, b_key = c.signing_key, b.signing_key

    async def get(uri: str) -> Any:
        async with http.get(c.federation_url + uri) as resp:
            assert resp.status == 200
            return await resp.json()

    async def post(body: Any) -> tuple[int, Any]:
        async with http.post(c.federation_url + "/_matrix/key/v2/query", json=body) as resp:
            return resp.status, await resp.json()

    # C fetches B's keys on demand (B is up) and adds its own signature.
    answer = await get(f"/_matrix/key/v2/query/{path_segment(b.name)}")
    validate_ss_response("keys_query.yaml", "/query/{serverName}", "GET", 200, answer)
    (entry,) = answer["server_keys"]
    assert entry["server_name"] == b.name
    assert set(entry["signatures"]) == {b.name, c.name}
    assert key_id(b_key) in entry["verify_keys"] and key_id(c_key) in entry["signatures"][c.name]

    # Its own keys, with the POST form.
    status, answer = await post({"server_keys": {c.name: {}, b.name: {
        key_id(b_key): {"minimum_valid_until_ts": 0}
    }}})
    assert status == 200
    validate_ss_response("keys_query.yaml", "/query", "POST", 200, answer)
    assert sorted(e["server_name"] for e in answer["server_keys"]) == sorted([b.name, c.name])

    # B goes down: C still answers with what it saw, even asked for more than it has.
    await b.stop()
    answer = await get(f"/_matrix/key/v2/query/{path_segment(b.name)}"
                       "?minimum_valid_until_ts=99999999999999")
    assert [e["server_name"] for e in answer["server_keys"]] == [b.name]
    # A server nobody knows: an empty list, not an error.
    assert await get("/_matrix/key/v2/query/127.0.0.1:1") == {"server_keys": []}
    assert await post({"server_keys": {}}) == (200, {"server_keys": []})

    bad: dict[str, Any]
    for bad in ({}, {"server_keys": []}, {"server_keys": {b.name: []}},
                {"server_keys": {b.name: {"k": {"minimum_valid_until_ts": "x"}}}}):
        status, body = await post(bad)
        assert (status, body["errcode"]) == (400, "M_BAD_JSON"), bad
    async with http.get(c.federation_url + "/_matrix/key/v2/query/x?minimum_valid_until_ts=y") \
            as resp:
        assert resp.status == 400


async def test_key_and_version_endpoints_follow_the_schema(peers: Peers,
                                                           http: aiohttp.ClientSession) -> None:
    b = await peers.new("b")
    async with http.get(b.federation_url + "/_matrix/key/v2/server") as resp:
        validate_ss_response("keys_server.yaml", "/server", "GET", 200, await resp.json())
    async with http.get(b.federation_url + "/_matrix/federation/v1/version") as resp:
        validate_ss_response("version.yaml", "/version", "GET", 200, await resp.json())


# --- the operator contract ----------------------------------------------------------------------

def test_init_insecure_federation_writes_both_switches(tmp_path: Path) -> None:
    assert cli_main(["init", "--data-dir", str(tmp_path / "insecure"), "--server-name",
                     "127.0.0.1:18448", "--insecure-federation"]) == 0
    config = load_config(tmp_path / "insecure" / "homeserver.yaml")
    assert config.federation.verify_certificates is False
    assert config.federation.allow_private_addresses is True
    assert cli_main(["init", "--data-dir", str(tmp_path / "secure"), "--server-name",
                     "example.org"]) == 0
    raw = yaml.safe_load((tmp_path / "secure" / "homeserver.yaml").read_text())
    assert raw["federation"]["verify_certificates"] is True
    assert raw["federation"]["allow_private_addresses"] is False
    # The documentation of the keys is kept in the written file.
    assert "allow_private_addresses" in (tmp_path / "secure" / "homeserver.yaml").read_text()


async def test_a_warning_is_logged_at_start_when_a_switch_is_on(
    peers: Peers, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="federation.stack"):
        await peers.new("a")
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("verify_certificates is off" in w for w in warnings)
    assert any("allow_private_addresses is on" in w for w in warnings)

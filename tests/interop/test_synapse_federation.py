"""Moot and a real Synapse federating over TLS on loopback: server keys and signed requests.

Both directions: Moot fetches and checks Synapse's keys and makes signed requests Synapse
accepts; Synapse makes signed requests Moot accepts, and fetches, checks and vouches for Moot's
keys as a notary. One Synapse serves the module (tests/synapse_peer.py); every test makes its
own Moot servers and users, so none depends on another's effects.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest
import yarl
from aiohttp import web

from federation.client import HttpResponseError, path_segment
from federation.own_keys import OwnKeys
from federation.request_auth import authorization_header
from homeserver.protocol.signing import generate_signing_key, key_id, verify_key_base64
from homeserver.services.clock import SYSTEM_CLOCK
from tests.federation_helpers import StandIn, validate_ss_response
from tests.federation_peers import Peer, Peers, register
from tests.synapse_peer import SynapsePeer

PROFILE = "/_matrix/federation/v1/query/profile"
KEY_QUERY = "/_matrix/key/v2/query"


async def synapse_user(synapse: SynapsePeer, localpart: str) -> str:
    """A new Synapse user whose display name says whose it is ("Bob of synapse")."""
    user_id, token = await synapse.register(localpart)
    await synapse.api.ok("PUT", f"profile/{quote(user_id)}/displayname",
                         json={"displayname": f"{localpart.title()} of synapse"}, token=token)
    return user_id


async def fetched_from(moot: Peer, server_name: str) -> list[str]:
    """Where ``moot`` got the keys of ``server_name`` it has stored."""
    db = moot.hs.db if moot.hs else None
    assert db is not None
    rows = await db.run(lambda c: c.fetch(
        "SELECT fetched_from FROM server_verify_keys WHERE server_name = $1", server_name
    ))
    return [row["fetched_from"] for row in rows]


# --- Moot to Synapse ---------------------------------------------------------------------------

async def test_moot_fetches_synapses_keys_and_version(peers: Peers, synapse: SynapsePeer) -> None:
    moot = await peers.new("moot")
    found = await moot.federation.outbound.keyring.get_verify_key(
        synapse.server_name, key_id(synapse.signing_key), for_requests=True
    )
    assert found.encode() == synapse.signing_key.verify_key.encode()  # type: ignore[attr-defined]
    assert await fetched_from(moot, synapse.server_name) == [synapse.server_name]

    version = await moot.federation.outbound.client.get_json(
        synapse.server_name, "/_matrix/federation/v1/version"
    )
    validate_ss_response("version.yaml", "/version", "GET", 200, version)
    assert version["server"]["name"] == "Synapse"


async def test_synapse_accepts_moots_signed_profile_query(
    peers: Peers, synapse: SynapsePeer
) -> None:
    moot = await peers.new("moot")
    bob = await synapse_user(synapse, "bob")
    # query/profile needs X-Matrix on Synapse: an answer means it checked our signature.
    profile = await moot.federation.outbound.client.get_json(synapse.server_name, PROFILE,
                                                    {"user_id": bob})
    assert profile.get("displayname") == "Bob of synapse"
    assert await moot.federation.outbound.client.get_json(
        synapse.server_name, PROFILE, {"user_id": bob, "field": "displayname"}
    ) == {"displayname": "Bob of synapse"}
    with pytest.raises(HttpResponseError) as info:
        await moot.federation.outbound.client.get_json(
            synapse.server_name, PROFILE, {"user_id": f"@nobody:{synapse.server_name}"}
        )
    assert (info.value.status, info.value.errcode) == (404, "M_NOT_FOUND")


# --- Synapse to Moot ---------------------------------------------------------------------------

async def test_synapse_user_sees_a_moot_users_profile(
    peers: Peers, peer_http: aiohttp.ClientSession, synapse: SynapsePeer
) -> None:
    moot = await peers.new("moot")
    alice = await register(moot, peer_http, "alice")
    _, token = await synapse.register("carol")
    # Synapse asks Moot over federation; Moot checks Synapse's signature with its key.
    profile = await synapse.api.ok("GET", f"profile/{quote(alice)}", token=token)
    assert profile.get("displayname") == "Alice of moot"
    assert await fetched_from(moot, synapse.server_name) == [synapse.server_name]


async def test_synapse_vouches_for_moots_keys_as_a_notary(
    peers: Peers, synapse: SynapsePeer
) -> None:
    a = await peers.new("a", notaries=(synapse.server_name,))
    b = await peers.new("b")
    b_key_id = key_id(b.signing_key)
    # Synapse fetches B's keys from B, checks B's self-signature and adds its own. (Synapse
    # requires the timestamp the spec makes optional.)
    answer = await a.federation.outbound.client.post_json(synapse.server_name, KEY_QUERY, {
        "server_keys": {b.name: {b_key_id: {"minimum_valid_until_ts": SYSTEM_CLOCK.now_ms()}}},
    })
    validate_ss_response("keys_query.yaml", "/query", "POST", 200, answer)
    (entry,) = answer["server_keys"]
    assert entry["verify_keys"] == {b_key_id: {"key": verify_key_base64(b.signing_key)}}
    assert set(entry["signatures"]) == {b.name, synapse.server_name}

    # With B down, A still gets B's key through Synapse and checks both signatures.
    await b.stop()
    found = await a.federation.outbound.keyring.get_verify_key(b.name, b_key_id, for_requests=True)
    assert found.encode() == b.signing_key.verify_key.encode()  # type: ignore[attr-defined]
    assert await fetched_from(a, b.name) == [synapse.server_name]


async def test_moot_gets_keys_through_synapse_of_a_server_only_synapse_reaches(
    peers: Peers, synapse: SynapsePeer, tmp_path: Path
) -> None:
    """The notary fallback when the origin is out of our reach (not Synapse's) and Synapse
    has never seen it: Synapse fetches on a cache miss only for a query naming the key ID."""
    origin_key = generate_signing_key("a_origin")

    async def keys_for_synapse_only(request: web.Request) -> web.StreamResponse:
        if not request.headers.get("User-Agent", "").startswith("Synapse"):
            return web.json_response({"errcode": "M_UNKNOWN"}, status=503)
        keys = OwnKeys(origin.server_name, origin_key).response(SYSTEM_CLOCK.now_ms())
        return web.json_response(keys)

    origin = await StandIn(tmp_path / "origin").start()
    try:
        origin.handlers["/_matrix/key/v2/server"] = keys_for_synapse_only
        a = await peers.new("a", notaries=(synapse.server_name,))
        found = await a.federation.outbound.keyring.get_verify_key(
            origin.server_name, key_id(origin_key), for_requests=True
        )
        assert found.encode() == origin_key.verify_key.encode()  # type: ignore[attr-defined]
        assert await fetched_from(a, origin.server_name) == [synapse.server_name]
    finally:
        await origin.stop()


# --- refusals ----------------------------------------------------------------------------------

async def send_raw(
    http: aiohttp.ClientSession, to: Peer, uri: str, authorization: str
) -> tuple[int, Any]:
    # encoded=True: the request line must carry the URI exactly as it was signed.
    url = yarl.URL(to.federation_url + uri, encoded=True)
    async with http.get(url, headers={"Authorization": authorization}) as resp:
        return resp.status, await resp.json(content_type=None)


async def test_moot_refuses_synapses_name_with_a_wrong_key(
    peers: Peers, peer_http: aiohttp.ClientSession, synapse: SynapsePeer
) -> None:
    moot = await peers.new("moot")
    alice = await register(moot, peer_http, "alice")
    uri = f"{PROFILE}?user_id={path_segment(alice)}"
    for key in (
        generate_signing_key(synapse.signing_key.version),  # Synapse's key ID, another key
        generate_signing_key("not_synapses"),  # a key ID Synapse does not have
    ):
        header = authorization_header("GET", uri, synapse.server_name, moot.name, None, key)
        status, body = await send_raw(peer_http, moot, uri, header)
        assert (status, body.get("errcode")) == (401, "M_UNAUTHORIZED"), (key_id(key), body)
    # The genuine key was fetched from Synapse and did not match the forgery.
    assert await fetched_from(moot, synapse.server_name) == [synapse.server_name]

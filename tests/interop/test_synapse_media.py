"""Media between Moot and a real Synapse over TLS on loopback, both ways: a Synapse user's
image opens for a Moot user (Moot fetches it over federation) and a Moot user's image opens
for a Synapse user (Synapse fetches it from Moot's federation media endpoints), byte for byte,
thumbnails too. One Synapse serves the module (tests/synapse_peer.py)."""

from __future__ import annotations

import aiohttp

from tests.federation_peers import Peers
from tests.images import image_of, png
from tests.remote_media import V1, V3, download
from tests.synapse_peer import SynapsePeer


async def test_a_synapse_users_image_opens_for_a_moot_user(
    peers: Peers, peer_http: aiohttp.ClientSession, synapse: SynapsePeer
) -> None:
    moot = await peers.new("moot")
    alice = await moot.api(peer_http).register("alice")
    bob = await synapse.new_user("media")
    data = png(300, 200)
    uploaded = await synapse.api.ok("POST", f"{V3}/upload", raw=data, token=bob.token,
                                    headers={"Content-Type": "image/png"},
                                    params={"filename": "from-synapse.png"})
    ref = str(uploaded["content_uri"]).removeprefix("mxc://")
    assert ref.startswith(synapse.server_name + "/")

    status, headers, body = await download(peer_http, moot.client_url, f"{V1}/download/{ref}",
                                           alice)
    assert (status, body) == (200, data)
    assert headers["Content-Type"] == "image/png"
    assert headers["Content-Disposition"] == 'inline; filename="from-synapse.png"'
    status, _, body = await download(
        peer_http, moot.client_url, f"{V1}/thumbnail/{ref}?width=96&height=96&method=crop",
        alice,
    )
    assert status == 200 and image_of(body).size == (96, 96)
    status, _, body = await download(peer_http, moot.client_url, f"{V1}/download/"
                                     f"{synapse.server_name}/NoSuchMediaHere", alice)
    assert status == 404 and b"M_NOT_FOUND" in body


async def test_a_moot_users_image_opens_for_a_synapse_user(
    peers: Peers, peer_http: aiohttp.ClientSession, synapse: SynapsePeer
) -> None:
    moot = await peers.new("moot")
    api = moot.api(peer_http)
    alice = await api.register("alice")
    bob = await synapse.new_user("media")
    data = png(400, 300)
    uploaded = await api.ok("POST", f"{V3}/upload", raw=data, token=alice.token,
                            headers={"Content-Type": "image/png"},
                            params={"filename": "from-moot.png"})
    ref = str(uploaded["content_uri"]).removeprefix("mxc://")

    status, headers, body = await download(peer_http, synapse.client_url,
                                           f"{V1}/download/{ref}", bob)
    assert (status, body) == (200, data), body[:300]
    assert headers["Content-Type"] == "image/png"
    assert "from-moot.png" in headers["Content-Disposition"]
    status, _, body = await download(
        peer_http, synapse.client_url, f"{V1}/thumbnail/{ref}?width=32&height=32&method=crop",
        bob,
    )
    assert status == 200 and image_of(body).size == (32, 32)
    status, _, body = await download(peer_http, synapse.client_url,
                                     f"{V1}/download/{moot.name}/NoSuchMediaHere", bob)
    assert status == 404, body

"""Room retention over federation: a real Synapse joining a Moot room and reading its history
back (/backfill, /event, /get_missing_events from Moot) gets none of what expired, whether
Moot's retention sweep has purged it yet (gone) or not (served redacted). One Synapse serves
the module (tests/synapse_peer.py)."""

from __future__ import annotations

import json
import uuid
from typing import Any
from urllib.parse import quote

import aiohttp

from homeserver.services.clock import SYSTEM_CLOCK
from tests.federation_peers import Peers, eventually
from tests.helpers import MatrixApi, User
from tests.synapse_peer import SynapsePeer
from tests.synapse_rooms import join, page_back, set_state, synapse_user

LIFETIME_MS = 1_500
RETENTION = {
    "retention.enabled": True, "retention.allowed_lifetime_min_ms": 0,
    "encryption.default": "off",
}


async def _expired(api: MatrixApi, user: User, room_id: str, event_id: str) -> bool:
    status, _ = await api.request(
        "GET", f"rooms/{quote(room_id)}/event/{quote(event_id)}", token=user.token
    )
    return status == 404


async def _read_back(
    api: MatrixApi, user: User, room_id: str, fresh: str
) -> list[dict[str, Any]] | None:
    """The room as `user` reads it back to its start, once it holds the message `fresh`."""
    seen = await page_back(api, user, room_id, limit=3)
    return seen if fresh in json.dumps(seen) else None


async def test_synapse_backfilling_from_moot_gets_no_expired_content(
    peers: Peers, peer_http: aiohttp.ClientSession, synapse: SynapsePeer
) -> None:
    moot = await peers.new("moot", overrides=RETENTION)
    api = moot.api(peer_http)
    alice = await api.register("alice")
    assert moot.hs is not None and moot.hs.room_retention is not None
    rooms: dict[str, tuple[bool, list[str]]] = {}
    for swept in (True, False):
        room_id = await api.create_room(alice, preset="public_chat")
        await set_state(api, alice, room_id, "m.room.retention", {"max_lifetime": LIFETIME_MS})
        markers = [f"gone-{uuid.uuid4().hex}" for _ in range(5)]
        rooms[room_id] = (swept, markers)
        sent = [await api.send_message(alice, room_id, m) for m in markers]
        await eventually(
            lambda r=room_id, e=sent[-1]: _expired(api, alice, r, e), "the messages to expire"
        )
        if swept:
            await moot.hs.room_retention.sweep(SYSTEM_CLOCK.now_ms())

    for room_id, (swept, markers) in rooms.items():
        sapi, bob = await synapse_user(synapse, "bob")
        await join(sapi, bob, room_id, moot.name, "server_name")
        fresh = f"fresh-{uuid.uuid4().hex}"
        await api.send_message(alice, room_id, fresh)

        seen = await eventually(
            lambda a=sapi, u=bob, r=room_id, f=fresh: _read_back(a, u, r, f),
            "the fresh message on Synapse",
        )
        text = json.dumps(seen)
        assert [m for m in markers if m in text] == []
        if not swept:
            # Synapse read the whole room back, the expired messages redacted (their content
            # hashes no longer match, so Synapse redacted its copies too); where the sweep
            # purged them, Moot has nothing to give and Synapse's history stops at the gap.
            assert seen[0]["type"] == "m.room.create"
            stubs = [e for e in seen if e["type"] == "m.room.message" and not e["content"]]
            assert len(stubs) == len(markers)

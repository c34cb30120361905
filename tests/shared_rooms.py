"""A room shared by two federating servers, seen from the Server-Server API: the federation
read endpoints (state, backfill, missing events) are tested against it, and b plays a server
that sends a events built and signed by hand (`forge`, `send_pdus`).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import aiohttp

from federation.client import HttpResponseError, path_segment
from homeserver.protocol.event_refs import event_reference
from homeserver.protocol.events import build_event
from homeserver.protocol.hashing import compute_event_id
from homeserver.protocol.room_versions import KNOWN_ROOM_VERSIONS, RoomVersion
from storage import events as events_store
from storage import state as state_store
from tests.federation_peers import Peer, Peers
from tests.helpers import MatrixApi, User

V1 = "/_matrix/federation/v1"


@dataclass
class Room:
    """A public room on `a` that a user of `b` joined through federation."""

    a: Peer
    b: Peer
    api: MatrixApi
    alice: User
    api_b: MatrixApi
    bob: User
    room_id: str
    version: RoomVersion

    @property
    def room(self) -> str:
        return path_segment(self.room_id)

    async def ask(
        self, method: str, path: str, *, query: dict[str, Any] | None = None,
        body: Any = None, asker: Peer | None = None,
    ) -> tuple[int, Any]:
        """A signed request from `asker` (b unless told) to a: (status, body)."""
        client = (asker or self.b).federation.outbound.client
        try:
            if method == "GET":
                return 200, await client.get_json(self.a.name, V1 + path, query)
            return 200, await client.post_json(self.a.name, V1 + path, body, query)
        except HttpResponseError as e:
            return e.status, e.body

    async def ok(self, method: str, path: str, **kwargs: Any) -> Any:
        status, body = await self.ask(method, path, **kwargs)
        assert status == 200, (path, status, body)
        return body

    async def set_state(self, event_type: str, content: dict[str, Any]) -> str:
        body = await self.api.ok(
            "PUT", f"rooms/{quote(self.room_id)}/state/{event_type}", token=self.alice.token,
            json=content,
        )
        event_id: str = body["event_id"]
        return event_id

    async def current_state(self) -> dict[tuple[str, str], str]:
        assert self.a.hs is not None and self.a.hs.db is not None
        return await self.a.hs.db.run(lambda c: state_store.get_current_state(c, self.room_id))

    def event_id(self, pdu: dict[str, Any]) -> str:
        return compute_event_id(pdu, self.version)


async def shared_room(
    peers: Peers, http: aiohttp.ClientSession,
    before_join: Callable[[Room], Awaitable[None]] | None = None,
    room_version: str | None = None,
) -> Room:
    """A public room on a (of `room_version`, the default unless told) that Bob of b joined
    through a real remote join (after `before_join` did its part)."""
    a, b = await peers.new("a"), await peers.new("b")
    api_a, api_b = a.api(http), b.api(http)
    alice, bob = await api_a.register("alice"), await api_b.register("bob")
    options = {} if room_version is None else {"room_version": room_version}
    room_id = await api_a.create_room(alice, preset="public_chat", **options)
    create = await api_a.ok(
        "GET", f"rooms/{quote(room_id)}/state/m.room.create", token=alice.token
    )
    room = Room(
        a, b, api_a, alice, api_b, bob, room_id, KNOWN_ROOM_VERSIONS[create["room_version"]]
    )
    if before_join is not None:
        await before_join(room)
    await api_b.ok(
        "POST", f"join/{quote(room_id)}", token=bob.token, json={},
        params={"server_name": a.name},
    )
    return room


async def error(room: Room, method: str, path: str, **kwargs: Any) -> tuple[int, str]:
    status, body = await room.ask(method, path, **kwargs)
    return status, body["errcode"]


async def forge(
    room: Room, room_id: str, sender: str, event_type: str, content: dict[str, Any], *,
    state_key: str | None = None, prev_events: list[str] | None = None,
    auth_keys: list[tuple[str, str]] | None = None, auth_events: list[str] | None = None,
    depth: int | None = None, event_id: str | None = None,
) -> tuple[str, dict[str, Any]]:
    """An event of b in a room of a, on a's heads (one deeper) and with auth events from a's
    current state (the create event's, the power levels' and the sender's membership), unless
    told. In rooms v1-v2 the event carries `event_id` (b's own unless told) and names the
    others as [ID, hashes] pairs."""
    hs = room.a.hs
    assert hs is not None and hs.db is not None
    heads = await hs.db.run(lambda c: events_store.get_forward_extremities(c, room_id))
    current = await hs.db.run(lambda c: state_store.get_current_state(c, room_id))
    keys = auth_keys or [("m.room.power_levels", ""), ("m.room.member", sender)]
    if room.version.create_event_in_auth_events:
        keys.append(("m.room.create", ""))
    prev = prev_events or [h.event_id for h in heads]
    auth = auth_events if auth_events is not None else [current[k] for k in keys]
    if room.version.event_id_in_pdu:
        rows = await hs.db.run(lambda c: events_store.get_events(c, [*prev, *auth]))
        pdus = {i: json.loads(row.json) for i, row in rows.items()}
        prev_refs = [event_reference(i, pdus[i], room.version) for i in prev]
        auth_refs = [event_reference(i, pdus[i], room.version) for i in auth]
        event_id = event_id or f"${uuid.uuid4().hex}:{room.b.name}"
    built_id, pdu = build_event(
        room_version=room.version, room_id=room_id, sender=sender, event_type=event_type,
        content=content, state_key=state_key,
        prev_events=prev_refs if room.version.event_id_in_pdu else prev,
        auth_events=auth_refs if room.version.event_id_in_pdu else auth,
        depth=depth or max(h.depth for h in heads) + 1, origin_server_ts=int(time.time() * 1000),
        server_name=room.b.name, signing_key=room.b.signing_key, event_id=event_id,
    )
    return str(built_id), pdu


async def send_pdus(room: Room, *pdus: dict[str, Any]) -> dict[str, Any]:
    """b's transaction to a: the `pdus` answer (event ID -> {} or {"error": ...})."""
    answer = await room.b.federation.outbound.client.put_json(
        room.a.name, f"{V1}/send/{uuid.uuid4().hex}",
        {"origin": room.b.name, "origin_server_ts": int(time.time() * 1000),
         "pdus": list(pdus), "edus": []},
    )
    result: dict[str, Any] = answer["pdus"]
    return result


async def stored(room: Room, event_id: str) -> bool:
    hs = room.a.hs
    assert hs is not None and hs.db is not None
    return event_id in await hs.db.run(lambda c: events_store.get_events(c, [event_id]))

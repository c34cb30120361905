"""Joining rooms across servers, both directions (server-server-api.md "Joining Rooms",
"Leaving Rooms", "Knocking"): the resident server's make_*/send_* answers, and our own user's
join of a room that lives on other servers.

The make/send handshake: the joining server asks a resident server for a template
(`make_join`), signs the event it builds from it, and hands it back (`send_join`); the resident
persists it through the room engine as a remote event that it passes on to the room's other
servers, and answers with the room's state before the join and its auth chain, from which the
joining server starts its copy of the room.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from federation.client import FederationClient, HttpResponseError, path_segment
from federation.inbound_pdus import InboundPdus, PduError
from federation.room_reads import auth_chain_events
from federation.transport import FederationError
from homeserver.errors import MatrixError, bad_json, forbidden, not_found, room_full_error
from homeserver.protocol import events, hashing
from homeserver.protocol.identifiers import server_name_of
from homeserver.protocol.room_versions import KNOWN_ROOM_VERSIONS, RoomVersion
from homeserver.protocol.signing import SigningKey
from homeserver.services import room_state
from homeserver.services.clock import now_ms
from homeserver.services.incoming_events import IncomingEvents
from storage import events as events_store
from storage import state as state_store

log = logging.getLogger(__name__)

V1, V2 = "/_matrix/federation/v1", "/_matrix/federation/v2"
# What a resident answers for each kind of handshake: the membership it makes.
MEMBERSHIPS = {"join": "join", "leave": "leave", "knock": "knock"}


class Joins:
    def __init__(
        self, incoming: IncomingEvents, pdus: InboundPdus, client: FederationClient,
        server_name: str, signing_key: SigningKey,
    ) -> None:
        self.incoming = incoming
        self.engine = incoming.engine
        self.pdus = pdus
        self.client = client
        self.server_name = server_name
        self.signing_key = signing_key

    # ---- the resident server's side -----------------------------------------------------------

    async def make(
        self, origin: str, room_id: str, user_id: str, membership: str,
        versions: Sequence[str] | None,
    ) -> dict[str, Any]:
        """The template answer of make_join, make_leave or make_knock."""
        _require_origin_user(origin, user_id)
        await self._require_resident(room_id, origin)
        room_version, template = await self.engine.template(
            room_id, user_id, "m.room.member", {"membership": membership}, user_id
        )
        if versions is not None and room_version.identifier not in versions:
            raise MatrixError(
                400, "M_INCOMPATIBLE_ROOM_VERSION",
                f"The room is version {room_version.identifier}, which the server does not "
                "support", room_version=room_version.identifier,
            )
        return {"event": template, "room_version": room_version.identifier}

    async def send(
        self, origin: str, room_id: str, event_id: str, pdu: Any, membership: str
    ) -> dict[str, Any]:
        """Persist a signed membership event handed back by the server of its user; for a
        join, answer with the state before it and the auth chain."""
        if not isinstance(pdu, dict):
            raise bad_json("The body must be the signed event")
        room_version = await self._require_resident(room_id, origin)
        content = pdu.get("content")
        sender = pdu.get("sender")
        if (
            pdu.get("type") != "m.room.member" or not isinstance(content, dict)
            or content.get("membership") != membership or pdu.get("state_key") != sender
            or pdu.get("room_id") != room_id or not isinstance(sender, str)
        ):
            raise bad_json(f"The event must be the sender's own {membership} of this room")
        _require_origin_user(origin, sender)
        try:
            computed = hashing.compute_event_id(pdu, room_version)
        except Exception:
            raise bad_json("The event is malformed") from None
        if computed != event_id:
            raise bad_json("The event ID in the path is not the event's")
        if membership == "join":
            await self._require_seat(room_id, pdu)
        try:
            received = await self.pdus.check_and_persist(
                origin, room_id, pdu, room_version, federate=True
            )
        except PduError as e:
            raise forbidden(f"The event was not accepted: {e}") from None
        if received.outcome in ("rejected", "soft_failed"):
            raise forbidden(f"The event was not accepted: {received.reason}")
        if membership != "join":
            return {}
        return await self._join_answer(room_id, event_id)

    async def _require_resident(self, room_id: str, origin: str) -> RoomVersion:
        """The room's version, when this server is in the room and the origin may take part."""
        async def read(conn: Any) -> tuple[RoomVersion, set[str]]:
            return (
                await self.engine.room_version(conn, room_id),
                await self.engine.joined_members(conn, room_id),
            )

        try:
            room_version, members = await self.engine.db.run(read)
        except MatrixError:
            raise not_found(f"This server is not in room {room_id}") from None
        if not any(server_name_of(m) == self.server_name for m in members):
            raise not_found(f"This server is not in room {room_id}")
        if not await self.pdus.server_allowed(room_id, origin):
            raise forbidden(f"{origin} is denied by the room's server ACL")
        return room_version

    async def _require_seat(self, room_id: str, pdu: Mapping[str, Any]) -> None:
        """403 for a join the room's member limit has no seat for."""
        async def check(conn: Any) -> int | None:
            ids = await state_store.get_current_state_for_keys(
                conn, room_id, [("org.moot.room.member_limit", "")]
            )
            pdus = await self.engine.get_pdus(conn, list(ids.values()))
            state = {k: pdus[i] for k, i in ids.items() if i in pdus}
            return await self.engine.exceeded_member_limit(conn, room_id, pdu, state)

        limit = await self.engine.db.run(check)
        if limit is not None:
            raise room_full_error(limit)

    async def _join_answer(self, room_id: str, event_id: str) -> dict[str, Any]:
        async def read(conn: Any) -> dict[str, Any]:
            stored = (await events_store.get_events(conn, [event_id]))[event_id]
            state = await room_state.state_before_event(conn, stored)
            room_version = await self.engine.room_version(conn, room_id)
            chain = [e.event_id for e in await auth_chain_events(
                conn, room_id, room_version, [*state.values(), event_id]
            )]
            pdus = await self.engine.get_pdus(conn, [event_id, *state.values(), *chain])
            members = await self.engine.joined_members(conn, room_id)
            return {
                "origin": self.server_name,
                "event": pdus[event_id],
                "state": [pdus[i] for i in state.values() if i in pdus],
                "auth_chain": [pdus[i] for i in chain if i in pdus],
                "members_omitted": False,
                "servers_in_room": sorted({server_name_of(m) for m in members}),
            }

        answer: dict[str, Any] = await self.engine.db.run(read)
        return answer

    # ---- our user joining a room that lives elsewhere ----------------------------------------

    async def join_remote(
        self, room_id: str, user_id: str, content: Mapping[str, Any], servers: Sequence[str]
    ) -> None:
        """Join `room_id` through the first of `servers` that lets us; MatrixError otherwise
        (the last server's refusal, or 404 when none could be reached)."""
        error: MatrixError = not_found(f"No server could help joining {room_id}")
        for server in dict.fromkeys(s for s in servers if s != self.server_name):
            try:
                await self._join_via(server, room_id, user_id, content)
                return
            except HttpResponseError as e:
                body = e.body if isinstance(e.body, dict) else {}
                error = MatrixError(
                    e.status if 400 <= e.status < 500 else 502,
                    str(body.get("errcode") or "M_UNKNOWN"),
                    f"{server}: {body.get('error') or e}",
                )
            except (FederationError, PduError, KeyError, TypeError, ValueError) as e:
                log.info("joining %s through %s failed: %s", room_id, server, e)
                error = MatrixError(502, "M_UNKNOWN", f"Joining through {server} failed: {e}")
        raise error

    async def _join_via(
        self, server: str, room_id: str, user_id: str, content: Mapping[str, Any]
    ) -> None:
        room, user = path_segment(room_id), path_segment(user_id)
        answer = await self.client.get_json(
            server, f"{V1}/make_join/{room}/{user}", {"ver": list(KNOWN_ROOM_VERSIONS)}
        )
        room_version = KNOWN_ROOM_VERSIONS[str(answer["room_version"])]
        template = answer["event"]
        event_id, pdu = events.build_event(
            room_version=room_version, room_id=room_id, sender=user_id,
            event_type="m.room.member",
            content={**template.get("content", {}), **content, "membership": "join"},
            state_key=user_id, prev_events=list(template["prev_events"]),
            auth_events=list(template["auth_events"]), depth=int(template["depth"]),
            origin_server_ts=now_ms(), server_name=self.server_name,
            signing_key=self.signing_key,
        )
        sent = await self.client.put_json(
            server, f"{V2}/send_join/{room}/{path_segment(event_id)}", pdu
        )
        returned = sent.get("event")
        if isinstance(returned, dict) and hashing.compute_event_id(
            returned, room_version
        ) == event_id:
            pdu = returned  # a restricted join comes back with the authorising signature
        state = await self.pdus.checked(sent.get("state") or [], room_version)
        chain = await self.pdus.checked(sent.get("auth_chain") or [], room_version)
        received = await self.incoming.join_room(room_id, room_version, pdu, state, chain)
        if received.outcome not in ("accepted", "known"):
            raise PduError(f"our join was {received.outcome}: {received.reason}")


def _require_origin_user(origin: str, user_id: str) -> None:
    try:
        server = server_name_of(user_id)
    except ValueError:
        raise bad_json(f"{user_id!r} is not a user ID") from None
    if server != origin:
        raise forbidden(f"{user_id} is not a user of {origin}")

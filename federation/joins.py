"""Joining rooms across servers, both directions (server-server-api.md "Joining Rooms",
"Leaving Rooms", "Knocking"): the resident server's make_*/send_* answers, and our own user's
join of a room that lives on other servers.

The make/send handshake: the joining server asks a resident server for a template
(`make_join`), signs the event it builds from it, and hands it back (`send_join`); the resident
persists it through the room cluster as a remote event that it passes on to the room's other
servers, and answers with the room's state before the join and its auth chain, from which the
joining server starts its copy of the room.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar

from federation.client import FederationClient, HttpResponseError, path_segment
from federation.inbound_pdus import InboundPdus, PduError
from federation.pdu_checks import PduCheckError
from federation.room_reads import auth_chain_events, redact_erased
from homeserver.errors import MatrixError, bad_json, forbidden, not_found, room_full_error
from homeserver.protocol import auth_rules, events, hashing
from homeserver.protocol.errors import InvalidEventError
from homeserver.protocol.event_refs import event_reference
from homeserver.protocol.identifiers import server_name_of
from homeserver.protocol.member_limit import MEMBER_LIMIT
from homeserver.protocol.restricted_joins import AUTHORISER
from homeserver.protocol.room_versions import KNOWN_ROOM_VERSIONS, RoomVersion
from homeserver.protocol.signing import SigningKey, sign_event
from homeserver.services.clock import Clock
from homeserver.services.join_authorisation import authorise_join
from homeserver.services.rooms.cluster import RoomCluster
from homeserver.services.rooms.remote import Outcome
from homeserver.services.rooms.remote_memberships import RemoteMemberships
from homeserver.services.rooms.state import state_before_event
from homeserver.services.sync_rooms import stripped_state
from storage import blocked_rooms
from storage import events as events_store
from storage import state as state_store
from storage.database import Database

log = logging.getLogger(__name__)
T = TypeVar("T")

V1, V2 = "/_matrix/federation/v1", "/_matrix/federation/v2"
# The most stripped state events kept with an invite or a knock (the spec names six types).
_MAX_STRIPPED_STATE = 50
# How long leaving through one server may take (make_leave and send_leave): a rejection of an
# invite whose server hangs is then made here alone, without the client waiting minutes.
LEAVE_ATTEMPT_TIMEOUT_S = 10.0


class Joins:
    federates = True  # the `RemoteRooms` of a server with federation

    def __init__(
        self, db: Database, rooms: RoomCluster, pdus: InboundPdus, client: FederationClient,
        server_name: str, signing_key: SigningKey, clock: Clock,
    ) -> None:
        self.db = db
        self.clock = clock
        self.incoming = rooms.remote
        self.local = rooms.local
        self.memberships = RemoteMemberships(rooms.remote, rooms.outliers)
        self.engine = rooms.cache
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
        content: dict[str, Any] = {"membership": membership}
        if membership == "knock":
            # A knock takes no seat, but it asks for one: refused when none is left.
            await self._require_seat(room_id, {
                "type": "m.room.member", "state_key": user_id, "content": {"membership": "join"},
            })
        if membership == "join":
            authoriser = await self._authoriser(room_id, user_id)
            if authoriser is not None:
                content[AUTHORISER] = authoriser
        room_version, template = await self.local.template(
            room_id, user_id, "m.room.member", content, user_id
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
            if content.get(AUTHORISER) is not None:
                # make_join's check again: a joining server need not have asked it first.
                await self._authoriser(room_id, sender)
                pdu = self._countersign_restricted_join(pdu, room_version)
        try:
            received = await self.pdus.check_and_persist(
                origin, room_id, pdu, room_version, federate=True
            )
        except PduError as e:
            raise forbidden(f"The event was not accepted: {e}") from None
        if received.outcome in (Outcome.REJECTED, Outcome.SOFT_FAILED):
            raise forbidden(f"The event was not accepted: {received.reason}")
        if membership == "knock":
            return {"knock_room_state": await self.db.run(
                lambda c: stripped_state(c, self.engine, room_id, sender)
            )}
        if membership != "join":
            return {}
        return await self._join_answer(room_id, event_id)

    async def _authoriser(self, room_id: str, user_id: str) -> str | None:
        """For a restricted room: the user of ours `make_join` names as the join's authoriser
        (None when the join needs none). MatrixError as the spec has it when the user is in
        none of the allowed rooms (403: another server will say the same) or when none of our
        users may invite (400: another server may have one)."""
        verdict = await self.db.run(
            lambda conn: authorise_join(conn, self.engine, room_id, user_id)
        )
        if not verdict.needed:
            return None
        if not verdict.qualifies:
            raise MatrixError(
                403, "M_UNABLE_TO_GRANT_JOIN",
                "The user is in none of the rooms this room's join rule allows",
            )
        if verdict.authoriser is None:
            raise MatrixError(
                400, "M_UNABLE_TO_AUTHORISE_JOIN", "No user of this server may invite"
            )
        return verdict.authoriser

    def _countersign_restricted_join(
        self, pdu: dict[str, Any], room_version: RoomVersion
    ) -> dict[str, Any]:
        """Add our signature to a join that names one of our users as its authoriser."""
        via = pdu["content"][AUTHORISER]
        try:
            ours = isinstance(via, str) and server_name_of(via) == self.server_name
        except ValueError:
            raise bad_json("join_authorised_via_users_server is not a user ID") from None
        if not ours:
            return pdu
        return sign_event(pdu, self.server_name, self.signing_key, room_version)

    async def on_invite(
        self, origin: str, room_id: str, event_id: str, body: Any
    ) -> dict[str, Any]:
        """`PUT /invite/v2`: another server invites one of our users. We countersign; when we
        are not in the room, the invite is kept for the user's /sync (with the stripped state
        the inviting server sent), otherwise it arrives again with the room's events."""
        if not isinstance(body, dict) or not isinstance(body.get("event"), dict):
            raise bad_json("The body must carry the invite 'event'")
        version_id = body.get("room_version")
        room_version = KNOWN_ROOM_VERSIONS.get(version_id) if isinstance(version_id, str) else None
        if room_version is None:
            raise MatrixError(
                400, "M_INCOMPATIBLE_ROOM_VERSION",
                f"This server does not support room version {version_id!r}",
                room_version=version_id,
            )
        pdu = dict(body["event"])
        content = pdu.get("content")
        target, sender = pdu.get("state_key"), pdu.get("sender")
        if (
            pdu.get("type") != "m.room.member" or pdu.get("room_id") != room_id
            or not isinstance(content, dict) or content.get("membership") != "invite"
            or not isinstance(target, str) or not isinstance(sender, str)
        ):
            raise bad_json("The event must be an invite into this room")
        _require_origin_user(origin, sender)
        _require_origin_user(self.server_name, target)
        try:
            auth_rules.check_event_format(pdu, room_version)
            computed = hashing.compute_event_id(pdu, room_version)
        except InvalidEventError as e:
            raise bad_json(f"The event is malformed: {e}") from None
        try:
            await self.pdus.checker.check_signed_by(pdu, origin, room_version)
        except PduCheckError as e:
            raise forbidden(str(e)) from None
        if not await self.pdus.server_allowed(room_id, origin):
            raise forbidden(f"{origin} is denied by the room's server ACL")
        if await self.db.run(lambda conn: blocked_rooms.get_blocker(conn, room_id)):
            raise forbidden("This room has been blocked on this server")
        if computed != event_id:
            raise bad_json("The event ID in the path is not the event's")
        signed = sign_event(pdu, self.server_name, self.signing_key, room_version)
        if not await self._resident_quietly(room_id):
            kept = _with_stripped_state(signed, body.get("invite_room_state"))
            await self.memberships.store_out_of_band(room_id, room_version, kept)
        return {"event": signed}

    async def on_invite_v1(
        self, origin: str, room_id: str, event_id: str, pdu: Any
    ) -> dict[str, Any]:
        """`PUT /invite/v1`: the body is the event itself, its stripped state in `unsigned`,
        and no room version. The spec says to assume version 1 or 2, which this server does
        not support; so the version is that of the room when we are in it, else the one the
        stripped `m.room.create` names (which the spec requires among the stripped state);
        lacking both, "1", which on_invite refuses with M_INCOMPATIBLE_ROOM_VERSION."""
        if not isinstance(pdu, dict):
            raise bad_json("The body must be the invite event")
        unsigned = pdu.get("unsigned")
        stripped = unsigned.get("invite_room_state") if isinstance(unsigned, dict) else None
        version = await self._invited_room_version(room_id, stripped)
        return await self.on_invite(origin, room_id, event_id, {
            "event": pdu, "room_version": version, "invite_room_state": stripped,
        })

    async def _invited_room_version(self, room_id: str, stripped: Any) -> str:
        try:
            version = await self.db.run(lambda c: self.engine.room_version(c, room_id))
            return version.identifier
        except MatrixError:
            pass
        for event in stripped if isinstance(stripped, list) else []:
            if isinstance(event, dict) and event.get("type") == "m.room.create":
                content = event.get("content")
                named = content.get("room_version", "1") if isinstance(content, dict) else "1"
                return named if isinstance(named, str) else "1"
        return "1"

    async def _resident_quietly(self, room_id: str) -> bool:
        try:
            await self._require_resident(room_id, self.server_name)
        except MatrixError:
            return False
        return True

    async def _require_resident(self, room_id: str, origin: str) -> RoomVersion:
        """The room's version, when this server is in the room and the origin may take part."""
        async def read(conn: Any) -> tuple[RoomVersion, set[str]]:
            return (
                await self.engine.room_version(conn, room_id),
                await self.engine.joined_members(conn, room_id),
            )

        try:
            room_version, members = await self.db.run(read)
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
                conn, room_id, [MEMBER_LIMIT]
            )
            pdus = await self.engine.get_pdus(conn, list(ids.values()))
            state = {k: pdus[i] for k, i in ids.items() if i in pdus}
            return await self.incoming.exceeded_member_limit(conn, room_id, pdu, state)

        limit = await self.db.run(check)
        if limit is not None:
            raise room_full_error(limit)

    async def _join_answer(self, room_id: str, event_id: str) -> dict[str, Any]:
        async def read(conn: Any) -> dict[str, Any]:
            stored = (await events_store.get_events(conn, [event_id]))[event_id]
            state = await state_before_event(conn, stored)
            room_version = await self.engine.room_version(conn, room_id)
            chain = [e.event_id for e in await auth_chain_events(
                conn, room_id, room_version, [*state.values(), event_id]
            )]
            pdus = await redact_erased(conn, self.engine, room_version, await self.engine.get_pdus(
                conn, [event_id, *state.values(), *chain]
            ))
            members = await self.engine.joined_members(conn, room_id)
            return {
                "origin": self.server_name,
                "event": pdus[event_id],
                "state": [pdus[i] for i in state.values() if i in pdus],
                "auth_chain": [pdus[i] for i in chain if i in pdus],
                "members_omitted": False,
                "servers_in_room": sorted({server_name_of(m) for m in members}),
            }

        answer: dict[str, Any] = await self.db.run(read)
        return answer

    # ---- our user joining a room that lives elsewhere ----------------------------------------

    async def join_remote(
        self, room_id: str, user_id: str, content: Mapping[str, Any], servers: Sequence[str]
    ) -> None:
        """Join `room_id` through the first of `servers` that lets us; MatrixError otherwise
        (the last server's refusal, or 404 when none could be reached)."""
        await self._through_first(
            servers, f"No server could help joining {room_id}",
            lambda server: self._join_via(server, room_id, user_id, content),
        )

    async def knock_remote(
        self, room_id: str, user_id: str, content: Mapping[str, Any], servers: Sequence[str]
    ) -> None:
        """Knock on `room_id` through the first of `servers` that takes it (make_knock, then
        send_knock); MatrixError otherwise, as for a join."""
        await self._through_first(
            servers, f"No server could help knocking on {room_id}",
            lambda server: self._knock_via(server, room_id, user_id, content),
        )

    async def leave_remote(self, room_id: str, user_id: str, servers: Sequence[str]) -> None:
        """Leave a room this server is not in (reject an invite, withdraw a knock) through one
        of `servers`: make_leave, then send_leave; the leave is kept for the user's /sync.

        When none of them helps (unreachable, hanging past `LEAVE_ATTEMPT_TIMEOUT_S`, or no
        longer in the room), an invite or a knock is rejected here alone, as Synapse does: else
        an invite nobody can take back would stay in the user's /sync for ever."""
        async def attempt(server: str) -> None:
            async with asyncio.timeout(LEAVE_ATTEMPT_TIMEOUT_S):
                await self._leave_via(server, room_id, user_id)

        try:
            await self._through_first(
                servers, f"No server could help leaving {room_id}", attempt
            )
        except MatrixError as e:
            if not await self._leave_alone(room_id, user_id):
                raise
            log.info("left %s without its servers (%s): %s", room_id, ", ".join(servers), e)

    async def _leave_alone(self, room_id: str, user_id: str) -> bool:
        """Our user's leave after their invite or knock, made and kept here only (an out of
        band membership: no other server sees it); False when they hold neither."""
        async def read(conn: Any) -> tuple[RoomVersion, dict[str, Any], str] | None:
            row = await state_store.get_membership(conn, room_id, user_id)
            if row is None or row["membership"] not in ("invite", "knock"):
                return None
            event_id = str(row["event_id"])
            pdu = (await self.engine.get_pdus(conn, [event_id])).get(event_id)
            if pdu is None:
                return None
            return await self.engine.room_version(conn, room_id), pdu, event_id

        found = await self.db.run(read)
        if found is None:
            return False
        room_version, previous, previous_id = found
        # Its only ancestor is the membership it ends, whose auth events authorise it too.
        previous_ref = event_reference(previous_id, previous, room_version)
        _, leave = self._build(room_version, room_id, user_id, user_id, {
            "content": {"membership": "leave"}, "prev_events": [previous_ref],
            "auth_events": [*previous["auth_events"], previous_ref],
            "depth": int(previous["depth"]) + 1,
        })
        await self.memberships.store_out_of_band(room_id, room_version, leave)
        return True

    async def invite_remote(
        self, room_id: str, inviter: str, invitee: str, content: Mapping[str, Any]
    ) -> None:
        """Invite a user of another server: their server countersigns the invite before we
        persist it and send it to the room (server-server-api.md "Inviting to a room")."""
        room_version, template = await self.local.template(
            room_id, inviter, "m.room.member", {**content, "membership": "invite"}, invitee
        )
        event_id, pdu = self._build(room_version, room_id, inviter, invitee, template)
        stripped = await self.db.run(
            lambda c: stripped_state(c, self.engine, room_id, inviter)
        )
        server = server_name_of(invitee)

        async def ask(server: str) -> dict[str, Any]:
            answer = await self.client.put_json(
                server, f"{V2}/invite/{path_segment(room_id)}/{path_segment(event_id)}",
                {"event": pdu, "room_version": room_version.identifier,
                 "invite_room_state": stripped},
            )
            return await self._with_signature_of(
                server, pdu, _field(answer, "event"), room_version
            )

        signed = await self._through_first([server], f"{server} cannot be reached", ask)
        received = await self.incoming.receive(room_id, signed, federate=True)
        if received.outcome not in (Outcome.ACCEPTED, Outcome.KNOWN):
            raise forbidden(f"The invite was not accepted: {received.reason}")

    async def _through_first(
        self, servers: Sequence[str], none_found: str,
        attempt: Callable[[str], Awaitable[T]],
    ) -> T:
        """The result of `attempt` with the first server that succeeds. Every failure of a
        server, whatever it is, becomes a MatrixError for the client (the server's own refusal
        as it said it, anything else 502) and the next server is tried."""
        error: MatrixError = not_found(none_found)
        for server in dict.fromkeys(s for s in servers if s != self.server_name):
            try:
                return await attempt(server)
            except HttpResponseError as e:
                body = e.body if isinstance(e.body, dict) else {}
                error = MatrixError(
                    e.status if 400 <= e.status < 500 else 502,
                    str(body.get("errcode") or "M_UNKNOWN"),
                    f"{server}: {body.get('error') or e}",
                )
            except MatrixError as e:
                error = e
            except Exception as e:  # a peer's malformed answer must not become our 500
                log.info("asking %s failed: %r", server, e)
                error = MatrixError(502, "M_UNKNOWN", f"{server} failed: {e}")
        raise error

    async def _with_signature_of(
        self, server: str, ours: dict[str, Any], returned: Any, room_version: RoomVersion
    ) -> dict[str, Any]:
        """Our event with `server`'s signature from the copy it returned, checked. Nothing else
        of the returned copy is taken: the event ID does not cover everything in it."""
        signatures = returned.get("signatures") if isinstance(returned, dict) else None
        theirs = signatures.get(server) if isinstance(signatures, dict) else None
        if not isinstance(theirs, dict):
            raise PduCheckError(f"{server} did not sign the event")
        merged = {**ours, "signatures": {**ours.get("signatures", {}), server: theirs}}
        await self.pdus.checker.check_signed_by(merged, server, room_version)
        return merged

    def _build(
        self, room_version: RoomVersion, room_id: str, sender: str, target: str,
        template: Any,
    ) -> tuple[str, dict[str, Any]]:
        """Our signed event from a template (ours or a resident's)."""
        if not isinstance(template, dict):
            raise PduCheckError("the template is not an object")
        event_id, pdu = events.build_event(
            room_version=room_version, room_id=room_id, sender=sender,
            event_type="m.room.member", content=dict(template.get("content", {})),
            state_key=target, prev_events=list(template["prev_events"]),
            auth_events=list(template["auth_events"]), depth=int(template["depth"]),
            origin_server_ts=self.clock.now_ms(), server_name=self.server_name,
            signing_key=self.signing_key, event_id=self.local.new_event_id(room_version),
        )
        return event_id, pdu

    async def _template(
        self, server: str, kind: str, room_id: str, user_id: str
    ) -> tuple[RoomVersion, dict[str, Any]]:
        """A resident's make_join/make_knock/make_leave answer: the room version and the
        template."""
        answer = await self.client.get_json(
            server, f"{V1}/make_{kind}/{path_segment(room_id)}/{path_segment(user_id)}",
            {"ver": list(KNOWN_ROOM_VERSIONS)} if kind != "leave" else None,
        )
        version = _field(answer, "room_version")
        room_version = KNOWN_ROOM_VERSIONS.get(version) if isinstance(version, str) else None
        if room_version is None:
            raise MatrixError(
                400, "M_UNSUPPORTED_ROOM_VERSION", f"Room version {version!r} is not supported"
            )
        template = _field(answer, "event")
        if not isinstance(template, dict):
            raise PduCheckError("the template is not an object")
        return room_version, template

    async def _join_via(
        self, server: str, room_id: str, user_id: str, content: Mapping[str, Any]
    ) -> None:
        room_version, event_id, pdu = await self._signed_from_template(
            server, "join", room_id, user_id, content
        )
        joined = pdu["content"]
        sent = await self.client.put_json(
            server, f"{V2}/send_join/{path_segment(room_id)}/{path_segment(event_id)}", pdu
        )
        authoriser = joined.get(AUTHORISER)
        if isinstance(authoriser, str):  # a restricted join needs the authoriser's signature
            pdu = await self._with_signature_of(
                server_name_of(authoriser), pdu, _field(sent, "event"), room_version
            )
        state = await self.pdus.checked(_list(sent, "state"), room_version)
        chain = await self.pdus.checked(_list(sent, "auth_chain"), room_version)
        received = await self.memberships.join_room(room_id, room_version, pdu, state, chain)
        if received.outcome not in (Outcome.ACCEPTED, Outcome.KNOWN):
            raise PduError(f"our join was {received.outcome.value}: {received.reason}")

    async def _signed_from_template(
        self, server: str, membership: str, room_id: str, user_id: str,
        content: Mapping[str, Any],
    ) -> tuple[RoomVersion, str, dict[str, Any]]:
        """Our user's `membership` event built on `server`'s template, with the client's
        `content` over the template's: the room version, its event ID and the signed event."""
        room_version, template = await self._template(server, membership, room_id, user_id)
        template_content = template.get("content")
        merged = {
            **(template_content if isinstance(template_content, dict) else {}), **content,
            "membership": membership,
        }
        event_id, pdu = self._build(
            room_version, room_id, user_id, user_id, {**template, "content": merged}
        )
        return room_version, event_id, pdu

    async def _knock_via(
        self, server: str, room_id: str, user_id: str, content: Mapping[str, Any]
    ) -> None:
        """The knock handshake with one resident. The knock is kept out of band (this server
        holds no state of the room) with the `knock_room_state` the resident answered, which
        the user's /sync shows as its `knock_state`, as an invite's stripped state."""
        room_version, event_id, pdu = await self._signed_from_template(
            server, "knock", room_id, user_id, content
        )
        sent = await self.client.put_json(
            server, f"{V1}/send_knock/{path_segment(room_id)}/{path_segment(event_id)}", pdu
        )
        kept = _with_stripped_state(pdu, _field(sent, "knock_room_state"))
        await self.memberships.store_out_of_band(room_id, room_version, kept)

    async def _leave_via(self, server: str, room_id: str, user_id: str) -> None:
        room_version, template = await self._template(server, "leave", room_id, user_id)
        event_id, pdu = self._build(room_version, room_id, user_id, user_id, template)
        await self.client.put_json(
            server, f"{V2}/send_leave/{path_segment(room_id)}/{path_segment(event_id)}", pdu
        )
        await self.memberships.store_out_of_band(room_id, room_version, pdu)


def _with_stripped_state(pdu: Mapping[str, Any], stripped: Any) -> dict[str, Any]:
    """`pdu` with another server's stripped state of the room (an invite's
    `invite_room_state`, a knock's `knock_room_state`) in its `unsigned.invite_room_state`,
    where the user's /sync reads it; bounded, and only its objects."""
    kept = dict(pdu)
    if isinstance(stripped, list):
        kept["unsigned"] = {
            **(kept.get("unsigned") or {}),
            "invite_room_state": [
                e for e in stripped[:_MAX_STRIPPED_STATE] if isinstance(e, dict)
            ],
        }
    return kept


def _field(answer: Any, key: str) -> Any:
    if not isinstance(answer, dict):
        raise PduCheckError("the answer is not a JSON object")
    return answer.get(key)


def _list(answer: Any, key: str) -> list[Any]:
    value = _field(answer, key)
    return value if isinstance(value, list) else []


def _require_origin_user(origin: str, user_id: str) -> None:
    try:
        server = server_name_of(user_id)
    except ValueError:
        raise bad_json(f"{user_id!r} is not a user ID") from None
    if server != origin:
        raise forbidden(f"{user_id} is not a user of {origin}")

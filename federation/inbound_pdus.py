"""Received PDUs on their way into the room cluster: the checks that need keys, then whatever
the event names that we lack, fetched from the server that sent it.

Theory of operation. `on_room_pdus` checks the room, the room's server ACL, the signatures and
the content hash (`pdu_checks`) of a transaction's PDUs of one room, and hands those that pass
to `RemoteEvents.receive_batch`, which writes them together. An event that answers
MissingEvents then takes the one-at-a-time path:

- missing *auth* events: the event's auth chain is fetched (`/event_auth`), checked and stored
  as outliers, then the event is tried again;
- missing *prev* events: the gap is asked for once (`/get_missing_events` between our forward
  extremities and the event, at most ten events); what comes back takes this same path, oldest
  first, without asking again;
- prev events still missing after that, for an event *pushed* to us (a transaction, a
  send_join): the event is refused, not stored. Its sender holds its prev events and would not
  hand them over, so the state before it cannot be established; taking that server's word for
  the state there would let it make the event a head of the room on a state of its choosing
  (Synapse refuses such an event too: "Your server isn't divulging details about prev_events");
- prev events still missing for an event *pulled* by us (the oldest of a gap, backfill): the
  state after each of them is fetched (`/state` and `/event`), its events stored as outliers,
  and the event is persisted on top of that state. A prev event that does not come back as
  asked (another event, another room's, one that fails its checks) leaves no state to judge
  the event by: it is refused.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import asyncpg

from federation.client import FederationClient, path_segment
from federation.pdu_checks import PduChecker, PduCheckError
from federation.transport import FederationError
from homeserver import metrics
from homeserver.errors import MatrixError
from homeserver.protocol.event_refs import referenced_event_ids
from homeserver.protocol.hashing import compute_event_id, create_event_id
from homeserver.protocol.room_versions import RoomVersion
from homeserver.protocol.server_acl import server_allowed
from homeserver.services.rooms.checks import MissingEvents
from homeserver.services.rooms.outliers import Outliers
from homeserver.services.rooms.remote import Outcome, Received, RemoteEvents, state_map
from homeserver.services.rooms.view import RoomView
from storage import events as events_store
from storage import state as state_store
from storage.database import Database
from storage.state import StateMap

log = logging.getLogger(__name__)

# Failures that say nothing about the PDUs: the database or a peer was out of reach. They fail
# the transaction (500), so that its sender keeps it and tries again later.
TRANSIENT = (
    asyncpg.InterfaceError, asyncpg.PostgresConnectionError,
    asyncpg.SerializationError, asyncpg.DeadlockDetectedError, ConnectionError, TimeoutError,
)

# Received PDUs by outcome (see `metrics.FEDERATION_INBOUND_PDUS`), bound once.
_RECEIVED = {o: metrics.FEDERATION_INBOUND_PDUS.labels(o) for o in metrics.PDU_OUTCOMES}
IGNORED, REFUSED = _RECEIVED["ignored"], _RECEIVED["refused"]
_BY_OUTCOME = {
    Outcome.ACCEPTED: _RECEIVED["accepted"], Outcome.SOFT_FAILED: _RECEIVED["soft_failed"],
    Outcome.REJECTED: _RECEIVED["rejected"], Outcome.KNOWN: _RECEIVED["duplicate"],
}

_GAP_LIMIT = 10
_ATTEMPTS = 4
V1 = "/_matrix/federation/v1"


class PduError(Exception):
    """The PDU was not persisted; the message goes back to its sender (under `event_id`, when
    the event was sound enough to have one)."""

    def __init__(self, message: str, event_id: str | None = None) -> None:
        super().__init__(message)
        self.event_id = event_id


class InboundPdus:
    def __init__(
        self, db: Database, engine: RoomView, incoming: RemoteEvents, outliers: Outliers,
        checker: PduChecker, client: FederationClient,
    ) -> None:
        self.db = db
        self.engine = engine
        self.incoming = incoming
        self.outliers = outliers
        self.checker = checker
        self.client = client

    async def room_version(self, room_id: str) -> RoomVersion | None:
        try:
            return await self.db.run(lambda c: self.engine.room_version(c, room_id))
        except MatrixError:
            return None

    async def server_allowed(self, room_id: str, server: str) -> bool:
        """Whether the room's m.room.server_acl admits `server`."""
        return await self.db.run(lambda c: self._acl_allows(c, room_id, server))

    async def _acl_allows(self, conn: Any, room_id: str, server: str) -> bool:
        event_id = await state_store.get_current_state_event_id(
            conn, room_id, ("m.room.server_acl", "")
        )
        if event_id is None:
            return server_allowed(None, server)
        acl = (await self.engine.get_pdus(conn, [event_id])).get(event_id, {}).get("content")
        return server_allowed(acl, server)

    async def _admission(self, room_id: str, origin: str) -> tuple[RoomVersion, bool] | None:
        """The room's version and whether its ACL admits `origin`; None when this server is not
        in the room. One pooled connection for the three reads: this runs for every PDU, and
        each connection taken from the pool costs a wait on a busy server."""
        async def read(conn: Any) -> tuple[RoomVersion, bool] | None:
            try:
                version = await self.engine.room_version(conn, room_id)
            except MatrixError:
                return None
            members = await self.engine.joined_members(conn, room_id)
            if not any(self.engine.is_local(m) for m in members):
                return None
            return version, await self._acl_allows(conn, room_id, origin)

        return await self.db.run(read)

    async def on_room_pdus(
        self, origin: str, room_id: str, pdus: Sequence[Mapping[str, Any]]
    ) -> dict[str, dict[str, str]]:
        """Check and persist the PDUs of one room from one transaction, oldest first; the
        answer's `pdus` entries for them ({} or {"error": ...}). Those whose checks pass are
        written together (`RemoteEvents.receive_batch`); an event that names what we lack
        then takes the one-at-a-time path that fetches it."""
        admission = await self._admission(room_id, origin)
        results: dict[str, dict[str, str]] = {}
        if admission is None:
            # Known from an invite only, or left: its state here is nothing to judge by.
            IGNORED.inc(len(pdus))
            return results
        room_version, allowed = admission
        checked: list[tuple[str, dict[str, Any]]] = []
        for pdu in pdus:
            try:
                event_id: str = compute_event_id(pdu, room_version)
            except Exception:  # anything unhashable is malformed: no ID to answer under
                IGNORED.inc()
                continue
            if not allowed:
                REFUSED.inc()
                results[event_id] = {"error": f"{origin} is denied by the room's server ACL"}
                continue
            try:
                checked.append((event_id, await self.checker.check(pdu, room_version)))
            except PduCheckError as e:
                REFUSED.inc()
                results[event_id] = {"error": str(e)}
        try:
            outcomes: Sequence[Received | MissingEvents | MatrixError] = (
                await self.incoming.receive_batch(room_id, [p for _, p in checked])
            )
        except TRANSIENT:
            raise
        except Exception:
            log.exception("a batch of %d events of %s failed; one by one", len(checked), room_id)
            outcomes = [MissingEvents([]) for _ in checked]  # the one-at-a-time path
        for (event_id, pdu), outcome in zip(checked, outcomes, strict=True):
            if isinstance(outcome, MissingEvents):
                try:
                    outcome = await self._persist(
                        origin, room_id, pdu, room_version, True, False, False
                    )
                except MatrixError as e:
                    outcome = e
                except (MissingEvents, FederationError) as e:
                    REFUSED.inc()
                    results[event_id] = {"error": f"could not fetch what it refers to: {e}"}
                    continue
                except TRANSIENT:
                    raise
                except Exception:
                    # A bug of ours on one event must not cost the room's other events.
                    log.exception("event %s of %s could not be processed", event_id, room_id)
                    REFUSED.inc()
                    results[event_id] = {"error": "the event could not be processed"}
                    continue
            if isinstance(outcome, MatrixError):
                REFUSED.inc()
                results[event_id] = {"error": outcome.error}
                continue
            _BY_OUTCOME[outcome.outcome].inc()
            if outcome.outcome is Outcome.REJECTED:
                results[event_id] = {"error": outcome.reason or "rejected"}
            else:
                results[event_id] = {}
        return results

    async def check_and_persist(
        self, origin: str, room_id: str, pdu: Mapping[str, Any], room_version: RoomVersion,
        *, fetch_gap: bool = True, federate: bool = False, historical: bool = False,
    ) -> Received:
        """`fetch_gap`: the event was pushed to us (a send_join): a gap before it is asked
        for, and prev events still missing then refuse it; False for an event we pulled, which
        is built on the state fetched at its missing prev events. `historical`: an event from
        before our join (backfill), kept out of the stream."""
        try:
            checked = await self.checker.check(pdu, room_version)
        except PduCheckError as e:
            raise PduError(str(e)) from None
        try:
            return await self._persist(
                origin, room_id, checked, room_version, fetch_gap, federate, historical
            )
        except MatrixError as e:
            raise PduError(e.error) from None
        except (MissingEvents, FederationError) as e:
            raise PduError(f"could not fetch what the event refers to: {e}") from None

    async def _persist(
        self, origin: str, room_id: str, pdu: dict[str, Any], room_version: RoomVersion,
        fetch_gap: bool, federate: bool, historical: bool,
    ) -> Received:
        event_id = compute_event_id(pdu, room_version)
        pushed = fetch_gap  # pulled events (a gap, backfill) come without asking for more
        auth_ids = set(referenced_event_ids(pdu.get("auth_events")))
        if room_version.room_id_from_create_event:
            auth_ids.add(create_event_id(room_id))
        fetched_auth = False
        for _ in range(_ATTEMPTS):
            try:
                return await self.incoming.receive(
                    room_id, pdu, federate=federate, historical=historical
                )
            except MissingEvents as e:
                missing = set(e.event_ids)
            if missing & auth_ids and not fetched_auth:
                fetched_auth = True
                await self._fetch_auth_chain(origin, room_id, event_id, room_version)
            elif fetch_gap:
                fetch_gap = False
                await self._fill_gap(origin, room_id, event_id, room_version)
            elif pushed:
                raise MissingEvents(sorted(missing))  # see the module's docstring
            else:
                states = await self._states_after(origin, room_id, sorted(missing), room_version)
                return await self.incoming.receive(
                    room_id, pdu, prev_states=states, federate=federate, historical=historical
                )
        raise MissingEvents(sorted(missing))

    async def checked(
        self, pdus: Sequence[Any], room_version: RoomVersion
    ) -> list[dict[str, Any]]:
        """The PDUs whose signatures verify (as kept: redacted on a bad content hash)."""
        out = []
        for pdu in pdus:
            if not isinstance(pdu, dict):
                continue
            try:
                out.append(await self.checker.check(pdu, room_version))
            except PduCheckError as e:
                log.info("dropping a fetched event: %s", e)
        return out

    async def _fetch_auth_chain(
        self, origin: str, room_id: str, event_id: str, room_version: RoomVersion
    ) -> None:
        path = f"{V1}/event_auth/{path_segment(room_id)}/{path_segment(event_id)}"
        answer = await self.client.get_json(origin, path)
        chain = answer.get("auth_chain") if isinstance(answer, dict) else None
        if isinstance(chain, list):
            await self.outliers.store(room_id, await self.checked(chain, room_version))

    async def _fill_gap(
        self, origin: str, room_id: str, event_id: str, room_version: RoomVersion
    ) -> None:
        heads = await self.db.run(
            lambda c: events_store.get_forward_extremities(c, room_id)
        )
        answer = await self.client.post_json(
            origin, f"{V1}/get_missing_events/{path_segment(room_id)}", {
                "earliest_events": [h.event_id for h in heads], "latest_events": [event_id],
                "limit": _GAP_LIMIT, "min_depth": 0,
            },
        )
        found = answer.get("events") if isinstance(answer, dict) else None
        if not isinstance(found, list):
            return
        events = [e for e in found if isinstance(e, dict)]
        events.sort(key=lambda e: e.get("depth", 0) if isinstance(e.get("depth"), int) else 0)
        for event in events:
            try:
                await self.check_and_persist(
                    origin, room_id, event, room_version, fetch_gap=False
                )
            except PduError as e:
                log.info("an event of the gap before %s was not persisted: %s", event_id, e)

    async def _states_after(
        self, origin: str, room_id: str, prev_ids: Sequence[str], room_version: RoomVersion
    ) -> dict[str, StateMap]:
        """The state after each of `prev_ids`, fetched from `origin` (its events stored)."""
        states: dict[str, StateMap] = {}
        for prev_id in prev_ids:
            room = path_segment(room_id)
            answer = await self.client.get_json(
                origin, f"{V1}/state/{room}", {"event_id": prev_id}
            )
            event = await self.client.get_json(origin, f"{V1}/event/{path_segment(prev_id)}")
            if not isinstance(answer, dict) or not isinstance(event, dict):
                raise FederationError(f"{origin} sent no state for {prev_id}")
            state = await self.checked(answer.get("pdus") or [], room_version)
            chain = await self.checked(answer.get("auth_chain") or [], room_version)
            prev = [
                p for p in await self.checked(event.get("pdus") or [], room_version)
                if compute_event_id(p, room_version) == prev_id
            ]
            accepted = await self.outliers.store(room_id, [*chain, *state, *prev])
            if prev_id not in accepted:
                # Not this room's, or failing its auth events: no state to build on.
                raise FederationError(f"{origin} sent no acceptable event {prev_id}")
            states[prev_id] = state_map([*state, *prev], room_version, accepted)
        return states

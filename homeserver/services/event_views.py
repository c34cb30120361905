"""How stored events look to a client: the ClientEvent format and who may see them.

Both /sync and the room read endpoints go through these two functions, so redaction,
`unsigned` fields and history visibility are decided in exactly one place.

Erased senders (spec "Account deactivation", `erase`: their events are not to be shown "to
users who join the room later"): `filter_visible` marks an erased user's event that the
reader may see but was not joined at (Synapse's `filter_events_for_client` prunes the same
ones), and `serialize_events` serves it redacted; members who were joined when it was sent
see it as before.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import asyncpg

from homeserver.protocol import events as protocol_events
from homeserver.protocol.redaction import redact_event
from homeserver.protocol.retention import expired
from homeserver.protocol.state_keys import StateKey
from homeserver.services.ignored_users import ignored_users
from homeserver.services.requester import Requester
from homeserver.services.rooms.extremities import DUMMY_EVENT
from homeserver.services.rooms.view import Membership, RoomView
from storage import state as state_store
from storage.events import StoredEvent, get_events, get_last_departure


async def serialize_events(
    conn: asyncpg.Connection, engine: RoomView, stored: Sequence[StoredEvent],
    viewer: Requester | None, *, now: int, federation: bool = False,
) -> list[dict[str, Any]]:
    """Client-format events with `unsigned.age` (as of ``now``, ms), `transaction_id` (for the
    viewer's own device), `prev_content` of replaced state, and redactions applied;
    `federation`: the PDUs as federation has them (a filter's `event_format`), with their event
    ID, room ID (a v12 create event carries none) and these `unsigned` fields."""
    if not stored:
        return []
    extra_ids = [e.replaces_state for e in stored if e.replaces_state]
    extra_ids += [e.redacted_by for e in stored if e.redacted_by]
    pdus = await engine.get_pdus(conn, [e.event_id for e in stored] + extra_ids)
    txn_ids: dict[str, str] = {}
    if viewer is not None:
        own = [e.event_id for e in stored if e.sender == viewer.user_id]
        if own:
            txn_ids = await engine.txn_ids(conn, viewer.user_id, viewer.device_id, own)
    out = []
    for event in stored:
        pdu = pdus[event.event_id]
        unsigned: dict[str, Any] = {"age": max(0, now - pdu["origin_server_ts"])}
        if event.event_id in txn_ids:
            unsigned["transaction_id"] = txn_ids[event.event_id]
        if event.redacted_by and event.redacted_by in pdus:
            version = await engine.room_version(conn, event.room_id)
            pdu = redact_event(pdu, version)
            redaction = pdus[event.redacted_by]
            unsigned["redacted_because"] = protocol_events.client_event(
                redaction, event.redacted_by, event.room_id
            )
        elif event.erased_for_reader:
            pdu = redact_event(pdu, await engine.room_version(conn, event.room_id))
        previous = pdus.get(event.replaces_state) if event.replaces_state else None
        if previous is not None:
            unsigned["prev_content"] = previous["content"]
            unsigned["replaces_state"] = event.replaces_state
            unsigned["prev_sender"] = previous["sender"]
        if federation:
            out.append({
                **pdu, "event_id": event.event_id, "room_id": event.room_id,
                "unsigned": unsigned,
            })
        else:
            out.append(
                protocol_events.client_event(pdu, event.event_id, event.room_id, unsigned)
            )
    return out


async def load_events(
    conn: asyncpg.Connection, event_ids: Sequence[str]
) -> list[StoredEvent]:
    """Stored events in the order of `event_ids`, skipping unknown ones."""
    found = await get_events(conn, event_ids)
    return [found[e] for e in event_ids if e in found]


_VISIBLE_ALWAYS = "world_readable"


async def filter_visible(
    conn: asyncpg.Connection, engine: RoomView, user_id: str, stored: Sequence[StoredEvent],
    *, ignored: frozenset[str] | None = None,
) -> list[StoredEvent]:
    """The events `user_id` may see under the rooms' history visibility (spec: "History
    visibility"): world_readable; or joined at the event; or `shared` and joined now; or
    invited at the event under `invited`.

    A user who was joined and has left "joined the room at any point after" every event
    before their leave (until they forget the room): under `shared` they keep seeing those.

    A user always sees their own membership events (a leave or kick judged by the state
    after it would otherwise hide itself). Fast path: a user who is joined now sees
    everything from their current join onwards.

    Dummy events are dropped (`rooms.extremities`), and events other than state events from
    users the reader ignores (spec "Ignoring Users"); `ignored` is that list when the caller
    already read it. So are those that have outlived their room's retention policy
    (`drop_expired`). Events of erased senders that the user was not joined at come back
    marked `erased_for_reader`.
    """
    # Dummy events (merges of a room's heads) say nothing to anyone: Synapse never shows them.
    stored = await drop_expired(conn, engine, [e for e in stored if e.type != DUMMY_EVENT])
    if ignored is None:
        ignored = await ignored_users(conn, user_id)
    if ignored:
        stored = [e for e in stored if e.state_key is not None or e.sender not in ignored]
    by_room: defaultdict[str, list[StoredEvent]] = defaultdict(list)
    for event in stored:
        by_room[event.room_id].append(event)
    visible: set[str] = set()
    erased = await engine.erased(conn, {e.sender for e in stored})
    not_joined: set[str] = set()  # visible events the user was not joined at
    for room_id, events in by_room.items():
        membership = (await engine.memberships(conn, user_id)).get(room_id)
        joined_now = membership is not None and membership.membership == "join"
        join_pos = membership.stream_ordering if joined_now and membership else None
        left_at = await _departure_position(conn, membership)
        checks: defaultdict[int, list[StoredEvent]] = defaultdict(list)
        for event in events:
            own_membership = event.type == "m.room.member" and event.state_key == user_id
            if own_membership or (
                join_pos is not None and (event.stream_ordering or 0) >= join_pos
            ):
                visible.add(event.event_id)
            elif event.state_group is not None:
                checks[event.state_group].append(event)
        keys = [("m.room.history_visibility", ""), ("m.room.member", user_id)]
        for group, group_events in checks.items():
            state = await state_store.get_state_for_keys(conn, group, keys)
            pdus = await engine.get_pdus(conn, list(state.values()))
            hv_pdu = pdus.get(state.get(keys[0], ""))
            member_pdu = pdus.get(state.get(keys[1], ""))
            history = hv_pdu["content"].get("history_visibility", "shared") if hv_pdu else "shared"
            member = member_pdu["content"].get("membership") if member_pdu else None
            if member != "join":
                not_joined.update(e.event_id for e in group_events if e.sender in erased)
            if (
                history == _VISIBLE_ALWAYS
                or member == "join"
                or (history == "shared" and joined_now)
                or (history == "invited" and member == "invite")
            ):
                visible.update(e.event_id for e in group_events)
            elif history == "shared" and left_at is not None:
                visible.update(e.event_id for e in group_events if _before(e, left_at))
    return [
        replace(e, erased_for_reader=True) if e.event_id in not_joined else e
        for e in stored if e.event_id in visible
    ]


async def erased_unless_joined(
    conn: asyncpg.Connection, engine: RoomView, user_id: str, state: dict[StateKey, str],
    stored: Sequence[StoredEvent],
) -> list[StoredEvent]:
    """`stored` (state served beside an event, as /context's) marked `erased_for_reader`
    where the sender is erased and `state`, the state there, does not have `user_id`
    joined."""
    member_id = state.get(("m.room.member", user_id))
    member = (await engine.get_pdus(conn, [member_id]))[member_id] if member_id else None
    if member is not None and member["content"].get("membership") == "join":
        return list(stored)
    erased = await engine.erased(conn, {e.sender for e in stored})
    return [replace(e, erased_for_reader=True) if e.sender in erased else e for e in stored]


async def drop_expired(
    conn: asyncpg.Connection, engine: RoomView, stored: Sequence[StoredEvent]
) -> list[StoredEvent]:
    """The events less those past their room's retention cutoff (MSC1763), which no one is
    served even before the retention sweep purges them."""
    cutoffs = {
        room_id: await engine.expired_before(conn, room_id)
        for room_id in {e.room_id for e in stored}
    }
    aging = [e.event_id for e in stored if e.state_key is None and cutoffs[e.room_id] is not None]
    if not aging:
        return list(stored)
    pdus = await engine.get_pdus(conn, aging)
    return [
        e for e in stored
        if e.event_id not in pdus
        or not expired(pdus[e.event_id]["origin_server_ts"], False, cutoffs[e.room_id])
    ]


async def world_readable(conn: asyncpg.Connection, engine: RoomView, room_id: str) -> bool:
    """Whether the room's current history visibility lets anyone read it."""
    event_id = await state_store.get_current_state_event_id(
        conn, room_id, ("m.room.history_visibility", "")
    )
    if event_id is None:
        return False
    pdu = (await engine.get_pdus(conn, [event_id]))[event_id]
    return bool(pdu["content"].get("history_visibility") == _VISIBLE_ALWAYS)


async def never_a_reader(
    conn: asyncpg.Connection, engine: RoomView, room_id: str, member_event_id: str
) -> bool:
    """Whether a user whose membership is the leave or ban `member_event_id` may read none of
    the room (room_state.yaml 403: "You aren't a member of the room and weren't previously a
    member of the room"): that membership ended no join (a pre-emptive ban, an invite kicked
    or refused) and the room is not world_readable."""
    return (
        await get_last_departure(conn, member_event_id) is None
        and not await world_readable(conn, engine, room_id)
    )


async def _departure_position(
    conn: asyncpg.Connection, membership: Membership | None
) -> int | None:
    """Where a user who was joined and left (not forgotten) stopped being joined, if so."""
    if membership is None or membership.forgotten or membership.membership not in ("leave", "ban"):
        return None
    departure = await get_last_departure(conn, membership.event_id)
    return None if departure is None else departure.stream_ordering


def _before(event: StoredEvent, position: int) -> bool:
    """Whether `event` precedes `position` (historical events, backfilled from before this
    server joined, have no position and precede every join of its users)."""
    return event.stream_ordering is None or event.stream_ordering < position

"""RoomBuilder: make signed events for a room of a given version and keep its state.

A linear room DAG in memory, in the spirit of Dendrite's ``test/room.go``. Every event is
built with ``homeserver.protocol.events.build_event`` (so it is hashed and signed by a
deterministic per-server key), its ``auth_events`` are selected with
``auth_types_for_event``, and before it is applied it must pass both
``check_auth_events_selection`` and ``check_auth_rules`` against the current state. A refused
event raises ``AuthError`` and leaves the room unchanged, so tests read::

    b = RoomBuilder.standard("12", join_rule="invite")  # any version, 1 to 12
    with pytest.raises(AuthError):
        b.join("@bob:b.example")

``make`` builds an event without checking or applying it, for tests that want to poke at
the event first (or to build forks for state resolution).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from unpaddedbase64 import encode_base64

from homeserver.protocol.auth_rules import (
    auth_types_for_event,
    check_auth_events_selection,
    check_auth_rules,
)
from homeserver.protocol.errors import SignatureError
from homeserver.protocol.event_refs import event_reference, referenced_event_ids
from homeserver.protocol.events import build_event
from homeserver.protocol.hashing import compute_room_id
from homeserver.protocol.identifiers import server_name_of
from homeserver.protocol.power_levels import default_power_levels_content
from homeserver.protocol.room_versions import RoomVersion, get_room_version
from homeserver.protocol.signing import (
    SigningKey,
    decode_signing_key_base64,
    key_id,
    sign_event,
    verify_event_signature,
    verify_key_of,
)
from homeserver.protocol.state_keys import StateKey

Event = dict[str, Any]


def server_key(server_name: str) -> SigningKey:
    """A deterministic ed25519 key per server name (seed = sha256 of the name)."""
    seed = encode_base64(hashlib.sha256(server_name.encode()).digest())
    return decode_signing_key_base64("ed25519", "test", seed)


class RoomBuilder:
    def __init__(
        self,
        version: str = "12",
        creator: str = "@alice:a.example",
        *,
        create_content: Mapping[str, Any] | None = None,
        room_id: str | None = None,
    ) -> None:
        self.rv: RoomVersion = get_room_version(version)
        self.creator = creator
        self.state: dict[StateKey, Event] = {}
        self.state_ids: dict[StateKey, str] = {}
        self.events: dict[str, Event] = {}
        self.latest: list[str] = []
        self.depth = 0
        self.ts = 1_000_000
        content: dict[str, Any] = {"room_version": version, **(create_content or {})}
        if not self.rv.implicit_room_creator:
            content.setdefault("creator", creator)
        # Before v12 the room ID's server must be the creator's (auth rule 1.2).
        self.room_id: str | None = None if self.rv.room_id_from_create_event else (
            room_id or f"!room:{server_name_of(creator)}"
        )
        self.create_id = self.send(creator, "m.room.create", content, "")
        if self.rv.room_id_from_create_event:
            self.room_id = compute_room_id(self.events[self.create_id], self.rv)

    @classmethod
    def standard(
        cls,
        version: str = "12",
        creator: str = "@alice:a.example",
        *,
        join_rule: str = "public",
        power_levels: Mapping[str, Any] | None = None,
        create_content: Mapping[str, Any] | None = None,
    ) -> RoomBuilder:
        """create -> creator join -> power levels (createRoom defaults) -> join rules."""
        b = cls(version, creator, create_content=create_content)
        b.join(creator)
        pl = dict(power_levels) if power_levels is not None else default_power_levels_content(
            creator, b.rv, None
        )
        b.set_power_levels(creator, pl)
        b.set_join_rule(creator, join_rule)
        return b

    # -- building and applying ------------------------------------------------------------

    def auth_state(self) -> dict[StateKey, Event]:
        return dict(self.state)

    def make(
        self,
        sender: str,
        event_type: str,
        content: Mapping[str, Any],
        state_key: str | None = None,
        *,
        redacts: str | None = None,
        prev_events: list[str] | None = None,
        state: Mapping[StateKey, str] | None = None,
        ts: int | None = None,
        cosign: str | None = None,
    ) -> tuple[str, Event]:
        """Build (but neither check nor apply) an event on top of the current DAG tip.

        ``cosign`` adds a second server's signature (restricted joins need the authorising
        user's server to sign); signatures do not change the event ID.
        """
        state_ids = dict(state) if state is not None else self.state_ids
        auth_ids = [
            state_ids[k]
            for k in auth_types_for_event(event_type, sender, state_key, content, self.rv)
            if k in state_ids
        ]
        prevs = list(self.latest) if prev_events is None else prev_events
        depth = max((self.events[p]["depth"] for p in prevs), default=0) + 1
        self.ts += 1
        server = server_name_of(sender)
        event_id, pdu = build_event(
            room_version=self.rv,
            room_id=self.room_id,
            sender=sender,
            event_type=event_type,
            content=dict(content),
            state_key=state_key,
            prev_events=[event_reference(i, self.events[i], self.rv) for i in prevs],
            auth_events=[event_reference(i, self.events[i], self.rv) for i in auth_ids],
            depth=depth,
            origin_server_ts=self.ts if ts is None else ts,
            server_name=server,
            signing_key=server_key(server),
            redacts=redacts,
            # Rooms v1-v2: the sending server picks the ID; the timestamp keeps it unique.
            event_id=f"${self.ts}:{server}" if self.rv.event_id_in_pdu else None,
        )
        if cosign is not None:
            pdu = sign_event(pdu, cosign, server_key(cosign), self.rv)
        self.events[event_id] = pdu
        return event_id, pdu

    def check(self, pdu: Mapping[str, Any]) -> None:
        """Run the auth rules for ``pdu`` against the current state (raises AuthError)."""
        auth_events = [self.events[i] for i in referenced_event_ids(pdu["auth_events"])]
        check_auth_events_selection(pdu, auth_events, self.rv)
        check_auth_rules(pdu, self.auth_state(), self.rv, is_signed_by=self.is_signed_by)

    def is_signed_by(self, event: Mapping[str, Any], server: str) -> bool:
        """Whether ``server`` validly signed ``event`` with its test key (the check a server
        makes with the keys it fetched)."""
        key = server_key(server)
        try:
            verify_event_signature(event, server, key_id(key), verify_key_of(key), self.rv)
        except SignatureError:
            return False
        return True

    def apply(self, event_id: str, pdu: Mapping[str, Any]) -> None:
        self.latest = [event_id]
        if "state_key" in pdu:
            key = (pdu["type"], pdu["state_key"])
            self.state[key] = dict(pdu)
            self.state_ids[key] = event_id

    def send(
        self,
        sender: str,
        event_type: str,
        content: Mapping[str, Any],
        state_key: str | None = None,
        *,
        redacts: str | None = None,
        cosign: str | None = None,
    ) -> str:
        """Build, authorise and apply an event; return its event ID."""
        event_id, pdu = self.make(
            sender, event_type, content, state_key, redacts=redacts, cosign=cosign
        )
        self.check(pdu)
        self.apply(event_id, pdu)
        return event_id

    # -- vocabulary -----------------------------------------------------------------------

    def member(self, sender: str, target: str, membership: str, **extra: Any) -> str:
        return self.send(sender, "m.room.member", {"membership": membership, **extra}, target)

    def join(self, user: str, *, cosign: bool = True, **extra: Any) -> str:
        """Join; with ``join_authorised_via_users_server`` its server co-signs by default."""
        via = extra.get("join_authorised_via_users_server")
        server = server_name_of(via) if cosign and isinstance(via, str) else None
        content = {"membership": "join", **extra}
        return self.send(user, "m.room.member", content, user, cosign=server)

    def invite(self, sender: str, target: str, **extra: Any) -> str:
        return self.member(sender, target, "invite", **extra)

    def leave(self, user: str) -> str:
        return self.member(user, user, "leave")

    def kick(self, sender: str, target: str) -> str:
        return self.member(sender, target, "leave")

    def ban(self, sender: str, target: str) -> str:
        return self.member(sender, target, "ban")

    def knock(self, user: str) -> str:
        return self.member(user, user, "knock")

    def set_power_levels(self, sender: str, content: Mapping[str, Any]) -> str:
        return self.send(sender, "m.room.power_levels", content, "")

    def set_join_rule(self, sender: str, rule: str, allow: list[Any] | None = None) -> str:
        content: dict[str, Any] = {"join_rule": rule}
        if allow is not None:
            content["allow"] = allow
        return self.send(sender, "m.room.join_rules", content, "")

    def message(self, sender: str, body: str = "hello") -> str:
        return self.send(sender, "m.room.message", {"msgtype": "m.text", "body": body})

    def power_levels(self) -> dict[str, Any]:
        return dict(self.state[("m.room.power_levels", "")]["content"])

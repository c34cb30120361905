"""Simplified Sliding Sync (MSC4186, as served at `org.matrix.simplified_msc3575/sync`): the
request body, the per-connection state a `pos` names, and the pure rules over both.

Theory of operation. A client keeps a *connection* (per device and `conn_id`) and sends its
whole configuration in every request (nothing is sticky): named lists of rooms, sorted by
recency, of which it wants the rooms in `ranges`; explicit `room_subscriptions`; extensions.
Each room the response covers is described with the union of the configurations that name it
(`combine`). What the server already sent on the connection (`ConnectionState`: which rooms,
with which configuration and lazy-loaded members, and whether each is still followed live) is
what makes the next response a delta; it is immutable, so a `pos` names one exactly.

`ValueError`s raised here carry a message fit for the client: the route answers 400.
"""

from __future__ import annotations

import base64
import hmac
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from homeserver.protocol.identifiers import is_valid_room_id

STATE_WILDCARD = "*"
LAZY = "$LAZY"  # state key: the members of the timeline's senders
ME = "$ME"  # state key: the syncing user
MEMBER = "m.room.member"

# Bounds on what one request may ask for (all far above what clients send).
MAX_LISTS = 100
MAX_RANGES = 100
MAX_REQUIRED_STATE = 1000
MAX_SUBSCRIPTIONS = 1000
MAX_NAME_LENGTH = 255
MAX_LIST_NAME_LENGTH = 64  # as the reference server
MAX_TIMELINE_LIMIT = 100  # as /sync: a larger limit is served as this one
MAX_TO_DEVICE_LIMIT = 100
MAX_INDEX = 2**53 - 1  # the largest integer JSON carries exactly

EXTENSIONS = ("to_device", "e2ee", "account_data", "receipts", "typing")
# The event types that move a room up a list (MSC4186 "bump_stamp").
BUMP_TYPES = (
    "m.room.create", "m.room.message", "m.room.encrypted", "m.sticker", "m.call.invite",
    "m.poll.start", "m.beacon_info",
)

StatePair = tuple[str, str]


@dataclass(frozen=True, slots=True)
class RoomConfig:
    """What the client wants of one room: the newest `timeline_limit` events and the state
    entries `required_state` names."""

    timeline_limit: int = 0
    required_state: frozenset[StatePair] = frozenset()


@dataclass(frozen=True, slots=True)
class ListFilters:
    """None: not filtered on. `room_types` None: any type; a None entry is an untyped room."""

    is_dm: bool | None = None
    is_encrypted: bool | None = None
    is_invite: bool | None = None
    room_types: frozenset[str | None] | None = None
    not_room_types: frozenset[str | None] = frozenset()

    @property
    def reads_state(self) -> bool:
        """Whether applying the filters needs the rooms' create or encryption events."""
        return (
            self.is_encrypted is not None or self.room_types is not None
            or bool(self.not_room_types)
        )


@dataclass(frozen=True, slots=True)
class ListConfig:
    ranges: tuple[tuple[int, int], ...] | None  # None: every room of the list
    room: RoomConfig
    filters: ListFilters


@dataclass(frozen=True, slots=True)
class ExtensionConfig:
    """`lists`/`rooms`: which lists' rooms and which subscriptions it covers ("*": all)."""

    enabled: bool = False
    lists: tuple[str, ...] = (STATE_WILDCARD,)
    rooms: tuple[str, ...] = (STATE_WILDCARD,)
    since: int | None = None  # to_device: every message up to here was received
    limit: int = MAX_TO_DEVICE_LIMIT  # to_device

    def scope(
        self, list_rooms: Mapping[str, list[str]], subscribed: Iterable[str]
    ) -> set[str]:
        """The rooms of this response the extension reports on."""
        subscribed = set(subscribed)
        out: set[str] = set()
        for name in self.lists:
            names = list(list_rooms) if name == STATE_WILDCARD else [name]
            for each in names:
                out.update(list_rooms.get(each, ()))
        for room_id in self.rooms:
            out.update(subscribed if room_id == STATE_WILDCARD else subscribed & {room_id})
        return out


@dataclass(frozen=True, slots=True)
class Extensions:
    to_device: ExtensionConfig = ExtensionConfig()
    e2ee: ExtensionConfig = ExtensionConfig()
    account_data: ExtensionConfig = ExtensionConfig()
    receipts: ExtensionConfig = ExtensionConfig()
    typing: ExtensionConfig = ExtensionConfig()

    @property
    def any_enabled(self) -> bool:
        return any(getattr(self, name).enabled for name in EXTENSIONS)


@dataclass(frozen=True, slots=True)
class SlidingSyncRequest:
    conn_id: str = ""
    lists: Mapping[str, ListConfig] = field(default_factory=dict)
    room_subscriptions: Mapping[str, RoomConfig] = field(default_factory=dict)
    unsubscribe_rooms: frozenset[str] = frozenset()
    extensions: Extensions = Extensions()


# ---- parsing ------------------------------------------------------------------------------


def _object(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValueError(f"'{where}' must be an object")
    return value


def _list(value: Any, where: str, most: int) -> list[Any]:
    if not isinstance(value, list):
        raise ValueError(f"'{where}' must be an array")
    if len(value) > most:
        raise ValueError(f"'{where}' may have at most {most} entries")
    return value


def _int(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_INDEX:
        raise ValueError(f"'{where}' must be a non-negative integer")
    return value


_ABSENT: Any = object()


def _optional_bool(value: Any, where: str) -> bool | None:
    """A boolean field that may be left out (not null: clients leave out what they don't
    set, and the reference server's models take a boolean)."""
    if value is _ABSENT:
        return None
    if not isinstance(value, bool):
        raise ValueError(f"'{where}' must be true or false")
    return value


def _field(body: dict[str, Any], key: str, default: Any) -> Any:
    """`body[key]`, or `default` when left out or null."""
    value = body.get(key)
    return default if value is None else value


def _name(value: Any, where: str, most: int = MAX_NAME_LENGTH) -> str:
    if not isinstance(value, str) or not value or len(value) > most:
        raise ValueError(f"'{where}' must be a non-empty string of at most {most} characters")
    return value


def parse_room_config(body: Any, where: str) -> RoomConfig:
    body = _object(body, where)
    pairs: set[StatePair] = set()
    for i, pair in enumerate(_list(body.get("required_state", []), f"{where}.required_state",
                                   MAX_REQUIRED_STATE)):
        if not (isinstance(pair, list) and len(pair) == 2
                and all(isinstance(p, str) for p in pair)):
            raise ValueError(f"'{where}.required_state[{i}]' must be a [type, state_key] pair "
                             "of strings")
        pairs.add((pair[0], pair[1]))
    limit = _int(body.get("timeline_limit", 0), f"{where}.timeline_limit")
    return RoomConfig(min(limit, MAX_TIMELINE_LIMIT), frozenset(pairs))


def _room_types(value: Any, where: str) -> frozenset[str | None]:
    types = _list(value, where, MAX_REQUIRED_STATE)
    if not all(t is None or isinstance(t, str) for t in types):
        raise ValueError(f"'{where}' must be an array of strings and nulls")
    return frozenset(types)


def _filters(body: Any, where: str) -> ListFilters:
    if body is None:
        return ListFilters()
    body = _object(body, where)
    room_types = body.get("room_types")
    not_room_types = body.get("not_room_types")
    return ListFilters(
        is_dm=_optional_bool(body.get("is_dm", _ABSENT), f"{where}.is_dm"),
        is_encrypted=_optional_bool(body.get("is_encrypted", _ABSENT), f"{where}.is_encrypted"),
        is_invite=_optional_bool(body.get("is_invite", _ABSENT), f"{where}.is_invite"),
        room_types=None if room_types is None else _room_types(room_types, f"{where}.room_types"),
        not_room_types=frozenset() if not_room_types is None
        else _room_types(not_room_types, f"{where}.not_room_types"),
    )


def _ranges(value: Any, where: str) -> tuple[tuple[int, int], ...]:
    out = []
    for i, pair in enumerate(_list(value, where, MAX_RANGES)):
        here = f"{where}[{i}]"
        if not (isinstance(pair, list) and len(pair) == 2):
            raise ValueError(f"'{here}' must be a [start, end] pair")
        start, end = _int(pair[0], f"{here}[0]"), _int(pair[1], f"{here}[1]")
        if start > end:
            raise ValueError(f"'{here}' starts after it ends")
        out.append((start, end))
    return tuple(out)


def _list_config(body: Any, where: str) -> ListConfig:
    room = parse_room_config(body, where)
    return ListConfig(
        ranges=None if body.get("ranges") is None else _ranges(body["ranges"], f"{where}.ranges"),
        room=room,
        filters=_filters(body.get("filters"), f"{where}.filters"),
    )


def _names(value: Any, where: str) -> tuple[str, ...]:
    return tuple(_name(v, f"{where}[{i}]") for i, v in
                 enumerate(_list(value, where, MAX_SUBSCRIPTIONS)))


def _extension(body: Any, where: str, lists: Mapping[str, ListConfig]) -> ExtensionConfig:
    if body is None:
        return ExtensionConfig()
    body = _object(body, where)
    enabled = _optional_bool(body.get("enabled", _ABSENT), f"{where}.enabled") or False
    scoped_lists = (STATE_WILDCARD,) if body.get("lists") is None else _names(
        body["lists"], f"{where}.lists"
    )
    for name in scoped_lists:
        if name != STATE_WILDCARD and name not in lists:
            raise ValueError(f"'{where}.lists' names {name!r}, which is not a list of this "
                             "request")
    rooms = (STATE_WILDCARD,) if body.get("rooms") is None else _names(
        body["rooms"], f"{where}.rooms"
    )
    for room_id in rooms:
        if room_id != STATE_WILDCARD and not is_valid_room_id(room_id):
            raise ValueError(f"'{where}.rooms' holds {room_id!r}, which is not a room ID")
    since = body.get("since")
    if since is not None and not (isinstance(since, str) and since.isascii()
                                  and since.isdigit() and len(since) <= 19):
        raise ValueError(f"'{where}.since' must be a token from an earlier next_batch")
    limit = body.get("limit")
    if limit is not None and (_int(limit, f"{where}.limit") == 0):
        raise ValueError(f"'{where}.limit' must be positive")
    return ExtensionConfig(
        enabled=enabled, lists=scoped_lists, rooms=rooms,
        since=int(since) if since is not None else None,
        limit=min(limit or MAX_TO_DEVICE_LIMIT, MAX_TO_DEVICE_LIMIT),
    )


def parse_request(body: Any) -> SlidingSyncRequest:
    """The request body, validated; ValueError names the first problem."""
    body = _object(body, "body")
    conn_id = body.get("conn_id")
    if conn_id is not None:
        conn_id = _name(conn_id, "conn_id")
    lists_body = _object(_field(body, "lists", {}), "lists")
    if len(lists_body) > MAX_LISTS:
        raise ValueError(f"'lists' may have at most {MAX_LISTS} lists")
    lists = {
        _name(name, "lists", MAX_LIST_NAME_LENGTH):
            _list_config(_object(config, f"lists.{name}"), f"lists.{name}")
        for name, config in lists_body.items()
    }
    subs_body = _object(_field(body, "room_subscriptions", {}), "room_subscriptions")
    if len(subs_body) > MAX_SUBSCRIPTIONS:
        raise ValueError(f"'room_subscriptions' may have at most {MAX_SUBSCRIPTIONS} rooms")
    subscriptions = {}
    for room_id, config in subs_body.items():
        if not is_valid_room_id(room_id):
            raise ValueError(f"'room_subscriptions' holds {room_id!r}, which is not a room ID")
        subscriptions[room_id] = parse_room_config(config, f"room_subscriptions.{room_id}")
    unsubscribe = _names(_field(body, "unsubscribe_rooms", []), "unsubscribe_rooms")
    ext_body = _object(_field(body, "extensions", {}), "extensions")
    extensions = Extensions(**{
        name: _extension(ext_body.get(name), f"extensions.{name}", lists)
        for name in EXTENSIONS
    })
    return SlidingSyncRequest(
        conn_id=conn_id or "", lists=lists, room_subscriptions=subscriptions,
        unsubscribe_rooms=frozenset(unsubscribe), extensions=extensions,
    )


# ---- rules --------------------------------------------------------------------------------


def combine(configs: Iterable[RoomConfig]) -> RoomConfig:
    """One room named by several lists or subscriptions: the largest timeline, all the state.
    A room named once keeps that configuration (the same object for all the rooms of a list,
    which the connection state holds for each)."""
    configs = list(configs)
    if len(configs) == 1:
        return configs[0]
    limit = 0
    pairs: set[StatePair] = set()
    for config in configs:
        limit = max(limit, config.timeline_limit)
        pairs |= config.required_state
    return RoomConfig(limit, frozenset(pairs))


@dataclass(frozen=True, slots=True)
class StateWanted:
    """`required_state` resolved for one user: what to read and what matches."""

    everything: bool  # ["*", "*"]
    any_type_keys: frozenset[str]  # ["*", key]
    whole_types: frozenset[str]  # [type, "*"]
    keys: frozenset[StatePair]  # [type, key], $ME resolved
    lazy: bool  # [m.room.member, $LAZY]

    @classmethod
    def of(cls, pairs: Iterable[StatePair], user_id: str) -> StateWanted:
        everything, lazy = False, False
        any_type: set[str] = set()
        whole: set[str] = set()
        keys: set[StatePair] = set()
        for event_type, key in pairs:
            if key == ME:
                key = user_id
            if event_type == MEMBER and key == LAZY:
                lazy = True
            elif event_type == STATE_WILDCARD and key == STATE_WILDCARD:
                everything = True
            elif event_type == STATE_WILDCARD:
                any_type.add(key)
            elif key == STATE_WILDCARD:
                whole.add(event_type)
            else:
                keys.add((event_type, key))
        return cls(everything, frozenset(any_type), frozenset(whole), frozenset(keys), lazy)

    @property
    def needs_full_state(self) -> bool:
        """Whether only the whole state can answer (a wildcard type)."""
        return self.everything or bool(self.any_type_keys)

    @property
    def empty(self) -> bool:
        return not (self.everything or self.any_type_keys or self.whole_types or self.keys
                    or self.lazy)

    def matches(self, event_type: str, state_key: str, lazy_members: Iterable[str] = ()) -> bool:
        """Whether the state entry is wanted; `lazy_members`: the members $LAZY covers."""
        return (
            self.everything or state_key in self.any_type_keys
            or event_type in self.whole_types or (event_type, state_key) in self.keys
            or (self.lazy and event_type == MEMBER and state_key in lazy_members)
        )


def slice_ranges(rooms: list[str], ranges: Iterable[tuple[int, int]]) -> list[str]:
    """The rooms at the positions `ranges` covers (both ends included), each once, in list
    order."""
    covered: set[int] = set()
    for start, end in ranges:
        covered.update(range(start, min(end, len(rooms) - 1) + 1))
    return [rooms[i] for i in sorted(covered)]


def encode_pos(position_id: int, secret: str, stream_token: str) -> str:
    """`<position>.<seal>/<stream token>`, the seal a MAC of the rest under the connection's
    secret (which never leaves the server): a pos whose token was altered, or one of another
    server's same-numbered position, does not verify."""
    return f"{position_id}.{_seal(secret, position_id, stream_token)}/{stream_token}"


def parse_pos(pos: str) -> tuple[int, str, str]:
    """(position ID, seal, stream token text); ValueError for anything else."""
    head, sep, token = pos.partition("/")
    number, dot, seal = head.partition(".")
    if not (sep and dot and token and seal and number.isascii() and number.isdigit()
            and len(number) <= 19 and len(seal) <= 64):
        raise ValueError("not a sliding sync position")
    return int(number), seal, token


def pos_verifies(secret: str, position_id: int, seal: str, stream_token: str) -> bool:
    return hmac.compare_digest(_seal(secret, position_id, stream_token), seal)


def _seal(secret: str, position_id: int, stream_token: str) -> str:
    digest = hmac.new(secret.encode(), f"{position_id}/{stream_token}".encode(), "sha256")
    return base64.urlsafe_b64encode(digest.digest()[:12]).decode()


# ---- what a connection was sent -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SentRoom:
    """A room as the connection holds it.

    `live`: followed in every response since it was sent, so the `pos` is where the client
    is; otherwise it fell out of the lists and the client holds it up to `upto` (a position
    of the events stream). `membership` is the user's membership the client was shown.
    """

    live: bool
    membership: str
    upto: int
    config: RoomConfig
    lazy_members: frozenset[str] = frozenset()

    def to_json(self) -> list[Any]:
        return [
            1 if self.live else 0, self.membership, self.upto, self.config.timeline_limit,
            sorted(self.config.required_state), sorted(self.lazy_members),
        ]

    @classmethod
    def from_json(cls, value: list[Any], configs: dict[RoomConfig, RoomConfig]) -> SentRoom:
        """`configs` interns the configurations, which most rooms share."""
        live, membership, upto, limit, pairs, lazy = value
        config = RoomConfig(limit, frozenset((t, k) for t, k in pairs))
        return cls(bool(live), membership, upto, configs.setdefault(config, config),
                   frozenset(lazy))


@dataclass(frozen=True, slots=True)
class ConnectionState:
    """Everything the next response is a delta against; immutable, stored as JSON."""

    rooms: Mapping[str, SentRoom] = field(default_factory=dict)
    counts: Mapping[str, int] = field(default_factory=dict)  # list name -> count last sent

    def to_json(self) -> str:
        return json.dumps({
            "rooms": {room_id: sent.to_json() for room_id, sent in sorted(self.rooms.items())},
            "counts": dict(sorted(self.counts.items())),
        }, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> ConnectionState:
        value = json.loads(text)
        configs: dict[RoomConfig, RoomConfig] = {}
        return cls(
            {room_id: SentRoom.from_json(sent, configs)
             for room_id, sent in value["rooms"].items()},
            dict(value["counts"]),
        )

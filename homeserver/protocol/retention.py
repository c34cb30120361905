"""Message retention policies (MSC1763 `m.room.retention`): how long a room's events are kept.

A room's state event `m.room.retention` (state key "") may carry `max_lifetime` (the longest,
in ms, a server should keep an event after its `origin_server_ts`) and `min_lifetime` (the
shortest it must keep one). The effective lifetime this server applies is the room's
`max_lifetime`, or the server's default when the room sets none (or sets one that is no
non-negative integer, which reads as none, as the reference server reads it); no shorter than
the room's own `min_lifetime`; then clamped into the server's allowed range (as the reference
server does: a room's value outside the range is clamped, not refused). Only non-state events
expire: state is what the room is.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

RETENTION_EVENT_TYPE = "m.room.retention"


@dataclass(frozen=True, slots=True)
class RetentionLimits:
    """The server's side of retention (config `retention.*`), all in ms."""

    default_max_lifetime: int | None  # rooms that set none; None keeps their events forever
    allowed_min: int
    allowed_max: int | None  # None: no upper bound


def _lifetime(content: Mapping[str, Any], key: str) -> int | None:
    value = content.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return None
    return value


def max_lifetime(content: Mapping[str, Any] | None, limits: RetentionLimits) -> int | None:
    """The lifetime (ms) of a room's events given its `m.room.retention` content (None when
    it has none); None when they are kept forever."""
    content = content if content is not None else {}
    lifetime = _lifetime(content, "max_lifetime")
    if lifetime is None:
        lifetime = limits.default_max_lifetime
    if lifetime is None:
        return None
    floor = _lifetime(content, "min_lifetime")
    if floor is not None:
        lifetime = max(lifetime, floor)
    lifetime = max(lifetime, limits.allowed_min)
    if limits.allowed_max is not None:
        lifetime = min(lifetime, limits.allowed_max)
    return lifetime


def expired(origin_server_ts: int, is_state: bool, expired_before: int | None) -> bool:
    """Whether an event has outlived its room's lifetime: a non-state event sent before the
    cutoff `expired_before` (ms; None when the room's events never expire)."""
    return expired_before is not None and not is_state and origin_server_ts < expired_before

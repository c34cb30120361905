"""The effective lifetime of a room's events under MSC1763 `m.room.retention` and the server's
limits (protocol/retention.py)."""

from __future__ import annotations

from typing import Any

import pytest

from homeserver.protocol.retention import RetentionLimits, expired, max_lifetime

DAY = 86_400_000
LIMITS = RetentionLimits(default_max_lifetime=None, allowed_min=DAY, allowed_max=30 * DAY)


@pytest.mark.parametrize(("content", "limits", "lifetime"), [
    (None, LIMITS, None),  # no policy, no default: forever
    ({}, LIMITS, None),
    ({"max_lifetime": 7 * DAY}, LIMITS, 7 * DAY),
    ({"max_lifetime": 1000}, LIMITS, DAY),  # clamped up, not refused
    ({"max_lifetime": 365 * DAY}, LIMITS, 30 * DAY),  # clamped down
    ({"max_lifetime": 2 * DAY, "min_lifetime": 5 * DAY}, LIMITS, 5 * DAY),  # kept at least
    ({"max_lifetime": "7"}, LIMITS, None),  # not a number: no policy
    ({"max_lifetime": True}, LIMITS, None),
    ({"max_lifetime": -5}, LIMITS, None),
    ({"max_lifetime": 1.5}, LIMITS, None),
    (None, RetentionLimits(3 * DAY, DAY, None), 3 * DAY),  # the server's default
    ({"max_lifetime": "x"}, RetentionLimits(3 * DAY, DAY, None), 3 * DAY),
    ({"min_lifetime": 9 * DAY}, RetentionLimits(3 * DAY, DAY, None), 9 * DAY),
    ({"max_lifetime": 10}, RetentionLimits(None, 0, None), 10),  # seconds-long posts
])
def test_max_lifetime(
    content: dict[str, Any] | None, limits: RetentionLimits, lifetime: int | None
) -> None:
    assert max_lifetime(content, limits) == lifetime


def test_only_non_state_events_before_the_cutoff_expire() -> None:
    assert expired(999, False, 1000)
    assert not expired(1000, False, 1000)
    assert not expired(999, True, 1000)
    assert not expired(0, False, None)

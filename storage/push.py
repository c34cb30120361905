"""The push tables: user push rules, changes to server-default rules, notifications, pushers."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from homeserver.protocol.push_rules import DefaultChange, UserRule

# ---- push rules -------------------------------------------------------------------------------

GET_USER_RULES = """
SELECT user_id, kind, rule_id, conditions, pattern, actions, enabled FROM push_rules
WHERE user_id = ANY($1) ORDER BY user_id, kind, priority DESC
"""


async def get_user_rules(
    conn: asyncpg.Connection, user_ids: Sequence[str]
) -> dict[str, list[UserRule]]:
    """user -> their own rules, most important first within each kind."""
    out: dict[str, list[UserRule]] = {u: [] for u in user_ids}
    for r in await conn.fetch(GET_USER_RULES, list(user_ids)):
        out[r["user_id"]].append(UserRule(
            r["kind"], r["rule_id"], r["actions"], r["enabled"], r["conditions"], r["pattern"]
        ))
    return out


GET_DEFAULT_CHANGES = """
SELECT user_id, kind, rule_id, enabled, actions FROM push_rule_default_changes
WHERE user_id = ANY($1)
"""


async def get_default_changes(
    conn: asyncpg.Connection, user_ids: Sequence[str]
) -> dict[str, dict[tuple[str, str], DefaultChange]]:
    out: dict[str, dict[tuple[str, str], DefaultChange]] = {u: {} for u in user_ids}
    for r in await conn.fetch(GET_DEFAULT_CHANGES, list(user_ids)):
        out[r["user_id"]][(r["kind"], r["rule_id"])] = DefaultChange(r["enabled"], r["actions"])
    return out


UPSERT_RULE = """
INSERT INTO push_rules (user_id, kind, rule_id, priority, conditions, pattern, actions, enabled)
VALUES ($1, $2, $3, 0, $4, $5, $6, true)
ON CONFLICT (user_id, kind, rule_id) DO UPDATE
SET conditions = EXCLUDED.conditions, pattern = EXCLUDED.pattern, actions = EXCLUDED.actions
"""


async def upsert_rule(conn: asyncpg.Connection, user_id: str, rule: UserRule) -> None:
    """Create (enabled) or update a rule's definition; `set_priorities` places it."""
    await conn.execute(
        UPSERT_RULE, user_id, rule.kind, rule.rule_id, rule.conditions, rule.pattern,
        rule.actions,
    )


SET_PRIORITIES = """
UPDATE push_rules p SET priority = o.priority
FROM unnest($3::text[], $4::integer[]) AS o(rule_id, priority)
WHERE p.user_id = $1 AND p.kind = $2 AND p.rule_id = o.rule_id
"""


async def set_priorities(
    conn: asyncpg.Connection, user_id: str, kind: str, rule_ids: Sequence[str]
) -> None:
    """Order a kind's rules: `rule_ids` lists them most important first."""
    count = len(rule_ids)
    await conn.execute(
        SET_PRIORITIES, user_id, kind, list(rule_ids), [count - i for i in range(count)]
    )


DELETE_RULE = "DELETE FROM push_rules WHERE user_id = $1 AND kind = $2 AND rule_id = $3"


async def delete_rule(conn: asyncpg.Connection, user_id: str, kind: str, rule_id: str) -> bool:
    result: str = await conn.execute(DELETE_RULE, user_id, kind, rule_id)
    return result != "DELETE 0"


SET_RULE_ATTRIBUTE = """
UPDATE push_rules SET enabled = coalesce($4, enabled), actions = coalesce($5, actions)
WHERE user_id = $1 AND kind = $2 AND rule_id = $3
"""


async def update_rule(
    conn: asyncpg.Connection, user_id: str, kind: str, rule_id: str, *,
    enabled: bool | None = None, actions: list[Any] | None = None,
) -> bool:
    """Change a user rule's enabled flag or actions (None leaves it); False if no such rule."""
    result: str = await conn.execute(SET_RULE_ATTRIBUTE, user_id, kind, rule_id, enabled, actions)
    return result != "UPDATE 0"


UPSERT_DEFAULT_CHANGE = """
INSERT INTO push_rule_default_changes (user_id, kind, rule_id, enabled, actions)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (user_id, kind, rule_id) DO UPDATE
SET enabled = coalesce(EXCLUDED.enabled, push_rule_default_changes.enabled),
    actions = coalesce(EXCLUDED.actions, push_rule_default_changes.actions)
"""


async def upsert_default_change(
    conn: asyncpg.Connection, user_id: str, kind: str, rule_id: str, *,
    enabled: bool | None = None, actions: list[Any] | None = None,
) -> None:
    await conn.execute(UPSERT_DEFAULT_CHANGE, user_id, kind, rule_id, enabled, actions)


# ---- notifications ----------------------------------------------------------------------------

MAIN = "main"  # the thread ID of the main timeline, in receipts and notifications

@dataclass(frozen=True, slots=True)
class NotificationGroup:
    """The users one event notifies with the same actions."""

    room_id: str
    event_id: str
    stream_ordering: int
    actions_json: str
    highlight: bool
    ts: int
    user_ids: list[str]
    thread_id: str = MAIN  # the root of the thread the event is in


INSERT_PUSH_ACTIONS = """
INSERT INTO push_actions
    (room_id, event_id, stream_ordering, actions, highlight, ts, user_ids, part, thread_id)
VALUES ($1, $2, $3, $4::text::jsonb, $5, $6, $7, $8, $9)
"""


async def insert_notifications(
    conn: asyncpg.Connection, groups: Sequence[NotificationGroup]
) -> None:
    """One row per event and set of actions (actions travel as JSON text)."""
    parts: dict[int, int] = {}
    rows = []
    for g in groups:
        part = parts[g.stream_ordering] = parts.get(g.stream_ordering, -1) + 1
        rows.append((
            g.room_id, g.event_id, g.stream_ordering, g.actions_json, g.highlight, g.ts,
            g.user_ids, part, g.thread_id,
        ))
    if rows:
        await conn.executemany(INSERT_PUSH_ACTIONS, rows)


# Where a user has read a notification's thread up to: the later of their m.read and
# m.read.private receipts, unthreaded (everything) or of that thread (`main` for the main
# timeline), receipts.md "Threaded read receipts".
_READ_POSITION = """
SELECT max(e.stream_ordering) FROM receipts r JOIN events e ON e.event_id = r.event_id
WHERE r.room_id = n.room_id AND r.user_id = $1
  AND r.receipt_type IN ('m.read', 'm.read.private') AND r.thread_id IN ('', n.thread_id)
"""

# A user's own event (a message, their join) reads the room up to it, so the notifications
# after the receipt count only when they also follow the user's latest own event. That event is
# looked for only from the oldest of those notifications on (the unread stretch of the room).
# `own` is MATERIALIZED so that it is worked out once per room: inlined, PostgreSQL evaluates
# its subquery once per unread notification, each a scan of the unread stretch, quadratic in
# it (with 20 000 unread messages a /sync took over 90 s here; materialized, 0.13 s).
GET_UNREAD_COUNTS = f"""
WITH unread AS (
    SELECT n.room_id, n.thread_id, n.stream_ordering, n.highlight FROM push_actions n
    WHERE n.room_id = ANY($2) AND n.stream_ordering <= $3 AND $1 = ANY(n.user_ids)
      AND n.stream_ordering > coalesce(({_READ_POSITION}), 0)
), own AS MATERIALIZED (
    SELECT u.room_id, (
        SELECT max(e.stream_ordering) FROM events e
        WHERE e.room_id = u.room_id AND e.sender = $1
          AND e.stream_ordering >= u.first AND e.stream_ordering <= $3
    ) AS last_own
    FROM (SELECT room_id, min(stream_ordering) AS first FROM unread GROUP BY room_id) u
)
SELECT u.room_id, u.thread_id, count(*) AS notification_count,
       count(*) FILTER (WHERE u.highlight) AS highlight_count,
       coalesce(max(u.stream_ordering), 0) AS last
FROM unread u JOIN own o USING (room_id)
WHERE u.stream_ordering > coalesce(o.last_own, 0)
GROUP BY u.room_id, u.thread_id
"""


@dataclass(slots=True)
class UnreadCount:
    notifications: int
    highlights: int
    last: int  # the position of the newest notification counted (0: none)


async def get_unread_counts(
    conn: asyncpg.Connection, user_id: str, room_ids: Iterable[str], upto: int
) -> dict[str, UnreadCount]:
    """room -> counts after the user's read receipts and their own latest event, for the rooms
    that have any; events after `upto` are not counted."""
    out: dict[str, UnreadCount] = {}
    for (room_id, _), count in (await get_thread_unread_counts(
        conn, user_id, room_ids, upto
    )).items():
        total = out.setdefault(room_id, UnreadCount(0, 0, 0))
        total.notifications += count.notifications
        total.highlights += count.highlights
        total.last = max(total.last, count.last)
    return out


async def get_thread_unread_counts(
    conn: asyncpg.Connection, user_id: str, room_ids: Iterable[str], upto: int
) -> dict[tuple[str, str], UnreadCount]:
    """(room, thread root or MAIN) -> counts, as `get_unread_counts` but per thread."""
    rows = await conn.fetch(GET_UNREAD_COUNTS, user_id, list(room_ids), upto)
    return {(r["room_id"], r["thread_id"]): UnreadCount(r[2], r[3], r[4]) for r in rows}


@dataclass(frozen=True, slots=True)
class Notification:
    room_id: str
    event_id: str
    stream_ordering: int
    actions: list[Any]
    ts: int
    read: bool


GET_NOTIFICATIONS = f"""
SELECT n.room_id, n.event_id, n.stream_ordering, n.actions, n.ts,
       n.stream_ordering <= coalesce(({_READ_POSITION}), 0) AS read
FROM push_actions n
WHERE n.room_id IN (SELECT room_id FROM room_memberships WHERE user_id = $1)
  AND $1 = ANY(n.user_ids) AND n.stream_ordering < $2 AND (n.highlight OR NOT $3)
ORDER BY n.stream_ordering DESC LIMIT $4
"""


async def get_notifications(
    conn: asyncpg.Connection, user_id: str, before: int, only_highlight: bool, limit: int
) -> list[Notification]:
    """The user's notifications below position `before`, newest first."""
    rows = await conn.fetch(GET_NOTIFICATIONS, user_id, before, only_highlight, limit)
    return [Notification(*r) for r in rows]


# ---- pushers ----------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Pusher:
    app_id: str
    pushkey: str
    kind: str
    app_display_name: str
    device_display_name: str
    profile_tag: str | None
    lang: str
    data: dict[str, Any]


UPSERT_PUSHER = """
INSERT INTO pushers (user_id, app_id, pushkey, kind, app_display_name, device_display_name,
                     profile_tag, lang, data, device_id, created_ts)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
ON CONFLICT (user_id, app_id, pushkey) DO UPDATE
SET kind = EXCLUDED.kind, app_display_name = EXCLUDED.app_display_name,
    device_display_name = EXCLUDED.device_display_name, profile_tag = EXCLUDED.profile_tag,
    lang = EXCLUDED.lang, data = EXCLUDED.data, device_id = EXCLUDED.device_id
"""


async def upsert_pusher(
    conn: asyncpg.Connection, user_id: str, device_id: str, pusher: Pusher, now: int
) -> None:
    await conn.execute(
        UPSERT_PUSHER, user_id, pusher.app_id, pusher.pushkey, pusher.kind,
        pusher.app_display_name, pusher.device_display_name, pusher.profile_tag, pusher.lang,
        pusher.data, device_id, now,
    )


COUNT_OTHER_PUSHERS = """
SELECT count(*) FROM pushers WHERE user_id = $1 AND NOT (app_id = $2 AND pushkey = $3)
"""


async def count_other_pushers(
    conn: asyncpg.Connection, user_id: str, app_id: str, pushkey: str
) -> int:
    """How many pushers the user has besides the one with this app_id and pushkey."""
    return int(await conn.fetchval(COUNT_OTHER_PUSHERS, user_id, app_id, pushkey))


DELETE_PUSHER = "DELETE FROM pushers WHERE user_id = $1 AND app_id = $2 AND pushkey = $3"


async def delete_pusher(conn: asyncpg.Connection, user_id: str, app_id: str, pushkey: str) -> None:
    await conn.execute(DELETE_PUSHER, user_id, app_id, pushkey)


DELETE_OTHER_USERS_PUSHERS = """
DELETE FROM pushers WHERE app_id = $1 AND pushkey = $2 AND user_id <> $3 RETURNING user_id
"""


async def delete_other_users_pushers(
    conn: asyncpg.Connection, app_id: str, pushkey: str, user_id: str
) -> list[str]:
    """`append: false`: a pushkey belongs to one user at a time. The users it was taken from."""
    rows = await conn.fetch(DELETE_OTHER_USERS_PUSHERS, app_id, pushkey, user_id)
    return [r[0] for r in rows]


GET_HTTP_PUSHER_OWNERS = "SELECT DISTINCT user_id FROM pushers WHERE kind = 'http'"


async def get_http_pusher_owners(conn: asyncpg.Connection) -> set[str]:
    """Every user with at least one http pusher."""
    return {r[0] for r in await conn.fetch(GET_HTTP_PUSHER_OWNERS)}


GET_HTTP_PUSHER_OWNERS_AMONG = """
SELECT DISTINCT user_id FROM pushers WHERE kind = 'http' AND user_id = ANY($1::text[])
"""


async def get_http_pusher_owners_among(
    conn: asyncpg.Connection, user_ids: Sequence[str]
) -> set[str]:
    """Those of these users who have at least one http pusher."""
    return {r[0] for r in await conn.fetch(GET_HTTP_PUSHER_OWNERS_AMONG, list(user_ids))}


GET_PUSHERS = """
SELECT app_id, pushkey, kind, app_display_name, device_display_name, profile_tag, lang, data
FROM pushers WHERE user_id = $1 ORDER BY created_ts, app_id, pushkey
"""


async def get_pushers(conn: asyncpg.Connection, user_id: str) -> list[Pusher]:
    return [Pusher(*r) for r in await conn.fetch(GET_PUSHERS, user_id)]

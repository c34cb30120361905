"""What Synapse's user admin API reads and changes of the `users` table beyond registration
and login (`storage.accounts`): the paged, filtered list of accounts, one account's details,
and the flags only an admin sets (server admin, user type, re-activation).

The list's filters are fixed statements with nullable parameters (a NULL filter matches every
row); only the sort column varies, and it comes from `ORDER_COLUMNS`, never from a request.
"""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

# The sort orders of `GET /_synapse/admin/v2/users` (Synapse's names) and their columns.
ORDER_COLUMNS = {
    "name": "u.user_id",
    "is_guest": "u.is_guest",
    "admin": "u.is_admin",
    "user_type": "u.user_type",
    "deactivated": "u.deactivated",
    "shadow_banned": "u.user_id",  # Moot shadow-bans nobody: every account ties
    "locked": "u.user_id",  # nor locks any
    "displayname": "p.displayname",
    "avatar_url": "p.avatar_url",
    "creation_ts": "u.created_ts",
    "last_seen_ts": "seen.last_seen_ts",
}


@dataclass(frozen=True, slots=True)
class UserFilter:
    """Which accounts a listing shows; None: no filtering on that account property."""

    name: str | None = None  # a substring of the localpart or display name, any case
    user_id: str | None = None  # a substring of the user ID, any case (ignored with `name`)
    guests: bool = True  # False: no guest accounts
    deactivated: bool | None = None  # only deactivated (True) or only active (False) accounts
    admins: bool | None = None  # only admins (True) or only non-admins (False)


USER_COLUMNS = """
SELECT u.user_id, u.is_guest, u.is_admin, u.user_type, u.deactivated, u.erased, u.created_ts,
       p.displayname, p.avatar_url, seen.last_seen_ts
FROM users u
LEFT JOIN profiles p USING (user_id)
LEFT JOIN LATERAL (
    SELECT max(d.last_seen_ts) AS last_seen_ts FROM devices d WHERE d.user_id = u.user_id
) seen ON true
"""

USER_FILTER = """
WHERE ($1::text IS NULL
       OR strpos(lower(split_part(substr(u.user_id, 2), ':', 1)), $1) > 0
       OR strpos(lower(p.displayname), $1) > 0)
  AND ($2::text IS NULL OR strpos(lower(u.user_id), $2) > 0)
  AND ($3 OR NOT u.is_guest)
  AND ($4::boolean IS NULL OR u.deactivated = $4)
  AND ($5::boolean IS NULL OR u.is_admin = $5)
"""

COUNT_USERS = "SELECT count(*) FROM users u LEFT JOIN profiles p USING (user_id)" + USER_FILTER

# Ties sort by user ID, so that paging by offset neither repeats nor skips an account.
LIST_USERS = USER_COLUMNS + USER_FILTER + """
ORDER BY {column} {direction}, u.user_id ASC
LIMIT $6 OFFSET $7
"""


def _filter_args(f: UserFilter) -> tuple[str | None, str | None, bool, bool | None, bool | None]:
    name = f.name.lower() if f.name else None
    user_id = f.user_id.lower() if f.user_id and name is None else None
    return name, user_id, f.guests, f.deactivated, f.admins


async def get_users_page(
    conn: asyncpg.Connection, f: UserFilter, order_by: str, backwards: bool, start: int,
    limit: int,
) -> tuple[list[asyncpg.Record], int]:
    """One page of the accounts `f` selects in the order `order_by` (a key of
    `ORDER_COLUMNS`), and how many it selects in all."""
    args = _filter_args(f)
    total: int = await conn.fetchval(COUNT_USERS, *args)
    sql = LIST_USERS.format(
        column=ORDER_COLUMNS[order_by], direction="DESC" if backwards else "ASC"
    )
    return list(await conn.fetch(sql, *args, limit, start)), total


GET_USER_DETAILS = USER_COLUMNS + "WHERE u.user_id = $1"


async def get_user_details(conn: asyncpg.Connection, user_id: str) -> asyncpg.Record | None:
    """The columns of one account the listing shows, or None if there is no such account."""
    return await conn.fetchrow(GET_USER_DETAILS, user_id)


UPDATE_ADMIN = "UPDATE users SET is_admin = $2 WHERE user_id = $1"


async def update_admin(conn: asyncpg.Connection, user_id: str, admin: bool) -> None:
    await conn.execute(UPDATE_ADMIN, user_id, admin)


UPDATE_USER_TYPE = "UPDATE users SET user_type = $2 WHERE user_id = $1"


async def update_user_type(conn: asyncpg.Connection, user_id: str, user_type: str | None) -> None:
    await conn.execute(UPDATE_USER_TYPE, user_id, user_type)


REACTIVATE_USER = "UPDATE users SET deactivated = false, erased = false WHERE user_id = $1"


async def reactivate_user(conn: asyncpg.Connection, user_id: str) -> None:
    """Undo a deactivation (and the erasure mark with it, as Synapse does); the caller sets a
    new password in the same transaction, so the old one does not come back with it."""
    await conn.execute(REACTIVATE_USER, user_id)

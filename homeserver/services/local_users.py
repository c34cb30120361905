"""Which user an admin request may name: a well-formed user ID of this server (400
M_INVALID_PARAM otherwise, Synapse's answer) that has an account here (404 otherwise). The
admin services that act on one user's account, devices or media share these checks."""

from __future__ import annotations

import asyncpg

from homeserver.errors import invalid_param, not_found
from homeserver.protocol.identifiers import parse_user_id
from storage import accounts as accounts_store


def local_user_id(server_name: str, user_id: str) -> str:
    """`user_id` if it is well-formed and names a user of `server_name`, else 400."""
    try:
        _, user_server = parse_user_id(user_id)
    except ValueError:
        raise invalid_param(f"{user_id!r} is not a valid user ID") from None
    if user_server != server_name:
        raise invalid_param("Can only look up local users")
    return user_id


async def require_local_account(
    conn: asyncpg.Connection, server_name: str, user_id: str
) -> None:
    """As `local_user_id`, and 404 when no account has the ID."""
    local_user_id(server_name, user_id)
    if await accounts_store.get_user(conn, user_id) is None:
        raise not_found("Unknown user")

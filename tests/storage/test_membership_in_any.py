"""Membership in any of many rooms, asked in one query: of a user, and of a server (by the
server name after a user ID's first ':', ports included)."""

from __future__ import annotations

from storage import state
from storage.database import Database

ROOMS = [f"!r{i}:x" for i in range(1000)]


async def test_a_user_or_server_is_found_in_one_of_many_rooms(db: Database) -> None:
    async with db.connection() as conn:
        await state.upsert_membership(conn, ROOMS[700], "@a:x", "join", "$a", 1)
        await state.upsert_membership(conn, ROOMS[701], "@b:other.org:8448", "invite", "$b", 2)
        assert await state.has_membership_in_any(conn, "@a:x", ROOMS, ["join"])
        assert not await state.has_membership_in_any(conn, "@a:x", ROOMS, ["invite"])
        assert not await state.has_membership_in_any(conn, "@a:x", ROOMS[:700], ["join"])
        assert not await state.has_membership_in_any(conn, "@b:other.org:8448", [], ["invite"])

        assert await state.server_has_membership_in_any(conn, "x", ROOMS, ["join"])
        assert await state.server_has_membership_in_any(
            conn, "other.org:8448", ROOMS, ["join", "invite"]
        )
        assert not await state.server_has_membership_in_any(conn, "other.org", ROOMS,
                                                            ["invite"])
        assert not await state.server_has_membership_in_any(conn, "8448", ROOMS, ["invite"])
        assert not await state.server_has_membership_in_any(
            conn, "other.org:8448", ROOMS, ["join"]
        )

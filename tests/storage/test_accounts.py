"""Users, devices and tokens: names are never reused, deleting a device or a
refresh token takes the tokens that hang off it, and a token names its owner."""

from __future__ import annotations

import asyncpg

from storage import accounts
from storage.database import Database
from tests.storage.rows import add_room, add_user, set_membership

U = "@u:x"


async def token_owner(conn: asyncpg.Connection, token: bytes) -> tuple[str, str] | None:
    row = await accounts.get_token_owner(conn, token)
    return None if row is None else (row["user_id"], row["device_id"])


async def test_a_user_id_is_never_handed_out_twice(db: Database) -> None:
    async with db.connection() as conn:
        assert await accounts.insert_user(conn, U, "hash", False, 1)
        await accounts.deactivate_user(conn, U)
        assert not await accounts.insert_user(conn, U, "other", True, 2)
        row = await accounts.get_user(conn, U)
        assert row is not None
        assert dict(row) == {
            "user_id": U, "password_hash": "hash", "is_admin": False, "deactivated": True
        }
        assert await accounts.get_user(conn, "@nobody:x") is None


async def test_devices_are_listed_renamed_and_deleted_per_user(db: Database) -> None:
    async with db.connection() as conn:
        await add_user(conn, U, "B", "A", "C")
        await add_user(conn, "@other:x", "A")
        assert not await accounts.insert_device(conn, U, "A", "again", 5)
        assert await accounts.update_device_display_name(conn, U, "A", "phone")
        assert not await accounts.update_device_display_name(conn, U, "Z", "nothing")
        await accounts.update_device_last_seen(conn, U, "B", 40, "10.0.0.9", "Element/1.0")
        await accounts.update_device_last_seen(conn, U, "B", 42, "10.0.0.1")  # UA kept
        devices = [tuple(r) for r in await accounts.get_devices(conn, U)]
        assert devices == [
            ("A", "phone", None, None, None), ("B", None, 42, "10.0.0.1", "Element/1.0"),
            ("C", None, None, None, None),
        ]
        assert await accounts.delete_devices(conn, U, ["C", "Z"]) == ["C"]
        assert await accounts.get_device(conn, U, "C") is None
        assert await accounts.delete_other_devices(conn, U, "A") == ["B"]
        assert [r["device_id"] for r in await accounts.get_devices(conn, U)] == ["A"]
        assert await accounts.delete_other_devices(conn, U, None) == ["A"]
        assert [r["device_id"] for r in await accounts.get_devices(conn, "@other:x")] == ["A"]


async def test_tokens_go_with_their_device_and_their_refresh_token(db: Database) -> None:
    async with db.connection() as conn:
        await add_user(conn, U, "D1", "D2")
        await accounts.insert_access_token(conn, b"plain", U, "D1", 0)
        await accounts.insert_refresh_token(conn, b"r1", U, "D2", None, 0)
        await accounts.insert_access_token(conn, b"a1", U, "D2", 0, 99, refresh_token_hash=b"r1")
        await accounts.insert_refresh_token(conn, b"r2", U, "D2", b"r1", 1)
        await accounts.insert_access_token(conn, b"a2", U, "D2", 1, 99, refresh_token_hash=b"r2")

        owner = await accounts.get_token_owner(conn, b"a2")
        assert owner is not None
        assert (owner["expires_ts"], owner["refresh_token_hash"], owner["previous_hash"]) == (
            99, b"r2", b"r1"
        )
        # Revoking r1 and whatever was exchanged for it revokes both pairs.
        await accounts.delete_refresh_tokens(conn, [b"r1"], [b"r1"])
        assert await token_owner(conn, b"a1") is None
        assert await token_owner(conn, b"a2") is None
        assert await token_owner(conn, b"plain") == (U, "D1")

        # A re-login keeps the device but none of its tokens; deleting the device drops all.
        await accounts.delete_device_tokens(conn, U, "D1")
        assert await token_owner(conn, b"plain") is None
        assert await accounts.get_device(conn, U, "D1") is not None
        await accounts.insert_access_token(conn, b"new", U, "D1", 2)
        await accounts.delete_devices(conn, U, ["D1"])
        assert await token_owner(conn, b"new") is None


async def test_a_used_pair_forgets_its_predecessor(db: Database) -> None:
    async with db.connection() as conn:
        await add_user(conn, U, "D")
        await accounts.insert_refresh_token(conn, b"r1", U, "D", None, 0)
        await accounts.insert_refresh_token(conn, b"r2", U, "D", b"r1", 1)
        await accounts.clear_previous_refresh_token(conn, b"r2")
        row = await accounts.get_refresh_token_for_update(conn, b"r2")
        assert row is not None and row["previous_hash"] is None
        # Revoking the successors of r1 no longer reaches r2.
        await accounts.delete_refresh_tokens(conn, [], [b"r1"])
        assert await accounts.get_refresh_token_for_update(conn, b"r2") is not None


async def test_a_password_hash_is_replaced(db: Database) -> None:
    async with db.connection() as conn:
        await add_user(conn, U)
        await accounts.update_password_hash(conn, U, "new-hash")
        user = await accounts.get_user(conn, U)
        assert user is not None and user["password_hash"] == "new-hash"


async def test_a_guest_upgrades_once_and_only_guests_are_listed_in_rooms(db: Database) -> None:
    async with db.connection() as conn:
        assert await accounts.insert_user(conn, "@g:x", None, False, 1, is_guest=True)
        await add_user(conn, U)
        await add_room(conn, "!r:x")
        for stream, user_id in enumerate(("@g:x", U), start=1):
            await set_membership(conn, "!r:x", user_id, "join", stream=stream)
        assert await accounts.get_joined_guests(conn, "!r:x") == ["@g:x"]
        assert not await accounts.upgrade_guest(conn, U, "hash")  # not a guest
        assert await accounts.upgrade_guest(conn, "@g:x", "hash")
        assert not await accounts.upgrade_guest(conn, "@g:x", "other")  # not twice
        row = await accounts.get_user(conn, "@g:x")
        assert row is not None and row["password_hash"] == "hash"
        assert await accounts.get_joined_guests(conn, "!r:x") == []

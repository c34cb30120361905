"""`uia_sessions`: sessions live until their expiry, record each stage once, and remember
the registration they carry."""

from __future__ import annotations

from storage import uia
from storage.database import Database

PATH = "/_matrix/client/v3/register"


async def test_a_session_is_readable_until_it_expires_and_then_swept(db: Database) -> None:
    async with db.connection() as conn:
        await uia.insert_session(conn, "s1", None, "POST", PATH, expires_ts=1_000)
        await uia.insert_session(conn, "s2", "@u:x", "DELETE", "/devices/D", expires_ts=2_000)
        live = await uia.get_session(conn, "s1", 999)
        assert live is not None
        assert (live["user_id"], live["method"], live["path"], live["completed"]) == (
            None, "POST", PATH, []
        )
        # Expiry is exclusive for reads and inclusive for the sweep: no gap between them.
        assert await uia.get_session(conn, "s1", 1_000) is None
        await uia.delete_expired_sessions(conn, 1_000)
        assert await conn.fetchval("SELECT array_agg(session_id) FROM uia_sessions") == ["s2"]
        assert await uia.get_session(conn, "s2", 1_000) is not None
        assert await uia.get_session(conn, "unknown", 0) is None


async def test_a_stage_is_recorded_once_with_the_request_that_completed_it(
    db: Database,
) -> None:
    async with db.connection() as conn:
        await uia.insert_session(conn, "s", None, "POST", PATH, expires_ts=10)
        await uia.complete_stage(conn, "s", "@u:x", "m.login.password", b"first")
        await uia.complete_stage(conn, "s", "@v:x", "m.login.password", b"again")
        await uia.complete_stage(conn, "s", "@u:x", "m.login.dummy", b"second")
        row = await uia.get_session(conn, "s", 0)
        assert row is not None
        assert row["completed"] == ["m.login.password", "m.login.dummy"]
        assert (row["user_id"], bytes(row["completed_hash"])) == ("@u:x", b"second")


async def test_registration_parameters_keep_the_password_hash_once_given(
    db: Database,
) -> None:
    async with db.connection() as conn:
        await uia.insert_session(conn, "s", None, "POST", PATH, expires_ts=10)
        await uia.update_registration(conn, "s", {"username": "u"}, "hash")
        # A follow-up request without a password keeps the one given before.
        await uia.update_registration(conn, "s", {"username": "u2"}, None)
        await uia.set_registered_user(conn, "s", "@u2:x")
        row = await uia.get_session(conn, "s", 0)
        assert row is not None
        assert (row["params"], row["password_hash"], row["registered_user_id"]) == (
            {"username": "u2"}, "hash", "@u2:x"
        )

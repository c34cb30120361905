"""End-to-end key storage: one-time keys are claimed oldest first and never twice, fallback
keys remember being used until replaced, and signatures are shown only to whom they concern."""

from __future__ import annotations

import asyncpg

from storage import accounts
from storage import e2e_keys as store
from storage.database import Database
from storage.e2e_keys import KeyCounts
from tests.storage.rows import add_user

U, ALG = "@u:x", "signed_curve25519"


async def claimed_id(conn: asyncpg.Connection, algorithm: str = ALG) -> str | None:
    row = await store.claim_one_time_key(conn, U, "D", algorithm)
    return None if row is None else str(row["key_id"])


async def test_one_time_keys_are_claimed_oldest_first_and_uploads_are_idempotent(
    db: Database,
) -> None:
    async with db.connection() as conn:
        await add_user(conn, U, "D")
        await store.insert_one_time_keys(conn, U, "D", [(ALG, "k2", {"key": "2"}), (ALG, "k1", {})])
        await store.insert_one_time_keys(conn, U, "D", [(ALG, "k2", {"key": "other"})])
        await store.insert_one_time_keys(conn, U, "D", [("other_alg", "k3", {})])
        assert await store.get_one_time_keys(conn, U, "D", [(ALG, "k2"), (ALG, "k9")]) == {
            (ALG, "k2"): {"key": "2"}
        }
        assert await store.count_one_time_keys(conn, U, "D") == 3
        assert [await claimed_id(conn) for _ in range(3)] == ["k2", "k1", None]
        assert await store.count_one_time_keys(conn, U, "D") == 1


async def test_concurrent_claims_get_different_keys_without_waiting(
    db: Database, database_url: str,
) -> None:
    async with db.connection() as conn:
        await add_user(conn, U, "D")
        await store.insert_one_time_keys(conn, U, "D", [(ALG, "k1", {}), (ALG, "k2", {})])
    first, second = await asyncpg.connect(database_url), await asyncpg.connect(database_url)
    try:
        async with first.transaction():
            assert await claimed_id(first) == "k1"
            # The first claim is not committed yet: a lock wait would time out here.
            await second.execute("SET lock_timeout = '2s'")
            async with second.transaction():
                assert await claimed_id(second) == "k2"
    finally:
        await first.close()
        await second.close()


async def test_a_fallback_key_stays_used_until_a_new_one_is_uploaded(db: Database) -> None:
    async with db.connection() as conn:
        await add_user(conn, U, "D")
        assert await store.claim_fallback_key(conn, U, "D", ALG) is None
        await store.upsert_fallback_key(conn, U, "D", ALG, "f1", {"key": "1"})
        await store.insert_one_time_keys(conn, U, "D", [(ALG, "k1", {})])
        assert await store.get_key_counts(conn, U) == {"D": KeyCounts({ALG: 1}, [ALG])}

        claimed = await store.claim_fallback_key(conn, U, "D", ALG)
        assert claimed is not None and tuple(claimed) == ("f1", {"key": "1"})
        # Claimed again (no one-time keys left): handed out again, still used.
        assert await store.claim_fallback_key(conn, U, "D", ALG) is not None
        await store.upsert_fallback_key(conn, U, "D", ALG, "f1", {"key": "1"})  # re-upload
        assert await store.get_key_counts(conn, U) == {"D": KeyCounts({ALG: 1}, [])}
        await store.upsert_fallback_key(conn, U, "D", ALG, "f2", {"key": "2"})
        assert (await store.get_key_counts(conn, U))["D"].unused_fallback == [ALG]


async def test_device_keys_are_listed_for_existing_devices_only(db: Database) -> None:
    async with db.connection() as conn:
        await add_user(conn, U, "B", "A")
        await accounts.update_device_display_name(conn, U, "A", "laptop")
        await store.upsert_device_keys(conn, U, "B", {"v": 1}, 1)
        await store.upsert_device_keys(conn, U, "A", {"v": 1}, 1)
        await store.upsert_device_keys(conn, U, "B", {"v": 2}, 2)
        listed = [tuple(r) for r in await store.get_users_device_keys(conn, [U, "@x:x"])]
        assert listed == [(U, "A", {"v": 1}, "laptop"), (U, "B", {"v": 2}, None)]
        await accounts.delete_devices(conn, U, ["B"])
        assert await store.get_device_keys(conn, U, "B") is None
        assert [r["device_id"] for r in await store.get_users_device_keys(conn, [U])] == ["A"]


async def test_signatures_are_shown_to_their_owner_and_their_signer(db: Database) -> None:
    async with db.connection() as conn:
        await store.upsert_cross_signing_key(conn, U, "master", {"v": 1}, 1)
        await store.upsert_cross_signing_key(conn, U, "master", {"v": 2}, 2)
        assert await store.get_cross_signing_keys(conn, [U], ["master", "self_signing"]) == {
            (U, "master"): {"v": 2}
        }
        await store.upsert_signatures(conn, [
            (U, "ed25519:D", U, "ed25519:self", "own-old"),
            (U, "ed25519:D", U, "ed25519:self", "own"),
            (U, "ed25519:master", "@v:x", "ed25519:v-user", "by-v"),
            (U, "ed25519:master", "@w:x", "ed25519:w-user", "by-w"),
        ])

        async def visible(viewer: str | None) -> set[str]:
            return {r["signature"] for r in await store.get_signatures(conn, [U], viewer)}

        assert await visible("@v:x") == {"own", "by-v"}
        assert await visible(None) == {"own"}

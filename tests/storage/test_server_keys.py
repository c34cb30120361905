"""Other servers' signing keys: an older key response never replaces a newer one, and keys
learnt second-hand never overwrite what is stored."""

from __future__ import annotations

from storage import server_keys as store
from storage.database import Database
from storage.server_keys import NewVerifyKey, StoredKeyResponse, StoredVerifyKey

S = "remote.example"


async def test_only_a_response_at_least_as_new_is_stored(db: Database) -> None:
    async with db.connection() as conn:
        assert await store.get_key_response(conn, S) is None
        assert await store.upsert_key_response(conn, S, 2_000, 1, S, "direct")
        assert not await store.upsert_key_response(conn, S, 1_999, 2, "notary", "stale")
        assert await store.get_key_response(conn, S) == StoredKeyResponse(S, 2_000, 1, "direct")
        assert await store.upsert_key_response(conn, S, 2_000, 3, S, "refetched")
        assert await store.get_key_response(conn, S) == StoredKeyResponse(
            S, 2_000, 3, "refetched"
        )


async def test_keys_are_overwritten_only_when_asked(db: Database) -> None:
    async with db.connection() as conn:
        first = NewVerifyKey("ed25519:a", "AAAA", 1_000, None)
        await store.upsert_verify_keys(conn, S, [first], 1, S, overwrite=True)
        expired = NewVerifyKey("ed25519:a", "AAAA", 1_000, 900)
        added = NewVerifyKey("ed25519:b", "BBBB", 5_000, None)
        await store.upsert_verify_keys(conn, S, [expired, added], 2, "notary", overwrite=False)
        assert await store.get_verify_key(conn, S, "ed25519:a") == StoredVerifyKey(
            S, "ed25519:a", "AAAA", 1_000, None
        )
        assert await store.get_verify_key(conn, S, "ed25519:b") == StoredVerifyKey(
            S, "ed25519:b", "BBBB", 5_000, None
        )
        await store.upsert_verify_keys(conn, S, [expired], 3, S, overwrite=True)
        stored = await store.get_verify_key(conn, S, "ed25519:a")
        assert stored is not None and stored.expired_ts == 900
        assert await store.get_verify_key(conn, "other.example", "ed25519:a") is None

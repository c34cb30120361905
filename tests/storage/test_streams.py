"""Stream positions: readers are never told a position still being written, a transaction
that writes nothing takes none, and a restart resumes from what was stored."""

from __future__ import annotations

import pytest

from storage import streams
from storage.database import Database
from storage.streams import FollowerStreamIdGenerator, StreamIdGenerator


class Failed(Exception):
    pass


def test_current_waits_for_the_oldest_write_in_flight() -> None:
    gen = StreamIdGenerator(5)
    with gen.allocate() as first:
        assert first.position == 6
        with gen.allocate() as second:
            assert second.position == 7
        assert gen.current == 5  # 7 is committed, but 6 may still appear below it
    assert gen.current == 7


def test_a_failed_write_is_skipped_once_later_writes_commit() -> None:
    gen = StreamIdGenerator(5)
    with pytest.raises(Failed), gen.allocate() as failed:
        assert failed.position == 6
        raise Failed
    assert (gen.current, gen.last_allocated) == (5, 6)  # no row at 6: do not name it
    with gen.allocate() as ok:
        assert ok.position == 7
    assert gen.current == 7


def test_a_slot_takes_positions_only_when_used_and_keeps_them_across_retries() -> None:
    gen = StreamIdGenerator(0)
    released: list[int] = []
    gen.on_release.append(lambda: released.append(gen.current))
    with gen.allocate() as unused:
        pass
    assert (unused.last_written, gen.last_allocated, released) == (None, 0, [])

    with gen.allocate() as slot:
        assert (slot.nth(0), slot.nth(1)) == (1, 2)
        slot.restart()  # the transaction is retried and this time writes one row
        assert slot.position == 1
    assert (slot.last_written, gen.current, released) == (1, 1, [1])
    with gen.allocate() as after:
        assert after.position == 3
    assert gen.current == 3


def test_a_follower_only_moves_forward_when_told() -> None:
    gen = FollowerStreamIdGenerator(10)
    gen.advance_to(12)
    gen.advance_to(11)
    assert (gen.current, gen.last_allocated) == (12, 12)
    with pytest.raises(RuntimeError):
        gen.allocate()


async def test_restart_resumes_from_the_stored_positions(db: Database) -> None:
    async with db.connection() as conn:
        assert (await StreamIdGenerator.load_watermark(conn, "to_device")).current == 0
        await streams.advance_watermark(conn, "to_device", 9)
        await streams.advance_watermark(conn, "to_device", 4)  # never backwards
        assert (await StreamIdGenerator.load_watermark(conn, "to_device")).current == 9
        await conn.execute(
            "INSERT INTO account_data (user_id, type, content, stream_id)"
            " VALUES ('@u:x', 'a', '{}', 3), ('@u:x', 'b', '{}', 8)"
        )
        loaded = await StreamIdGenerator.load(conn, "account_data", "stream_id")
        assert loaded.current == 8
        with loaded.allocate() as slot:
            assert slot.position == 9

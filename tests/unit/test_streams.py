"""Stream positions: readers never see past a position that is in flight or was never written."""

import pytest

from storage.streams import StreamIdGenerator


def test_current_waits_for_lower_positions_in_flight() -> None:
    gen = StreamIdGenerator(10)
    with gen.allocate() as first:
        assert first.position == 11
        with gen.allocate() as second:
            assert second.position == 12
        assert gen.current == 10  # 12 committed, but 11 is still being written
    assert gen.current == 12


def test_a_rolled_back_position_is_never_current() -> None:
    gen = StreamIdGenerator(5)
    with pytest.raises(RuntimeError), gen.allocate() as slot:
        assert slot.position == 6
        raise RuntimeError("transaction failed")
    assert gen.current == 5  # a token must not name position 6: nothing was written there
    with gen.allocate() as slot:
        assert slot.position == 7
    assert gen.current == 7


def test_a_block_that_writes_nothing_takes_no_position() -> None:
    gen = StreamIdGenerator(3)
    with gen.allocate():
        pass  # e.g. a retransmitted client transaction
    assert gen.current == 3
    with gen.allocate() as slot:
        assert slot.position == 4
        assert slot.position == 4  # the same position however often it is asked for
    assert gen.current == 4

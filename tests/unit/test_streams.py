"""Stream positions: readers never see past a position that is in flight or was never written."""

import pytest

from homeserver.services.streams import Streams, StreamToken, follower_streams
from storage.streams import FollowerStreamIdGenerator, StreamIdGenerator


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


def test_a_follower_moves_only_forward_to_what_it_is_told() -> None:
    follower = FollowerStreamIdGenerator(5)
    assert follower.current == 5
    follower.advance_to(9)
    assert follower.current == 9
    follower.advance_to(7)  # an older message arriving late changes nothing
    assert follower.current == 9


def test_a_follower_refuses_to_allocate() -> None:
    """Exactly one process writes each stream: a follower handing out positions would hand
    out the writer's."""
    follower = FollowerStreamIdGenerator(5)
    with pytest.raises(RuntimeError, match="main process"):
        follower.allocate()
    with pytest.raises(RuntimeError, match="main process"):
        follower._reserve()
    assert follower.current == 5


def test_streams_advance_each_follower_to_the_token() -> None:
    streams = follower_streams()
    streams.advance_to(StreamToken(events=10, typing=3, presence=2))
    streams.advance_to(StreamToken(events=8, typing=5))
    assert streams.current() == StreamToken(events=10, typing=5, presence=2)


def test_a_writers_streams_cannot_be_advanced_from_outside() -> None:
    gen = StreamIdGenerator(0)
    streams = Streams(gen, gen, gen, gen, gen, gen, gen)
    with pytest.raises(TypeError):
        streams.advance_to(StreamToken(events=1))

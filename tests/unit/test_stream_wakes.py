"""A wake-up for a position waits until readers can read up to it."""

from __future__ import annotations

from homeserver.services.notifier import Notifier
from homeserver.services.stream_wakes import StreamWakes
from storage.streams import StreamIdGenerator


class RecordingNotifier(Notifier):
    def __init__(self) -> None:
        super().__init__()
        self.woken: list[set[str]] = []

    def notify_users(self, user_ids: object) -> None:  # type: ignore[override]
        self.woken.append(set(user_ids))  # type: ignore[call-overload]


def test_a_write_that_commits_before_a_lower_one_wakes_when_that_one_ends() -> None:
    stream = StreamIdGenerator(10)
    notifier = RecordingNotifier()
    wakes = StreamWakes(notifier, stream)
    with stream.allocate() as slow:
        slow_position = slow.position  # 11, still in flight
        with stream.allocate() as fast:
            fast_position = fast.position  # 12
        wakes.add(fast.last_written, {"@bob:x"})
        assert stream.current == 10 and notifier.woken == []  # bob would read nothing yet
    assert stream.current == 12
    assert notifier.woken == [{"@bob:x"}]  # woken by the release of 11
    assert (slow_position, fast_position) == (11, 12)
    wakes.add(slow.last_written, {"@alice:x"})
    assert notifier.woken[-1] == {"@alice:x"}


def test_nothing_written_wakes_at_once() -> None:
    stream = StreamIdGenerator(3)
    notifier = RecordingNotifier()
    wakes = StreamWakes(notifier, stream)
    with stream.allocate() as slot:
        pass
    wakes.add(slot.last_written, {"@a:x"})
    assert notifier.woken == [{"@a:x"}]

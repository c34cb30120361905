"""Wake-ups that wait until the position they announce is readable.

Theory of operation. Writes to one stream can commit out of order: position 6 may commit while
5 is still in flight, and readers are only told positions up to 5 (`current`). A reader woken
for 6 at that moment would read up to 5, find nothing and wait again, and nothing would wake it
when 5 finished (that wake-up is for 5's users). So a writer hands its wake-up and its position
here after the commit, and the users are woken when `current` reaches the position: at once
in the usual case, else when the write in flight below it finishes (the stream calls `flush`
every time a write ends, committed or not).
"""

from __future__ import annotations

from collections.abc import Iterable

from homeserver.services.notifier import Notifier
from storage.streams import StreamIdGenerator


class StreamWakes:
    def __init__(
        self, notifier: Notifier, stream: StreamIdGenerator, *, flush_on_release: bool = True
    ) -> None:
        """`flush_on_release=False` for a writer that must update caches between its commit
        and anyone's wake-up (the room engine): it calls `flush` itself."""
        self._notifier = notifier
        self._stream = stream
        self._pending: list[tuple[int, set[str]]] = []
        if flush_on_release:
            stream.on_release.append(self.flush)

    def add(self, position: int | None, users: Iterable[str]) -> None:
        """Wake `users` once readers can read up to `position` (None: nothing was written,
        wake them now)."""
        if position is None:
            self._notifier.notify_users(users)
            return
        self._pending.append((position, set(users)))
        self.flush()

    def add_many(self, wakes: Iterable[tuple[int, set[str]]]) -> None:
        self._pending.extend(wakes)
        self.flush()

    def flush(self) -> None:
        if not self._pending:
            return
        current = self._stream.current
        ready = [users for position, users in self._pending if position <= current]
        if ready:
            self._pending = [w for w in self._pending if w[0] > current]
            for users in ready:
                self._notifier.notify_users(users)

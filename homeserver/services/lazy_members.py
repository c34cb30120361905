"""Which member events each device has been sent by lazy-loading syncs (Client-Server API
"Lazy-loading room members").

A lazy-loading sync sends the member events of its timeline's senders. Unless the filter says
`include_redundant_members`, a member event a device already holds is not sent again: this
remembers, per (user, device, room), the member event last sent for each member. A full window
(initial sync, `full_state`, a room newly joined) starts the room afresh, as the device holds
nothing of it then. Memory only, bounded: a device forgotten here is sent its members again,
which costs bytes, never correctness.
"""

from __future__ import annotations

from collections import OrderedDict

_MAX_ROOMS = 100_000  # (user, device, room) entries kept

Key = tuple[str, str, str]  # (user ID, device ID, room ID)


class LazyMembers:
    def __init__(self, max_rooms: int = _MAX_ROOMS) -> None:
        self.max_rooms = max_rooms
        self._sent: OrderedDict[Key, dict[str, str]] = OrderedDict()

    def holds(self, key: Key, user_ids: set[str]) -> bool:
        """Whether the device was sent a member event of each of these users."""
        sent = self._sent.get(key)
        return sent is not None and user_ids <= sent.keys()

    def take(
        self, key: Key, members: dict[str, str], *, fresh: bool, redundant: bool
    ) -> set[str]:
        """The member event IDs of `members` (user -> member event ID) to send now: all of
        them when `redundant` or `fresh`, else those the device was not sent yet. Records
        them all as sent."""
        sent = None if fresh else self._sent.get(key)
        if sent is None:
            sent = self._sent[key] = {}
        self._sent.move_to_end(key)
        wanted = {
            event_id for user_id, event_id in members.items()
            if redundant or sent.get(user_id) != event_id
        }
        sent.update(members)
        while len(self._sent) > self.max_rooms:
            self._sent.popitem(last=False)
        return wanted

"""Push delivery in a worker: the main process wakes the push worker over NOTIFY.

Theory of operation. With a push worker configured (`workers.NAME.push`), the main process
queues `push_deliveries` rows exactly as when it delivers them itself (in the room writer's
transaction, and badge rows on read receipts), but its `PushSender` sends nothing: after each
commit it announces the pushers that got rows on the `moot_push` channel, and the worker's
sender wakes those pushers' tasks. Delivery, with its HTTP requests and request bodies, thus
costs the room writer's process one NOTIFY per commit, and the worker may run at a lower CPU
priority: under saturation pushes wait, sends do not. Exactly one process delivers: the push
worker if one is configured, else the main process.

Unread counts. Each push carries the user's unread count as it is when the push goes out. Read
from the database, that count costs a scan of every unread notification, per push, in the
PostgreSQL the room writer uses; so the worker keeps counts in memory as the main process does
(`UnreadCounts`), for the users holding a pusher only: the main process announces their
notifications after the commit, and the counts its own memory drops (a read receipt, a purge).
It sends these before the wake-ups that follow them (one publisher keeps them in order), so a
push never counts less than was committed before it was queued.

What is missed. NOTIFY is not stored. When its LISTEN connection comes back, the worker
forgets every count and reads the whole queue; so does it when the main process starts (its
previous run may have died before announcing a commit), and it forgets every count when a user
joins those holding a pusher (their counts stopped being announced when they left). A wake-up
missed costs latency, never a push.

Messages (main → push worker), lists split over several payloads when long:
  {"k": [[user_id, app_id, pushkey]]}             rows queued for these pushers
  {"n": [[room_id, stream_ordering, highlight, [user_id]]]}   notifications committed
  {"d": [[user_id, room_id]]}                     counts to read again
  {"reset": true}                                 forget every count, read the whole queue
"""

from __future__ import annotations

import json
import logging
from typing import Any

from homeserver.services.push_sender import PushSender
from homeserver.services.replication import MainReplication
from homeserver.services.unread_counts import UnreadCounts
from storage.notify import Listener
from storage.push import NotificationGroup
from storage.push_deliveries import PusherKey

log = logging.getLogger(__name__)

PUSH_CHANNEL = "moot_push"


class PushAnnouncer:
    """The main process's end: its sender delivers nothing and announces instead."""

    def __init__(
        self, replication: MainReplication, sender: PushSender, unread: UnreadCounts
    ) -> None:
        self.replication = replication
        self.owners = sender.owners
        sender.elsewhere = self._queued
        unread.on_notified.append(self._notified)
        unread.on_dropped.append(self._dropped)
        self.owners.on_added.append(lambda _user_id: self.reset())

    def reset(self) -> None:
        self.replication.send(PUSH_CHANNEL, {"reset": True})

    def _send(self, key: str, items: list[Any]) -> None:
        self.replication.send(PUSH_CHANNEL, {key: items}, key)

    def _queued(self, keys: list[PusherKey]) -> None:
        self._send("k", [[k.user_id, k.app_id, k.pushkey] for k in keys])

    def _dropped(self, user_id: str, room_id: str) -> None:
        if self.owners.among([user_id]):
            self._send("d", [[user_id, room_id]])

    def _notified(self, groups: list[NotificationGroup]) -> None:
        counted = []
        for g in groups:
            if users := self.owners.among(g.user_ids):
                counted.append([g.room_id, g.stream_ordering, g.highlight, users])
        if counted:
            self._send("n", counted)


class PushWakeups:
    """The push worker's end: LISTENs on the channel, keeps its sender's counts and wakes it."""

    def __init__(self, dsn: str, sender: PushSender) -> None:
        self.sender = sender
        self.unread = sender.unread
        self.listener = Listener(dsn, [PUSH_CHANNEL], self._receive, self._connected)

    async def start(self) -> None:
        """LISTEN; start the sender after this, so that its first read of the queue misses
        nothing announced before the LISTEN."""
        await self.listener.start()

    async def close(self) -> None:
        await self.listener.close()

    def _receive(self, channel: str, payload: str) -> None:
        try:
            self._apply(json.loads(payload))
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            log.warning("ignored a malformed push wake-up (%s): %.200s", e, payload)

    def _apply(self, message: dict[str, Any]) -> None:
        if "k" in message:
            self.sender.queued(PusherKey(str(u), str(a), str(p)) for u, a, p in message["k"])
        elif "n" in message:
            for room_id, stream_ordering, highlight, users in message["n"]:
                self.unread.count(
                    str(room_id), int(stream_ordering), bool(highlight), map(str, users)
                )
        elif "d" in message:
            for user_id, room_id in message["d"]:
                self.unread.read_moved(str(user_id), str(room_id))
        elif message.get("reset"):
            self.unread.clear()
            self.sender.spawn(self._resume(), "push resume")
        else:
            raise KeyError("unknown message")

    async def _resume(self) -> None:
        try:
            await self.sender.resume()
        except Exception:  # the next reset or reconnection reads the queue again
            log.exception("reading the push queue failed")

    async def _connected(self, reconnected: bool) -> None:
        if reconnected:  # changes and wake-ups sent while disconnected were missed
            self.unread.clear()
            await self.sender.resume()

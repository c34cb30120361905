"""Push delivery in a worker: the main process wakes the push worker over NOTIFY.

Theory of operation. With a push worker configured (`workers.NAME.push`), the main process
queues `push_deliveries` rows exactly as when it delivers them itself (in the room writer's
transaction, and badge rows on read receipts), but its `PushSender` sends nothing: after each
commit it announces the pushers that got rows on the `moot_push` channel (`announce`), and the
worker's sender wakes those pushers' tasks (`PushWakeups`). Delivery, with its HTTP requests
and request bodies, thus costs the room writer's process one NOTIFY per commit, and the worker
may run at a lower CPU priority: under saturation pushes wait, sends do not. NOTIFY is not
stored, so the worker reads the queue itself when it starts and whenever its LISTEN connection
comes back: it resumes every pusher with queued rows, and a wake-up missed meanwhile costs
latency, never a push. Exactly one process delivers: the push worker if one is configured, else
the main process.

Message (main → push worker): {"k": [[user_id, app_id, pushkey], ...]}, split over several
payloads when long.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable

from homeserver.services.push_sender import PushSender
from homeserver.services.replication import MainReplication
from storage.notify import Listener
from storage.push_deliveries import PusherKey

log = logging.getLogger(__name__)

PUSH_CHANNEL = "moot_push"


def announce(replication: MainReplication) -> Callable[[list[PusherKey]], None]:
    """The main process's `PushSender.elsewhere`: wake the push worker for these pushers."""
    def publish(keys: list[PusherKey]) -> None:
        pushers = [[k.user_id, k.app_id, k.pushkey] for k in keys]
        replication.send(PUSH_CHANNEL, {"k": pushers}, "k")

    return publish


class PushWakeups:
    """The push worker's end: LISTENs on the channel and wakes its sender."""

    def __init__(self, dsn: str, sender: PushSender) -> None:
        self.sender = sender
        self.listener = Listener(dsn, [PUSH_CHANNEL], self._receive, self._connected)

    async def start(self) -> None:
        """LISTEN; start the sender after this, so that its first read of the queue misses
        nothing announced before the LISTEN."""
        await self.listener.start()

    async def close(self) -> None:
        await self.listener.close()

    def _receive(self, channel: str, payload: str) -> None:
        try:
            keys = [PusherKey(str(u), str(a), str(p)) for u, a, p in json.loads(payload)["k"]]
        except (KeyError, TypeError, ValueError) as e:
            log.warning("ignored a malformed push wake-up (%s): %.200s", e, payload)
            return
        self.sender.queued(keys)

    async def _connected(self, reconnected: bool) -> None:
        if reconnected:  # wake-ups sent while disconnected were missed
            await self.sender.resume()

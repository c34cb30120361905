"""Send-to-device messaging (Client-Server API "Send-to-Device messaging"): queue and deliver.

Theory of operation. A send stores one inbox row per recipient device, all at one to-device
stream position taken around the transaction (which also records the sender device's
transaction ID, so a retried request queues nothing new), then wakes the recipients' syncs.
/sync returns a device's rows between its `since` and the position it hands out, oldest first
and at most `MAX_PER_SYNC` of them; rows are deleted only when the device syncs again with a
token at or past them. A client that repeats a sync with its old token therefore gets the same
messages again, and a message is never lost between a response and its acknowledgement.

Messages for other servers' users go, one `m.direct_to_device` EDU per server, through `edus`.
Messages from other servers (`receive_remote`) take the same path as local sends, their
`message_id` standing in for the transaction ID so that a repeated EDU queues nothing new.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from typing import Any

import asyncpg

from homeserver.errors import too_large
from homeserver.protocol.identifiers import server_name_of
from homeserver.services.clock import Clock
from homeserver.services.notifier import Notifier
from homeserver.services.outbound_edus import Edus
from homeserver.services.remote_server_limits import ServerLimits
from homeserver.services.requester import Requester
from homeserver.services.stream_wakes import StreamWakes
from storage import to_device as to_device_store
from storage.database import Database
from storage.streams import Slot, StreamIdGenerator, advance_watermark

# Matches the limit on a whole event (Client-Server API "Size limits"), measured on the message
# exactly as /sync would deliver it.
MAX_MESSAGE_BYTES = 65536
# The spec recommends 100 per response so a long queue cannot make one /sync huge.
MAX_PER_SYNC = 100
# How long a sender's transaction ID is remembered for idempotent retries.
TRANSACTION_KEEP_MS = 24 * 3600 * 1000
# Remote senders' devices are unknown: their messages' IDs are remembered under this device.
REMOTE_SENDER_DEVICE = ""
# The spec's limit on an EDU's message_id.
MESSAGE_ID_LENGTH = 32

Message = tuple[str, str, dict[str, Any]]  # (user_id, device_id or "*", content)


def message_id(requester: Requester, txn_id: str) -> str:
    """The EDU message_id of a client's send: the same for the same transaction, so a
    retried send that queues the EDU again is deduplicated by the receiving server."""
    digest = hashlib.sha256(json.dumps([requester.user_id, requester.device_id, txn_id]).encode())
    return base64.urlsafe_b64encode(digest.digest()).decode()[:MESSAGE_ID_LENGTH]


@dataclass(frozen=True, slots=True)
class Delivery:
    """What one /sync hands a device: its messages, and the position they reach if capped."""

    events: list[dict[str, Any]]
    capped_at: int | None  # the last delivered position when more messages remain


class ToDeviceService:
    def __init__(
        self, db: Database, server_name: str, stream: StreamIdGenerator, notifier: Notifier,
        clock: Clock, *, edus: Edus, server_limits: ServerLimits,
    ) -> None:
        self.db = db
        self.clock = clock
        self.server_name = server_name
        self.stream = stream
        self.notifier = notifier
        self.wakes = StreamWakes(notifier, stream)
        # Devices handed messages they have not acknowledged yet, with the highest position
        # handed out: lets a sync whose stream did not move skip the query unless it acks.
        # Lost on restart, which only delays deleting acknowledged rows until the next message.
        self._delivered: dict[tuple[str, str], int] = {}
        # Where messages for other servers' users go (without federation, nowhere).
        self.edus = edus
        self.server_limits = server_limits  # how many other servers a sender may reach

    async def send(
        self, requester: Requester, event_type: str, txn_id: str, messages: list[Message]
    ) -> None:
        """Queue `(user_id, device_id or "*", content)` messages: in local devices' inboxes,
        and in one EDU per other server for its users.

        Unknown local devices are skipped, as the spec's "all known devices" implies. The EDUs
        are queued first: should storing the rest fail, the client's retry queues them again
        under the same message_id, which the receiving server ignores as a repeat.
        """
        local: list[Message] = []
        remote: dict[str, dict[str, dict[str, Any]]] = {}  # server -> user -> device -> content
        for user_id, device_id, content in messages:
            message = {"sender": requester.user_id, "type": event_type, "content": content}
            size = len(json.dumps(message, ensure_ascii=False, separators=(",", ":")).encode())
            if size > MAX_MESSAGE_BYTES:
                raise too_large(f"A to-device message must not exceed {MAX_MESSAGE_BYTES} bytes")
            server = server_name_of(user_id)
            if server == self.server_name:
                local.append((user_id, device_id, message))
            else:
                remote.setdefault(server, {}).setdefault(user_id, {})[device_id] = content
        await self.server_limits.admit(requester.user_id, remote)
        edu_id = message_id(requester, txn_id)
        for server, by_user in sorted(remote.items()):
            await self.edus.to_server(server, "m.direct_to_device", {
                "sender": requester.user_id, "type": event_type, "message_id": edu_id,
                "messages": by_user,
            })
        await self._queue(requester.user_id, requester.device_id, txn_id, local)

    async def receive_remote(
        self, sender: str, event_type: str, edu_message_id: str, messages: list[Message]
    ) -> None:
        """Messages from another server's user (its server vouches for them) for local users'
        devices; a message_id seen before from the same sender queues nothing."""
        message = {"sender": sender, "type": event_type}
        local = [
            (user_id, device_id, {**message, "content": content})
            for user_id, device_id, content in messages
            if server_name_of(user_id) == self.server_name
        ]
        await self._queue(sender, REMOTE_SENDER_DEVICE, edu_message_id, local)

    async def _queue(
        self, sender: str, sender_device: str, txn_id: str, rows: list[Message]
    ) -> None:
        """Store the messages at one position, unless the sender's transaction was seen."""
        async def store(conn: asyncpg.Connection, slot: Slot) -> set[str]:
            now = self.clock.now_ms()
            if not await to_device_store.insert_transaction(
                conn, sender, sender_device, txn_id, now, TRANSACTION_KEEP_MS
            ):
                return set()
            # A retransmission returned above without taking a position.
            await advance_watermark(conn, "to_device", slot.position)
            if not rows:
                return set()
            return await to_device_store.insert_messages(conn, slot.position, rows)

        with self.stream.allocate() as slot:
            recipients = await self.db.transaction(
                lambda conn: store(conn, slot), name="send_to_device"
            )
        self.wakes.add(slot.last_written, recipients)

    async def deliver(
        self, conn: asyncpg.Connection, requester: Requester, since: int, upto: int,
        *, limit: int = MAX_PER_SYNC,
    ) -> Delivery:
        """For /sync: acknowledge what lies at or below `since`, return what follows it (at
        most `limit` messages; sliding sync's to-device extension may ask for fewer).

        When the stream has not moved there is nothing new to read, and the query is only
        needed if this device still has delivered messages to acknowledge (`_delivered`).
        """
        device = (requester.user_id, requester.device_id)
        delivered_up_to = self._delivered.get(device)
        if since >= upto and (delivered_up_to is None or since < delivered_up_to):
            return Delivery([], None)
        limit = min(limit, MAX_PER_SYNC)
        pending = await to_device_store.ack_and_get_pending(
            conn, requester.user_id, requester.device_id, since, upto, limit + 1
        )
        if delivered_up_to is not None and since >= delivered_up_to:
            del self._delivered[device]
        capped = len(pending) > limit
        delivered = pending[:limit]
        if delivered:
            last = delivered[-1].stream_id
            self._delivered[device] = max(last, self._delivered.get(device, last))
        return Delivery([p.message for p in delivered], delivered[-1].stream_id if capped else None)

"""Send-to-device messaging (Client-Server API "Send-to-Device messaging"): queue and deliver.

Theory of operation. A send stores one inbox row per recipient device, all at one to-device
stream position taken around the transaction (which also records the sender device's
transaction ID, so a retried request queues nothing new), then wakes the recipients' syncs.
/sync returns a device's rows between its `since` and the position it hands out, oldest first
and at most `MAX_PER_SYNC` of them; rows are deleted only when the device syncs again with a
token at or past them. A client that repeats a sync with its old token therefore gets the same
messages again, and a message is never lost between a response and its acknowledgement.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import asyncpg

from homeserver.errors import too_large
from homeserver.protocol.identifiers import server_name_of
from homeserver.services.clock import now_ms
from homeserver.services.notifier import Notifier
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


@dataclass(frozen=True, slots=True)
class Delivery:
    """What one /sync hands a device: its messages, and the position they reach if capped."""

    events: list[dict[str, Any]]
    capped_at: int | None  # the last delivered position when more messages remain


class ToDeviceService:
    def __init__(
        self, db: Database, server_name: str, stream: StreamIdGenerator, notifier: Notifier
    ) -> None:
        self.db = db
        self.server_name = server_name
        self.stream = stream
        self.notifier = notifier
        self.wakes = StreamWakes(notifier, stream)
        # Devices handed messages they have not acknowledged yet, with the highest position
        # handed out: lets a sync whose stream did not move skip the query unless it acks.
        # Lost on restart, which only delays deleting acknowledged rows until the next message.
        self._delivered: dict[tuple[str, str], int] = {}

    async def send(
        self, requester: Requester, event_type: str, txn_id: str,
        messages: list[tuple[str, str, dict[str, Any]]],
    ) -> None:
        """Queue `(user_id, device_id or "*", content)` messages for local devices.

        Unknown local devices are skipped, as the spec's "all known devices" implies. Remote
        users are skipped too until federation carries to-device EDUs.
        """
        rows: list[tuple[str, str, dict[str, Any]]] = []
        for user_id, device_id, content in messages:
            message = {"sender": requester.user_id, "type": event_type, "content": content}
            size = len(json.dumps(message, ensure_ascii=False, separators=(",", ":")).encode())
            if size > MAX_MESSAGE_BYTES:
                raise too_large(f"A to-device message must not exceed {MAX_MESSAGE_BYTES} bytes")
            if server_name_of(user_id) == self.server_name:
                rows.append((user_id, device_id, message))

        async def store(conn: asyncpg.Connection, slot: Slot) -> set[str]:
            now = now_ms()
            if not await to_device_store.insert_transaction(
                conn, requester.user_id, requester.device_id, txn_id, now, TRANSACTION_KEEP_MS
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
        self, conn: asyncpg.Connection, requester: Requester, since: int, upto: int
    ) -> Delivery:
        """For /sync: acknowledge what lies at or below `since`, return what follows it.

        When the stream has not moved there is nothing new to read, and the query is only
        needed if this device still has delivered messages to acknowledge (`_delivered`).
        """
        device = (requester.user_id, requester.device_id)
        delivered_up_to = self._delivered.get(device)
        if since >= upto and (delivered_up_to is None or since < delivered_up_to):
            return Delivery([], None)
        pending = await to_device_store.ack_and_get_pending(
            conn, requester.user_id, requester.device_id, since, upto, MAX_PER_SYNC + 1
        )
        if delivered_up_to is not None and since >= delivered_up_to:
            del self._delivered[device]
        capped = len(pending) > MAX_PER_SYNC
        delivered = pending[:MAX_PER_SYNC]
        if delivered:
            last = delivered[-1].stream_id
            self._delivered[device] = max(last, self._delivered.get(device, last))
        return Delivery([p.message for p in delivered], delivered[-1].stream_id if capped else None)

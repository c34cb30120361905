"""Inbound transactions (`PUT /send/{txnId}`): each PDU into the room engine, each EDU to the
handler registered for its type, and the answer remembered so that a retry is not processed
twice (server-server-api.md "Transactions").

PDUs are taken oldest first (by depth), so that events of one transaction that build on each
other do not look like gaps. A PDU that fails is reported in the answer's `pdus` map and does
not fail the transaction; an EDU that fails is logged, since the spec gives it no answer.
Transactions of one origin are processed one at a time, as their sender sends them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from federation.inbound_pdus import IGNORED, REFUSED, TRANSIENT, InboundPdus
from homeserver import metrics
from homeserver.services.clock import Clock
from storage import inbound_txns
from storage.database import Database

log = logging.getLogger(__name__)

# Answers are kept a day (retries come within minutes), pruned every thousand transactions.
_KEEP_ANSWERS_MS = 24 * 3600 * 1000
_PRUNE_EVERY = 1000

MAX_PDUS = 50
MAX_EDUS = 100
# The largest body a full transaction may need: every PDU and EDU at the spec's 64 KiB event
# size limit. The federation listener accepts at least this, whatever the client API's limit.
MAX_TRANSACTION_BYTES = (MAX_PDUS + MAX_EDUS) * 65_536

# (origin, content) -> None; registered per edu_type by the modules that handle them.
EduHandler = Callable[[str, Mapping[str, Any]], Awaitable[None]]

# Received EDUs by type, bound once; a type the spec does not define counts as "other".
_EDUS_RECEIVED = {t: metrics.FEDERATION_INBOUND_EDUS.labels(t) for t in metrics.EDU_TYPES}


class TransactionHandler:
    def __init__(
        self, db: Database, pdus: InboundPdus, edu_handlers: dict[str, EduHandler],
        clock: Clock,
    ) -> None:
        self.db = db
        self.clock = clock
        self.pdus = pdus
        self.edu_handlers = edu_handlers
        self._origin_locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._stored = 0

    async def handle(
        self, origin: str, txn_id: str, pdus: list[dict[str, Any]], edus: list[dict[str, Any]]
    ) -> dict[str, Any]:
        start = time.perf_counter()
        try:
            return await self._handle(origin, txn_id, pdus, edus)
        finally:
            metrics.FEDERATION_INBOUND_TRANSACTION_SECONDS.observe(time.perf_counter() - start)

    async def _handle(
        self, origin: str, txn_id: str, pdus: list[dict[str, Any]], edus: list[dict[str, Any]]
    ) -> dict[str, Any]:
        async with self._origin_locks[origin]:
            earlier = await self.db.run(lambda c: inbound_txns.get_response(c, origin, txn_id))
            if earlier is not None:
                return earlier
            results: dict[str, Any] = {}
            by_room: dict[str, list[dict[str, Any]]] = {}
            for pdu in sorted(pdus, key=_depth):
                room_id = pdu.get("room_id")
                if isinstance(room_id, str):
                    by_room.setdefault(room_id, []).append(pdu)
                else:
                    IGNORED.inc()
            for room_id, room_pdus in by_room.items():
                try:
                    results.update(await self.pdus.on_room_pdus(origin, room_id, room_pdus))
                except TRANSIENT:
                    raise  # 500: the sender keeps the transaction and tries again later
                except Exception:
                    # A bug of ours on a peer's PDUs must not fail its whole transaction (it
                    # would send it again forever): that room's PDUs alone fail.
                    log.exception("PDUs of %s from %s could not be processed", room_id, origin)
                    REFUSED.inc(len(room_pdus))
            for edu in edus:
                await self._edu(origin, edu)
            response = {"pdus": results}
            now = self.clock.now_ms()
            await self.db.transaction(
                lambda c: inbound_txns.insert_response(c, origin, txn_id, response, now),
                name="insert_inbound_txn",
            )
            self._stored += 1
            if self._stored % _PRUNE_EVERY == 0:
                await self.db.transaction(
                    lambda c: inbound_txns.delete_older_than(c, now - _KEEP_ANSWERS_MS),
                    name="prune_inbound_txns",
                )
            return response

    async def _edu(self, origin: str, edu: Mapping[str, Any]) -> None:
        edu_type, content = edu.get("edu_type"), edu.get("content")
        received = _EDUS_RECEIVED.get(edu_type) if isinstance(edu_type, str) else None
        (received or _EDUS_RECEIVED["other"]).inc()
        handler = self.edu_handlers.get(edu_type) if isinstance(edu_type, str) else None
        if handler is None or not isinstance(content, Mapping):
            return
        try:
            await handler(origin, content)
        except Exception:  # a peer's EDU must never fail the transaction it came in
            log.exception("handling a %s EDU from %s failed", edu_type, origin)


def _depth(pdu: Mapping[str, Any]) -> int:
    depth = pdu.get("depth")
    return depth if isinstance(depth, int) and not isinstance(depth, bool) else 0


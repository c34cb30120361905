"""Inbound EDUs (server-server-api.md "EDUs", "Typing Notifications", "Presence", "Receipts",
"Send-to-device messaging", "Device Management", "End-to-End Encryption"): each checked for
shape and for speaking only of its origin's own users, then applied by the service that owns
the data, on the path a local change takes.

Every handler is idempotent and drops what it cannot use rather than fail: a malformed field,
a user of another server, a room the user is not joined to or whose server ACL refuses the
origin, a user who shares no room with ours (their presence and device lists concern nobody
here). Anything that still raises is logged by the transaction handler, never answered.

Device lists: an update that builds on one we have not seen (a lost EDU, or a user we never
followed) makes us fetch the user's whole list from their server (`user/devices`); its
`stream_id` is where we then stand, and its cross-signing keys are stored like those of an
`m.signing_key_update`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, TypeGuard

from federation.client import FederationClient, path_segment
from federation.inbound_pdus import InboundPdus
from federation.transactions import EduHandler
from federation.transport import FederationError
from homeserver.protocol.identifiers import is_valid_event_id, parse_user_id
from homeserver.services.cross_signing import PUBLIC_TYPES, CrossSigningService
from homeserver.services.device_lists import DeviceListService
from homeserver.services.ephemeral import PUBLIC_RECEIPT, ReceiptsService, TypingService
from homeserver.services.outbound_edus import servers_of, users_sharing_room
from homeserver.services.presence import PRESENCE_STATES, PresenceService
from homeserver.services.rooms.view import RoomView
from homeserver.services.to_device import Message, ToDeviceService
from storage.database import Database

log = logging.getLogger(__name__)

USER_DEVICES_PATH = "/_matrix/federation/v1/user/devices/"


def _is_int(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _user_of(user_id: Any, server: str) -> TypeGuard[str]:
    """A well-formed user ID of `server` (a server speaks only for its own users)."""
    if not isinstance(user_id, str):
        return False
    try:
        return parse_user_id(user_id)[1] == server
    except ValueError:
        return False


class InboundEdus:
    def __init__(
        self, server_name: str, db: Database, engine: RoomView, pdus: InboundPdus,
        client: FederationClient, *, typing: TypingService, receipts: ReceiptsService,
        presence: PresenceService, to_device: ToDeviceService, device_lists: DeviceListService,
        cross_signing: CrossSigningService,
    ) -> None:
        self.server_name = server_name
        self.db = db
        self.engine = engine
        self.pdus = pdus
        self.client = client
        self.typing = typing
        self.receipts = receipts
        self.presence = presence
        self.to_device = to_device
        self.device_lists = device_lists
        self.cross_signing = cross_signing

    def handlers(self) -> dict[str, EduHandler]:
        """A handler per EDU type, for the `TransactionHandler`."""
        return {
            "m.typing": self.on_typing,
            "m.receipt": self.on_receipt,
            "m.presence": self.on_presence,
            "m.direct_to_device": self.on_direct_to_device,
            "m.device_list_update": self.on_device_list_update,
            "m.signing_key_update": self.on_signing_key_update,
        }

    async def _concerns_us(self, user_id: str) -> bool:
        """Whether the user shares a joined room with a user of this server."""
        users = await self.db.run(
            lambda conn: users_sharing_room(self.engine, conn, user_id)
        )
        return self.server_name in servers_of(users)

    async def on_typing(self, origin: str, content: Mapping[str, Any]) -> None:
        room_id, user_id, typing = (content.get(k) for k in ("room_id", "user_id", "typing"))
        if not isinstance(room_id, str) or not isinstance(typing, bool) \
                or not _user_of(user_id, origin):
            return
        if await self.pdus.server_allowed(room_id, origin):
            await self.typing.set_remote(user_id, room_id, typing)

    async def on_receipt(self, origin: str, content: Mapping[str, Any]) -> None:
        """Public read receipts only (`m.read`: the one type the spec federates)."""
        for room_id, by_type in content.items():
            reads = by_type.get(PUBLIC_RECEIPT) if isinstance(by_type, dict) else None
            if not isinstance(reads, dict) or not await self.pdus.server_allowed(room_id, origin):
                continue
            for user_id, receipt in reads.items():
                if not _user_of(user_id, origin) or not isinstance(receipt, dict):
                    continue
                event_ids, data = receipt.get("event_ids"), receipt.get("data")
                if not isinstance(event_ids, list) or not event_ids \
                        or not is_valid_event_id(event_ids[0]) or not isinstance(data, dict) \
                        or not _is_int(data.get("ts")):
                    continue
                kept = {"ts": data["ts"]}
                if isinstance(data.get("thread_id"), str) and data["thread_id"]:
                    kept["thread_id"] = data["thread_id"]
                await self.receipts.set_remote(user_id, room_id, event_ids[0], kept)

    async def on_presence(self, origin: str, content: Mapping[str, Any]) -> None:
        push = content.get("push")
        for update in push if isinstance(push, list) else []:
            if not isinstance(update, dict) or not _user_of(update.get("user_id"), origin):
                continue
            user_id, state = update["user_id"], update.get("presence")
            ago, status = update.get("last_active_ago", 0), update.get("status_msg")
            if state not in PRESENCE_STATES or not _is_int(ago) or ago < 0 \
                    or not (status is None or isinstance(status, str)):
                continue
            if await self._concerns_us(user_id):
                await self.presence.set_remote(user_id, state, status, ago)

    async def on_direct_to_device(self, origin: str, content: Mapping[str, Any]) -> None:
        sender, event_type, message_id, messages = (
            content.get(k) for k in ("sender", "type", "message_id", "messages")
        )
        if not _user_of(sender, origin) or not isinstance(event_type, str) \
                or not isinstance(message_id, str) or not isinstance(messages, dict):
            return
        parsed: list[Message] = []
        for user_id, by_device in messages.items():
            if not _user_of(user_id, self.server_name) or not isinstance(by_device, dict):
                continue
            parsed.extend(
                (user_id, device_id, message) for device_id, message in by_device.items()
                if device_id and isinstance(message, dict)
            )
        if parsed:
            await self.to_device.receive_remote(sender, event_type, message_id, parsed)

    async def on_device_list_update(self, origin: str, content: Mapping[str, Any]) -> None:
        user_id, stream_id = content.get("user_id"), content.get("stream_id")
        prev_ids = content.get("prev_id", [])
        if not _user_of(user_id, origin) or not isinstance(content.get("device_id"), str) \
                or not _is_int(stream_id) or not isinstance(prev_ids, list) \
                or not all(_is_int(p) for p in prev_ids):
            return
        if not await self._concerns_us(user_id):
            return
        if not await self.device_lists.remote_update(user_id, stream_id, prev_ids):
            await self._resync(origin, user_id)

    async def _resync(self, origin: str, user_id: str) -> None:
        """Fetch the user's whole device list; if their server cannot say, local clients are
        still told the list changed (they ask that server for the keys themselves)."""
        try:
            answer = await self.client.get_json(origin, USER_DEVICES_PATH + path_segment(user_id))
        except FederationError as e:
            log.info("fetching the devices of %s from %s failed: %s", user_id, origin, e)
            answer = None
        if not isinstance(answer, dict) or answer.get("user_id") != user_id:
            await self.device_lists.remote_resynced(user_id, None)
            return
        await self.cross_signing.set_remote_keys(user_id, _signing_keys(answer))
        stream_id = answer.get("stream_id")
        await self.device_lists.remote_resynced(user_id, stream_id if _is_int(stream_id) else None)

    async def on_signing_key_update(self, origin: str, content: Mapping[str, Any]) -> None:
        user_id = content.get("user_id")
        if not _user_of(user_id, origin) or not await self._concerns_us(user_id):
            return
        await self.cross_signing.set_remote_keys(user_id, _signing_keys(content))


def _signing_keys(found: Mapping[str, Any]) -> dict[str, Any]:
    """Key type -> the cross-signing key a `user/devices` answer or an `m.signing_key_update`
    carries under `<type>_key` (the public types only)."""
    return {t: found[f"{t}_key"] for t in PUBLIC_TYPES if f"{t}_key" in found}

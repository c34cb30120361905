"""A local user's device changes as `m.device_list_update` EDUs (server-server-api.md "Device
Management"), for the servers sharing a room with them.

Each changed device is one EDU carrying its stream position as `stream_id` and the user's
previous position as `prev_id`, so the receiving server notices a lost one and fetches the
whole list (`user/devices`, which answers with the latest position). The EDU describes the
device as it is when sent: its keys with the signatures other servers may see and its display
name, or `deleted` when it is gone.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from homeserver.services.device_lists import DeviceChange
from homeserver.services.e2e_keys import read_local_keys
from homeserver.services.outbound_edus import Edus
from storage import accounts as accounts_store
from storage.database import Database


class DeviceListUpdates:
    """The `DeviceListPublisher`: sends through `edus`, which without federation sends
    nothing."""

    def __init__(self, db: Database, edus: Edus) -> None:
        self.db = db
        self.edus = edus

    async def devices_changed(
        self, user_id: str, changes: Sequence[DeviceChange], audience: set[str]
    ) -> None:
        edus = self.edus
        if not edus.sends_for(user_id) or not edus.reaches_any(audience):
            return  # another server's user's change, or nobody elsewhere to tell
        devices = {
            row["device_id"]: row["display_name"]
            for row in await self.db.run(lambda conn: accounts_store.get_devices(conn, user_id))
        }
        wanted = {user_id: [c.device_id for c in changes]}
        keys = (await read_local_keys(self.db, wanted, None))["device_keys"][user_id]
        for change in changes:
            content: dict[str, Any] = {
                "user_id": user_id, "device_id": change.device_id,
                "stream_id": change.stream_id,
                "prev_id": [change.prev_id] if change.prev_id else [],
                "deleted": change.device_id not in devices,
            }
            if devices.get(change.device_id) is not None:
                content["device_display_name"] = devices[change.device_id]
            device_keys = keys.get(change.device_id)
            if device_keys is not None:
                content["keys"] = {k: v for k, v in device_keys.items() if k != "unsigned"}
            await edus.to_servers_of(audience, "m.device_list_update", content)

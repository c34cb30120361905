"""Device management (spec "Device management"): listing a user's devices, renaming one and
deleting them behind User-Interactive Authentication.

Deleting goes through the accounts service, which owns the token cache: a deleted device's
access and refresh tokens stop working at once, its end-to-end keys and to-device inbox go with
it (foreign-key cascades), and the user's device list is marked changed so that the people who
share a room with them stop encrypting for it.
"""

from __future__ import annotations

from typing import Any

import asyncpg

from homeserver.errors import forbidden, invalid_param, not_found
from homeserver.services.accounts import AccountsService
from homeserver.services.device_lists import DeviceListService
from homeserver.services.requester import Requester
from homeserver.services.uia import UiaRequest, UserInteractiveAuth
from storage import accounts as store
from storage.database import Database

MAX_DEVICE_DISPLAY_NAME_LENGTH = 256


def _device_json(row: asyncpg.Record) -> dict[str, Any]:
    """A `client_device` object; absent values are left out, as the schema has no nulls."""
    return {key: row[key] for key in row.keys() if row[key] is not None}


class DevicesService:
    def __init__(
        self, db: Database, accounts: AccountsService, uia: UserInteractiveAuth,
        device_lists: DeviceListService,
    ) -> None:
        self._db = db
        self._accounts = accounts
        self._uia = uia
        self._device_lists = device_lists

    async def list_devices(self, requester: Requester) -> list[dict[str, Any]]:
        rows = await self._db.run(lambda conn: store.get_devices(conn, requester.user_id))
        return [_device_json(row) for row in rows]

    async def whois(self, requester: Requester, user_id: str) -> dict[str, Any]:
        """`GET /admin/whois`: a user's devices and where each was last seen from. Only the
        user themselves or a server admin may ask (as Synapse allows)."""
        if user_id != requester.user_id and not requester.is_admin:
            raise forbidden("Only a server admin may look up another user")
        rows = await self._db.run(lambda conn: store.get_devices(conn, user_id))
        return {"user_id": user_id, "devices": {
            row["device_id"]: {"sessions": [{"connections": [
                {"ip": row["last_seen_ip"], "last_seen": row["last_seen_ts"]}
            ] if row["last_seen_ts"] is not None else []}]}
            for row in rows
        }}

    async def get_device(self, requester: Requester, device_id: str) -> dict[str, Any]:
        row = await self._db.run(lambda conn: store.get_device(conn, requester.user_id, device_id))
        if row is None:
            raise not_found("You have no device with that ID")
        return _device_json(row)

    async def rename_device(
        self, requester: Requester, device_id: str, display_name: str | None
    ) -> None:
        """Set the device's display name; without one, only check that the device exists."""
        if display_name is None:
            await self.get_device(requester, device_id)
            return
        if len(display_name) > MAX_DEVICE_DISPLAY_NAME_LENGTH:
            raise invalid_param(
                f"'display_name' may not be longer than {MAX_DEVICE_DISPLAY_NAME_LENGTH} characters"
            )
        updated = await self._db.transaction(
            lambda conn: store.update_device_display_name(
                conn, requester.user_id, device_id, display_name
            ),
            name="rename_device",
        )
        if not updated:
            raise not_found("You have no device with that ID")
        # Other users see the name in /keys/query (`unsigned.device_display_name`).
        await self._device_lists.mark_changed(requester.user_id, [device_id])

    async def delete_devices(
        self, requester: Requester, device_ids: list[str], request: UiaRequest
    ) -> None:
        """Delete devices once the user re-entered their password; unknown IDs are no error
        (the spec: "or had been removed previously"). Only the token owner's devices are
        looked at, and UIA refuses (403) a password stage naming anyone else."""
        await self._uia.authenticate_requester(request, requester)
        await self._accounts.delete_devices(requester.user_id, device_ids)

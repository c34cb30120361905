"""Device management (spec "Device management"): listing a user's devices, renaming one and
deleting them behind User-Interactive Authentication; and the same for a server admin on
anyone's behalf (Synapse's admin API `/_synapse/admin/v2/users/{userId}/devices`), without UIA.

Deleting goes through the accounts service, which owns the token cache: a deleted device's
access and refresh tokens stop working at once, its end-to-end keys and to-device inbox go with
it (foreign-key cascades), and the user's device list is marked changed so that the people who
share a room with them stop encrypting for it.
"""

from __future__ import annotations

from typing import Any

import asyncpg

from homeserver.errors import forbidden, invalid_param, not_found
from homeserver.services.accounts import AccountsService, valid_device_id
from homeserver.services.clock import Clock
from homeserver.services.device_lists import DeviceListService
from homeserver.services.local_users import require_local_account
from homeserver.services.requester import Requester
from homeserver.services.uia import UiaRequest, UserInteractiveAuth
from storage import accounts as store
from storage.database import Database

MAX_DEVICE_DISPLAY_NAME_LENGTH = 256


# The spec's `client_device`; the user agent is only shown to admins (and in whois).
CLIENT_DEVICE_FIELDS = ("device_id", "display_name", "last_seen_ip", "last_seen_ts")


def _device_json(row: asyncpg.Record) -> dict[str, Any]:
    """A `client_device` object; absent values are left out, as the schema has no nulls."""
    return {key: row[key] for key in CLIENT_DEVICE_FIELDS if row[key] is not None}


def _admin_device_json(user_id: str, row: asyncpg.Record) -> dict[str, Any]:
    """A device as Synapse's admin API shows it: `display_name` absent when unset, the
    last-seen fields null when never seen. Moot has no dehydrated devices."""
    device = {
        "device_id": row["device_id"], "last_seen_ip": row["last_seen_ip"],
        "last_seen_ts": row["last_seen_ts"], "last_seen_user_agent": row["last_seen_user_agent"],
        "user_id": user_id, "dehydrated": False,
    }
    if row["display_name"] is not None:
        device["display_name"] = row["display_name"]
    return device


def _connections(row: asyncpg.Record) -> list[dict[str, Any]]:
    """Whois's `ConnectionInfo` of a device: where it was last seen, if it ever was."""
    if row["last_seen_ts"] is None:
        return []
    # The address and user agent are absent once the client IP sweep forgot them.
    connection = {"last_seen": row["last_seen_ts"]}
    if row["last_seen_ip"] is not None:
        connection["ip"] = row["last_seen_ip"]
    if row["last_seen_user_agent"] is not None:
        connection["user_agent"] = row["last_seen_user_agent"]
    return [connection]


class DevicesService:
    def __init__(
        self, db: Database, accounts: AccountsService, uia: UserInteractiveAuth,
        device_lists: DeviceListService, clock: Clock,
    ) -> None:
        self._db = db
        self._clock = clock
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
        await self._local_user(user_id)
        rows = await self._db.run(lambda conn: store.get_devices(conn, user_id))
        return {"user_id": user_id, "devices": {
            row["device_id"]: {"sessions": [{"connections": _connections(row)}]} for row in rows
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
        await self._rename(requester.user_id, device_id, display_name)

    async def _rename(self, user_id: str, device_id: str, display_name: str | None) -> None:
        if display_name is None:
            if await self._db.run(lambda conn: store.get_device(conn, user_id, device_id)):
                return
            raise not_found("No device with that ID")
        if len(display_name) > MAX_DEVICE_DISPLAY_NAME_LENGTH:
            raise invalid_param(
                f"'display_name' may not be longer than {MAX_DEVICE_DISPLAY_NAME_LENGTH} characters"
            )
        updated = await self._db.transaction(
            lambda conn: store.update_device_display_name(conn, user_id, device_id, display_name),
            name="rename_device",
        )
        if not updated:
            raise not_found("No device with that ID")
        # Other users see the name in /keys/query (`unsigned.device_display_name`).
        await self._device_lists.mark_changed(user_id, [device_id])

    async def delete_devices(
        self, requester: Requester, device_ids: list[str], request: UiaRequest
    ) -> None:
        """Delete devices once the user re-entered their password; unknown IDs are no error
        (the spec: "or had been removed previously"). Only the token owner's devices are
        looked at, and UIA refuses (403) a password stage naming anyone else."""
        await self._uia.authenticate_requester(request, requester)
        await self._accounts.delete_devices(requester.user_id, device_ids)

    # ---- a server admin's, on any local user's behalf (the caller checked the admin) ----

    async def _local_user(self, user_id: str) -> None:
        server_name = self._accounts.server_name
        await self._db.run(lambda conn: require_local_account(conn, server_name, user_id))

    async def admin_list(self, user_id: str) -> list[dict[str, Any]]:
        await self._local_user(user_id)
        rows = await self._db.run(lambda conn: store.get_devices(conn, user_id))
        return [_admin_device_json(user_id, row) for row in rows]

    async def admin_get(self, user_id: str, device_id: str) -> dict[str, Any]:
        await self._local_user(user_id)
        row = await self._db.run(lambda conn: store.get_device(conn, user_id, device_id))
        if row is None:
            raise not_found("No device with that ID")
        return _admin_device_json(user_id, row)

    async def admin_create(self, user_id: str, device_id: str) -> None:
        """Create a device without a token (nothing if it exists): others' clients learn of it
        from the device list, as of one a login creates."""
        await self._local_user(user_id)
        valid_device_id(device_id)
        now = self._clock.now_ms()
        created = await self._db.transaction(
            lambda conn: store.insert_device(conn, user_id, device_id, None, now),
            name="admin_create_device",
        )
        if created:
            await self._device_lists.mark_changed(user_id, [device_id])

    async def admin_rename(self, user_id: str, device_id: str, display_name: str | None) -> None:
        await self._local_user(user_id)
        await self._rename(user_id, device_id, display_name)

    async def admin_delete(self, user_id: str, device_ids: list[str]) -> None:
        """Delete devices as the user's own deletion does (tokens, keys, to-device inbox,
        device list update), without UIA; unknown IDs are no error."""
        await self._local_user(user_id)
        await self._accounts.delete_devices(user_id, device_ids)

"""Other servers' users' keys kept from their servers' answers, for /keys/query while a server
is down (server-server-api.md "Device Management").

/keys/query always asks a user's server first, so an answer is as fresh as the server can
give. What it answered about a user asked for all their devices is kept, when the user shares
a joined room with one of ours (the device lists a server tracks); when the server then cannot
be reached, the kept devices answer instead of none, and the server is still named in
`failures`, as Synapse does. The next answer from the server replaces what was kept, so a
device added or removed while it was down shows once it is back: its `m.device_list_update`
puts the user in our clients' `device_lists.changed`, and their next query asks again.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import asyncpg

from homeserver.services.clock import Clock
from storage import remote_device_keys as store
from storage.database import Database

# The fields of a /keys/query answer about users other than the asker.
_CROSS_SIGNING = (("master_keys", "master_key"), ("self_signing_keys", "self_signing_key"))


class RemoteDeviceKeys:
    def __init__(self, db: Database, clock: Clock) -> None:
        self.db = db
        self.clock = clock

    async def remember(self, answer: Mapping[str, Any], wanted: Mapping[str, list[str]]) -> None:
        """Keep a server's answer about the users of `wanted` asked for all their devices
        (an answer about some devices only is no device list)."""
        whole = [u for u, devices in wanted.items() if not devices]
        if not whole:
            return
        entries = {user: _entry(answer, user) for user in whole}
        now = self.clock.now_ms()

        async def txn(conn: asyncpg.Connection) -> None:
            kept = await store.get_keys(conn, whole)
            for user in sorted(await store.get_users_sharing_with_local(conn, whole)):
                if kept.get(user) != entries[user]:
                    await store.upsert_keys(conn, user, entries[user], now)

        await self.db.run(txn)

    async def recall(self, wanted: Mapping[str, list[str]]) -> dict[str, Any]:
        """{device_keys, master_keys, self_signing_keys} as kept for the users of `wanted`
        still sharing a room with ours (their asked devices, or all)."""
        body: dict[str, Any] = {"device_keys": {}, "master_keys": {}, "self_signing_keys": {}}
        if not wanted:
            return body

        async def read(conn: asyncpg.Connection) -> dict[str, dict[str, Any]]:
            sharing = await store.get_users_sharing_with_local(conn, list(wanted))
            return await store.get_keys(conn, sorted(sharing))

        for user, entry in (await self.db.run(read)).items():
            devices = entry.get("device_keys", {})
            asked = wanted[user]
            body["device_keys"][user] = {
                d: keys for d, keys in devices.items() if not asked or d in asked
            }
            for field, key in _CROSS_SIGNING:
                if key in entry:
                    body[field][user] = entry[key]
        return body


def _entry(answer: Mapping[str, Any], user: str) -> dict[str, Any]:
    """What a server's (checked) /keys/query answer says of one user."""
    entry: dict[str, Any] = {"device_keys": answer.get("device_keys", {}).get(user, {})}
    for field, key in _CROSS_SIGNING:
        value = answer.get(field, {}).get(user)
        if value is not None:
            entry[key] = value
    return entry

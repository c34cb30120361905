"""End-to-end keys (spec "End-to-End Encryption", "Key management API"): upload, query and claim
of device, one-time and fallback keys, and the device-list and key counts /sync reports.

The server stores keys as clients send them and never decodes or verifies key material: the
clients that use a key check its signatures (test suites upload placeholder keys). It checks
structure (JSON types; the device keys name the uploader's user and device) and that a device's
published identity keys stay fixed (a change would let a server or thief substitute a device
behind its owner's back). Everything is stored and served verbatim.
Cross-signing lives in `cross_signing.py`; both share the key checks in `e2e_checks.py`.
One upload carries at most `quotas.max_one_time_keys_per_upload` one-time and fallback keys, and
a device keeps at most `quotas.max_one_time_keys_per_device` unclaimed one-time keys (clients
keep about a hundred; the cap stops a device from filling the table).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from homeserver.config import QuotasConfig
from homeserver.errors import bad_json, invalid_param, too_large, unknown_token
from homeserver.protocol.identifiers import parse_user_id
from homeserver.services.clock import Clock
from homeserver.services.device_lists import DeviceListService
from homeserver.services.e2e_checks import device_identity, merge_signatures, public_key_of
from homeserver.services.fill_cache import FillCache
from homeserver.services.quotas import over_quota
from homeserver.services.remote_device_keys import RemoteDeviceKeys
from homeserver.services.remote_queries import RemoteQueries, ask_each
from homeserver.services.remote_server_limits import ServerLimits
from homeserver.services.requester import Requester, device_of
from homeserver.services.streams import StreamToken
from storage import device_lists as device_lists_store
from storage import e2e_keys as store
from storage.database import Database

DEFAULT_OTK_ALGORITHM = "signed_curve25519"
CROSS_SIGNING_TYPES = ("master", "self_signing", "user_signing")
# How long /keys/query and /keys/claim wait for other servers when the client does not say.
DEFAULT_REMOTE_TIMEOUT_S = 10.0
_NO_KEYS = store.KeyCounts({}, [])
_COUNTS_CACHE_USERS = 100_000


@dataclass(frozen=True, slots=True)
class KeyUpload:
    """The body of /keys/upload, typed at the edge; contents are checked by the service."""

    device_keys: dict[str, Any] | None = None
    one_time_keys: dict[str, Any] = field(default_factory=dict)
    fallback_keys: dict[str, Any] = field(default_factory=dict)


def split_by_server(
    user_ids: list[str], server_name: str
) -> tuple[list[str], dict[str, list[str]]]:
    """(local user IDs, remote server name -> its user IDs); a malformed user ID is
    M_INVALID_PARAM."""
    local: list[str] = []
    remote: dict[str, list[str]] = {}
    for user_id in user_ids:
        try:
            _, server = parse_user_id(user_id)
        except ValueError:
            raise invalid_param(f"{user_id!r} is not a valid user ID") from None
        if server == server_name:
            local.append(user_id)
        else:
            remote.setdefault(server, []).append(user_id)
    return local, remote


def _key_entries(keys: Mapping[str, Any], what: str) -> list[tuple[str, str, Any]]:
    """`algorithm:key_id` -> key map as (algorithm, key_id, key); malformed entries are 400."""
    entries = []
    for name, value in keys.items():
        algorithm, sep, key_id = name.partition(":")
        if not (sep and algorithm and key_id):
            raise bad_json(f"'{what}' names must be '<algorithm>:<key_id>', not {name!r}")
        if not isinstance(value, str | dict):
            raise bad_json(f"{what} {name!r} must be a string or an object")
        entries.append((algorithm, key_id, value))
    return entries


def _identity_changed(stored: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    """Whether `new` replaces identity keys the device already published."""
    published = device_identity(stored)
    return published != (None, None) and device_identity(new) != published


async def read_local_keys(
    db: Database, wanted: dict[str, list[str]], viewer: str | None
) -> dict[str, Any]:
    """{device_keys, master_keys, self_signing_keys, user_signing_keys} of local users
    (device IDs, empty for all), with the signatures ``viewer`` may see (None: another
    server, which sees the owners' own signatures only)."""
    local = list(wanted)

    async def read(
        conn: asyncpg.Connection,
    ) -> tuple[list[asyncpg.Record], dict[tuple[str, str], Any], list[asyncpg.Record]]:
        return (
            await store.get_users_device_keys(conn, local),
            await store.get_cross_signing_keys(conn, local, CROSS_SIGNING_TYPES),
            await store.get_signatures(conn, local, viewer),
        )

    devices, cross_signing, signature_rows = await db.run(read)
    signatures: dict[tuple[str, str], list[asyncpg.Record]] = {}
    for row in signature_rows:
        signatures.setdefault((row["target_user_id"], row["target_key_id"]), []).append(row)
    device_keys: dict[str, dict[str, Any]] = {user_id: {} for user_id in local}
    for row in devices:
        user_id, device_id = row["user_id"], row["device_id"]
        if wanted[user_id] and device_id not in wanted[user_id]:
            continue
        keys = merge_signatures(row["key_json"], signatures.get((user_id, device_id), []))
        keys["unsigned"] = (
            {} if row["display_name"] is None
            else {"device_display_name": row["display_name"]}
        )
        device_keys[user_id][device_id] = keys
    body: dict[str, Any] = {
        "device_keys": device_keys,
        "master_keys": {}, "self_signing_keys": {}, "user_signing_keys": {},
    }
    for (user_id, key_type), key in cross_signing.items():
        if key_type == "user_signing" and user_id != viewer:
            continue  # a user-signing key is only ever shown to its owner
        key_sigs = signatures.get((user_id, public_key_of(key)), [])
        body[f"{key_type}_keys"][user_id] = merge_signatures(key, key_sigs)
    return body


class E2EKeysService:
    def __init__(
        self, db: Database, server_name: str, device_lists: DeviceListService,
        quotas: QuotasConfig, clock: Clock, *, remote: RemoteQueries,
        server_limits: ServerLimits,
    ) -> None:
        self.db = db
        self.clock = clock
        self.quotas = quotas
        self.server_name = server_name
        self.device_lists = device_lists
        self.remote = remote  # other servers' users' keys are asked of their servers
        self.remote_keys = RemoteDeviceKeys(db, clock)  # ... and kept for when they are down
        self.server_limits = server_limits  # how many other servers a user may have asked
        # user -> device -> key counts, read by every /sync; dropped on upload, claim and any
        # change of the user's devices (a device deleted and logged in again starts at zero).
        self._counts: FillCache[str, dict[str, store.KeyCounts]] = FillCache(
            "one_time_key_counts", _COUNTS_CACHE_USERS
        )
        # Told the user after each such change here (replication tells other processes).
        self.on_counts_changed: list[Callable[[str], None]] = []
        device_lists.on_change.append(self._counts_changed)

    def _counts_changed(self, user_id: str) -> None:
        self.forget_counts(user_id)
        for hook in self.on_counts_changed:
            hook(user_id)

    def forget_counts(self, user_id: str | None = None) -> None:
        """Drop the user's cached key counts (another process changed them), or everyone's."""
        if user_id is None:
            self._counts.clear()
        else:
            self._counts.invalidate(user_id)

    # ---- /keys/upload -------------------------------------------------------------------------

    async def upload(self, requester: Requester, upload: KeyUpload) -> dict[str, int]:
        """Store the device's keys; returns its one-time key counts per algorithm."""
        user_id, device_id = requester.user_id, device_of(requester)
        new_keys = None
        if upload.device_keys is not None:
            new_keys = self._check_device_keys(requester, upload.device_keys)
        one_time = _key_entries(upload.one_time_keys, "one_time_keys")
        fallback = _key_entries(upload.fallback_keys, "fallback_keys")
        if len({algorithm for algorithm, _, _ in fallback}) != len(fallback):
            raise bad_json("'fallback_keys' may hold only one key per algorithm")
        if len(one_time) + len(fallback) > self.quotas.max_one_time_keys_per_upload:
            raise too_large(
                f"One upload may carry at most {self.quotas.max_one_time_keys_per_upload} "
                "one-time and fallback keys"
            )

        async def txn(conn: asyncpg.Connection) -> tuple[dict[str, int], bool]:
            stored = await store.get_device_keys(conn, user_id, device_id)
            changed = False
            if new_keys is not None:
                if stored is not None and _identity_changed(stored, new_keys):
                    raise invalid_param(
                        "A device's identity keys never change: log in as a new device instead"
                    )
                if stored != new_keys:
                    await store.upsert_device_keys(
                        conn, user_id, device_id, new_keys, self.clock.now_ms()
                    )
                    changed = True
            await self._store_one_time_keys(conn, user_id, device_id, one_time)
            for algorithm, key_id, value in fallback:
                await store.upsert_fallback_key(conn, user_id, device_id, algorithm, key_id, value)
            counts = (await store.get_key_counts(conn, user_id)).get(device_id, _NO_KEYS)
            return counts.one_time, changed

        try:
            counts, changed = await self.db.transaction(txn, name="keys_upload")
        except asyncpg.ForeignKeyViolationError:
            raise unknown_token("This device has been logged out") from None
        self._counts_changed(user_id)
        if changed:
            await self.device_lists.mark_changed(user_id, [device_id])
        return {DEFAULT_OTK_ALGORITHM: 0, **counts}

    @staticmethod
    def _check_device_keys(requester: Requester, keys: dict[str, Any]) -> dict[str, Any]:
        """The DeviceKeys object to store (without `unsigned`), or a 400 naming the fault.
        Only structure is checked: fields the spec requires may be absent (Synapse stores such
        objects too), but those present must have the spec's types."""
        if keys.get("user_id") != requester.user_id:
            raise invalid_param("'device_keys.user_id' must be your own user ID")
        if keys.get("device_id") != requester.device_id:
            raise invalid_param("'device_keys.device_id' must be the device of the access token")
        algorithms = keys.get("algorithms", [])
        if not isinstance(algorithms, list) or not all(isinstance(a, str) for a in algorithms):
            raise bad_json("'device_keys.algorithms' must be an array of strings")
        public = keys.get("keys", {})
        if not isinstance(public, dict) or not all(isinstance(v, str) for v in public.values()):
            raise bad_json("'device_keys.keys' must be an object of strings")
        if not isinstance(keys.get("signatures", {}), dict):
            raise bad_json("'device_keys.signatures' must be an object")
        return {k: v for k, v in keys.items() if k != "unsigned"}

    async def _store_one_time_keys(
        self, conn: asyncpg.Connection, user_id: str, device_id: str,
        entries: list[tuple[str, str, Any]],
    ) -> None:
        """Insert new keys; re-uploading a stored key is fine, changing one is not."""
        if not entries:
            return
        stored = await store.get_one_time_keys(
            conn, user_id, device_id, [(a, k) for a, k, _ in entries]
        )
        for algorithm, key_id, value in entries:
            if (algorithm, key_id) in stored and stored[algorithm, key_id] != value:
                raise invalid_param(
                    f"One-time key {algorithm}:{key_id} already exists with different content"
                )
        new = [e for e in entries if (e[0], e[1]) not in stored]
        limit = self.quotas.max_one_time_keys_per_device
        if new and await store.count_one_time_keys(conn, user_id, device_id) + len(new) > limit:
            raise over_quota("unclaimed one-time keys per device", limit)
        await store.insert_one_time_keys(conn, user_id, device_id, new)

    # ---- /keys/query --------------------------------------------------------------------------

    async def query(
        self, requester: Requester, wanted: dict[str, list[str]],
        timeout_s: float = DEFAULT_REMOTE_TIMEOUT_S,
    ) -> dict[str, Any]:
        """Device keys and cross-signing keys of the users, with visible signatures merged;
        other servers' users are asked of their servers, all at once. For a server that
        fails, its users' keys as it last gave them (`RemoteDeviceKeys`), and it is named in
        `failures`."""
        local, remote = split_by_server(list(wanted), self.server_name)
        await self.server_limits.admit(requester.user_id, remote)
        body = await self.local_keys({u: wanted[u] for u in local}, requester.user_id)
        answers, failures = await ask_each(
            self.remote, remote,
            lambda peer, server, users: peer.query_keys(server, {u: wanted[u] for u in users}),
            timeout_s,
        )
        for server, answer in answers.items():
            await self.remote_keys.remember(answer, {u: wanted[u] for u in remote[server]})
        kept = await self.remote_keys.recall({u: wanted[u] for s in failures for u in remote[s]})
        for answer in [*answers.values(), kept]:
            for field_name in ("device_keys", "master_keys", "self_signing_keys"):
                body[field_name].update(answer.get(field_name, {}))
        return {"failures": failures, **body}

    async def local_keys(
        self, wanted: dict[str, list[str]], viewer: str | None
    ) -> dict[str, Any]:
        """See `read_local_keys`."""
        return await read_local_keys(self.db, wanted, viewer)

    async def user_devices(self, user_id: str) -> dict[str, Any]:
        """Federation `user/devices`: a local user's devices that have keys, their
        cross-signing keys, and the device-list position the answer is current at (read
        first, so that a change racing this read comes with a later position)."""
        stream_id = await self.db.run(
            lambda conn: device_lists_store.get_latest_change(conn, user_id)
        )
        keys = await self.local_keys({user_id: []}, None)
        devices = []
        for device_id, device in keys["device_keys"][user_id].items():
            unsigned = device.pop("unsigned")
            devices.append({"device_id": device_id, "keys": device, **unsigned})
        body: dict[str, Any] = {"user_id": user_id, "stream_id": stream_id, "devices": devices}
        for key_type in ("master", "self_signing"):
            if user_id in keys[f"{key_type}_keys"]:
                body[f"{key_type}_key"] = keys[f"{key_type}_keys"][user_id]
        return body

    # ---- /keys/claim --------------------------------------------------------------------------

    async def claim(
        self, requester: Requester, wanted: dict[str, dict[str, str]],
        timeout_s: float = DEFAULT_REMOTE_TIMEOUT_S,
    ) -> dict[str, Any]:
        """One key per requested device: a one-time key if any is left, else the fallback key;
        other servers' users' keys are claimed from their servers, all at once."""
        local, remote = split_by_server(list(wanted), self.server_name)
        await self.server_limits.admit(requester.user_id, remote)
        claimed = await self.claim_local({u: wanted[u] for u in local})
        answers, failures = await ask_each(
            self.remote, remote,
            lambda peer, server, users: peer.claim_keys(server, {u: wanted[u] for u in users}),
            timeout_s,
        )
        for answer in answers.values():
            claimed.update(answer)
        return {"failures": failures, "one_time_keys": claimed}

    async def claim_local(
        self, wanted: dict[str, dict[str, str]]
    ) -> dict[str, dict[str, Any]]:
        """Claim keys of local users (user -> device -> algorithm), for a client of this
        server or another server: user -> device -> {"<algorithm>:<key_id>": key}."""

        async def txn(conn: asyncpg.Connection) -> dict[str, dict[str, Any]]:
            claimed: dict[str, dict[str, Any]] = {}
            for user_id, devices in wanted.items():
                for device_id, algorithm in devices.items():
                    row = await store.claim_one_time_key(conn, user_id, device_id, algorithm)
                    if row is None:
                        row = await store.claim_fallback_key(conn, user_id, device_id, algorithm)
                    if row is not None:
                        claimed.setdefault(user_id, {})[device_id] = {
                            f"{algorithm}:{row['key_id']}": row["key_json"]
                        }
            return claimed

        claimed = await self.db.transaction(txn, name="keys_claim")
        for user_id in claimed:
            self._counts_changed(user_id)
        return claimed

    # ---- device lists and counts --------------------------------------------------------------

    async def changes(
        self, requester: Requester, since: StreamToken, upto: StreamToken
    ) -> dict[str, list[str]]:
        """/keys/changes: the users whose keys changed or who stopped sharing a room."""
        changed, left = await self.db.run(
            lambda conn: self.device_lists.changes(conn, requester.user_id, since, upto)
        )
        return {"changed": changed, "left": left}

    async def key_counts(
        self, conn: asyncpg.Connection, requester: Requester
    ) -> tuple[dict[str, int], list[str]]:
        """/sync's `device_one_time_keys_count` and `device_unused_fallback_key_types`: every
        /sync carries them, so they are cached until an upload, a claim or a device change."""
        by_device = await self._counts.get_or_load(
            requester.user_id, lambda: store.get_key_counts(conn, requester.user_id)
        )
        counts = by_device.get(requester.device_id, _NO_KEYS)
        return {DEFAULT_OTK_ALGORITHM: 0, **counts.one_time}, list(counts.unused_fallback)

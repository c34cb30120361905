"""Cross-signing (spec "Cross-signing"): uploading a user's master, self-signing and user-signing
keys, and the signatures those keys (or a device) make over other keys.

Theory of operation. The first set of keys needs no further authentication; replacing an
existing key needs the account password through User-Interactive Authentication, because a new
master key is a new identity for everyone who verified the old one. Re-uploading the stored keys
is idempotent and free (the spec's rule for a lost response). Key material is stored as sent,
never decoded or verified (clients verify the signatures they rely on). A signature is stored
only where it can belong: a device key signed by its owner's self-signing key, the owner's
master key signed by one of their devices, or another user's master key signed by the
requester's user-signing key, the signed object being the stored key. Anything else is reported
per key in `failures`, as the spec describes.

Over federation, a local user's new master and self-signing keys go to the servers sharing a
room with them (`m.signing_key_update`, through `edus`), and a device's new signature goes as
that device's update; another server's user's keys, as their server sends them, are stored
here too (`set_remote_keys`), so that local users can sign them and see them change.
"""

from __future__ import annotations

from typing import Any

import asyncpg

from homeserver.errors import MatrixError, bad_json, forbidden, invalid_param, not_found
from homeserver.services.clock import Clock
from homeserver.services.device_lists import DeviceListService
from homeserver.services.e2e_checks import invalid_signature, public_key_of, signature_by
from homeserver.services.e2e_keys import CROSS_SIGNING_TYPES
from homeserver.services.outbound_edus import Edus
from homeserver.services.requester import Requester
from homeserver.services.uia import UiaRequest, UserInteractiveAuth
from storage import accounts as accounts_store
from storage import e2e_keys as store
from storage.database import Database

SignatureRow = tuple[str, str, str, str, str]
# The keys other servers are told about; a user-signing key never leaves its owner's server.
PUBLIC_TYPES = ("master", "self_signing")


def _check_cross_signing_key(key: dict[str, Any], key_type: str, user_id: str) -> str:
    """The public key of a well-formed CrossSigningKey of `key_type`, or a 400 (its shape
    only: the key itself is the clients' to verify)."""
    if key.get("user_id") != user_id:
        raise invalid_param(f"The {key_type} key's 'user_id' must be your own user ID")
    usage = key.get("usage")
    if not isinstance(usage, list) or key_type not in usage:
        raise bad_json(f"The {key_type} key's 'usage' must list {key_type!r}")
    public = key.get("keys")
    if not isinstance(public, dict) or len(public) != 1:
        raise bad_json(f"The {key_type} key's 'keys' must hold exactly one key")
    [(name, value)] = public.items()
    # Structure, not key material: a cross-signing key is named after itself, so that its
    # ID can never be one of the user's device IDs and make signatures ambiguous.
    if not isinstance(value, str) or name != f"ed25519:{value}":
        raise bad_json(f"The {key_type} key must be 'ed25519:<public key>': <public key>")
    if "signatures" in key and not isinstance(key["signatures"], dict):
        raise bad_json(f"The {key_type} key's 'signatures' must be an object")
    return value


def _same_key(signed: dict[str, Any], stored: dict[str, Any]) -> None:
    """The signed object must be the stored key, apart from its signatures."""
    def strip(obj: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in obj.items() if k not in ("signatures", "unsigned")}

    if strip(signed) != strip(stored):
        raise invalid_signature("The signed object does not match the stored key")


def _signed_by(obj: dict[str, Any], user_id: str, key_id: str, what: str) -> SignatureRow:
    """The column values of `user_id`'s signature with `key_id` on `obj` (cross-signing keys
    sign as `ed25519:<public key>`), which must be there."""
    return "", "", user_id, key_id, signature_by(obj, user_id, key_id, what)


def _cross_signing_key_id(key: dict[str, Any]) -> str:
    """The key ID a cross-signing key signs with: the name it was uploaded under."""
    name: str = next(iter(key["keys"]))
    return name


class CrossSigningService:
    def __init__(
        self, db: Database, device_lists: DeviceListService, uia: UserInteractiveAuth,
        edus: Edus, clock: Clock,
    ) -> None:
        self.db = db
        self.clock = clock
        self.device_lists = device_lists
        self.uia = uia
        self.edus = edus  # where local users' new keys go to other servers

    async def upload_keys(
        self, requester: Requester, keys: dict[str, dict[str, Any]], request: UiaRequest
    ) -> None:
        """Publish cross-signing keys (key type -> CrossSigningKey)."""
        user_id = requester.user_id
        publics = {t: _check_cross_signing_key(k, t, user_id) for t, k in keys.items()}

        async def read(conn: asyncpg.Connection) -> tuple[dict[str, Any], set[str]]:
            stored = await store.get_cross_signing_keys(conn, [user_id], CROSS_SIGNING_TYPES)
            devices = await accounts_store.get_devices(conn, user_id)
            return {t: k for (_, t), k in stored.items()}, {r["device_id"] for r in devices}

        existing, device_ids = await self.db.run(read)
        if all(existing.get(t) == k for t, k in keys.items()):
            return  # nothing new: an idempotent retry needs no authentication
        master = keys.get("master", existing.get("master"))
        if master is None and ("self_signing" in keys or "user_signing" in keys):
            raise MatrixError(400, "M_MISSING_PARAM", "No master signing key is available")
        if any(public in device_ids for public in publics.values()):
            raise forbidden("Key ID in use: a device of yours has that ID")
        if "master" in existing:
            await self.uia.authenticate_requester(request, requester)
        now = self.clock.now_ms()

        async def write(conn: asyncpg.Connection) -> None:
            for key_type, key in keys.items():
                await store.upsert_cross_signing_key(conn, user_id, key_type, key, now)

        await self.db.transaction(write, name="cross_signing_upload")
        await self.device_lists.mark_changed(user_id)
        update = {f"{t}_key": keys[t] for t in PUBLIC_TYPES if t in keys}
        if update:
            await self.edus.to_roommates(
                user_id, "m.signing_key_update", {"user_id": user_id, **update}
            )

    async def set_remote_keys(self, user_id: str, keys: dict[str, Any]) -> None:
        """Another server's user's master and self-signing keys (key type -> key), as their
        server sends them; a malformed key, or a self-signing key without a master key, is left
        out (clients verify the signatures). Marks the user's device list changed when a key is
        new."""
        stored = await self.db.run(
            lambda conn: store.get_cross_signing_keys(conn, [user_id], PUBLIC_TYPES)
        )
        accepted: dict[str, dict[str, Any]] = {}
        for key_type in PUBLIC_TYPES:  # the master key first: it signs the other
            key = keys.get(key_type)
            if not isinstance(key, dict) or stored.get((user_id, key_type)) == key:
                continue
            master = accepted.get("master", stored.get((user_id, "master")))
            try:
                _check_cross_signing_key(key, key_type, user_id)
            except MatrixError:
                continue
            if key_type == "self_signing" and master is None:
                continue
            accepted[key_type] = key
        if not accepted:
            return
        now = self.clock.now_ms()

        async def write(conn: asyncpg.Connection) -> None:
            for key_type, key in accepted.items():
                await store.upsert_cross_signing_key(conn, user_id, key_type, key, now)

        await self.db.transaction(write, name="cross_signing_remote")
        await self.device_lists.mark_changed(user_id)

    async def upload_signatures(
        self, requester: Requester, signed: dict[str, dict[str, Any]]
    ) -> dict[str, Any]:
        """Check and store signatures (user -> key ID -> signed object); per-key failures."""
        me = requester.user_id

        async def read(
            conn: asyncpg.Connection,
        ) -> tuple[dict[tuple[str, str], Any], dict[str, Any]]:
            users = list({me, *signed})
            keys = await store.get_cross_signing_keys(conn, users, CROSS_SIGNING_TYPES)
            devices = await store.get_users_device_keys(conn, [me])
            return keys, {r["device_id"]: r["key_json"] for r in devices}

        cross_signing, my_devices = await self.db.run(read)
        rows: list[SignatureRow] = []
        failures: dict[str, dict[str, Any]] = {}
        for user_id, by_key in signed.items():
            for key_id, obj in by_key.items():
                try:
                    if not isinstance(obj, dict):
                        raise bad_json("The signed key must be an object")
                    checked = self._signatures_on(me, user_id, key_id, obj, cross_signing,
                                                  my_devices)
                except MatrixError as e:
                    failures.setdefault(user_id, {})[key_id] = e.to_json()
                    continue
                rows.extend((user_id, key_id, *row[2:]) for row in checked)
        if rows:
            await self.db.transaction(
                lambda conn: store.upsert_signatures(conn, rows), name="signatures_upload"
            )
            for user_id in sorted({row[0] for row in rows}):
                # A signed device of one's own is that device's change, for other servers too.
                devices = sorted({r[1] for r in rows if r[0] == me and r[1] in my_devices})
                await self.device_lists.mark_changed(user_id, devices if user_id == me else [])
        return {"failures": failures}

    @staticmethod
    def _signatures_on(
        me: str, user_id: str, key_id: str, obj: dict[str, Any],
        cross_signing: dict[tuple[str, str], Any], my_devices: dict[str, Any],
    ) -> list[SignatureRow]:
        """The new signatures on one key (target columns left blank), or raise."""
        if not isinstance(obj.get("signatures"), dict):
            raise bad_json("The signed key has no 'signatures' object")
        master = cross_signing.get((user_id, "master"))
        if user_id == me and key_id in my_devices:
            self_signing = cross_signing.get((me, "self_signing"))
            if self_signing is None:
                raise not_found("You have no self-signing key to sign devices with")
            _same_key(obj, my_devices[key_id])
            return [_signed_by(obj, me, _cross_signing_key_id(self_signing), "device signature")]
        if master is None or key_id != public_key_of(master):
            raise not_found(f"Unknown key {key_id} of {user_id}")
        _same_key(obj, master)
        if user_id != me:
            user_signing = cross_signing.get((me, "user_signing"))
            if user_signing is None:
                raise not_found("You have no user-signing key to sign other users with")
            return [_signed_by(obj, me, _cross_signing_key_id(user_signing), "user signature")]
        # One's own master key, signed by one's devices (migrating from device verification).
        mine = obj["signatures"].get(me)
        found = [
            _signed_by(obj, me, f"ed25519:{d}", "master key signature")
            for d in my_devices
            if isinstance(mine, dict) and f"ed25519:{d}" in mine
        ]
        if not found:
            raise invalid_signature("The master key carries no signature by one of your devices")
        return found

"""User profiles (spec "Profiles", v1.16's extended fields): reading, setting and deleting
`displayname`, `avatar_url`, `m.tz` and custom namespaced fields.

A change reads, checks and writes the whole profile in one transaction under the profile's
row lock, so two concurrent writes cannot together pass the 64 KiB limit. A change of
`displayname` or `avatar_url` also queues, in the same transaction, the member events that
announce it in the user's rooms (`profile_propagation` sends them in the background), and
wakes whoever listens on `member_fields_changed`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import asyncpg

from homeserver.errors import MatrixError, bad_json, forbidden, invalid_param, not_found
from homeserver.protocol.canonical_json import encode_canonical_json
from homeserver.protocol.errors import CanonicalJSONError
from homeserver.protocol.identifiers import parse_user_id
from homeserver.services.clock import Clock
from homeserver.services.requester import Requester
from storage import profiles as store
from storage.database import Database

if TYPE_CHECKING:
    from homeserver.services.remote_queries import RemoteQueries

# The fields m.room.member events carry (spec "Events on Change of Profile Information").
MEMBER_FIELDS = ("displayname", "avatar_url")
MAX_DISPLAYNAME_LENGTH = 256
MAX_AVATAR_URL_LENGTH = 1000
# profile.yaml: "the total profile MUST be under 64 KiB"; keys at most 255 bytes.
MAX_PROFILE_BYTES = 64 * 1024
MAX_KEY_BYTES = 255


def profile_of(row: asyncpg.Record) -> dict[str, Any]:
    """The profile a row holds, as clients and peers are served it (unset fields absent)."""
    profile: dict[str, Any] = dict(row["fields"])
    for key in MEMBER_FIELDS:
        if row[key] is not None:
            profile[key] = row[key]
    return profile


def member_content(profile: dict[str, Any], membership: str) -> dict[str, Any]:
    """An m.room.member content for `membership` carrying the profile's member fields."""
    content: dict[str, Any] = {"membership": membership}
    content.update((k, profile[k]) for k in MEMBER_FIELDS if k in profile)
    return content


def check_key(key: str) -> None:
    """M_KEY_TOO_LARGE for a field name over the spec's 255 bytes."""
    if len(key.encode("utf-8", "surrogatepass")) > MAX_KEY_BYTES:
        raise MatrixError(400, "M_KEY_TOO_LARGE", f"Profile keys are at most {MAX_KEY_BYTES} bytes")


def check_value(key: str, value: Any) -> None:
    """The spec's types: strings for the member fields and `m.tz`, any JSON for custom keys
    (null included: stored, as the spec recommends, not taken for a deletion)."""
    limits = {"displayname": MAX_DISPLAYNAME_LENGTH, "avatar_url": MAX_AVATAR_URL_LENGTH}
    if key in limits or key == "m.tz":
        if not isinstance(value, str):
            raise bad_json(f"'{key}' must be a string")
        if key in limits and len(value) > limits[key]:
            raise invalid_param(f"'{key}' may not be longer than {limits[key]} characters")


class ProfileService:
    def __init__(
        self, db: Database, server_name: str, clock: Clock, remote: RemoteQueries
    ) -> None:
        self._db = db
        self._clock = clock
        self.server_name = server_name
        self.remote = remote  # other servers' profiles are asked of them
        # Called after a change of displayname or avatar_url has committed.
        self.member_fields_changed: list[Callable[[], None]] = []
        # Asked whether a local user no account holds exists after all (the appservices whose
        # namespace covers it, which create it before saying yes); app.py plugs it in.
        self.ask_unknown_user: Callable[[str], Awaitable[bool]] | None = None

    async def get_profile(self, user_id: str) -> dict[str, Any]:
        """A local user's profile (every field that is set), or M_NOT_FOUND."""
        row = await self._db.run(lambda conn: store.get_profile(conn, user_id))
        if row is None and self.ask_unknown_user is not None and (
            await self.ask_unknown_user(user_id)
        ):
            row = await self._db.run(lambda conn: store.get_profile(conn, user_id))
        if row is None:
            raise not_found("Profile not found")
        return profile_of(row)

    async def lookup_profile(self, user_id: str) -> dict[str, Any]:
        """The profile a client asks for: a user of another server's from their server."""
        if parse_user_id(user_id)[1] != self.server_name:
            # A peer may answer null for an unset field (server-server query/profile).
            found = await self.remote.profile(user_id)
            return {k: v for k, v in found.items() if v is not None or k not in MEMBER_FIELDS}
        return await self.get_profile(user_id)

    async def set_field(self, requester: Requester, user_id: str, key: str, value: Any) -> None:
        """`PUT /profile/{userId}/{keyName}`: only the user themselves may."""
        _check_owner(requester, user_id, key)
        check_key(key)
        check_value(key, value)
        await self._change(user_id, key, value, remove=False)

    async def remove_field(self, requester: Requester, user_id: str, key: str) -> None:
        """`DELETE /profile/{userId}/{keyName}` (v1.16); a field that isn't set is no error."""
        _check_owner(requester, user_id, key)
        check_key(key)
        await self._change(user_id, key, None, remove=True)

    async def set_by_admin(self, user_id: str, key: str, value: str) -> None:
        """A server admin's change of a local user's `displayname` or `avatar_url` (the
        admin API): announced in the user's rooms like their own; "" removes the field."""
        if value:
            check_value(key, value)
        await self._change(user_id, key, value or None, remove=not value)

    async def _change(self, user_id: str, key: str, value: Any, *, remove: bool) -> None:
        now = self._clock.now_ms()

        async def txn(conn: asyncpg.Connection) -> bool:
            row = await store.get_profile(conn, user_id, for_update=True)
            if row is None:
                raise not_found("Profile not found")
            profile = profile_of(row)
            before = {k: profile.get(k) for k in MEMBER_FIELDS}
            if remove:
                profile.pop(key, None)
            else:
                profile[key] = value
            _check_size(profile)
            fields = {k: v for k, v in profile.items() if k not in MEMBER_FIELDS}
            await store.update_profile(
                conn, user_id, profile.get("displayname"), profile.get("avatar_url"), fields
            )
            changed = before != {k: profile.get(k) for k in MEMBER_FIELDS}
            if changed:
                await store.queue_member_update(conn, user_id, now)
            return changed

        if await self._db.transaction(txn, name="set_profile_field"):
            for wake in self.member_fields_changed:
                wake()


def _check_owner(requester: Requester, user_id: str, key: str) -> None:
    if requester.user_id != user_id:
        raise forbidden("You may only change your own profile")
    if requester.is_guest and key != "displayname":  # spec "Guest Access"
        raise MatrixError(403, "M_GUEST_ACCESS_FORBIDDEN", "Guests may only change displayname")


def _check_size(profile: dict[str, Any]) -> None:
    try:
        size = len(encode_canonical_json(profile))
    except CanonicalJSONError as e:
        raise bad_json(f"Profile fields must be canonical JSON: {e}") from None
    if size >= MAX_PROFILE_BYTES:
        raise MatrixError(
            400, "M_PROFILE_TOO_LARGE", f"A profile must stay under {MAX_PROFILE_BYTES} bytes"
        )

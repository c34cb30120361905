"""Local accounts as Synapse's user admin API serves them: listing and inspecting accounts,
an admin creating or changing one, deactivation (with erasure), password resets and the
server-admin flag.

Who may ask is the routes' check (`require_admin`); this service checks what is asked: local
users only (400 otherwise, Synapse's answer), known users (404), no admin demoting themselves.
Deactivation is the client API's own (`AccountManagementService.deactivate_account`), so an
account an admin deactivates leaves its rooms the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import asyncpg

from homeserver.errors import invalid_param, not_found
from homeserver.protocol.identifiers import parse_user_id
from homeserver.services.account_management import AccountManagementService
from homeserver.services.accounts import AccountDetails, AccountsService
from homeserver.services.local_users import local_user_id
from homeserver.services.profiles import check_value
from homeserver.services.requester import Requester
from storage import admin_users as store
from storage.admin_users import UserFilter
from storage.database import Database

USER_TYPES = ("bot", "support")  # Synapse's built-in user types


@dataclass(frozen=True, slots=True)
class UserChanges:
    """A `PUT /_synapse/admin/v2/users/{userId}` body, its types checked; None: unchanged."""

    password: str | None = None
    logout_devices: bool = True
    displayname: str | None = None  # "" removes it
    avatar_url: str | None = None  # "" removes it
    admin: bool | None = None
    deactivated: bool | None = None
    user_type: str | None = None
    change_user_type: bool = False  # `user_type` was given (null: an ordinary user again)


@dataclass(frozen=True, slots=True)
class UserPage:
    users: list[dict[str, Any]]
    total: int


def summary(row: asyncpg.Record) -> dict[str, Any]:
    """An account as `GET /_synapse/admin/v2/users` lists it."""
    return {
        "name": row["user_id"],
        "is_guest": row["is_guest"],
        "admin": row["is_admin"],
        "user_type": row["user_type"],
        "deactivated": row["deactivated"],
        "erased": row["erased"],
        "shadow_banned": False,  # Moot has no shadow-banning
        "displayname": row["displayname"],
        "avatar_url": row["avatar_url"],
        "creation_ts": row["created_ts"],
        "last_seen_ts": row["last_seen_ts"],
        "locked": False,  # nor locking
    }


def user_details(row: asyncpg.Record) -> dict[str, Any]:
    """An account as `GET /_synapse/admin/v2/users/{userId}` shows it."""
    return summary(row) | {
        # Synapse's details give the creation time in seconds (its column), the list in ms.
        "creation_ts": row["created_ts"] // 1000,
        "threepids": [],  # Moot stores no third-party IDs
        "external_ids": [],  # nor SSO mappings
        "appservice_id": None,
        "consent_server_notice_sent": None,
        "consent_version": None,
        "consent_ts": None,
        "suspended": False,
    }


def check_user_type(user_type: str | None) -> None:
    if user_type is not None and user_type not in USER_TYPES:
        raise invalid_param("Invalid user type")


def check_profile_fields(displayname: str | None, avatar_url: str | None) -> None:
    """The profile fields an admin sets: the client API's limits, and `avatar_url` an MXC
    URI (or "", removing it)."""
    if displayname:
        check_value("displayname", displayname)
    if avatar_url:
        check_value("avatar_url", avatar_url)
        if not avatar_url.startswith("mxc://"):
            raise invalid_param("'avatar_url' must be an mxc:// URI")


class AdminUsersService:
    def __init__(
        self, db: Database, accounts: AccountsService, management: AccountManagementService
    ) -> None:
        self._db = db
        self._accounts = accounts
        self._management = management

    async def _find(self, user_id: str) -> asyncpg.Record | None:
        local_user_id(self._accounts.server_name, user_id)
        return await self._db.run(lambda conn: store.get_user_details(conn, user_id))

    async def _get(self, user_id: str) -> asyncpg.Record:
        row = await self._find(user_id)
        if row is None:
            raise not_found("User not found")
        return row

    async def list_users(
        self, f: UserFilter, order_by: str, backwards: bool, start: int, limit: int
    ) -> UserPage:
        rows, total = await self._db.run(
            lambda conn: store.get_users_page(conn, f, order_by, backwards, start, limit)
        )
        return UserPage([summary(row) for row in rows], total)

    async def details(self, user_id: str) -> dict[str, Any]:
        return user_details(await self._get(user_id))

    async def put_user(self, admin: Requester, user_id: str, changes: UserChanges) -> bool:
        """Create the account (True) or change it (False), as `changes` says."""
        check_user_type(changes.user_type)
        check_profile_fields(changes.displayname, changes.avatar_url)
        row = await self._find(user_id)
        if row is None:
            await self._create(user_id, changes)
            return True
        # Refusals first, so that a refused request changes nothing.
        if admin.user_id == user_id and changes.admin is False:
            raise invalid_param("You may not demote yourself.")
        reactivate = changes.deactivated is False and row["deactivated"]
        if reactivate and changes.password is None:
            raise invalid_param("Must provide a password to re-activate an account.")
        for key in ("displayname", "avatar_url"):
            value = getattr(changes, key)
            if value is not None:
                await self._accounts.profiles.set_by_admin(user_id, key, value)
        if changes.admin is not None and changes.admin != row["is_admin"]:
            await self._accounts.set_admin(user_id, changes.admin)
        if changes.change_user_type:
            await self._db.transaction(
                lambda conn: store.update_user_type(conn, user_id, changes.user_type),
                name="set_user_type",
            )
        if reactivate:
            assert changes.password is not None
            await self._accounts.reactivate(user_id, changes.password)
        elif changes.password is not None:
            await self.reset_password(admin, user_id, changes.password, changes.logout_devices)
        if changes.deactivated and not row["deactivated"]:
            await self._management.deactivate_account(user_id)
        return False

    async def _create(self, user_id: str, changes: UserChanges) -> None:
        localpart, _ = parse_user_id(user_id)
        account = AccountDetails(changes.displayname or None, changes.user_type)
        await self._accounts.create_user(
            localpart, changes.password, admin=bool(changes.admin), details=account
        )
        if changes.avatar_url:
            await self._accounts.profiles.set_by_admin(user_id, "avatar_url", changes.avatar_url)

    async def deactivate(self, user_id: str, erase: bool) -> None:
        await self._get(user_id)
        await self._management.deactivate_account(user_id, erase=erase)

    async def reset_password(
        self, admin: Requester, user_id: str, password: str, logout_devices: bool
    ) -> None:
        """A new password; with `logout_devices` every device is logged out (but the admin's
        own, when they reset their own password)."""
        await self._get(user_id)
        await self._accounts.set_password(user_id, password)
        if logout_devices:
            keep = admin.device_id if admin.user_id == user_id else None
            await self._accounts.delete_other_devices(user_id, keep)

    async def is_admin(self, user_id: str) -> bool:
        return bool((await self._get(user_id))["is_admin"])

    async def set_admin(self, admin: Requester, user_id: str, flag: bool) -> None:
        await self._get(user_id)
        if admin.user_id == user_id and not flag:
            raise invalid_param("You may not demote yourself.")
        await self._accounts.set_admin(user_id, flag)

"""Typed keys under which `app.py` places the services the routes call."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from homeserver.config import Config
from homeserver.services.ratelimit import RateLimiter

if TYPE_CHECKING:
    from homeserver.services.accounts import AccountsService
    from homeserver.services.cross_signing import CrossSigningService
    from homeserver.services.e2e_keys import E2EKeysService
    from homeserver.services.key_backup import KeyBackupService
    from homeserver.services.rooms import RoomsService
    from homeserver.services.sync import SyncService
    from homeserver.services.to_device import ToDeviceService

CONFIG = web.AppKey("config", Config)
ACCOUNTS: web.AppKey[AccountsService] = web.AppKey("accounts")
ROOMS: web.AppKey[RoomsService] = web.AppKey("rooms")
SYNC: web.AppKey[SyncService] = web.AppKey("sync")
RATELIMITER = web.AppKey("ratelimiter", RateLimiter)
E2E_KEYS: web.AppKey[E2EKeysService] = web.AppKey("e2e_keys")
CROSS_SIGNING: web.AppKey[CrossSigningService] = web.AppKey("cross_signing")
TO_DEVICE: web.AppKey[ToDeviceService] = web.AppKey("to_device")
KEY_BACKUP: web.AppKey[KeyBackupService] = web.AppKey("key_backup")

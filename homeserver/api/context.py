"""Typed keys under which `app.py` places the services the routes call."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from homeserver.config import Config
from homeserver.services.ratelimit import RateLimiter

if TYPE_CHECKING:
    from homeserver.services.accounts import AccountsService
    from homeserver.services.rooms import RoomsService
    from homeserver.services.sync import SyncService

CONFIG = web.AppKey("config", Config)
ACCOUNTS: web.AppKey[AccountsService] = web.AppKey("accounts")
ROOMS: web.AppKey[RoomsService] = web.AppKey("rooms")
SYNC: web.AppKey[SyncService] = web.AppKey("sync")
RATELIMITER = web.AppKey("ratelimiter", RateLimiter)

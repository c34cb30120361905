"""Typed keys under which `app.py` places the services the routes call."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from homeserver.config import Config
from homeserver.services.ratelimit import RateLimiter
from storage.database import Database

if TYPE_CHECKING:
    from homeserver.services.account_management import AccountManagementService
    from homeserver.services.accounts import AccountsService
    from homeserver.services.admin_users import AdminUsersService
    from homeserver.services.appservice_queries import AppServiceQueries
    from homeserver.services.appservices import AppServices
    from homeserver.services.cross_signing import CrossSigningService
    from homeserver.services.destinations import FederationDestinations
    from homeserver.services.devices import DevicesService
    from homeserver.services.directory import DirectoryService
    from homeserver.services.e2e_keys import E2EKeysService
    from homeserver.services.history_purge import HistoryPurges
    from homeserver.services.key_backup import KeyBackupService
    from homeserver.services.media import MediaService
    from homeserver.services.media_admin import MediaAdmin
    from homeserver.services.push import PushService
    from homeserver.services.registration import RegistrationService
    from homeserver.services.registration_tokens import RegistrationTokens
    from homeserver.services.reports import ReportsService
    from homeserver.services.room_admin import RoomAdmin
    from homeserver.services.room_operations import RoomsService
    from homeserver.services.room_shutdown import RoomShutdown
    from homeserver.services.room_upgrades import RoomUpgrades
    from homeserver.services.search import SearchService
    from homeserver.services.server_notices import ServerNotices
    from homeserver.services.shared_secret import SharedSecretRegistration
    from homeserver.services.sliding_sync import SlidingSyncService
    from homeserver.services.space_hierarchy import SpaceHierarchy
    from homeserver.services.statistics import Statistics
    from homeserver.services.sync import SyncService
    from homeserver.services.tags import TagsService
    from homeserver.services.third_party import ThirdPartyLookups
    from homeserver.services.timestamps import JumpToDate
    from homeserver.services.to_device import ToDeviceService
    from homeserver.services.url_previews import UrlPreviews
    from homeserver.services.voip import TurnServers

CONFIG = web.AppKey("config", Config)
ACCOUNTS: web.AppKey[AccountsService] = web.AppKey("accounts")
ROOMS: web.AppKey[RoomsService] = web.AppKey("rooms")
SYNC: web.AppKey[SyncService] = web.AppKey("sync")
SLIDING_SYNC: web.AppKey[SlidingSyncService] = web.AppKey("sliding_sync")
RATELIMITER = web.AppKey("ratelimiter", RateLimiter)
DATABASE = web.AppKey("database", Database)  # only GET /health asks it anything directly
E2E_KEYS: web.AppKey[E2EKeysService] = web.AppKey("e2e_keys")
CROSS_SIGNING: web.AppKey[CrossSigningService] = web.AppKey("cross_signing")
TO_DEVICE: web.AppKey[ToDeviceService] = web.AppKey("to_device")
KEY_BACKUP: web.AppKey[KeyBackupService] = web.AppKey("key_backup")
DIRECTORY: web.AppKey[DirectoryService] = web.AppKey("directory")
SEARCH: web.AppKey[SearchService] = web.AppKey("search")
TAGS: web.AppKey[TagsService] = web.AppKey("tags")
MEDIA: web.AppKey[MediaService] = web.AppKey("media")
MEDIA_ADMIN: web.AppKey[MediaAdmin] = web.AppKey("media_admin")
DEVICES: web.AppKey[DevicesService] = web.AppKey("devices")
ACCOUNT_MANAGEMENT: web.AppKey[AccountManagementService] = web.AppKey("account_management")
REGISTRATION: web.AppKey[RegistrationService] = web.AppKey("registration")
REGISTRATION_TOKENS: web.AppKey[RegistrationTokens] = web.AppKey("registration_tokens")
SERVER_NOTICES: web.AppKey[ServerNotices] = web.AppKey("server_notices")
PUSH: web.AppKey[PushService] = web.AppKey("push")
SPACES: web.AppKey[SpaceHierarchy] = web.AppKey("spaces")
UPGRADES: web.AppKey[RoomUpgrades] = web.AppKey("upgrades")
TIMESTAMPS: web.AppKey[JumpToDate] = web.AppKey("timestamps")
TURN: web.AppKey[TurnServers] = web.AppKey("turn")
URL_PREVIEWS: web.AppKey[UrlPreviews] = web.AppKey("url_previews")
REPORTS: web.AppKey[ReportsService] = web.AppKey("reports")
HISTORY_PURGES: web.AppKey[HistoryPurges] = web.AppKey("history_purges")
THIRD_PARTY: web.AppKey[ThirdPartyLookups] = web.AppKey("third_party")
APPSERVICES: web.AppKey[AppServices] = web.AppKey("appservices")
APPSERVICE_QUERIES: web.AppKey[AppServiceQueries] = web.AppKey("appservice_queries")
ADMIN_USERS: web.AppKey[AdminUsersService] = web.AppKey("admin_users")
SHARED_SECRET_REGISTRATION: web.AppKey[SharedSecretRegistration] = web.AppKey(
    "shared_secret_registration"
)
ROOM_ADMIN: web.AppKey[RoomAdmin] = web.AppKey("room_admin")
ROOM_SHUTDOWN: web.AppKey[RoomShutdown] = web.AppKey("room_shutdown")
DESTINATIONS: web.AppKey[FederationDestinations] = web.AppKey("destinations")
STATISTICS: web.AppKey[Statistics] = web.AppKey("statistics")

"""Typed keys under which the federation stack places what the Server-Server routes call."""

from __future__ import annotations

from aiohttp import web

from federation.inbound_auth import RequestAuthenticator
from federation.joins import Joins
from federation.notary import Notary
from federation.own_keys import OwnKeys
from federation.queries import FederationQueries
from federation.room_reads import RoomReads
from federation.transactions import TransactionHandler
from homeserver.api.context import MEDIA as MEDIA  # the deprecated media routes use it too
from homeserver.services.clock import Clock
from homeserver.services.directory import DirectoryService
from homeserver.services.e2e_keys import E2EKeysService
from homeserver.services.openid import OpenIdTokens
from homeserver.services.space_hierarchy import SpaceHierarchy

CLOCK = web.AppKey("clock", Clock)
OWN_KEYS = web.AppKey("own_keys", OwnKeys)
NOTARY = web.AppKey("notary", Notary)
AUTHENTICATOR = web.AppKey("authenticator", RequestAuthenticator)
QUERIES = web.AppKey("queries", FederationQueries)
DIRECTORY = web.AppKey("directory", DirectoryService)
E2E_KEYS = web.AppKey("e2e_keys", E2EKeysService)
TRANSACTIONS = web.AppKey("transactions", TransactionHandler)
JOINS = web.AppKey("joins", Joins)
ROOM_READS = web.AppKey("room_reads", RoomReads)
OPENID = web.AppKey("openid", OpenIdTokens)
SPACES = web.AppKey("spaces", SpaceHierarchy)
# The largest body an authenticated route reads (`PUT /send` takes at least a transaction).
BODY_LIMIT = web.AppKey("body_limit", int)

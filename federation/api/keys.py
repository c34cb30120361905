"""`GET /_matrix/key/v2/server`: this server's signing key, self-signed (server-server API,
"Retrieving server keys"), and `GET /_matrix/federation/v1/version`."""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web

from homeserver.api.http import json_response
from homeserver.protocol.signing import key_id, sign_json, verify_key_base64

# How long peers may cache our key. Short enough that a rotated key is picked up within a day.
KEY_VALIDITY_MS = 24 * 3600 * 1000


class ServerKeys:
    def __init__(self, server_name: str, signing_key: Any) -> None:
        self.server_name = server_name
        self.signing_key = signing_key

    def server_keys_json(self, now_ms: int) -> dict[str, Any]:
        body = {
            "server_name": self.server_name,
            "valid_until_ts": now_ms + KEY_VALIDITY_MS,
            "verify_keys": {key_id(self.signing_key): {"key": verify_key_base64(self.signing_key)}},
            "old_verify_keys": {},
        }
        return sign_json(body, self.server_name, self.signing_key)

    async def handle_server_keys(self, request: web.Request) -> web.Response:
        return json_response(self.server_keys_json(int(time.time() * 1000)))

    async def handle_version(self, request: web.Request) -> web.Response:
        from importlib.metadata import version

        return json_response({"server": {"name": "Moot", "version": version("moot")}})

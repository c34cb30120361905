"""This server's own key response (`GET /_matrix/key/v2/server`), self-signed.

Kept apart from the route so that the notary API can hand out the same object when asked
about this server.
"""

from __future__ import annotations

from typing import Any

from homeserver.protocol.signing import SigningKey, key_id, sign_json, verify_key_base64

# How long peers may cache our key. Short enough that a rotated key is picked up within a day;
# well over the hour keys.yaml asks origins to stay above.
KEY_VALIDITY_MS = 24 * 3600 * 1000


class OwnKeys:
    def __init__(self, server_name: str, signing_key: SigningKey) -> None:
        self.server_name = server_name
        self.signing_key = signing_key
        self.key_id = key_id(signing_key)

    def response(self, now_ms: int) -> dict[str, Any]:
        """The signed key response as of ``now_ms``."""
        body = {
            "server_name": self.server_name,
            "valid_until_ts": now_ms + KEY_VALIDITY_MS,
            "verify_keys": {self.key_id: {"key": verify_key_base64(self.signing_key)}},
            "old_verify_keys": {},
        }
        return sign_json(body, self.server_name, self.signing_key)

"""What `GET /voip/turnServer` answers: TURN servers and fresh credentials for them, or nothing
when no TURN server is configured (`voip.*` in the config)."""

from __future__ import annotations

from typing import Any

from homeserver.config import VoipConfig
from homeserver.protocol.turn import turn_credentials
from homeserver.services.clock import Clock


class TurnServers:
    def __init__(self, config: VoipConfig, clock: Clock) -> None:
        self.config = config
        self.clock = clock

    def for_user(self, user_id: str) -> dict[str, Any]:
        """The spec's response for `user_id`; `{}` without TURN, as Synapse answers then (the
        spec is silent on it, and clients read the empty object as "no TURN")."""
        secret = self.config.turn_shared_secret
        if not self.config.turn_uris or secret is None:
            return {}
        credentials = turn_credentials(
            secret, user_id, self.clock.now_ms(), self.config.turn_user_lifetime_ms
        )
        return {
            "username": credentials.username,
            "password": credentials.password,
            "ttl": credentials.ttl_s,
            "uris": list(self.config.turn_uris),
        }

"""OpenID tokens (spec "OpenID"): a user proves their Matrix ID to a third party (a widget, an
integration manager), which asks this server's federation API `GET /openid/userinfo` whom a
token belongs to.

Tokens are held in memory by the main process, which serves both endpoints: one lives an hour,
a restart forgets them (the third party then asks the client for a new one, as after expiry), and
there is no table to grow. At most `MAX_TOKENS` are held; issuing one more drops the oldest.
"""

from __future__ import annotations

import secrets
from collections import OrderedDict

from homeserver.services.clock import Clock

LIFETIME_MS = 3_600_000
MAX_TOKENS = 10_000


class OpenIdTokens:
    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self._tokens: OrderedDict[str, tuple[str, int]] = OrderedDict()  # token -> (user, expiry)

    def issue(self, user_id: str) -> tuple[str, int]:
        """A new token for `user_id` and its lifetime in seconds."""
        now = self.clock.now_ms()
        while self._tokens and (
            len(self._tokens) >= MAX_TOKENS or next(iter(self._tokens.values()))[1] <= now
        ):
            self._tokens.popitem(last=False)
        token = secrets.token_urlsafe(32)
        self._tokens[token] = (user_id, now + LIFETIME_MS)
        return token, LIFETIME_MS // 1000

    def user_of(self, token: str) -> str | None:
        """Whose token this is, while it is valid."""
        entry = self._tokens.get(token)
        if entry is None or entry[1] <= self.clock.now_ms():
            return None
        return entry[0]

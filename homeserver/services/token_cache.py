"""The in-process cache in front of access-token lookups (see `accounts` for how it is used).

Entries live at most `TOKEN_CACHE_TTL_S` and never past the token's own expiry, so an expiring
access token stops working on time even while it is cached.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Callable

from homeserver import metrics
from homeserver.services.clock import Clock
from homeserver.services.requester import Requester

TOKEN_CACHE_TTL_S = 60.0
TOKEN_CACHE_SIZE = 50_000


def hash_token(token: str) -> bytes:
    """What the database stores of an access or refresh token."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()


class TokenCache:
    """Token hash → Requester, bounded LRU with a TTL.

    `generation` moves on every invalidation, so a lookup that raced a logout does not put
    the revoked token back into the cache.
    """

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._items: OrderedDict[bytes, tuple[Requester, float, int | None]] = OrderedDict()
        self.generation = 0
        self._hits = metrics.CACHE_REQUESTS.child("access_tokens", "hit")
        self._misses = metrics.CACHE_REQUESTS.child("access_tokens", "miss")
        self._entries = metrics.CACHE_ENTRIES.child("access_tokens")
        # Told (user, device or None) after every drop, so other processes drop it too.
        self.on_drop: list[Callable[[str, str | None], None]] = []

    def get(self, token_hash: bytes) -> Requester | None:
        item = self._items.get(token_hash)
        if item is None:
            self._misses.value += 1
            return None
        requester, stored, expires_ts = item
        if self._clock.monotonic() - stored >= TOKEN_CACHE_TTL_S or (
            expires_ts is not None and self._clock.now_ms() >= expires_ts
        ):
            del self._items[token_hash]
            self._misses.value += 1
            self._entries.value = len(self._items)
            return None
        self._hits.value += 1
        self._items.move_to_end(token_hash)
        return requester

    def put(
        self, token_hash: bytes, requester: Requester, expires_ts: int | None, generation: int
    ) -> None:
        if generation != self.generation:
            return
        self._items[token_hash] = (requester, self._clock.monotonic(), expires_ts)
        self._items.move_to_end(token_hash)
        if len(self._items) > TOKEN_CACHE_SIZE:
            self._items.popitem(last=False)
        self._entries.value = len(self._items)

    def drop(self, user_id: str, device_id: str | None = None) -> None:
        """Forget the tokens of one device, or of every device when `device_id` is None."""
        self.forget(user_id, device_id)
        for hook in self.on_drop:
            hook(user_id, device_id)

    def clear(self) -> None:
        self.generation += 1
        self._items.clear()
        self._entries.value = 0

    def forget(self, user_id: str, device_id: str | None = None) -> None:
        """`drop` in this process only (another process dropped them and says so)."""
        self.generation += 1
        for key, (requester, _, _) in list(self._items.items()):
            if requester.user_id == user_id and device_id in (None, requester.device_id):
                del self._items[key]
        self._entries.value = len(self._items)

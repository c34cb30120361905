"""The notary: other servers' keys as we last saw them, countersigned by us.

Implements server-server-api.md "Querying Keys Through Another Server". For this server the
answer is our own key response; for another, the newest response of theirs the keyring has
checked and stored (refreshed from them when it does not last until the asked minimum, and
handed on even when stale if they cannot be reached), with our signature added. The asker
checks both signatures, so a notary can vouch for keys but never invent them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from federation.keyring import Keyring
from federation.own_keys import OwnKeys
from homeserver.protocol.identifiers import is_valid_server_name
from homeserver.protocol.signing import sign_json
from homeserver.services.clock import Clock

# The most servers one query may ask about; each may cost a fetch.
MAX_SERVERS_PER_QUERY = 100


class Notary:
    def __init__(
        self, own_keys: OwnKeys, keyring: Keyring, clock: Clock
    ) -> None:
        self.own_keys = own_keys
        self.keyring = keyring
        self._clock = clock

    async def query(self, minimums: Mapping[str, int | None]) -> list[dict[str, Any]]:
        """Key responses for each server name, keyed to the least ``valid_until_ts`` wanted
        (None: now). Servers we know nothing of, and invalid names, are left out."""
        now = self._clock.now_ms()
        names = [n for n in minimums if is_valid_server_name(n)][:MAX_SERVERS_PER_QUERY]
        answers = await asyncio.gather(*(self._one(n, minimums[n] or now, now) for n in names))
        return [a for a in answers if a is not None]

    async def _one(self, server_name: str, minimum: int, now: int) -> dict[str, Any] | None:
        if server_name == self.own_keys.server_name:
            return self.own_keys.response(now)
        response = await self.keyring.notary_response(server_name, minimum)
        if response is None:
            return None
        return sign_json(response, self.own_keys.server_name, self.own_keys.signing_key)

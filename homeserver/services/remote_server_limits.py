"""How many other servers one user's requests may make this server contact.

A request naming users of other servers (a to-device message, a key query or claim, an invite)
makes this server discover, look up and connect to each of those servers, and for what it
queues, retry them for days. One request naming two thousand made-up servers once kept the
server busy for minutes. Synapse has no such cap; Moot has two (`federation.*` settings):

- at most ``max_servers_per_request`` distinct other servers in one request; more is refused
  whole with 413 ``M_TOO_LARGE`` (the request is too large: retrying it cannot succeed, which
  a 429 would suggest);
- at most ``max_servers_per_user`` distinct other servers per user in a window of
  ``servers_per_user_period_ms``; a server already counted for the user in the window costs
  nothing again, so talking to the same peers never runs out. Over it: 429
  ``M_LIMIT_EXCEEDED`` with ``retry_after_ms`` until the window ends.

Servers that already share a joined room with the user are free when a request would
otherwise be refused: a member of large federated rooms asks their servers for keys and sends
them to-device messages all the time, and those are servers the room brought, not the user.

Windows are kept for the ``MAX_USERS`` most recently active users (least recently used
forgotten first), each holding at most ``max_servers_per_user`` names.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Protocol

from homeserver.config import FederationConfig
from homeserver.errors import MatrixError, limit_exceeded, too_large
from homeserver.services.clock import Clock

MAX_USERS = 100_000


@dataclass(slots=True)
class _Window:
    start_s: float
    servers: set[str] = field(default_factory=set)


class ServerLimits(Protocol):
    async def admit(self, user_id: str, servers: Iterable[str]) -> None:
        """Count the other servers a request of ``user_id`` is about to contact, or raise
        413/429 (nothing is counted then)."""
        ...


class NoServerLimits:
    """Without federation a request contacts no other server: there is nothing to count."""

    async def admit(self, user_id: str, servers: Iterable[str]) -> None:
        return


class RemoteServerLimits:
    def __init__(
        self, server_name: str, config: FederationConfig, *,
        clock: Clock, max_users: int = MAX_USERS,
        shared_servers: Callable[[str], Awaitable[set[str]]],
    ) -> None:
        self.server_name = server_name
        # The servers sharing a joined room with a user (read only when a request is refused).
        self.shared_servers = shared_servers
        self.per_request = config.max_servers_per_request
        self.per_user = config.max_servers_per_user
        self.period_s = config.servers_per_user_period_ms / 1000
        self.clock = clock
        self.max_users = max_users
        self._windows: OrderedDict[str, _Window] = OrderedDict()

    async def admit(self, user_id: str, servers: Iterable[str]) -> None:
        """`check`, where the servers sharing a joined room with ``user_id`` are free."""
        wanted = set(servers)
        try:
            self.check(user_id, wanted)
        except MatrixError:
            self.check(user_id, wanted - await self.shared_servers(user_id))

    def check(self, user_id: str, servers: Iterable[str]) -> None:
        """Count the other servers a request of ``user_id`` is about to contact, or raise
        413/429 (nothing is counted then)."""
        wanted = set(servers) - {self.server_name}
        if not wanted:
            return
        if len(wanted) > self.per_request:
            raise too_large(
                f"This request would contact {len(wanted)} other servers; at most "
                f"{self.per_request} are allowed in one request"
            )
        now = self.clock.monotonic()
        window = self._windows.get(user_id)
        if window is None or now - window.start_s >= self.period_s:
            window = _Window(now)
        new = wanted - window.servers
        if len(window.servers) + len(new) > self.per_user:
            wait_s = window.start_s + self.period_s - now
            raise limit_exceeded(max(1, math.ceil(wait_s * 1000)))
        window.servers |= new
        self._windows[user_id] = window
        self._windows.move_to_end(user_id)
        while len(self._windows) > self.max_users:
            self._windows.popitem(last=False)

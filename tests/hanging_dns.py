"""A stand-in for DNS servers that never answer: `socket.getaddrinfo` hangs for names under
`hang.test` until the test ends, and answers every other name as the system does.

Shared by the tests that check lookups which outlive their timeout (getaddrinfo cannot be
interrupted) never starve the threads other work needs.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest

HANGING_DOMAIN = ".hang.test"
# The pools lookups may run in have at least this many threads (ours 4, asyncio's 6 here).
BLOCKED_THREADS = 4
# Bounds only a hang: a login queued behind the lookups would wait for the resolver to give up
# (RESOLVER_GIVES_UP_S), which the test never lets it.
LOGIN_DEADLINE_S = 60.0
RESOLVER_GIVES_UP_S = 120.0


class HangingResolver:
    """getaddrinfo that hangs for names under `hang.test` (until released) and answers the
    rest as the system does."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.released = threading.Event()
        self.blocked = 0
        self._lock = threading.Lock()

    def __call__(self, host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(host, str) and host.endswith(HANGING_DOMAIN):
            with self._lock:
                self.blocked += 1
            self.released.wait(RESOLVER_GIVES_UP_S)
            raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")
        return self.real(host, port, *args, **kwargs)


@pytest.fixture
def hanging_dns(monkeypatch: pytest.MonkeyPatch) -> Iterator[HangingResolver]:
    resolver = HangingResolver(socket.getaddrinfo)
    monkeypatch.setattr(socket, "getaddrinfo", resolver)
    yield resolver
    resolver.released.set()

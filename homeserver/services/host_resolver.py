"""Host names to IP addresses for connections to hosts other parties name: federation's
server names and the URLs users ask previews of.

getaddrinfo (/etc/hosts, then DNS) cannot be interrupted, and a name whose DNS servers never
answer holds its thread for the system's whole retry schedule. Run on asyncio's default
executor, a few hundred such names would queue media file I/O and page parsing behind them;
:class:`SystemResolver` runs them in a small thread pool of its own, so they wait only for
each other, and a lookup still queued when its timeout passes is withdrawn unrun.
"""

from __future__ import annotations

import asyncio
import socket
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from homeserver.protocol.addresses import IPAddress, ip_literal

RESOLVER_THREADS = 4
DEFAULT_RESOLVE_TIMEOUT_S = 10.0


class ResolveFailed(Exception):
    """The name could not be looked up, or not within the timeout."""


def _getaddrinfo(host: str, port: int) -> list[Any]:
    # Looked up at call time, so that a test can stand in a resolver that hangs.
    return list(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM))


class SystemResolver:
    """The operating system's resolver in a thread pool of its own, bounded by a timeout."""

    def __init__(
        self, *, threads: int = RESOLVER_THREADS, timeout_s: float = DEFAULT_RESOLVE_TIMEOUT_S,
    ) -> None:
        self.timeout_s = timeout_s
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="moot-dns")

    async def resolve(self, host: str, port: int) -> list[IPAddress]:
        """The addresses of `host`, each once, in the resolver's order."""
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.timeout_s):
                infos = await loop.run_in_executor(self._pool, _getaddrinfo, host, port)
        except TimeoutError:
            raise ResolveFailed(f"resolving {host} took over {self.timeout_s:g}s") from None
        except OSError as e:
            raise ResolveFailed(f"cannot resolve {host}: {e}") from e
        out: list[IPAddress] = []
        for _family, _type, _proto, _canon, sockaddr in infos:
            ip = ip_literal(str(sockaddr[0]).split("%", 1)[0])  # drop an IPv6 zone
            if ip is not None and ip not in out:
                out.append(ip)
        return out

    def close(self) -> None:
        """Withdraw queued lookups; threads stuck in getaddrinfo end when it returns."""
        self._pool.shutdown(wait=False, cancel_futures=True)

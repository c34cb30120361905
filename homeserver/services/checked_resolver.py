"""An aiohttp resolver that hands the connector only addresses the address policy allows.

Shared by every outbound HTTP client whose target a user chooses (URL previews, push
gateways): the connection goes to an address that was checked, and no second lookup (which a
rebinding DNS server could answer differently) happens for it. Lookups run in threads of their
own (:class:`~homeserver.services.host_resolver.SystemResolver`), so names whose DNS never
answers cannot hold the default executor. aiohttp never resolves IP literals, so a client
checks those itself with :func:`check_literal` before each request.
"""

from __future__ import annotations

import socket

from aiohttp.abc import AbstractResolver, ResolveResult
from yarl import URL

from homeserver.protocol.addresses import AddressPolicy, ip_literal
from homeserver.services.host_resolver import SystemResolver


class AddressRefused(Exception):
    """The host is, or resolves only to, addresses the policy forbids."""


class CheckedResolver(AbstractResolver):
    """The system's resolver with the addresses the policy refuses taken out. Raises
    AddressRefused when none is left, and ResolveFailed when the lookup fails."""

    def __init__(self, policy: AddressPolicy, lookup: SystemResolver) -> None:
        self.policy = policy
        self.lookup = lookup

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        addresses = await self.lookup.resolve(host, port)
        allowed: list[ResolveResult] = []
        refusals = []
        for ip in addresses:
            why = self.policy.refusal(ip)
            if why is not None:
                refusals.append(f"{ip} is {why}")
                continue
            allowed.append(ResolveResult(
                hostname=host, host=str(ip), port=port,
                family=socket.AF_INET6 if ip.version == 6 else socket.AF_INET,
                proto=socket.IPPROTO_TCP, flags=socket.AI_NUMERICHOST,
            ))
        if not allowed:
            raise AddressRefused(f"{host}: {', '.join(refusals) or 'no addresses'}")
        return allowed

    async def close(self) -> None:
        return None


def check_literal(policy: AddressPolicy, url: URL) -> None:
    """AddressRefused if the URL's host is an IP literal the policy forbids."""
    ip = ip_literal(url.raw_host or "")
    if ip is not None and (why := policy.refusal(ip)) is not None:
        raise AddressRefused(f"{ip} is {why}")

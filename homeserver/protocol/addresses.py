"""Which IP addresses this server may open connections to on someone else's say-so.

Pure. A server name (federation) or a URL to preview (`/media/preview_url`) is chosen by whoever
sends us an event, a user ID or a link: without this policy, any remote party or local user
could make us open connections to our own loopback, the cloud metadata service or the office
network (server-side request forgery). So every address a name resolves to is checked before a
connection is made, whatever the name looked like; the caller then connects to the address it
checked, never resolving the name a second time.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

__all__ = ["AddressPolicy", "IPAddress", "ip_literal"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def ip_literal(host: str) -> IPAddress | None:
    """The address if ``host`` (without brackets) is an IP literal, else None."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def _reason(ip: IPAddress) -> str | None:
    """Why ``ip`` is not a public unicast address, or None if it is one."""
    if isinstance(ip, ipaddress.IPv6Address):
        mapped = ip.ipv4_mapped or ip.sixtofour
        if mapped is not None:
            return _reason(mapped)
        if ip.teredo is not None:
            return _reason(ip.teredo[1])
    checks = (
        (ip.is_loopback, "loopback"),
        (ip.is_unspecified, "unspecified"),
        (ip.is_link_local, "link-local"),
        (ip.is_multicast, "multicast"),
        (ip.is_private, "private"),
        (ip.is_reserved, "reserved"),
        (not ip.is_global, "not globally routable"),
    )
    return next((why for bad, why in checks if bad), None)


@dataclass(frozen=True, slots=True)
class AddressPolicy:
    """Which resolved addresses an outbound connection may go to."""

    # `federation.allow_private_addresses` or `media.url_previews.allow_private_addresses`:
    # servers on one machine or one network, tests.
    allow_private: bool = False

    def refusal(self, ip: IPAddress) -> str | None:
        """Why connecting to ``ip`` is refused (e.g. "loopback"), or None if it is allowed."""
        if self.allow_private:
            # Even then, never multicast or the unspecified address: nothing serves there.
            if ip.is_multicast or ip.is_unspecified:
                return "multicast" if ip.is_multicast else "unspecified"
            return None
        return _reason(ip)

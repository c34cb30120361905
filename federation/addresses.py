"""Server names as network addresses, and which IP addresses federation may connect to.

Pure (appendices "Server Name"; server-server-api.md "Resolving server names" step 1). The
address policy exists because a server name is chosen by whoever sends us an event or a user
ID: without it, any remote party could make us open connections to our own loopback, the
cloud metadata service or the office network (server-side request forgery). So every address
a name resolves to is checked before a connection is made, whatever the name looked like.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from homeserver.protocol.identifiers import is_valid_server_name

__all__ = [
    "DEFAULT_FEDERATION_PORT",
    "AddressPolicy",
    "IPAddress",
    "ip_literal",
    "split_server_name",
]

DEFAULT_FEDERATION_PORT = 8448

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def split_server_name(server_name: str) -> tuple[str, int | None]:
    """``(hostname, port or None)`` of a server name; IPv6 literals lose their brackets.

    Raises ``ValueError`` for anything outside the grammar (and for port 0 or > 65535).
    """
    if not is_valid_server_name(server_name):
        raise ValueError(f"{server_name!r} is not a server name")
    if server_name.startswith("["):
        host, _, rest = server_name[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else None
    else:
        host, sep, port_text_or_empty = server_name.rpartition(":")
        if not sep:
            host, port_text = server_name, None
        else:
            port_text = port_text_or_empty
    port = None
    if port_text is not None:
        port = int(port_text)
        if not 1 <= port <= 65535:
            raise ValueError(f"{server_name!r} has an invalid port")
    return host, port


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
    """Which resolved addresses outbound federation may connect to."""

    # `federation.allow_private_addresses`: servers federating on one machine or one network.
    allow_private: bool = False

    def refusal(self, ip: IPAddress) -> str | None:
        """Why connecting to ``ip`` is refused (e.g. "loopback"), or None if it is allowed."""
        if self.allow_private:
            # Even then, never multicast or the unspecified address: nothing serves there.
            if ip.is_multicast or ip.is_unspecified:
                return "multicast" if ip.is_multicast else "unspecified"
            return None
        return _reason(ip)

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

__all__ = ["AddressPolicy", "IPAddress", "ip_literal", "numeric_ipv4"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def ip_literal(host: str) -> IPAddress | None:
    """The address if ``host`` (without brackets) is an IP literal, else None."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def numeric_ipv4(host: str) -> ipaddress.IPv4Address | None:
    """The IPv4 address a URL's host means if its last label is a number, as the URL Standard
    (WHATWG "ends in a number", "IPv4 parser") reads it: `2130706433`, `0x7f.1`, `0177.0.0.1`
    and `127.1` are all 127.0.0.1. None if the host is a name; ValueError if it ends in a
    number but is no address (`1.2.3.4.5`, `999.1.1.1`), which browsers refuse too.

    Resolvers and HTTP clients disagree on these forms (getaddrinfo takes some, aiohttp
    refuses others as malformed), so the caller replaces them by the canonical address, which
    every one reads the same way and the address policy then checks."""
    labels = host.split(".")
    if len(labels) > 1 and labels[-1] == "":
        labels.pop()  # a trailing dot
    last_label = labels[-1]
    if not (last_label.isascii() and last_label.isdigit()) and _number(last_label) is None:
        return None
    numbers = [_number(label) for label in labels]
    if len(numbers) > 4 or any(n is None for n in numbers):
        raise ValueError(f"{host} is not an IPv4 address")
    *high, last = [n for n in numbers if n is not None]
    if any(n > 255 for n in high) or last >= 256 ** (5 - len(numbers)):
        raise ValueError(f"{host} is not an IPv4 address")
    return ipaddress.IPv4Address(sum(n << (8 * (3 - i)) for i, n in enumerate(high)) + last)


def _number(label: str) -> int | None:
    """A URL host label read as the URL Standard's "IPv4 number" (decimal, 0x hex, 0 octal)."""
    if label[:2].lower() == "0x":
        digits, radix = label[2:], 16  # "0x" alone is 0
    elif len(label) > 1 and label.startswith("0"):
        digits, radix = label[1:], 8
    else:
        digits, radix = label, 10
    allowed = "0123456789abcdefABCDEF"[: radix + (6 if radix == 16 else 0)]
    if (not digits and radix == 10) or any(c not in allowed for c in digits):
        return None
    return int(digits, radix) if digits else 0


def _reason(ip: IPAddress) -> str | None:
    """Why ``ip`` is not a public unicast address, or None if it is one."""
    if isinstance(ip, ipaddress.IPv6Address):
        mapped = ip.ipv4_mapped or ip.sixtofour
        if mapped is not None:
            return _reason(mapped)
        if ip.teredo is not None:
            return _reason(ip.teredo[1])
        if ip.is_site_local:  # fec0::/10: deprecated, but neither private nor reserved here
            return "site-local"
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

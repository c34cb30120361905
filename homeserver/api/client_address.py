"""The client's address and scheme behind reverse proxies: the one place that reads them.

Rate limits (per address, failed logins, password checks, registration), devices' last-seen
address (and so the admin whois), and the access log all key on `client_address(request)`;
nothing else in homeserver/ or federation/ reads `request.remote` (a test holds that).

Theory of operation. A request whose peer is in `http.trusted_proxies` has its
`X-Forwarded-For` chain read from the right: each proxy appends the address it was connected
from, so the right-most entries are written by proxies we trust and the first entry, walking
leftwards, that is *not* a trusted proxy is the client as the outermost trusted proxy saw it.
Entries further left were sent by that client and are never read, so nothing it writes there
(garbage included) changes the result. If every entry is a trusted proxy, the left-most one
is the client (a request from the proxy host itself). A malformed entry reached before the
client, or no header at all, leaves the request at its peer: a client cannot choose its
address by breaking the header, and it is never a 500. From an untrusted peer the headers are
not read at all.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence

from aiohttp import web

from homeserver.config import IPNetwork

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Set by app.py on every application whose listener may sit behind a reverse proxy; an
# application without it trusts no proxy.
TRUSTED_PROXIES: web.AppKey[tuple[IPNetwork, ...]] = web.AppKey("trusted_proxies")
_ADDRESS = web.RequestKey("moot_client_address", str)


def parse_address(text: str) -> IPAddress | None:
    """`text` as an IP address (an IPv4-mapped IPv6 address as the IPv4 one it maps), or None.
    A bracketed IPv6 address (`[::1]`, as in RFC 7239) is accepted; ports are not."""
    text = text.strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def is_trusted(address: IPAddress, trusted: Iterable[IPNetwork]) -> bool:
    return any(address in network for network in trusted)


def pick_client_address(
    peer: str, forwarded_for: Sequence[str], trusted: Sequence[IPNetwork]
) -> str:
    """The client's address for a request from `peer` carrying the `X-Forwarded-For` header
    values `forwarded_for` (in the order received); see the theory of operation above."""
    if not trusted or not forwarded_for:  # most requests: no address to parse
        return peer
    peer_address = parse_address(peer)
    if peer_address is None or not is_trusted(peer_address, trusted):
        return peer
    entries = ",".join(forwarded_for).split(",")
    client = peer_address
    for entry in reversed(entries):
        address = parse_address(entry)
        if address is None:
            return peer
        client = address
        if not is_trusted(address, trusted):
            break
    return str(client)


def pick_scheme(peer: str, forwarded_proto: Sequence[str], own: str,
                trusted: Sequence[IPNetwork]) -> str:
    """The scheme the client used: a trusted peer's single `X-Forwarded-Proto` value when it is
    http or https (nginx sets it to `$scheme`), else `own`, the scheme of the connection."""
    peer_address = parse_address(peer)
    if peer_address is None or not is_trusted(peer_address, trusted) or len(forwarded_proto) != 1:
        return own
    scheme = forwarded_proto[0].strip().lower()
    return scheme if scheme in ("http", "https") else own


def _trusted(request: web.Request) -> tuple[IPNetwork, ...]:
    return request.app.get(TRUSTED_PROXIES, ())


def client_address(request: web.Request) -> str:
    """The address of the client that sent `request` ("" when the socket has none)."""
    address = request.get(_ADDRESS)
    if address is None:
        address = pick_client_address(
            request.remote or "", request.headers.getall("X-Forwarded-For", []),
            _trusted(request),
        )
        request[_ADDRESS] = address
    return address


def client_scheme(request: web.Request) -> str:
    """`http` or `https`: how the client reached us, through a trusted proxy or directly."""
    return pick_scheme(
        request.remote or "", request.headers.getall("X-Forwarded-Proto", []), request.scheme,
        _trusted(request),
    )

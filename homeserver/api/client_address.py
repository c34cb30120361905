"""The client's address behind a reverse proxy: what per-address rate limits, the access log
and devices' last-seen addresses key on.

A request whose peer is one of `listeners.trusted_proxies` is counted against the address the
proxy names in the last `X-Forwarded-For` entry (the one the proxy itself added; nginx in
deploy/ sets it to `$remote_addr`). From any other peer the header is ignored, so a client
cannot pick its own address; behind an untrusted proxy every client would share one address.
"""

from __future__ import annotations

import ipaddress

from aiohttp import web


def forwarded_for(request: web.Request, trusted_proxies: tuple[str, ...]) -> str | None:
    """The client address a trusted proxy vouches for, or None to keep the peer's."""
    if request.remote not in trusted_proxies:
        return None
    header = request.headers.getall("X-Forwarded-For", [])
    if not header:
        return None
    last = header[-1].rsplit(",", 1)[-1].strip()
    try:
        return str(ipaddress.ip_address(last))
    except ValueError:
        return None

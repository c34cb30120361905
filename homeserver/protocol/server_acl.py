"""Server ACLs: whether a room's `m.room.server_acl` lets a server take part.

Implements client-server-api "Server Access Control Lists (ACLs) for rooms": the port is not
considered, IP literals are refused unless `allow_ip_literals` (default true), then `deny`
globs refuse and `allow` globs admit; a server no glob admits is refused. Globs know `*` and
`?` and match case-insensitively.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from functools import lru_cache
from typing import Any


@lru_cache(maxsize=1024)
def _glob(pattern: str) -> re.Pattern[str]:
    parts = (".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.compile("".join(parts), re.IGNORECASE | re.DOTALL)


def _host(server_name: str) -> str:
    if server_name.startswith("["):
        return server_name[: server_name.find("]") + 1]
    return server_name.rsplit(":", 1)[0] if ":" in server_name else server_name


def _is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def _matches(globs: Any, host: str) -> bool:
    if not isinstance(globs, list):
        return False
    return any(isinstance(g, str) and _glob(g).fullmatch(host) for g in globs)


def server_allowed(acl_content: Mapping[str, Any] | None, server_name: str) -> bool:
    """True when the ACL (None: the room has none) admits `server_name`."""
    if acl_content is None:
        return True
    host = _host(server_name)
    if acl_content.get("allow_ip_literals", True) is False and _is_ip_literal(host):
        return False
    if _matches(acl_content.get("deny", []), host):
        return False
    return _matches(acl_content.get("allow", []), host)

"""Server ACLs: whether a room's `m.room.server_acl` lets a server take part.

Implements client-server-api "Server Access Control Lists (ACLs) for rooms": the port is not
considered, IP literals are refused unless `allow_ip_literals` (default true), then `deny`
globs refuse and `allow` globs admit; a server no glob admits is refused. Globs know `*` and
`?` and match case-insensitively.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Any

# Longer globs never match: a server name is at most 255 characters.
_MAX_GLOB = 255


def glob_matches(pattern: str, text: str) -> bool:
    """`*` (any run) and `?` (any one character) matching, case-insensitive, in time linear in
    the pattern times the text: the `*`-free pieces are placed leftmost one after another,
    which is exact for globs and cannot backtrack (a regex of `.*`s can, for seconds)."""
    if len(pattern) > _MAX_GLOB:
        return False
    pieces = pattern.lower().split("*")
    text = text.lower()
    if len(pieces) == 1:
        return len(text) == len(pattern) and _piece_at(pieces[0], text, 0)
    first, *middle, last = pieces
    end = len(text) - len(last)
    if end < len(first) or not _piece_at(first, text, 0) or not _piece_at(last, text, end):
        return False
    position = len(first)
    for piece in middle:
        found = next(
            (i for i in range(position, end - len(piece) + 1) if _piece_at(piece, text, i)), None
        )
        if found is None:
            return False
        position = found + len(piece)
    return True


def _piece_at(piece: str, text: str, start: int) -> bool:
    return all(c == "?" or c == text[start + i] for i, c in enumerate(piece))


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
    return any(isinstance(g, str) and glob_matches(g, host) for g in globs)


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

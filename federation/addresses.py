"""Server names as network addresses (appendices "Server Name"; server-server-api.md
"Resolving server names" step 1). Which addresses may then be connected to is
`homeserver.protocol.addresses.AddressPolicy`, shared with URL previews.
"""

from __future__ import annotations

from homeserver.protocol.identifiers import is_valid_server_name

__all__ = ["DEFAULT_FEDERATION_PORT", "split_server_name"]

DEFAULT_FEDERATION_PORT = 8448


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

"""Matrix identifiers: parsing and validation.

Implements appendices.md "Identifier Grammar": "Server Name", "Common Identifier Format",
"User Identifiers" (including "Historical User IDs"), "Room IDs", "Room Aliases" and
"Event IDs". Validation is deliberately split in two: what we must *accept* from the
federation (the tolerant historical grammar) and what we may *allocate* for new accounts
(the strict grammar).
"""

from __future__ import annotations

import ipaddress
import re
from typing import NewType

UserID = NewType("UserID", str)
RoomID = NewType("RoomID", str)
EventID = NewType("EventID", str)
ServerName = NewType("ServerName", str)
RoomAlias = NewType("RoomAlias", str)

# Appendices: user IDs, room IDs, aliases and event IDs "MUST NOT exceed 255 bytes".
MAX_IDENTIFIER_BYTES = 255

_PORT = r"(?::(?P<port>[0-9]{1,5}))?"
_IPV4_RE = re.compile(r"[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}")
_IPV6_RE = re.compile(r"\[(?P<ip6>[0-9A-Fa-f:.]{2,45})\]" + _PORT)
_DNS_RE = re.compile(r"(?P<host>[0-9A-Za-z\-.]{1,255})" + _PORT)
_STRICT_LOCALPART_RE = re.compile(r"[a-z0-9._=\-/+]+")
# v4+ event IDs (and v12 room IDs) are a sha256 in URL-safe unpadded base64: 43 characters.
_HASH_ID_RE = re.compile(r"[A-Za-z0-9_\-]{43}")
# v3 event IDs are the same sha256 in standard unpadded base64.
_V3_HASH_ID_RE = re.compile(r"[A-Za-z0-9+/]{43}")


def _byte_len(s: str) -> int:
    try:
        return len(s.encode("utf-8"))
    except UnicodeEncodeError:
        # Lone surrogates cannot be encoded; treat them as over any limit.
        return MAX_IDENTIFIER_BYTES + 1


def is_valid_server_name(s: str) -> bool:
    """True if ``s`` matches the "Server Name" grammar (hostname [":" port])."""
    if not isinstance(s, str) or not s:
        return False
    m6 = _IPV6_RE.fullmatch(s)
    if m6 is not None:
        try:
            ipaddress.IPv6Address(m6.group("ip6"))
        except ValueError:
            return False
        return True
    m = _DNS_RE.fullmatch(s)
    if m is None:
        return False
    host = m.group("host")
    # Something shaped like a dotted quad is an IPv4 literal, and then the spec requires
    # "four decimal numbers in the range 0 to 255".
    if _IPV4_RE.fullmatch(host):
        return all(int(part) <= 255 for part in host.split("."))
    return True


def _split_sigil_id(s: str, sigil: str) -> tuple[str, str]:
    """Split ``&localpart:domain`` at the first ':' (localparts may not contain ':')."""
    if not isinstance(s, str) or not s.startswith(sigil):
        raise ValueError(f"identifier must start with {sigil!r}: {s!r}")
    localpart, sep, domain = s[1:].partition(":")
    if not sep:
        raise ValueError(f"identifier has no server name: {s!r}")
    return localpart, domain


def _is_tolerant_localpart(localpart: str) -> bool:
    # "Historical User IDs": any non-surrogate code point except ':' and NUL, even empty.
    return "\x00" not in localpart and ":" not in localpart and _byte_len(localpart) <= 255


def parse_user_id(s: str) -> tuple[str, str]:
    """Return ``(localpart, server_name)`` of a user ID; raise ``ValueError`` if invalid."""
    localpart, domain = _split_sigil_id(s, "@")
    if not _is_tolerant_localpart(localpart):
        raise ValueError(f"invalid user ID localpart: {s!r}")
    if not is_valid_server_name(domain):
        raise ValueError(f"invalid server name in user ID: {s!r}")
    if _byte_len(s) > MAX_IDENTIFIER_BYTES:
        raise ValueError("user ID longer than 255 bytes")
    return localpart, domain


def is_valid_user_id(s: str) -> bool:
    """True if ``s`` is a user ID we must accept (historical grammar, <= 255 bytes)."""
    try:
        parse_user_id(s)
    except ValueError:
        return False
    return True


def is_valid_localpart_for_registration(s: str) -> bool:
    """True if ``s`` is a localpart we may allocate (the strict, current grammar)."""
    return isinstance(s, str) and _STRICT_LOCALPART_RE.fullmatch(s) is not None


# The sigils of identifiers that end in a server name (`server_name_of`).
SERVER_SIGILS = ("@", "#", "!", "$")


def server_name_of(identifier: str) -> str:
    """The server name of ``@user:srv``, ``#alias:srv``, ``!room:srv`` or ``$event:srv``.

    Raises ``ValueError`` for identifiers without a domain (v4+ event IDs, v12 room IDs).
    """
    if not isinstance(identifier, str) or identifier[:1] not in SERVER_SIGILS:
        raise ValueError(f"not a sigil identifier: {identifier!r}")
    _, domain = _split_sigil_id(identifier, identifier[0])
    if not domain:
        raise ValueError(f"identifier has an empty server name: {identifier!r}")
    return domain


def is_valid_room_alias(s: str) -> bool:
    """True if ``s`` is ``#localpart:server_name`` within 255 bytes."""
    try:
        localpart, domain = _split_sigil_id(s, "#")
    except ValueError:
        return False
    return (
        _is_tolerant_localpart(localpart)
        and is_valid_server_name(domain)
        and _byte_len(s) <= MAX_IDENTIFIER_BYTES
    )


def is_valid_room_id(s: str) -> bool:
    """True for ``!opaque:server`` (rooms v1-11) and ``!<43 url-safe base64>`` (v12)."""
    if not isinstance(s, str) or not s.startswith("!") or _byte_len(s) > MAX_IDENTIFIER_BYTES:
        return False
    if _HASH_ID_RE.fullmatch(s[1:]):
        return True
    try:
        localpart, domain = _split_sigil_id(s, "!")
    except ValueError:
        return False
    return bool(localpart) and _is_tolerant_localpart(localpart) and is_valid_server_name(domain)


def is_hash_event_id(s: str) -> bool:
    """True for a room v4+ event ID: ``$`` followed by a URL-safe unpadded base64 sha256."""
    return isinstance(s, str) and s.startswith("$") and _HASH_ID_RE.fullmatch(s[1:]) is not None


def is_v3_event_id(s: str) -> bool:
    """True for a room v3 event ID: ``$`` followed by a standard unpadded base64 sha256."""
    return isinstance(s, str) and s.startswith("$") and _V3_HASH_ID_RE.fullmatch(s[1:]) is not None


def is_valid_event_id(s: str) -> bool:
    """True for an event ID of any room version: a v4+ reference hash, a v3 one (standard
    base64) or the ``$opaque:server`` of rooms v1-v2."""
    return is_hash_event_id(s) or is_v3_event_id(s) or is_legacy_event_id(s)


def is_legacy_event_id(s: str) -> bool:
    """True for a room v1-v2 event ID, ``$opaque:server`` within 255 bytes."""
    if not isinstance(s, str) or not s.startswith("$") or _byte_len(s) > MAX_IDENTIFIER_BYTES:
        return False
    try:
        localpart, domain = _split_sigil_id(s, "$")
    except ValueError:
        return False
    return bool(localpart) and "\x00" not in localpart and is_valid_server_name(domain)

"""Application service registrations and their namespaces (spec "Application Service API",
"Registration").

An operator writes one registration file per application service (a bridge, a bot); this
module turns its already-decoded YAML mapping into a `Registration` and answers the questions
the rest of the server asks of it: is the service interested in this user, alias or room, and
does it hold that user or alias exclusively.

Format decisions, as Synapse reads the files the mautrix bridges write:
- A namespace regex must match the whole identifier (`fullmatch`); the bridges anchor theirs
  with `^…$`, and the spec's examples (`@_irc_bridge_.*`) cover the whole ID as well.
- `receive_ephemeral` may also be spelled `de.sorunome.msc2409.push_ephemeral` or
  `push_ephemeral` (MSC2409, still written by bridges); any of them true turns it on.
- `rate_limited` defaults to true; `url` may be null (the service wants no traffic).
- Keys this server does not know (`org.matrix.msc3202`, `io.element.msc4190`, …) are ignored.
- User namespaces cover local users only (the spec's note on `users`): a remote user never
  matches, whatever the regex says.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from homeserver.protocol.identifiers import is_valid_user_id, server_name_of

# The spellings of "send me ephemeral events" Synapse accepts, the spec's first.
EPHEMERAL_KEYS = ("receive_ephemeral", "de.sorunome.msc2409.push_ephemeral", "push_ephemeral")
NAMESPACE_KINDS = ("users", "aliases", "rooms")
# An http(s) URL with a host (the path, if any, is kept: the service may live under one).
_HTTP_URL = re.compile(r"https?://[^/?#@\s]+(?:[/?#]\S*)?", re.IGNORECASE)


class RegistrationError(ValueError):
    """A registration mapping is unusable: `field` (dotted) says where, `reason` why."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Namespace:
    """One entry of a namespace list: identifiers the regex matches in full."""

    regex: re.Pattern[str]
    exclusive: bool

    def matches(self, identifier: str) -> bool:
        return self.regex.fullmatch(identifier) is not None


@dataclass(frozen=True, slots=True)
class Registration:
    id: str
    # Base URL the homeserver pushes to; None when the service asked for no traffic.
    url: str | None
    as_token: str  # the service authenticates to us with it
    hs_token: str  # we authenticate to the service with it
    sender_localpart: str
    # `@sender_localpart:server_name`: the service's own user, which needs no registration.
    sender: str
    users: tuple[Namespace, ...] = ()
    aliases: tuple[Namespace, ...] = ()
    rooms: tuple[Namespace, ...] = ()
    rate_limited: bool = True
    protocols: tuple[str, ...] = ()
    receive_ephemeral: bool = False


def _is_local(registration: Registration, user_id: str) -> bool:
    try:
        return server_name_of(user_id) == server_name_of(registration.sender)
    except ValueError:
        return False


def is_interested_in_user(registration: Registration, user_id: str) -> bool:
    """The service's sender, or a local user one of its user namespaces matches."""
    if user_id == registration.sender:
        return True
    return _is_local(registration, user_id) and any(n.matches(user_id) for n in registration.users)


def is_interested_in_alias(registration: Registration, alias: str) -> bool:
    return any(n.matches(alias) for n in registration.aliases)


def is_interested_in_room(registration: Registration, room_id: str) -> bool:
    return any(n.matches(room_id) for n in registration.rooms)


def is_exclusive_user(registration: Registration, user_id: str) -> bool:
    """Whether only this service may register or act as `user_id` (its sender included)."""
    if user_id == registration.sender:
        return True
    return _is_local(registration, user_id) and any(
        n.exclusive and n.matches(user_id) for n in registration.users
    )


def is_exclusive_alias(registration: Registration, alias: str) -> bool:
    return any(n.exclusive and n.matches(alias) for n in registration.aliases)


def parse_registration(raw: object, server_name: str) -> Registration:
    """The registration a decoded YAML document describes, or a RegistrationError naming the
    first wrong field."""
    if not isinstance(raw, Mapping):
        raise RegistrationError("(top level)", "expected a mapping of registration keys")
    service_id = _required_string(raw, "id")
    url = _present(raw, "url")
    if url is not None and not (isinstance(url, str) and _is_http_url(url)):
        raise RegistrationError("url", f"expected an http(s) URL or null, got {url!r}")
    sender_localpart = _required_string(raw, "sender_localpart")
    sender = f"@{sender_localpart}:{server_name}"
    if not is_valid_user_id(sender):
        raise RegistrationError(
            "sender_localpart", f"{sender_localpart!r} does not make a valid user ID ({sender})"
        )
    namespaces = _present(raw, "namespaces")
    if not isinstance(namespaces, Mapping):
        raise RegistrationError("namespaces", "expected a mapping with users, aliases, rooms")
    lists = {kind: _namespace_list(namespaces.get(kind), kind) for kind in NAMESPACE_KINDS}
    return Registration(
        id=service_id,
        url=url,
        as_token=_required_string(raw, "as_token"),
        hs_token=_required_string(raw, "hs_token"),
        sender_localpart=sender_localpart,
        sender=sender,
        users=lists["users"],
        aliases=lists["aliases"],
        rooms=lists["rooms"],
        rate_limited=_boolean(raw, "rate_limited", default=True),
        protocols=_protocols(raw.get("protocols")),
        receive_ephemeral=any(_boolean(raw, key, default=False) for key in EPHEMERAL_KEYS),
    )


def _present(raw: Mapping[str, Any], field: str) -> Any:
    """The value of a key the spec requires (a null `url` is present)."""
    if field not in raw:
        raise RegistrationError(field, "is required")
    return raw[field]


def _required_string(raw: Mapping[str, Any], field: str) -> str:
    value = _present(raw, field)
    if not isinstance(value, str) or not value:
        raise RegistrationError(field, f"expected a non-empty string, got {value!r}")
    return value


def _boolean(raw: Mapping[str, Any], field: str, *, default: bool) -> bool:
    value = raw.get(field, default)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise RegistrationError(field, f"expected true or false, got {value!r}")
    return value


def _is_http_url(value: str) -> bool:
    return _HTTP_URL.fullmatch(value) is not None


def _namespace_list(value: object, kind: str) -> tuple[Namespace, ...]:
    where = f"namespaces.{kind}"
    if value is None:
        return ()
    if not isinstance(value, list):
        raise RegistrationError(where, f"expected a list of namespaces, got {value!r}")
    return tuple(_namespace(entry, f"{where}[{i}]") for i, entry in enumerate(value))


def _namespace(entry: object, where: str) -> Namespace:
    if not isinstance(entry, Mapping):
        raise RegistrationError(where, "expected a mapping with regex and exclusive")
    regex = entry.get("regex")
    if not isinstance(regex, str) or not regex:
        raise RegistrationError(f"{where}.regex", f"expected a non-empty string, got {regex!r}")
    exclusive = entry.get("exclusive")
    if not isinstance(exclusive, bool):
        raise RegistrationError(f"{where}.exclusive", f"expected true or false, got {exclusive!r}")
    try:
        pattern = re.compile(regex)
    except re.error as e:
        raise RegistrationError(
            f"{where}.regex", f"{regex!r} is not a regular expression ({e})"
        ) from None
    return Namespace(pattern, exclusive)


def _protocols(value: object) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(p, str) and p for p in value):
        raise RegistrationError("protocols", f"expected a list of protocol names, got {value!r}")
    return tuple(value)


def without_events(body: str, event_ids: Collection[str]) -> tuple[str, int] | None:
    """A transaction body (JSON text) less the room events `event_ids` names, with how many
    it then holds; None when it holds none of them. What a purge, a retention sweep or a
    redaction removed must not reach an appservice that was down when it happened: the
    retry under the same txnId carries the rest (an appservice that already took the first
    attempt drops the retry by its txnId)."""
    if not any(event_id in body for event_id in event_ids):
        return None
    parsed = json.loads(body)
    events = parsed.get("events", [])
    kept = [e for e in events if e.get("event_id") not in event_ids]
    if len(kept) == len(events):
        return None
    parsed["events"] = kept
    return json.dumps(parsed, ensure_ascii=False, separators=(",", ":")), len(kept)

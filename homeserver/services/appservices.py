"""The application services this server knows: read from the registration files the config
lists (`appservices.registration_files`) once at start-up, then looked up by the request
path (by `as_token`) and by whoever must respect exclusive namespaces.

A file that cannot be used stops start-up with a ConfigError naming the file, the field and
the reason; so do two registrations sharing an `id`, `as_token` or `hs_token` (the spec makes
the first two identify a service; a shared `hs_token` would let one service pass for another
when it checks our requests).
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable, Iterator
from pathlib import Path

import yaml

from homeserver.config import Config, ConfigError
from homeserver.protocol.appservice import (
    Registration,
    RegistrationError,
    is_exclusive_alias,
    is_exclusive_user,
    parse_registration,
)


class AppServices:
    """The registrations, in the order the config lists them."""

    def __init__(self, registrations: Iterable[Registration] = ()) -> None:
        self._all = tuple(registrations)
        self._by_id = {r.id: r for r in self._all}

    def __iter__(self) -> Iterator[Registration]:
        return iter(self._all)

    def __len__(self) -> int:
        return len(self._all)

    def get(self, service_id: str) -> Registration | None:
        return self._by_id.get(service_id)

    def by_as_token(self, token: str) -> Registration | None:
        """The service whose `as_token` this is: the one place a request's token is found to
        be an application service's (compared in constant time: tokens are secrets)."""
        encoded = token.encode("utf-8", "surrogatepass")
        for registration in self._all:
            if hmac.compare_digest(registration.as_token.encode("utf-8", "surrogatepass"), encoded):
                return registration
        return None

    def exclusive_owner_of_user(
        self, user_id: str, *, besides: Registration | None = None
    ) -> Registration | None:
        """A service (other than `besides`) holding `user_id` in an exclusive namespace or
        as its sender."""
        return next(
            (r for r in self._all if r is not besides and is_exclusive_user(r, user_id)), None
        )

    def exclusive_owner_of_alias(
        self, alias: str, *, besides: Registration | None = None
    ) -> Registration | None:
        return next(
            (r for r in self._all if r is not besides and is_exclusive_alias(r, alias)), None
        )


def load_appservices(config: Config) -> AppServices:
    """Read and check every registration file of `appservices.registration_files`."""
    server_name = config.server.server_name
    seen: dict[tuple[str, str], Path] = {}
    registrations = []
    for relative in config.appservices.registration_files:
        path = config.path(relative)
        registration = _read(path, server_name)
        for field in ("id", "as_token", "hs_token"):
            key = (field, getattr(registration, field))
            if key in seen:
                raise ConfigError(
                    f"appservice registration {path}: {field}: the same as in {seen[key]} "
                    "(each service needs its own)"
                )
            seen[key] = path
        registrations.append(registration)
    return AppServices(registrations)


def _read(path: Path, server_name: str) -> Registration:
    try:
        raw = yaml.safe_load(path.read_text())
    except OSError as e:
        raise ConfigError(f"appservice registration {path}: cannot read it: {e}") from e
    except yaml.YAMLError as e:
        raise ConfigError(f"appservice registration {path}: not valid YAML: {e}") from e
    try:
        return parse_registration(raw, server_name)
    except RegistrationError as e:
        raise ConfigError(f"appservice registration {path}: {e.field}: {e.reason}") from e

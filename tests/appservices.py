"""Test helpers for application services: registration files written by the test, and a
client that acts with an as_token (optionally as a user of the service's namespaces)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.helpers import MatrixApi


def registration(
    service_id: str = "bridge", *, prefix: str = "_bridge_", exclusive: bool = True,
    url: str | None = "http://127.0.0.1:9", **extra: Any,
) -> dict[str, Any]:
    """A registration like a bridge's: users `@{prefix}…` and aliases `#{prefix}…`, its
    sender `@{prefix}bot`; `extra` adds or replaces top-level keys."""
    return {
        "id": service_id,
        "url": url,
        "as_token": f"as_token_of_{service_id}",
        "hs_token": f"hs_token_of_{service_id}",
        "sender_localpart": f"{prefix}bot",
        "namespaces": {
            "users": [{"exclusive": exclusive, "regex": f"@{prefix}.*"}],
            "aliases": [{"exclusive": exclusive, "regex": f"#{prefix}.*"}],
            "rooms": [],
        },
        **extra,
    }


def write_registrations(directory: Path, *registrations: dict[str, Any]) -> list[str]:
    """Write each registration to its own file; the absolute paths, for
    `appservices.registration_files`."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for reg in registrations:
        path = directory / f"{reg['id']}.yaml"
        path.write_text(yaml.safe_dump(reg))
        paths.append(str(path))
    return paths


@dataclass(frozen=True)
class AppServiceClient:
    """Requests with a service's as_token, as its sender or (`as_user`) one of its users."""

    api: MatrixApi
    as_token: str

    async def request(
        self, method: str, path: str, *, as_user: str | None = None,
        params: dict[str, str] | None = None, json: Any = None,
    ) -> tuple[int, Any]:
        query = dict(params or {})
        if as_user is not None:
            query["user_id"] = as_user
        return await self.api.request(
            method, path, json=json, token=self.as_token, params=query or None
        )

    async def ok(self, method: str, path: str, **kwargs: Any) -> Any:
        status, body = await self.request(method, path, **kwargs)
        assert status == 200, (method, path, status, body)
        return body

    async def register(self, localpart: str, **extra: Any) -> tuple[int, Any]:
        """`m.login.application_service` registration (mautrix's: `inhibit_login`)."""
        body = {"type": "m.login.application_service", "username": localpart,
                "inhibit_login": True, **extra}
        return await self.request("POST", "register", json=body)

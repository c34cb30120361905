"""Test helpers: a small Matrix client over real HTTP, and spec-schema validation."""

from __future__ import annotations

import functools
import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import jsonschema
import referencing
import yaml
from referencing.jsonschema import DRAFT202012

SPEC_API = Path(__file__).resolve().parents[2] / "shared" / "matrix-spec" / "data" / "api"
CS_API = SPEC_API / "client-server"
PASSWORD = "correct horse 1"


@dataclass(frozen=True)
class User:
    user_id: str
    token: str
    device_id: str
    password: str = PASSWORD


class MatrixApi:
    """Just enough of a Matrix client to drive the server in tests, over real sockets."""

    def __init__(self, base_url: str, session: aiohttp.ClientSession) -> None:
        self.base_url = base_url
        self.session = session
        self._txn = itertools.count()

    async def request(
        self, method: str, path: str, json: Any = None, token: str | None = None,
        raw: bytes | None = None, headers: dict[str, str] | None = None,
        params: dict[str, str] | None = None,
    ) -> tuple[int, Any]:
        if not path.startswith("/"):
            path = "/_matrix/client/v3/" + path
        all_headers = dict(headers or {})
        if token is not None:
            all_headers["Authorization"] = f"Bearer {token}"
        kwargs: dict[str, Any] = {"headers": all_headers, "params": params}
        if raw is not None:
            kwargs["data"] = raw
        elif json is not None:
            kwargs["json"] = json
        async with self.session.request(method, self.base_url + path, **kwargs) as resp:
            text = await resp.text()
            try:
                body: Any = __import__("json").loads(text) if text else None
            except ValueError:
                body = text
            return resp.status, body

    async def ok(self, method: str, path: str, **kwargs: Any) -> Any:
        status, body = await self.request(method, path, **kwargs)
        assert status == 200, (method, path, status, body)
        return body

    async def register(self, localpart: str, password: str = PASSWORD) -> User:
        status, body = await self.request(
            "POST", "register",
            json={"username": localpart, "password": password, "auth": {"type": "m.login.dummy"}},
        )
        assert status == 200, (status, body)
        return User(body["user_id"], body["access_token"], body["device_id"], password)

    async def login(self, user: User, device_id: str | None = None) -> User:
        """Another device of `user` (or the device `device_id`, created afresh)."""
        body: dict[str, Any] = {
            "type": "m.login.password", "password": user.password,
            "identifier": {"type": "m.id.user", "user": user.user_id},
        }
        if device_id is not None:
            body["device_id"] = device_id
        result = await self.ok("POST", "login", json=body)
        return User(result["user_id"], result["access_token"], result["device_id"], user.password)

    async def create_room(self, user: User, **body: Any) -> str:
        result = await self.ok("POST", "createRoom", json=body, token=user.token)
        room_id: str = result["room_id"]
        return room_id

    async def join(self, user: User, room_id_or_alias: str) -> None:
        await self.ok("POST", f"join/{room_id_or_alias}", json={}, token=user.token)

    async def invite(self, user: User, room_id: str, invitee: User) -> None:
        await self.ok(
            "POST", f"rooms/{room_id}/invite", json={"user_id": invitee.user_id}, token=user.token
        )

    async def send_message(self, user: User, room_id: str, text: str) -> str:
        txn = f"t{next(self._txn)}"
        body = await self.ok(
            "PUT", f"rooms/{room_id}/send/m.room.message/{txn}",
            json={"msgtype": "m.text", "body": text}, token=user.token,
        )
        event_id: str = body["event_id"]
        return event_id

    async def sync(self, user: User, **params: Any) -> dict[str, Any]:
        str_params = {k: str(v) for k, v in params.items()}
        result: dict[str, Any] = await self.ok("GET", "sync", token=user.token, params=str_params)
        return result


@functools.cache
def _load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def _retrieve(uri: str) -> referencing.Resource[Any]:
    path = Path(uri.removeprefix("file://"))
    return DRAFT202012.create_resource(_load_yaml(path))


def validate_response(
    schema_file: str, path: str, method: str, status: int, body: Any, api: Path = CS_API
) -> None:
    """Validate a response body against the spec's OpenAPI definition of that response (the
    Client-Server API's unless `api` names another directory of definitions).

    The schema is reached by a JSON pointer into the OpenAPI file, so references inside the
    file (`#/components/...`) and to other files both resolve.
    """
    file = api / schema_file
    pointer = "/".join(
        part.replace("~", "~0").replace("/", "~1")
        for part in ("paths", path, method.lower(), "responses", str(status), "content",
                     "application/json", "schema")
    )
    registry: referencing.Registry[Any] = referencing.Registry(retrieve=_retrieve)  # type: ignore[call-arg]
    schema = {"$ref": f"{file.as_uri()}#/{pointer}"}
    jsonschema.Draft202012Validator(schema, registry=registry).validate(body)

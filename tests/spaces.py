"""Spaces in tests: the room summary and federation hierarchy paths, and adding a child."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from tests.helpers import MatrixApi, User

SUMMARY = "/_matrix/client/v1/room_summary/{}"
PREFIX = "/_matrix/federation/v1/hierarchy/"


async def add_child(
    api: MatrixApi, user: User, space: str, child: str, via: str, **content: Any
) -> None:
    await api.ok("PUT", f"rooms/{quote(space)}/state/m.space.child/{quote(child)}",
                 json={"via": [via], **content}, token=user.token)

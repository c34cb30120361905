"""Room upgrades in tests: upgrading a room, the answer checked against the spec."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from tests.helpers import MatrixApi, User, validate_response


async def upgrade(api: MatrixApi, user: User, room_id: str, **body: Any) -> str:
    answer = await api.ok("POST", f"rooms/{quote(room_id)}/upgrade", json=body,
                          token=user.token)
    validate_response("room_upgrades.yaml", "/rooms/{roomId}/upgrade", "post", 200, answer)
    new_room: str = answer["replacement_room"]
    return new_room

"""Guest accounts in tests: the config that allows them, registering one, a room guests may
join, and a user's membership as another member sees it."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from tests.helpers import MatrixApi, User, validate_response

GUESTS = {"registration.allow_guests": True}


async def register_guest(api: MatrixApi, body: Any = None) -> User:
    status, session = await api.request("POST", "register", json=body or {},
                                        params={"kind": "guest"})
    assert status == 200, session
    validate_response("registration.yaml", "/register", "post", 200, session)
    return User(session["user_id"], session["access_token"], session["device_id"], "")


async def guest_room(api: MatrixApi, owner: User, access: str = "can_join") -> str:
    return await api.create_room(owner, preset="public_chat", initial_state=[
        {"type": "m.room.guest_access", "state_key": "", "content": {"guest_access": access}},
        {"type": "m.room.history_visibility", "state_key": "",
         "content": {"history_visibility": "world_readable"}},
    ])


async def membership(api: MatrixApi, viewer: User, room_id: str, user_id: str) -> Any:
    status, content = await api.request(
        "GET", f"rooms/{quote(room_id)}/state/m.room.member/{quote(user_id)}",
        token=viewer.token,
    )
    return content.get("membership") if status == 200 else None

"""Driving the admin API (`/_synapse/admin/...`) in tests: an admin account, made as an
operator makes the first one (`moot register-user --admin` creates it through the accounts
service), then logged in like any user."""

from __future__ import annotations

from typing import Any

from tests.conftest import RunningServer
from tests.helpers import PASSWORD, MatrixApi, User

ADMIN = "/_synapse/admin"


async def make_admin(homeserver: RunningServer, api: MatrixApi, localpart: str = "root") -> User:
    """A logged-in server admin."""
    user_id = await homeserver.hs.accounts.create_user(localpart, PASSWORD, admin=True)
    return await api.login(User(user_id, "", "", PASSWORD))


async def admin_ok(api: MatrixApi, admin: User, method: str, path: str, **kwargs: Any) -> Any:
    """An admin call that must succeed (200); `path` is under /_synapse/admin."""
    status, body = await api.request(method, ADMIN + path, token=admin.token, **kwargs)
    assert status == 200, (method, path, status, body)
    return body


async def admin_and_public_room(
    homeserver: RunningServer, api: MatrixApi, **room: Any
) -> tuple[User, User, User, str]:
    """An admin, and alice's public room (`room`: more of its createRoom body) that bob has
    joined: what most admin tests act on."""
    admin = await make_admin(homeserver, api)
    alice, bob = await api.register("alice"), await api.register("bob")
    room_id = await api.create_room(alice, preset="public_chat", **room)
    await api.join(bob, room_id)
    return admin, alice, bob, room_id

"""Local accounts (Synapse's user_admin_api.md): `GET /v2/users` and `/v3/users` (the list),
`GET` and `PUT /v2/users/{userId}` (details; create or change), `POST /v1/deactivate/{userId}`,
`POST /v1/reset_password/{userId}`, and `GET` and `PUT /v1/users/{userId}/admin`."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from homeserver.api.admin.auth import ADMIN, log_admin_action, require_admin
from homeserver.api.admin.paging import query_flag, query_order, query_page
from homeserver.api.context import ADMIN_USERS
from homeserver.api.http import (
    field_bool,
    field_str,
    json_response,
    query_bool,
    read_json_body,
    require_str,
)
from homeserver.errors import bad_json, invalid_param
from homeserver.services.admin_users import UserChanges
from storage.admin_users import ORDER_COLUMNS, UserFilter

routes = web.RouteTableDef()


async def _list(request: web.Request, *, v3: bool) -> web.Response:
    await require_admin(request)  # before reading the query: a stranger learns nothing of it
    if v3:  # `deactivated` filters both ways; absent, it does not filter.
        deactivated = query_flag(request, "deactivated")
    else:  # v2: deactivated accounts are left out unless `deactivated=true` adds them.
        deactivated = None if query_bool(request, "deactivated") else False
    page = query_page(request)
    order_by = query_order(request, ORDER_COLUMNS, "name")
    f = UserFilter(
        name=request.query.get("name"), user_id=request.query.get("user_id"),
        guests=query_bool(request, "guests", True), deactivated=deactivated,
        admins=query_flag(request, "admins"),
    )
    found = await request.app[ADMIN_USERS].list_users(
        f, order_by, page.backwards, page.start, page.limit
    )
    return json_response({
        "users": found.users, "total": found.total,
        **page.next_token(found.total, text=True),
    })


@routes.get(ADMIN + "/v2/users")
async def list_users_v2(request: web.Request) -> web.Response:
    return await _list(request, v3=False)


@routes.get(ADMIN + "/v3/users")
async def list_users_v3(request: web.Request) -> web.Response:
    return await _list(request, v3=True)


@routes.get(ADMIN + "/v2/users/{userId}")
async def get_user(request: web.Request) -> web.Response:
    await require_admin(request)
    users = request.app[ADMIN_USERS]
    return json_response(await users.details(request.match_info["userId"]))


def _changes(body: dict[str, Any]) -> UserChanges:
    admin, deactivated = body.get("admin"), body.get("deactivated")
    for key, value in (("admin", admin), ("deactivated", deactivated)):
        if value is not None and not isinstance(value, bool):
            raise bad_json(f"'{key}' must be a boolean")
    if field_bool(body, "locked"):
        raise invalid_param("Moot does not lock accounts")
    for key in ("threepids", "external_ids"):
        if body.get(key):  # Synapse answers its own errors for these; Moot stores neither
            raise invalid_param(f"Moot does not store {key}")
    return UserChanges(
        password=field_str(body, "password"),
        logout_devices=field_bool(body, "logout_devices", True),
        displayname=field_str(body, "displayname"),
        avatar_url=field_str(body, "avatar_url"),
        admin=admin,
        deactivated=deactivated,
        user_type=field_str(body, "user_type"),
        change_user_type="user_type" in body,
    )


@routes.put(ADMIN + "/v2/users/{userId}")
async def put_user(request: web.Request) -> web.Response:
    admin = await require_admin(request)
    user_id = request.match_info["userId"]
    body = await read_json_body(request)
    users = request.app[ADMIN_USERS]
    created = await users.put_user(admin, user_id, _changes(body))
    # The audit line names the fields given, not their values (a password among them).
    action = "create_user" if created else "modify_user"
    log_admin_action(admin, action, user_id=user_id, fields=sorted(body))
    return json_response(await users.details(user_id), 201 if created else 200)


@routes.post(ADMIN + "/v1/deactivate/{userId}")
async def deactivate(request: web.Request) -> web.Response:
    admin = await require_admin(request)
    user_id = request.match_info["userId"]
    erase = field_bool(await read_json_body(request, allow_empty=True), "erase")
    await request.app[ADMIN_USERS].deactivate(user_id, erase)
    log_admin_action(admin, "deactivate_user", user_id=user_id, erase=erase)
    # Moot binds no third-party IDs to identity servers: nothing was left bound.
    return json_response({"id_server_unbind_result": "success"})


@routes.post(ADMIN + "/v1/reset_password/{userId}")
async def reset_password(request: web.Request) -> web.Response:
    admin = await require_admin(request)
    user_id = request.match_info["userId"]
    body = await read_json_body(request)
    password = require_str(body, "new_password")
    logout_devices = field_bool(body, "logout_devices", True)
    await request.app[ADMIN_USERS].reset_password(admin, user_id, password, logout_devices)
    log_admin_action(
        admin, "reset_password", user_id=user_id, logout_devices=logout_devices
    )
    return json_response({})


@routes.get(ADMIN + "/v1/users/{userId}/admin")
async def get_admin(request: web.Request) -> web.Response:
    await require_admin(request)
    user_id = request.match_info["userId"]
    return json_response({"admin": await request.app[ADMIN_USERS].is_admin(user_id)})


@routes.put(ADMIN + "/v1/users/{userId}/admin")
async def put_admin(request: web.Request) -> web.Response:
    admin = await require_admin(request)
    user_id = request.match_info["userId"]
    flag = (await read_json_body(request)).get("admin")
    if not isinstance(flag, bool):
        raise bad_json("'admin' is required and must be a boolean")
    await request.app[ADMIN_USERS].set_admin(admin, user_id, flag)
    log_admin_action(admin, "set_admin", user_id=user_id, is_admin=flag)
    return json_response({})

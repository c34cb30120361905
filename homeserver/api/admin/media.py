"""The media admin API (Synapse's docs/admin_api/media_admin_api.md, and "List media uploaded
by a user" / "Delete media uploaded by a user" in user_admin_api.md): listing, quarantine,
protection and deletion of local media. The work is `homeserver.services.media_admin`."""

from __future__ import annotations

from aiohttp import web

from homeserver.api.admin.auth import ADMIN, log_admin_action, require_admin
from homeserver.api.admin.paging import query_count, query_page
from homeserver.api.context import MEDIA_ADMIN
from homeserver.api.http import json_response, path_room_id, path_user_id, query_bool
from homeserver.api.media import media_ref, path_media_id
from homeserver.errors import invalid_param
from homeserver.services.media_admin import MediaOrder
from storage.admin_media import ORDER_COLUMNS, MediaInfo

routes = web.RouteTableDef()

V1 = ADMIN + "/v1"
# A `before_ts` below this is almost surely seconds where milliseconds were meant (Synapse
# refuses it for the same reason: it would delete nothing, or everything, by surprise).
SECONDS_NOT_MS = 30_000_000_000


@routes.get(V1 + "/users/{userId}/media")
async def list_user_media(request: web.Request) -> web.Response:
    await require_admin(request)
    page = await request.app[MEDIA_ADMIN].user_media(path_user_id(request), _order(request))
    body: dict[str, object] = {"media": [_listed(m) for m in page.media], "total": page.total}
    if page.next_token is not None:
        body["next_token"] = page.next_token
    return json_response(body)


@routes.delete(V1 + "/users/{userId}/media")
async def delete_user_media(request: web.Request) -> web.Response:
    admin = await require_admin(request)
    user_id = path_user_id(request)
    deleted = await request.app[MEDIA_ADMIN].delete_user_media(user_id, _order(request))
    log_admin_action(admin, "delete_user_media", user_id=user_id, media_ids=deleted)
    return _deleted(deleted)


# Registered before `/media/{serverName}/...` so that `protect` is never read as a server.
@routes.post(V1 + "/media/protect/{mediaId}")
async def protect(request: web.Request) -> web.Response:
    return await _set_protected(request, True)


@routes.post(V1 + "/media/unprotect/{mediaId}")
async def unprotect(request: web.Request) -> web.Response:
    return await _set_protected(request, False)


@routes.post(V1 + "/media/quarantine/{serverName}/{mediaId}")
async def quarantine(request: web.Request) -> web.Response:
    admin = await require_admin(request)
    server_name, media_id = media_ref(request)
    await request.app[MEDIA_ADMIN].quarantine(admin.user_id, server_name, media_id)
    log_admin_action(admin, "quarantine_media", server_name=server_name, media_id=media_id)
    return json_response({})


@routes.post(V1 + "/media/unquarantine/{serverName}/{mediaId}")
async def unquarantine(request: web.Request) -> web.Response:
    admin = await require_admin(request)
    server_name, media_id = media_ref(request)
    await request.app[MEDIA_ADMIN].unquarantine(server_name, media_id)
    log_admin_action(admin, "unquarantine_media", server_name=server_name, media_id=media_id)
    return json_response({})


@routes.post(V1 + "/room/{roomId}/media/quarantine")
@routes.post(V1 + "/quarantine_media/{roomId}")  # the deprecated path of the same
async def quarantine_room_media(request: web.Request) -> web.Response:
    admin = await require_admin(request)
    room_id = path_room_id(request)
    count = await request.app[MEDIA_ADMIN].quarantine_room(admin.user_id, room_id)
    log_admin_action(admin, "quarantine_room_media", room_id=room_id, count=count)
    return json_response({"num_quarantined": count})


@routes.post(V1 + "/user/{userId}/media/quarantine")
async def quarantine_user_media(request: web.Request) -> web.Response:
    admin = await require_admin(request)
    user_id = path_user_id(request)
    count = await request.app[MEDIA_ADMIN].quarantine_user(admin.user_id, user_id)
    log_admin_action(admin, "quarantine_user_media", user_id=user_id, count=count)
    return json_response({"num_quarantined": count})


@routes.post(V1 + "/media/delete")
@routes.post(V1 + "/media/{serverName}/delete")  # deprecated since Synapse 1.78
async def delete_stale_media(request: web.Request) -> web.Response:
    admin = await require_admin(request)
    server_name = request.match_info.get("serverName")
    if server_name is not None and server_name != request.app[MEDIA_ADMIN].server_name:
        raise invalid_param("Can only delete local media")
    before_ts = query_count(request, "before_ts", None)
    if before_ts < SECONDS_NOT_MS:
        raise invalid_param(
            "'before_ts' is from 1970: it is in milliseconds since the epoch, not seconds"
        )
    size_gt = query_count(request, "size_gt", 0)
    keep_profiles = query_bool(request, "keep_profiles", True)
    deleted = await request.app[MEDIA_ADMIN].delete_stale(before_ts, size_gt, keep_profiles)
    log_admin_action(
        admin, "delete_media_by_age", before_ts=before_ts, size_gt=size_gt,
        keep_profiles=keep_profiles, media_ids=deleted,
    )
    return _deleted(deleted)


@routes.get(V1 + "/media/{serverName}/{mediaId}")
async def media_info(request: web.Request) -> web.Response:
    await require_admin(request)
    server_name, media_id = media_ref(request)
    info = await request.app[MEDIA_ADMIN].media_info(server_name, media_id)
    return json_response({"media_info": {
        **_listed(info),
        "media_origin": server_name,
        "user_id": info.user_id,
        "filesystem_id": info.content_hash,
        "sha256": info.content_hash,
        "url_cache": None,
        # Moot serves every media on the unauthenticated legacy paths as well.
        "authenticated": False,
    }})


@routes.delete(V1 + "/media/{serverName}/{mediaId}")
async def delete_media(request: web.Request) -> web.Response:
    admin = await require_admin(request)
    server_name, media_id = media_ref(request)
    deleted = await request.app[MEDIA_ADMIN].delete(server_name, media_id)
    log_admin_action(admin, "delete_media", server_name=server_name, media_id=media_id)
    return _deleted(deleted)


async def _set_protected(request: web.Request, protected: bool) -> web.Response:
    admin = await require_admin(request)
    media_id = path_media_id(request)
    await request.app[MEDIA_ADMIN].set_protected(media_id, protected)
    action = "protect_media" if protected else "unprotect_media"
    log_admin_action(admin, action, media_id=media_id)
    return json_response({})


def _listed(info: MediaInfo) -> dict[str, object]:
    return {
        "media_id": info.media_id,
        "media_type": info.content_type,
        "media_length": info.size_bytes,
        "upload_name": info.upload_name,
        "created_ts": info.created_ts,
        "last_access_ts": info.last_access_ts,
        "quarantined_by": info.quarantined_by,
        "safe_from_quarantine": info.safe_from_quarantine,
    }


def _deleted(media_ids: list[str]) -> web.Response:
    return json_response({"deleted_media": media_ids, "total": len(media_ids)})


def _order(request: web.Request) -> MediaOrder:
    """`order_by`, `dir`, `from` and `limit` of the user media list; newest first unless
    asked otherwise (with `order_by` alone, ascending)."""
    order_by = request.query.get("order_by")
    if order_by is not None and order_by not in ORDER_COLUMNS:
        raise invalid_param(f"'order_by' must be one of {', '.join(ORDER_COLUMNS)}")
    page = query_page(request, default_dir="b" if order_by is None else "f")
    return MediaOrder(order_by or "created_ts", page.backwards, page.start, page.limit)

"""Statistics for server admins (Synapse's statistics.md): `GET
/_synapse/admin/v1/statistics/users/media` (each local user's uploads: count and bytes, paged,
ordered, filtered by time and name) and `GET /_synapse/admin/v1/statistics/database/rooms`
(the ten rooms whose events take the most space)."""

from __future__ import annotations

from aiohttp import web

from homeserver.api.admin.auth import ADMIN, require_admin
from homeserver.api.admin.paging import optional_count, query_order, query_page
from homeserver.api.context import STATISTICS
from homeserver.api.http import json_response
from homeserver.errors import invalid_param
from homeserver.services.statistics import MediaUsageQuery
from storage.stats import MEDIA_USAGE_ORDERS

routes = web.RouteTableDef()


def _media_usage_query(request: web.Request) -> MediaUsageQuery:
    query = request.query
    from_ts = optional_count(request, "from_ts")
    until_ts = optional_count(request, "until_ts")
    if from_ts is not None and until_ts is not None and until_ts < from_ts:
        raise invalid_param("'until_ts' must not be before 'from_ts'")
    search = query.get("search_term")
    if search == "":
        raise invalid_param("'search_term' cannot be an empty string")
    return MediaUsageQuery(from_ts, until_ts, search)


@routes.get(ADMIN + "/v1/statistics/users/media")
async def users_media(request: web.Request) -> web.Response:
    await require_admin(request)
    page = query_page(request, default_dir="f")
    order_by = query_order(request, MEDIA_USAGE_ORDERS, "user_id")
    users, total = await request.app[STATISTICS].media_usage(
        _media_usage_query(request), page.start, page.limit, order_by=order_by,
        backwards=page.backwards,
    )
    return json_response({"users": users, "total": total, **page.next_token(total)})


@routes.get(ADMIN + "/v1/statistics/database/rooms")
async def largest_rooms(request: web.Request) -> web.Response:
    await require_admin(request)
    return json_response({"rooms": await request.app[STATISTICS].largest_rooms()})

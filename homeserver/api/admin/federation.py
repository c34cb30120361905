"""The servers this one federates with, for server admins (Synapse's federation.md):
`GET /_synapse/admin/v1/federation/destinations` (paged, ordered, filtered by name),
`GET …/destinations/{destination}`, `GET …/destinations/{destination}/rooms` and
`POST …/destinations/{destination}/reset_connection`."""

from __future__ import annotations

from aiohttp import web

from homeserver.api.admin.auth import ADMIN, log_admin_action, require_admin
from homeserver.api.admin.paging import query_order, query_page
from homeserver.api.context import DESTINATIONS
from homeserver.api.http import json_response, read_json_body
from homeserver.errors import invalid_param
from homeserver.protocol.identifiers import is_valid_server_name
from storage.destinations import ORDERS

routes = web.RouteTableDef()

DESTINATIONS_PATH = ADMIN + "/v1/federation/destinations"


def _destination(request: web.Request) -> str:
    destination = request.match_info["destination"]
    if not is_valid_server_name(destination):
        raise invalid_param(f"{destination!r} is not a server name")
    return destination


@routes.get(DESTINATIONS_PATH)
async def list_destinations(request: web.Request) -> web.Response:
    await require_admin(request)
    page = query_page(request, default_dir="f")
    order_by = query_order(request, ORDERS, "destination")
    destinations, total = await request.app[DESTINATIONS].destinations(
        request.query.get("destination"), page.start, page.limit, order_by=order_by,
        backwards=page.backwards,
    )
    return json_response(
        {"destinations": destinations, "total": total, **page.next_token(total, text=True)}
    )


@routes.get(DESTINATIONS_PATH + "/{destination}")
async def get_destination(request: web.Request) -> web.Response:
    await require_admin(request)
    return json_response(await request.app[DESTINATIONS].destination(_destination(request)))


@routes.get(DESTINATIONS_PATH + "/{destination}/rooms")
async def destination_rooms(request: web.Request) -> web.Response:
    await require_admin(request)
    destination = _destination(request)
    page = query_page(request, default_dir="f")
    rooms, total = await request.app[DESTINATIONS].shared_rooms(
        destination, page.start, page.limit, backwards=page.backwards
    )
    return json_response({"rooms": rooms, "total": total, **page.next_token(total, text=True)})


@routes.post(DESTINATIONS_PATH + "/{destination}/reset_connection")
async def reset_connection(request: web.Request) -> web.Response:
    admin = await require_admin(request)
    destination = _destination(request)
    await read_json_body(request, allow_empty=True)
    await request.app[DESTINATIONS].reset_connection(destination)
    log_admin_action(admin, "reset_connection", destination=destination)
    return json_response({})

"""Reported events and rooms, for server admins (Synapse's event_reports.md and
room_reports.md): `GET /_synapse/admin/v1/event_reports` (paged, filtered by reporter, room
and the reported event's sender), `GET` and `DELETE /_synapse/admin/v1/event_reports/{reportId}`;
`GET /_synapse/admin/v1/room_reports` (newest first unless `dir=f`, filtered by reporter and
room; `from` is an offset, handed back as `next_batch`) and
`GET /_synapse/admin/v1/room_reports/{reportId}`.
Reports of users are only in the server's log and the `reports` table: Synapse documents no
admin API for them."""

from __future__ import annotations

from aiohttp import web

from homeserver.api.admin.auth import ADMIN, log_admin_action, require_admin
from homeserver.api.admin.paging import query_page
from homeserver.api.context import REPORTS
from homeserver.api.http import json_response
from homeserver.errors import invalid_param
from storage.reports import ReportQuery

routes = web.RouteTableDef()

REPORTS_PATH = ADMIN + "/v1/event_reports"
MAX_REPORT_ID = 2**63 - 1  # a bigserial


@routes.get(REPORTS_PATH)
async def list_event_reports(request: web.Request) -> web.Response:
    await require_admin(request)
    page = query_page(request, default_dir="b")
    query = request.query
    # Synapse's code reads `event_sender_user_id`, its docs say `sender_user_id`: both work.
    sender = query.get("event_sender_user_id", query.get("sender_user_id"))
    reports, total = await request.app[REPORTS].event_reports(
        ReportQuery(query.get("user_id"), query.get("room_id"), sender),
        page.start, page.limit, newest_first=page.backwards,
    )
    return json_response({"event_reports": reports, "total": total, **page.next_token(total)})


def _report_id(request: web.Request) -> int:
    raw = request.match_info["reportId"]
    if not raw.isascii() or not raw.isdigit() or int(raw) > MAX_REPORT_ID:
        raise invalid_param("The report ID must be a non-negative integer")
    return int(raw)


@routes.get(REPORTS_PATH + "/{reportId}")
async def get_event_report(request: web.Request) -> web.Response:
    await require_admin(request)
    return json_response(await request.app[REPORTS].event_report(_report_id(request)))


@routes.delete(REPORTS_PATH + "/{reportId}")
async def delete_event_report(request: web.Request) -> web.Response:
    admin = await require_admin(request)
    report_id = _report_id(request)
    await request.app[REPORTS].delete_event_report(report_id)
    log_admin_action(admin, "delete_event_report", report_id=report_id)
    return json_response({})


ROOM_REPORTS_PATH = ADMIN + "/v1/room_reports"


@routes.get(ROOM_REPORTS_PATH)
async def list_room_reports(request: web.Request) -> web.Response:
    await require_admin(request)
    page = query_page(request, default_dir="b")
    query = ReportQuery(request.query.get("user_id"), request.query.get("room_id"))
    reports, total = await request.app[REPORTS].room_reports(
        query, page.start, page.limit, newest_first=page.backwards
    )
    return json_response(
        {"room_reports": reports, "total": total, **page.next_token(total, "next_batch")}
    )


@routes.get(ROOM_REPORTS_PATH + "/{reportId}")
async def get_room_report(request: web.Request) -> web.Response:
    await require_admin(request)
    return json_response(await request.app[REPORTS].room_report(_report_id(request)))

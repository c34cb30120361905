"""Client-Server route for server-side search: `POST /search` (the `room_events` category)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from homeserver.api.auth import require_requester
from homeserver.api.context import SEARCH
from homeserver.api.http import field_bool, field_obj, field_str, json_response, read_json_body
from homeserver.errors import MatrixError, bad_json, invalid_param
from homeserver.services.filters import EventFilter, FilterError
from homeserver.services.search import GROUP_KEYS, MAX_CONTEXT, ORDERS, SearchCriteria
from storage.search import SEARCH_KEYS

routes = web.RouteTableDef()

PREFIX = "/_matrix/client/v3"
DEFAULT_CONTEXT = 5
MAX_TERM_CHARS = 1000


def _missing(key: str) -> MatrixError:
    return MatrixError(400, "M_MISSING_PARAM", f"'{key}' is required")


def _context_limit(raw: dict[str, Any], key: str) -> int:
    value = raw.get(key, DEFAULT_CONTEXT)
    if not isinstance(value, int) or isinstance(value, bool):
        raise bad_json(f"'event_context.{key}' must be an integer")
    return max(0, min(MAX_CONTEXT, value))


def _string_list(raw: dict[str, Any], key: str, allowed: tuple[str, ...]) -> tuple[str, ...]:
    value = raw.get(key)
    if value is None:
        return allowed
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise bad_json(f"'{key}' must be a list of strings")
    unknown = [v for v in value if v not in allowed]
    if unknown:
        raise invalid_param(f"'{key}' may only hold {', '.join(allowed)}")
    return tuple(dict.fromkeys(value))


def _group_by(criteria: dict[str, Any]) -> tuple[str, ...]:
    groupings = field_obj(criteria, "groupings") or {}
    groups = groupings.get("group_by", [])
    if not isinstance(groups, list) or not all(isinstance(g, dict) for g in groups):
        raise bad_json("'groupings.group_by' must be a list of objects")
    keys = tuple(dict.fromkeys(field_str(g, "key") or "" for g in groups))
    if any(k not in GROUP_KEYS for k in keys):
        raise invalid_param("group_by keys must be room_id or sender")
    return keys


def _criteria(criteria: dict[str, Any]) -> SearchCriteria:
    if "search_term" not in criteria:
        raise _missing("search_term")
    term = field_str(criteria, "search_term") or ""
    if len(term) > MAX_TERM_CHARS:
        raise invalid_param(f"'search_term' is longer than {MAX_TERM_CHARS} characters")
    order_by = field_str(criteria, "order_by", "rank")
    if order_by is None or order_by not in ORDERS:
        raise invalid_param("'order_by' must be rank or recent")
    try:
        event_filter = EventFilter.parse(field_obj(criteria, "filter") or {}, "filter.")
    except FilterError as e:
        raise bad_json(f"Invalid filter: {e}") from None
    context = field_obj(criteria, "event_context")
    return SearchCriteria(
        search_term=term,
        keys=_string_list(criteria, "keys", SEARCH_KEYS),
        order_by=order_by,
        filter=event_filter,
        context=(
            (_context_limit(context, "before_limit"), _context_limit(context, "after_limit"))
            if context is not None else None
        ),
        include_profile=field_bool(context or {}, "include_profile"),
        include_state=field_bool(criteria, "include_state"),
        group_by=_group_by(criteria),
    )


@routes.post(PREFIX + "/search")
async def search(request: web.Request) -> web.Response:
    requester = await require_requester(request)
    body = await read_json_body(request)
    if "search_categories" not in body:
        raise _missing("search_categories")
    categories = field_obj(body, "search_categories") or {}
    room_events = field_obj(categories, "room_events")
    result: dict[str, Any] = {}
    if room_events is not None:
        result["room_events"] = await request.app[SEARCH].search(
            requester, _criteria(room_events), request.query.get("next_batch")
        )
    return json_response({"search_categories": result})

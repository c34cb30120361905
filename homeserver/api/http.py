"""What every Client-Server route shares: the error/log/metrics middleware and body parsing.

Routes only parse, call one service and shape the response; everything cross-cutting is here so
that a 500 can only come from a bug, never from a client's input.
"""

from __future__ import annotations

import json
import logging
import math
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import web

from homeserver import metrics
from homeserver.api.auth import authenticated_user, is_authenticated
from homeserver.api.client_address import client_address
from homeserver.api.context import RATELIMITER
from homeserver.errors import MatrixError, bad_json, invalid_param, too_large
from homeserver.logs import ACCESS_LINE, ACCESS_LOGGER, REQUEST_ID
from homeserver.protocol.canonical_json import JSONNestingError, loads_bounded
from homeserver.protocol.identifiers import is_valid_room_id, is_valid_user_id
from homeserver.services.ratelimit import address_key
from homeserver.services.streams import StreamToken
from storage.database import DataError

log = logging.getLogger(ACCESS_LOGGER)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

CORS_HEADERS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "GET, POST, PUT, DELETE, OPTIONS",
    "Access-Control-Allow-Headers": "X-Requested-With, Content-Type, Authorization",
}


def json_response(body: Any, status: int = 200) -> web.Response:
    return web.Response(
        body=encode_json(body),
        status=status,
        content_type="application/json",
        headers=CORS_HEADERS,
    )


def encode_json(body: Any) -> bytes:
    """`body` as JSON. orjson writes integers of 64 bits at most; what clients store as they
    send it (account data, tags, filters, keys, to-device content) may hold larger ones, which
    jsonb keeps, and the standard encoder writes those (as Synapse serves them) rather than
    fail every later read of them, a /sync among them."""
    try:
        return orjson.dumps(body)
    except TypeError:
        return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


def error_response(err: MatrixError) -> web.Response:
    return json_response(err.to_json(), status=err.status)


def _route_name(request: web.Request) -> str:
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "unmatched"


def method_label(method: str) -> str:
    """The method as metrics label it: the client picks it, so unknown ones are "other"."""
    return method if method in metrics.HTTP_METHODS else "other"


def precreate_route_series(app: web.Application) -> None:
    """Show every route of an app served through `matrix_middleware` as 0 requests in flight
    from startup on, so that dashboards find the series before the first request (not the
    HEAD twin of every GET route, which would double the series for requests rarely made)."""
    if matrix_middleware not in app.middlewares:
        return
    for route in app.router.routes():
        if route.resource is not None and route.method in metrics.HTTP_METHODS - {"HEAD"}:
            metrics.HTTP_IN_FLIGHT.child(route.resource.canonical, route.method)


@web.middleware
async def matrix_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Request id, client address, access log line, metrics, CORS, and Matrix-shaped errors."""
    route = _route_name(request)
    method = method_label(request.method)
    in_flight = metrics.HTTP_IN_FLIGHT.child(route, method)
    in_flight.value += 1
    try:
        return await _serve(request, handler, route, method)
    finally:
        in_flight.value -= 1


async def _serve(
    request: web.Request, handler: Handler, route: str, method: str
) -> web.StreamResponse:
    """The middleware's work for one request; `method` is `request.method` as metrics label it."""
    request_id = uuid.uuid4().hex[:12]
    # aiohttp handles each request in a task of its own, so that context variables set for
    # it (as here) end with it: nothing to reset.
    REQUEST_ID.set(request_id)
    start = time.perf_counter()
    response: web.StreamResponse
    try:
        if request.method == "OPTIONS":
            response = web.Response(headers=CORS_HEADERS)
        else:
            await _limit_unauthenticated(request)
            refuse_nul_in_request(request)
            response = await handler(request)
    except MatrixError as e:
        response = error_response(e)
    except web.HTTPRequestEntityTooLarge:
        response = error_response(too_large("Request body is too large"))
    except web.HTTPNotFound:
        response = error_response(MatrixError(404, "M_UNRECOGNIZED", "Unrecognized request"))
    except web.HTTPMethodNotAllowed:
        response = error_response(
            MatrixError(405, "M_UNRECOGNIZED", f"Method {request.method} not allowed here")
        )
    except ConnectionResetError:
        if request.transport is not None and not request.transport.is_closing():
            raise
        # The client went away, or was cut off for sending too slowly (homeserver/listeners.py),
        # while its body was being read: nobody will read an answer, and it is no fault of ours.
        log.info("request %s %s %s: the connection closed before the request arrived",
                 request_id, request.method, route)
        response = error_response(MatrixError(408, "M_UNKNOWN", "The request did not arrive"))
    except DataError as e:
        # PostgreSQL refused a value (U+0000 in text or jsonb, a number out of a column's
        # range). Every route validates what it stores at the edge, so reaching here is a
        # missing check in `route`: a bug, logged as one (the tests fail on it).
        log.error("request %s %s %s (route %s): a value reached the database unvalidated: %s",
                  request_id, request.method, loggable_path(request), route, one_line(str(e)))
        response = error_response(MatrixError(500, "M_UNKNOWN", "Internal server error"))
    except Exception:
        log.exception(
            "request %s %s %s failed", request_id, request.method, loggable_path(request)
        )
        response = error_response(MatrixError(500, "M_UNKNOWN", "Internal server error"))
    duration = time.perf_counter() - start
    metrics.HTTP_REQUESTS.labels(route, method, str(response.status)).inc()
    metrics.HTTP_SECONDS.labels(route, method).observe(duration)
    log.info(  # the arguments in the order of logs.ACCESS_FIELDS
        ACCESS_LINE, request_id, client_address(request), request.method, loggable_path(request),
        route, response.status, round(duration * 1000, 1), authenticated_user(request),
    )
    return response


def one_line(text: str) -> str:
    """`text` with newlines and anything else unprintable backslash-escaped, so that what a
    client controls never starts a log line of its own."""
    return text.encode("unicode_escape").decode("ascii")


def loggable_path(request: web.Request) -> str:
    """The path as the client sent it (percent-encoded), on one line: the decoded
    `request.path` turns `%0A` into a newline, which would forge log lines. Without the query
    string, which may hold an access token (`?access_token=`) or a login token."""
    return one_line(request.raw_path.partition("?")[0])


async def _limit_unauthenticated(request: web.Request) -> None:
    """Requests not authenticated by a valid access token are limited per client address,
    before their route does any work (an invalid token buys nothing); authenticated ones are
    limited per user where they create events (in the services)."""
    limiter = request.app.get(RATELIMITER)
    if limiter is None:
        return
    if not await is_authenticated(request):
        limiter.check("per_ip", address_key(client_address(request)))


async def read_json_body(
    request: web.Request, *, allow_empty: bool = False, event_content: bool = False
) -> dict[str, Any]:
    """The request body as a JSON object, or M_NOT_JSON / M_BAD_JSON / M_TOO_LARGE.

    A string holding U+0000 is M_INVALID_PARAM (what it was when the database refused it):
    PostgreSQL stores it in neither text nor jsonb.
    `event_content`: the body is an event's content, which may hold one (the spec's strings
    allow it, Synapse accepts it, and events are stored as JSON text, where it is escaped)."""
    raw = await read_body(request)
    if not raw.strip() and allow_empty:
        return {}
    return parse_json_object(raw, event_content=event_content)


async def read_body(request: web.Request) -> bytes:
    """The request body's bytes, or M_TOO_LARGE."""
    try:
        return await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise too_large("Request body is too large") from None


def parse_json_object(raw: bytes, *, event_content: bool = False) -> dict[str, Any]:
    """`raw` as a JSON object, or the errors `read_json_body` names."""
    try:
        value = loads_bounded(raw)
    except JSONNestingError:
        raise bad_json("JSON nested too deeply") from None
    except ValueError:  # also UnicodeDecodeError
        raise MatrixError(400, "M_NOT_JSON", "Content not JSON.") from None
    if not isinstance(value, dict):
        raise bad_json("Request body must be a JSON object")
    if not event_content and holds_nul(value):
        raise invalid_param("Strings may not contain U+0000: it cannot be stored")
    return value


def holds_nul(value: Any) -> bool:
    """Whether a JSON value has U+0000 in any string or object key, however deep (the
    parser bounds the depth, so the walk is bounded too)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return True
        elif isinstance(item, dict):
            stack.extend(item)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def refuse_nul_in_request(request: web.Request) -> None:
    """M_INVALID_PARAM for U+0000 in the decoded path or a query parameter: every path or
    query value may end up in a text column (an event type, a state key, a transaction or
    device ID), and PostgreSQL stores U+0000 in none."""
    if "\x00" in request.path or any(
        "\x00" in key or "\x00" in value for key, value in request.query.items()
    ):
        raise invalid_param("The request's path or query holds U+0000")


# Typed field access for request bodies: one place that turns a wrong type into M_BAD_JSON.

def field_str(body: dict[str, Any], key: str, default: str | None = None) -> str | None:
    value = body.get(key, default)
    if value is not None and not isinstance(value, str):
        raise bad_json(f"'{key}' must be a string")
    return value


def require_str(body: dict[str, Any], key: str) -> str:
    value = field_str(body, key)
    if value is None:
        raise bad_json(f"'{key}' is required")
    return value


def field_bool(body: dict[str, Any], key: str, default: bool = False) -> bool:
    value = body.get(key, default)
    if not isinstance(value, bool):
        raise bad_json(f"'{key}' must be a boolean")
    return value


def field_obj(body: dict[str, Any], key: str) -> dict[str, Any] | None:
    value = body.get(key)
    if value is not None and not isinstance(value, dict):
        raise bad_json(f"'{key}' must be an object")
    return value


def query_int(request: web.Request, key: str, default: int, *, lo: int, hi: int) -> int:
    """An integer query parameter clamped to [lo, hi]; garbage is M_INVALID_PARAM."""
    raw = request.query.get(key)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise invalid_param(f"'{key}' must be an integer") from None
    return max(lo, min(hi, value))


def query_bool(request: web.Request, key: str, default: bool = False) -> bool:
    """A boolean query parameter: exactly `true` or `false`, as the spec's OpenAPI writes
    booleans; anything else (`1`, `0.0`, `True`) is M_INVALID_PARAM rather than a guess."""
    raw = request.query.get(key)
    if raw is None:
        return default
    if raw not in ("true", "false"):
        raise invalid_param(f"'{key}' must be true or false")
    return raw == "true"


def valid_room_id(room_id: str) -> str:
    """`room_id` if well-formed; a malformed one is M_INVALID_PARAM, not a 404 later."""
    if not is_valid_room_id(room_id):
        raise invalid_param(f"{room_id!r} is not a valid room ID")
    return room_id


def path_room_id(request: web.Request) -> str:
    """The `{roomId}` path parameter, validated."""
    return valid_room_id(request.match_info["roomId"])


def path_user_id(request: web.Request) -> str:
    """The `{userId}` path parameter, validated (M_INVALID_PARAM for a malformed one)."""
    user_id = request.match_info["userId"]
    if not is_valid_user_id(user_id):
        raise invalid_param(f"{user_id!r} is not a valid user ID")
    return user_id


def is_json_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def query_token(request: web.Request, key: str) -> StreamToken | None:
    """A sync token from the query string; garbage is M_INVALID_PARAM."""
    raw = request.query.get(key)
    if raw is None:
        return None
    try:
        return StreamToken.parse(raw)
    except ValueError:
        raise invalid_param(f"'{key}' is not a sync token from this server") from None

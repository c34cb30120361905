"""Client-Server routes for push rules, notifications and pushers (spec "Push Notifications")."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

from homeserver.api.auth import require_requester
from homeserver.api.context import PUSH
from homeserver.api.http import (
    field_bool,
    field_obj,
    field_str,
    json_response,
    query_int,
    read_json_body,
    require_str,
)
from homeserver.errors import MatrixError, bad_json, invalid_param
from homeserver.services.push import check_kind
from storage.push import Pusher

routes = web.RouteTableDef()

PREFIX = "/_matrix/client/v3"
PUSHRULES = PREFIX + "/pushrules"
RULE_PATH = PUSHRULES + "/global/{kind}/{ruleId}"
MAX_APP_ID_CHARS = 64
MAX_PUSHKEY_BYTES = 512
PUSH_GATEWAY_PATH = "/_matrix/push/v1/notify"
EMAIL = "email"
PUSHER_KINDS = ("http", EMAIL)
DEFAULT_NOTIFICATIONS_LIMIT = 20
MAX_NOTIFICATIONS_LIMIT = 100


def _rule_address(request: web.Request) -> tuple[str, str]:
    return request.match_info["kind"], request.match_info["ruleId"]


def _missing(*names: str) -> MatrixError:
    return MatrixError(400, "M_MISSING_PARAM", f"Missing parameters: {', '.join(names)}")


# The spec's paths end in a slash (`/pushrules/`, `/pushrules/global/`); as in Synapse, the
# same path without it is not one of them (see `unrecognized` below).
@routes.get(PUSHRULES + "/")
async def get_all_rulesets(request: web.Request) -> web.Response:
    requester = await require_requester(request)
    return json_response({"global": await request.app[PUSH].ruleset(requester.user_id)})


@routes.get(PUSHRULES + "/global/")
async def get_global_ruleset(request: web.Request) -> web.Response:
    requester = await require_requester(request)
    return json_response(await request.app[PUSH].ruleset(requester.user_id))


@routes.get(PUSHRULES + "/global/{kind}/")
async def get_kind_rules(request: web.Request) -> web.Response:
    """The rules of one kind, most important first (Synapse serves this array too)."""
    requester = await require_requester(request)
    kind = check_kind(request.match_info["kind"])
    return json_response((await request.app[PUSH].ruleset(requester.user_id))[kind])


@routes.get(RULE_PATH)
async def get_rule(request: web.Request) -> web.Response:
    requester = await require_requester(request)
    kind, rule_id = _rule_address(request)
    return json_response(await request.app[PUSH].get_rule(requester.user_id, kind, rule_id))


@routes.put(RULE_PATH)
async def put_rule(request: web.Request) -> web.Response:
    requester = await require_requester(request)
    kind, rule_id = _rule_address(request)
    body = await read_json_body(request)
    await request.app[PUSH].put_rule(
        requester.user_id, kind, rule_id, body, request.query.get("before"),
        request.query.get("after"),
    )
    return json_response({})


@routes.delete(RULE_PATH)
async def delete_rule(request: web.Request) -> web.Response:
    requester = await require_requester(request)
    kind, rule_id = _rule_address(request)
    await request.app[PUSH].delete_rule(requester.user_id, kind, rule_id)
    return json_response({})


@routes.get(RULE_PATH + "/enabled")
async def get_enabled(request: web.Request) -> web.Response:
    requester = await require_requester(request)
    kind, rule_id = _rule_address(request)
    rule = await request.app[PUSH].get_rule(requester.user_id, kind, rule_id)
    return json_response({"enabled": rule["enabled"]})


@routes.put(RULE_PATH + "/enabled")
async def put_enabled(request: web.Request) -> web.Response:
    requester = await require_requester(request)
    kind, rule_id = _rule_address(request)
    body = await read_json_body(request)
    if "enabled" not in body:
        raise _missing("enabled")
    enabled = field_bool(body, "enabled")
    await request.app[PUSH].set_enabled(requester.user_id, kind, rule_id, enabled)
    return json_response({})


@routes.get(RULE_PATH + "/actions")
async def get_actions(request: web.Request) -> web.Response:
    requester = await require_requester(request)
    kind, rule_id = _rule_address(request)
    rule = await request.app[PUSH].get_rule(requester.user_id, kind, rule_id)
    return json_response({"actions": rule["actions"]})


@routes.put(RULE_PATH + "/actions")
async def put_actions(request: web.Request) -> web.Response:
    requester = await require_requester(request)
    kind, rule_id = _rule_address(request)
    body = await read_json_body(request)
    if "actions" not in body:
        raise _missing("actions")
    await request.app[PUSH].set_actions(requester.user_id, kind, rule_id, body["actions"])
    return json_response({})


# Registered after every push rules path above, so it answers only what none of them serve: a
# path without its trailing slash, a scope other than `global`, a missing or empty rule ID, an
# unknown attribute. The spec defines no such path; Synapse (and Sytest's push rule tests)
# answer 400 M_UNRECOGNIZED, where a 404 would read as "this server has no push rules".
@routes.route("GET", PUSHRULES)
@routes.route("PUT", PUSHRULES)
@routes.route("DELETE", PUSHRULES)
@routes.route("GET", PUSHRULES + "/{tail:.*}")
@routes.route("PUT", PUSHRULES + "/{tail:.*}")
@routes.route("DELETE", PUSHRULES + "/{tail:.*}")
async def unrecognized(request: web.Request) -> web.Response:
    await require_requester(request)
    raise MatrixError(
        400, "M_UNRECOGNIZED",
        "Not a push rules path: /pushrules/global/ + {kind}/ or {kind}/{ruleId}, or /enabled "
        "or /actions after it (the ruleset paths end in a slash)",
    )


@routes.get(PREFIX + "/notifications")
async def get_notifications(request: web.Request) -> web.Response:
    requester = await require_requester(request)
    raw_from = request.query.get("from")
    before = 2**63 - 1
    if raw_from is not None:
        if not raw_from.isascii() or not raw_from.isdigit() or len(raw_from) > 18:
            raise invalid_param("'from' is not a token from this endpoint")
        before = int(raw_from)
    limit = query_int(
        request, "limit", DEFAULT_NOTIFICATIONS_LIMIT, lo=1, hi=MAX_NOTIFICATIONS_LIMIT
    )
    only_highlight = request.query.get("only") == "highlight"
    body = await request.app[PUSH].notifications(requester, before, limit, only_highlight)
    return json_response(body)


@routes.get(PREFIX + "/pushers")
async def get_pushers(request: web.Request) -> web.Response:
    requester = await require_requester(request)
    pushers = await request.app[PUSH].pushers(requester.user_id)
    return json_response({"pushers": [_pusher_json(p) for p in pushers]})


def _pusher_json(pusher: Pusher) -> dict[str, Any]:
    out: dict[str, Any] = {
        "pushkey": pusher.pushkey, "kind": pusher.kind, "app_id": pusher.app_id,
        "app_display_name": pusher.app_display_name,
        "device_display_name": pusher.device_display_name, "lang": pusher.lang,
        "data": pusher.data,
    }
    if pusher.profile_tag is not None:
        out["profile_tag"] = pusher.profile_tag
    return out


@routes.post(PREFIX + "/pushers/set")
async def set_pusher(request: web.Request) -> web.Response:
    requester = await require_requester(request)
    body = await read_json_body(request)
    missing = [k for k in ("kind", "app_id", "pushkey") if k not in body]
    if missing:
        raise _missing(*missing)
    app_id = field_str(body, "app_id") or ""
    pushkey = field_str(body, "pushkey") or ""
    if not app_id or len(app_id) > MAX_APP_ID_CHARS:
        raise invalid_param(f"'app_id' must be 1 to {MAX_APP_ID_CHARS} characters")
    if not pushkey or len(pushkey.encode()) > MAX_PUSHKEY_BYTES:
        raise invalid_param(f"'pushkey' must be 1 to {MAX_PUSHKEY_BYTES} bytes")
    service = request.app[PUSH]
    if body["kind"] is None:
        await service.delete_pusher(requester.user_id, app_id, pushkey)
        return json_response({})
    append = field_bool(body, "append")
    await service.set_pusher(requester, _parse_pusher(body, app_id, pushkey), append)
    return json_response({})


def _parse_pusher(body: dict[str, Any], app_id: str, pushkey: str) -> Pusher:
    """A pusher to create or update (kind not null), with its required fields checked."""
    kind = field_str(body, "kind")
    if kind not in PUSHER_KINDS:
        raise invalid_param(f"'kind' must be one of {', '.join(PUSHER_KINDS)} or null")
    if kind == EMAIL:
        raise invalid_param("This server sends no email notifications: 'email' pushers are "
                            "not supported")
    missing = [
        k for k in ("app_display_name", "device_display_name", "lang", "data") if k not in body
    ]
    if missing:
        raise _missing(*missing)
    data = field_obj(body, "data")
    if data is None:
        raise bad_json("'data' must be an object")
    if kind == "http":
        _check_gateway(data)
    return Pusher(
        app_id=app_id, pushkey=pushkey, kind=kind,
        app_display_name=require_str(body, "app_display_name"),
        device_display_name=require_str(body, "device_display_name"),
        profile_tag=field_str(body, "profile_tag"), lang=require_str(body, "lang"),
        data=data,
    )


def _check_gateway(data: dict[str, Any]) -> None:
    """An http pusher's `url` has the push gateway path (http or https: the spec's "MUST be
    HTTPS" binds clients, and Sygnal serves plain HTTP behind its operator's proxy); `format`
    is an enum."""
    url = field_str(data, "url")
    if url is None:
        raise _missing("data.url")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  (a port out of range raises here)
    except ValueError:
        raise invalid_param("'data.url' is not a URL") from None
    if (
        parts.scheme not in ("http", "https") or not parts.hostname
        or parts.path != PUSH_GATEWAY_PATH
    ):
        raise invalid_param(
            f"'data.url' must be an http(s) URL with the path {PUSH_GATEWAY_PATH}"
        )
    if field_str(data, "format") not in (None, "event_id_only"):
        raise invalid_param("'data.format' must be 'event_id_only' when given")

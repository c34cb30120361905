"""Hostile input over HTTP: no client body, path, query or header may cause a 500.

Hypothesis and async fixtures do not mix, so each test starts one server and lets a
synchronous `@given` function *collect* generated inputs, which the test then sends. Every
generated input is sent (no shrinking), and a failure names the input that caused it.

The generated bodies and query parameters go to every route of the Client-Server API, read from
its route table (a new route is covered without being listed here). They carry what PostgreSQL
refuses to store (U+0000, integers past 64 bits): each route must refuse those at its edge or
store them safely. A value PostgreSQL refuses that reaches the HTTP layer is a server error
logged at ERROR, and every test here fails on an ERROR log record.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer, make_mocked_request
from hypothesis import strategies as st

from homeserver.api import client_routes
from homeserver.api.http import loggable_path, matrix_middleware
from storage.database import DataError
from tests.bad_input import NUL, assert_sane, bodies, collect, query_values, segments, send_body
from tests.helpers import MatrixApi, User

EXAMPLES_PER_ROUTE = 16
# Query parameters the GET routes read: numbers, tokens, flags and filters, as garbage.
QUERY_KEYS = ["limit", "timeout", "from", "to", "since", "dir", "filter", "version", "at",
              "full_state", "set_presence", "membership", "not_membership", "only",
              "server_name", "width", "height", "method", "ts", "user_id", "recurse", "include",
              "max_depth", "suggested_only", "via", "url", "kind", "field", "batch_token",
              "animated", "timeout_ms", "use_state_after"]
queries = st.dictionaries(st.sampled_from(QUERY_KEYS), query_values, min_size=1, max_size=4)


@dataclass
class Scene:
    """A room with a message in it, and the users who act on it."""

    alice: User
    bob: User
    room: str
    event: str
    server: str
    victim: User  # the user whose session the logout and account routes may end


@pytest.fixture
async def scene(api: MatrixApi) -> Scene:
    alice = await api.register("alice")
    bob = await api.register("bob")
    room = await api.create_room(alice, preset="public_chat")
    await api.join(bob, room)
    event = await api.send_message(alice, room, "target")
    victim = await api.register("victim")
    return Scene(alice, bob, room, event, alice.user_id.split(":", 1)[1], victim)


@pytest.fixture(autouse=True)
def no_server_errors(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Fail any test here that logged an ERROR: an unhandled exception, or a value the
    database refused reaching the HTTP layer (`matrix_middleware`)."""
    yield
    errors = [r for r in caplog.get_records("call") if r.levelno >= logging.ERROR]
    assert not errors, [r.getMessage()[:300] for r in errors]


# Routes whose calls may end the caller's session or account: they act as the victim.
_ENDS_SESSIONS = ("/logout", "/account/deactivate", "/account/password", "/delete_devices")


def route_table(methods: tuple[str, ...]) -> list[tuple[str, str]]:
    """(method, path template) of every Client-Server route with one of `methods`; the r0
    aliases are left out (the same handlers as their v3 routes, checked in
    test_compat_paths.py)."""
    found = []
    for route in client_routes():
        path = getattr(route, "path", None)
        method = getattr(route, "method", None)
        if isinstance(path, str) and method in methods and "/r0/" not in path:
            found.append((method, path))
    return sorted(set(found))


BODY_ROUTES = route_table(("PUT", "POST", "DELETE"))
GET_ROUTES = route_table(("GET",))


def fill(scene: Scene, method: str, template: str, i: int) -> tuple[str, str]:
    """The path with its parameters set to things that exist (so that a request gets past
    the lookups to the code that stores), and the token to send it with."""
    user = scene.alice
    if template.endswith(("/leave", "/forget")):
        user = scene.bob  # alice stays in the room the other routes act on
    elif any(p in template for p in _ENDS_SESSIONS) or (
        method == "DELETE" and "{deviceId}" in template
    ):
        user = scene.victim
    values = {
        "room_id": scene.room, "roomId": scene.room, "room_id_or_alias": scene.room,
        "event_id": scene.event, "eventId": scene.event, "userId": user.user_id,
        "event_type": "org.example.fuzz", "eventType": "org.example.fuzz",
        "type": "org.example.fuzz", "txn_id": f"f{i}", "txnId": f"f{i}", "state_key": "k",
        "alias": f"#fuzz{i}:{scene.server}", "deviceId": user.device_id,
        "keyName": "displayname", "receiptType": "m.read", "version": "1", "sessionId": "s",
        "kind": "override", "ruleId": "fuzz", "tag": "u.fuzz", "serverName": scene.server,
        "mediaId": "fuzz", "fileName": "f", "filterId": "1", "roomIdOrAlias": scene.room,
        "relType": "m.annotation",
    }

    def value(match: re.Match[str]) -> str:
        return quote(values.get(match.group(1), "x"), safe="")

    return re.sub(r"{(\w+)}", value, template), user.token


def test_the_route_table_is_read() -> None:
    """The generated tests below reach every route: a broken table would test nothing."""
    assert ("PUT", "/_matrix/client/v3/rooms/{room_id}/send/{event_type}/{txn_id}") in BODY_ROUTES
    assert ("GET", "/_matrix/client/v3/sync") in GET_ROUTES
    assert len(BODY_ROUTES) > 50 and len(GET_ROUTES) > 40


async def test_body_routes_survive_arbitrary_bodies(api: MatrixApi, scene: Scene) -> None:
    """Every route that takes a body, with fresh generated bodies each (one server for all:
    a server per route would cost more than the requests)."""
    for method, template in BODY_ROUTES:
        for i, (kind, value) in enumerate(collect(bodies, EXAMPLES_PER_ROUTE)):
            path, token = fill(scene, method, template, i)
            status, body = await send_body(api, method, path, token, kind, value)
            assert_sane(status, body, (method, template, value))
    # Alice acted on every route but those that end sessions: still signed in, still there.
    await api.ok("GET", "account/whoami", token=scene.alice.token)
    await api.ok("GET", f"rooms/{quote(scene.room)}/joined_members", token=scene.alice.token)


# Long-polls wait as long as a valid `timeout` says (up to a minute), and /events waits 30 s
# when none is given: here they may not wait, so every request to them says `timeout=0`.
LONG_POLLS = ("/_matrix/client/v3/sync", "/_matrix/client/v3/events")


async def test_routes_survive_arbitrary_query_parameters(api: MatrixApi, scene: Scene) -> None:
    for method, template in GET_ROUTES + BODY_ROUTES:
        for i, params in enumerate(collect(queries, EXAMPLES_PER_ROUTE // 2)):
            if template in LONG_POLLS:
                params = {**params, "timeout": "0"}
            path, token = fill(scene, method, template, i)
            status, body = await api.request(method, path, token=token, params=params, json={})
            assert_sane(status, body, (method, template, params))


async def test_path_segments_survive_arbitrary_text(api: MatrixApi, scene: Scene) -> None:
    token = scene.alice.token
    room, event, alice = scene.room, quote(scene.event), quote(scene.alice.user_id)
    v1 = "/_matrix/client/v1/"
    for i, segment in enumerate(collect(segments)):
        part = quote(segment, safe="")
        # The routes that may ask the server a segment names (an alias's, a user's, a room's
        # or a URL's).
        reaching_out = {("POST", f"join/{part}"), ("POST", f"knock/{part}"),
                        ("GET", f"directory/room/{part}"),
                        ("GET", f"profile/{part}"), ("POST", f"rooms/{part}/invite"),
                        ("GET", f"{v1}room_summary/{part}"),
                        ("GET", f"profile/{part}/m.tz"),
                        ("GET", f"{v1}media/preview_url?url={part}"),
                        ("GET", f"/_matrix/media/v3/preview_url?url={part}")}
        requests = [
            ("GET", f"rooms/{part}/messages"), ("GET", f"rooms/{part}/state"),
            ("GET", f"rooms/{room}/event/{part}"),
            ("GET", f"rooms/{room}/context/{part}"),
            ("GET", f"rooms/{room}/state/{part}/{part}"),
            ("PUT", f"rooms/{part}/send/{part}/{i}"),
            ("PUT", f"rooms/{room}/state/{part}/{part}"),
            ("POST", f"join/{part}"), ("POST", f"knock/{part}"),
            ("POST", f"rooms/{part}/invite"),
            ("GET", f"directory/room/{part}"), ("DELETE", f"directory/room/{part}"),
            ("GET", f"profile/{part}"), ("PUT", f"rooms/{room}/redact/{part}/{i}"),
            # Issue 15's routes.
            ("GET", f"{v1}room_summary/{part}"), ("GET", f"{v1}rooms/{part}/hierarchy"),
            ("GET", f"{v1}rooms/{part}/relations/{event}"),
            ("GET", f"{v1}rooms/{room}/relations/{part}"),
            ("GET", f"{v1}rooms/{room}/relations/{event}/{part}"),
            ("GET", f"{v1}rooms/{room}/relations/{event}/{part}/{part}"),
            ("GET", f"{v1}rooms/{part}/threads"),
            ("GET", f"{v1}rooms/{part}/timestamp_to_event?ts=1&dir=f"),
            ("POST", f"rooms/{room}/report/{part}"), ("POST", f"rooms/{part}/report/{event}"),
            ("POST", f"rooms/{part}/report"), ("POST", f"users/{part}/report"),
            ("POST", f"rooms/{part}/upgrade"),
            ("GET", f"profile/{part}/m.tz"), ("PUT", f"profile/{alice}/{part}"),
            ("GET", f"profile/{alice}/{part}"), ("DELETE", f"profile/{alice}/{part}"),
            ("GET", f"{v1}mutual_rooms?user_id={part}"),
            ("GET", f"{v1}media/preview_url?url={part}"),
            ("GET", f"/_matrix/media/v3/preview_url?url={part}"),
        ]
        for method, path in requests:
            # A profile field is set by a body that names it; every other route gets one
            # body that some of them read (the invite's).
            sets_field = (method, path) == ("PUT", f"profile/{alice}/{part}")
            payload = {segment: "v"} if sets_field else {"user_id": scene.bob.user_id}
            status, body = await api.request(method, path, json=payload, token=token)
            assert_sane(status, body, (method, path),
                        reaches_out=(method, path) in reaching_out)


@pytest.mark.parametrize(
    "params",
    [{"dir": "sideways"}, {"limit": "-5"}, {"limit": "99999999999999999999"}, {"from": "s"},
     {"from": "s-1_0"}, {"to": "x"}, {"filter": "[]"}, {"filter": '{"types": 5}'},
     {"filter": '{"limit": "x"}'}, {"from": "s1_2_3_4_5_6"}],
)
async def test_messages_query_garbage(
    api: MatrixApi, scene: Scene, params: dict[str, str]
) -> None:
    status, body = await api.request(
        "GET", f"rooms/{scene.room}/messages", token=scene.alice.token, params=params
    )
    assert_sane(status, body, params)


async def test_unknown_endpoint_and_wrong_method(api: MatrixApi) -> None:
    status, body = await api.request("GET", "/_matrix/client/v3/no/such/thing")
    assert (status, body["errcode"]) == (404, "M_UNRECOGNIZED")
    status, body = await api.request("GET", "/_matrix/client/v3/createRoom")
    assert (status, body["errcode"]) == (405, "M_UNRECOGNIZED")
    status, body = await api.request("DELETE", "/_matrix/client/v3/login")
    assert (status, body["errcode"]) == (405, "M_UNRECOGNIZED")


async def test_body_over_the_limit_is_too_large(api: MatrixApi, scene: Scene) -> None:
    huge = b'{"body": "' + b"x" * 1_048_576 + b'"}'
    for method, path in [
        ("POST", "createRoom"), ("PUT", f"rooms/{scene.room}/send/m.room.message/huge"),
        ("POST", "register"),
    ]:
        status, body = await api.request(
            method, path, raw=huge, token=scene.alice.token,
            headers={"Content-Type": "application/json"},
        )
        assert (status, body["errcode"]) == (413, "M_TOO_LARGE"), path


async def test_missing_and_bogus_tokens(api: MatrixApi) -> None:
    for method, path in [("POST", "createRoom"), ("GET", "joined_rooms"), ("GET", "sync")]:
        status, body = await api.request(method, path, json={})
        assert (status, body["errcode"]) == (401, "M_MISSING_TOKEN"), path
        status, body = await api.request(method, path, json={}, token="bogus")
        assert (status, body["errcode"]) == (401, "M_UNKNOWN_TOKEN"), path
    status, body = await api.request(
        "GET", "joined_rooms", headers={"Authorization": "Basic abc"}
    )
    assert (status, body["errcode"]) == (401, "M_MISSING_TOKEN")


def nested(depth: int) -> bytes:
    """A JSON object whose `body` nests arrays so the whole text is `depth` levels deep."""
    return b'{"msgtype": "m.text", "body": ' + b"[" * (depth - 1) + b"]" * (depth - 1) + b"}"


@pytest.mark.parametrize(
    ("raw", "errcode"),
    [
        (nested(65), "M_BAD_JSON"),
        (b'{"a":' * 100 + b"1" + b"}" * 100, "M_BAD_JSON"),
        (nested(5000), "M_NOT_JSON"),  # too deep for the parser itself
        (b"[" * 5000, "M_NOT_JSON"),
    ],
)
async def test_deeply_nested_bodies_are_refused(
    api: MatrixApi, scene: Scene, raw: bytes, errcode: str
) -> None:
    for method, path in [
        ("PUT", f"rooms/{scene.room}/send/m.room.message/deep{len(raw)}"),
        ("POST", "createRoom"),
        ("PUT", f"user/{scene.alice.user_id}/account_data/org.example.deep"),
    ]:
        status, body = await api.request(
            method, path, raw=raw, token=scene.alice.token,
            headers={"Content-Type": "application/json"},
        )
        assert (status, body["errcode"]) == (400, errcode), (path, len(raw))


async def test_nesting_up_to_the_bound_is_accepted(api: MatrixApi, scene: Scene) -> None:
    status, body = await api.request(
        "PUT", f"rooms/{scene.room}/send/m.room.message/deep64", raw=nested(64),
        token=scene.alice.token, headers={"Content-Type": "application/json"},
    )
    assert status == 200, body


# Too deep to keep; too deep to parse (kept short enough for aiohttp's 8 KiB request line).
@pytest.mark.parametrize("text", ['{"types": ' + "[" * 64 + "]" * 64 + "}", "[" * 2000])
async def test_deeply_nested_messages_filter_is_refused(
    api: MatrixApi, scene: Scene, text: str
) -> None:
    status, body = await api.request(
        "GET", f"rooms/{scene.room}/messages", token=scene.alice.token, params={"filter": text}
    )
    assert (status, body["errcode"]) == (400, "M_INVALID_PARAM"), len(text)


@dataclass(frozen=True)
class Case:
    """One request carrying a value PostgreSQL would refuse, and the status it must get."""

    method: str
    path: str
    body: Any
    status: int


def unstorable_cases(s: Scene) -> list[Case]:
    """Well-formed requests to routes that store what they are sent, each with U+0000 or a
    number past 64 bits where the route would store it."""
    r, u, e = quote(s.room), quote(s.alice.user_id), quote(s.event)
    nul = quote(NUL, safe="")
    return [
        # Event content may hold U+0000 (escaped in the stored JSON text), as in Synapse.
        Case("PUT", f"rooms/{r}/send/m.room.message/t1", {"msgtype": "m.text", "body": NUL},
             200),
        Case("PUT", f"rooms/{r}/state/m.room.topic", {"topic": NUL}, 200),
        # Everything else that holds it is refused at the edge.
        Case("PUT", f"rooms/{r}/send/m.room.message/t{nul}", {"body": "x"}, 400),
        Case("PUT", f"rooms/{r}/send/{nul}/t2", {"body": "x"}, 400),
        Case("PUT", f"rooms/{r}/state/org.example.x/{nul}", {"a": 1}, 400),
        Case("PUT", f"rooms/{r}/redact/{e}/t3", {"reason": NUL}, 400),
        Case("POST", "createRoom", {"name": NUL}, 400),
        Case("PUT", f"profile/{u}/displayname", {"displayname": NUL}, 400),
        Case("PUT", f"profile/{u}/avatar_url", {"avatar_url": NUL}, 400),
        Case("PUT", f"user/{u}/account_data/org.example.x", {"a": NUL}, 400),
        Case("PUT", f"user/{u}/account_data/{nul}", {"a": 1}, 400),
        Case("PUT", f"user/{u}/rooms/{r}/account_data/org.example.x", {NUL: 1}, 400),
        Case("PUT", f"user/{u}/rooms/{r}/tags/{nul}", {}, 400),
        Case("PUT", f"user/{u}/rooms/{r}/tags/u.t", {"order": 0.5, "x": NUL}, 400),
        Case("POST", f"user/{u}/filter", {"room": {"types": [NUL]}}, 400),
        Case("PUT", f"devices/{s.alice.device_id}", {"display_name": NUL}, 400),
        Case("GET", f"devices/{nul}", None, 400),
        Case("GET", f"rooms/{r}/event/{nul}", None, 400),
        Case("PUT", f"presence/{u}/status", {"presence": "online", "status_msg": NUL}, 400),
        Case("POST", f"rooms/{r}/receipt/m.read/{e}", {"thread_id": NUL}, 400),
        Case("PUT", f"sendToDevice/m.x/t{nul}", {"messages": {}}, 400),
        Case("PUT", "sendToDevice/m.x/t4", {"messages": {s.alice.user_id: {"*": {"a": NUL}}}},
             400),
        Case("POST", "keys/upload", {"one_time_keys": {"a:b": NUL}}, 400),
        Case("POST", "room_keys/version", {"algorithm": "x", "auth_data": {"a": NUL}}, 400),
        Case("PUT", "pushrules/global/override/r1", {"actions": ["notify"], "conditions": [
            {"kind": "event_match", "key": "content.body", "pattern": NUL}]}, 400),
        Case("PUT", f"pushrules/global/override/{nul}", {"actions": []}, 400),
        Case("POST", "login", {"type": "m.login.password", "password": "x",
                               "identifier": {"type": "m.id.user", "user": NUL}}, 400),
        Case("GET", f"sync?filter={nul}", None, 400),
        # Numbers past 64 bits: clamped where they bound work, kept in JSON where they are
        # data (jsonb holds any number), never bound to a bigint parameter.
        Case("POST", f"user/{u}/filter", {"room": {"timeline": {"limit": 2**70}}}, 200),
        Case("GET", "sync?filter=" + quote(f'{{"room": {{"timeline": {{"limit": {2**70}}}}}}}'),
             None, 200),
        Case("GET", f"rooms/{r}/messages?filter=" + quote(f'{{"limit": {2**70}}}'), None, 200),
        Case("PUT", f"rooms/{r}/typing/{u}", {"typing": True, "timeout": 2**70}, 200),
        Case("POST", "keys/claim", {"one_time_keys": {}, "timeout": 2**70}, 200),
        Case("PUT", f"rooms/{r}/typing/{u}", {"typing": True, "timeout": 2**63}, 200),
        Case("POST", "keys/claim", {"one_time_keys": {}, "timeout": 2**63}, 200),
        Case("POST", "keys/query", {"device_keys": {}, "timeout": 2**63}, 200),
        Case("POST", f"user/{u}/filter", {"room": {"timeline": {"limit": 2**63}}}, 200),
        Case("POST", "publicRooms", {"limit": 2**63}, 200),
        Case("POST", "user_directory/search", {"search_term": "a", "limit": 2**63}, 200),
        Case("POST", f"rooms/{r}/receipt/m.read/{e}", {"ts": 2**63}, 200),
        Case("GET", f"rooms/{r}/messages?limit={2**70}", None, 200),
        Case("GET", f"sync?timeout={2**70}", None, 200),
        Case("GET", f"notifications?limit={2**70}", None, 200),
    ]


async def test_unstorable_values_are_refused_at_the_edge(api: MatrixApi, scene: Scene) -> None:
    """Each route that stores what it is sent refuses U+0000 and numbers past 64 bits with a
    400 before the database sees them (event content excepted, which stores U+0000 safely);
    `no_server_errors` proves that none reached PostgreSQL."""
    for case in unstorable_cases(scene):
        status, body = await api.request(
            case.method, case.path, json=case.body, token=scene.alice.token
        )
        assert status == case.status, (case, status, body)
        if status == 400:
            assert body["errcode"] in ("M_BAD_JSON", "M_INVALID_PARAM", "M_NOT_JSON"), body


async def test_a_database_type_error_is_a_logged_server_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A value PostgreSQL refuses that reaches the HTTP layer is a missing check in a route:
    500, logged at ERROR with the route (so that `no_server_errors` fixtures catch it)."""
    async def handler(request: web.Request) -> web.Response:
        raise DataError("unsupported Unicode escape sequence")

    app = web.Application(middlewares=[matrix_middleware])
    app.router.add_put("/_matrix/client/v3/example/{thing}", handler)
    async with TestClient(TestServer(app)) as client:
        response = await client.put("/_matrix/client/v3/example/x")
        assert response.status == 500
        assert (await response.json())["errcode"] == "M_UNKNOWN"
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert any("/example/{thing}" in r.getMessage() for r in errors), errors
    caplog.clear()  # seen: not this module's `no_server_errors` failure


def test_encoded_newlines_in_the_path_forge_no_log_line() -> None:
    """A path with %0A/%0D is logged on one line, as the client sent it."""
    request = make_mocked_request(
        "PUT", "/_matrix/client/v3/user/@a:x/account_data/org.example%0D%0Aforged%20line%0A"
    )
    logged = loggable_path(request)
    assert "\n" not in logged and "\r" not in logged, logged
    assert "%0D%0Aforged" in logged, logged


async def test_integers_past_64_bits_are_kept_and_served_back(
    api: MatrixApi, scene: Scene
) -> None:
    """jsonb keeps an integer of any size, and what a client stores as it sends it is served
    back as it was: stored in account data or a tag, one past 64 bits made every later read of
    it (a /sync among them) a 500. Found by the schemathesis run (bench/fuzz-client-api.sh)."""
    huge = 18446744073709551616
    alice, room = scene.alice, quote(scene.room)
    for path in (
        f"user/{alice.user_id}/account_data/org.example.huge",
        f"user/{alice.user_id}/rooms/{room}/account_data/org.example.huge",
        f"user/{alice.user_id}/rooms/{room}/tags/u.huge",
    ):
        await api.ok("PUT", path, json={"n": huge}, token=alice.token)
    for path in (
        f"user/{alice.user_id}/account_data/org.example.huge",
        f"user/{alice.user_id}/rooms/{room}/account_data/org.example.huge",
    ):
        assert (await api.ok("GET", path, token=alice.token))["n"] == huge
    tags = await api.ok("GET", f"user/{alice.user_id}/rooms/{room}/tags", token=alice.token)
    assert tags["tags"]["u.huge"]["n"] == huge
    assert "next_batch" in await api.sync(alice)

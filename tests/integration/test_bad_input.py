"""Hostile input over HTTP: no client body, path or header may cause a 500.

Hypothesis and async fixtures do not mix, so each test starts one server and lets a
synchronous `@given` function *collect* generated inputs, which the test then sends. Every
generated input is sent (no shrinking), and a failure names the input that caused it.
"""

from __future__ import annotations

import logging
import string
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.helpers import MatrixApi, User

EXAMPLES = 60

# Field names the write endpoints read: objects built from them reach past the first check.
KNOWN_KEYS = [
    "user_id", "room_id", "reason", "displayname", "avatar_url", "typing", "timeout",
    "m.fully_read", "m.read", "m.read.private", "thread_id", "name", "topic", "invite",
    "preset", "visibility", "room_version", "initial_state", "creation_content",
    "power_level_content_override", "is_direct", "room_alias_name", "username", "password",
    "auth", "type", "session", "identifier", "user", "device_id", "initial_device_display_name",
    "inhibit_login", "refresh_token", "msgtype", "body", "state_key", "content", "event_fields",
    "event_format", "room", "presence", "account_data", "filter", "limit", "types", "senders",
    "not_types", "lazy_load_members", "membership", "redacts", "token",
]

json_scalars = (
    st.none() | st.booleans() | st.text(max_size=20) | st.sampled_from(["\x00", "a\x00b"])
    | st.integers(min_value=-(2**60), max_value=2**60)
    | st.floats(allow_nan=False, allow_infinity=False)
)
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.sampled_from(KNOWN_KEYS) | st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
json_objects = st.dictionaries(st.sampled_from(KNOWN_KEYS), json_values, max_size=6)
bodies = st.one_of(
    json_objects.map(lambda v: ("json", v)),
    json_values.map(lambda v: ("json", v)),
    st.binary(max_size=64).map(lambda v: ("raw", v)),
)
segments = st.text(alphabet=string.printable + "\x00éλ!$#@:", min_size=1, max_size=30)


def collect(strategy: st.SearchStrategy[Any], n: int = EXAMPLES) -> list[Any]:
    """`n` examples of `strategy`, drawn the way hypothesis explores (edge cases first)."""
    found: list[Any] = []

    @settings(
        max_examples=n, deadline=None, database=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(strategy)
    def draw(value: Any) -> None:
        found.append(value)

    draw()
    return found


@dataclass
class Scene:
    """A room with a message in it, and the users who act on it."""

    alice: User
    bob: User
    room: str
    event: str
    server: str


@pytest.fixture
async def scene(api: MatrixApi) -> Scene:
    alice = await api.register("alice")
    bob = await api.register("bob")
    room = await api.create_room(alice, preset="public_chat")
    await api.join(bob, room)
    event = await api.send_message(alice, room, "target")
    return Scene(alice, bob, room, event, alice.user_id.split(":", 1)[1])


# (method, path, token) for each write endpoint; `i` makes transaction IDs unique.
Endpoint = Callable[[Scene, int], tuple[str, str, str | None]]
ENDPOINTS: dict[str, Endpoint] = {
    "register": lambda s, i: ("POST", "register", None),
    "login": lambda s, i: ("POST", "login", None),
    "createRoom": lambda s, i: ("POST", "createRoom", s.alice.token),
    "join": lambda s, i: ("POST", f"join/{s.room}", s.bob.token),
    "invite": lambda s, i: ("POST", f"rooms/{s.room}/invite", s.alice.token),
    "kick": lambda s, i: ("POST", f"rooms/{s.room}/kick", s.alice.token),
    "ban": lambda s, i: ("POST", f"rooms/{s.room}/ban", s.alice.token),
    "unban": lambda s, i: ("POST", f"rooms/{s.room}/unban", s.alice.token),
    "leave": lambda s, i: ("POST", f"rooms/{s.room}/leave", s.bob.token),
    "send": lambda s, i: ("PUT", f"rooms/{s.room}/send/m.room.message/f{i}", s.alice.token),
    "state": lambda s, i: ("PUT", f"rooms/{s.room}/state/org.example.fuzz/k", s.alice.token),
    "redact": lambda s, i: ("PUT", f"rooms/{s.room}/redact/{s.event}/f{i}", s.alice.token),
    "directory": lambda s, i: (
        "PUT", f"directory/room/{quote(f'#fuzz{i}:{s.server}')}", s.alice.token
    ),
    "filter": lambda s, i: ("POST", f"user/{s.alice.user_id}/filter", s.alice.token),
    "account_data": lambda s, i: (
        "PUT", f"user/{s.alice.user_id}/account_data/org.example.fuzz", s.alice.token
    ),
    "typing": lambda s, i: ("PUT", f"rooms/{s.room}/typing/{s.alice.user_id}", s.alice.token),
    "receipt": lambda s, i: ("POST", f"rooms/{s.room}/receipt/m.read/{s.event}", s.alice.token),
    "read_markers": lambda s, i: ("POST", f"rooms/{s.room}/read_markers", s.alice.token),
    "displayname": lambda s, i: (
        "PUT", f"profile/{s.alice.user_id}/displayname", s.alice.token
    ),
    "logout": lambda s, i: ("POST", "logout", s.bob.token),
}


async def send_body(
    api: MatrixApi, method: str, path: str, token: str | None, kind: str, value: Any
) -> tuple[int, Any]:
    """Send one generated body: raw bytes as they are (labelled JSON), anything else as JSON."""
    if kind == "raw":
        return await api.request(
            method, path, raw=value, token=token, headers={"Content-Type": "application/json"}
        )
    return await api.request(method, path, json=value, token=token)


def assert_sane(status: int, body: Any, context: Any) -> None:
    """Never a 5xx; every error is Matrix-shaped (a 401 asking for more auth has no errcode)."""
    assert status < 500, (status, body, context)
    if status >= 400 and not (status == 401 and isinstance(body, dict) and "flows" in body):
        assert isinstance(body, dict) and isinstance(body.get("errcode"), str), (
            status, body, context,
        )


@pytest.mark.parametrize("name", list(ENDPOINTS))
async def test_write_endpoints_survive_arbitrary_bodies(
    api: MatrixApi, scene: Scene, name: str
) -> None:
    for i, (kind, value) in enumerate(collect(bodies)):
        method, path, token = ENDPOINTS[name](scene, i)
        status, body = await send_body(api, method, path, token, kind, value)
        assert_sane(status, body, (name, value))


async def test_path_segments_survive_arbitrary_text(api: MatrixApi, scene: Scene) -> None:
    token = scene.alice.token
    for i, segment in enumerate(collect(segments)):
        part = quote(segment, safe="")
        requests = [
            ("GET", f"rooms/{part}/messages"), ("GET", f"rooms/{part}/state"),
            ("GET", f"rooms/{scene.room}/event/{part}"),
            ("GET", f"rooms/{scene.room}/context/{part}"),
            ("GET", f"rooms/{scene.room}/state/{part}/{part}"),
            ("PUT", f"rooms/{part}/send/{part}/{i}"),
            ("PUT", f"rooms/{scene.room}/state/{part}/{part}"),
            ("POST", f"join/{part}"), ("POST", f"rooms/{part}/invite"),
            ("GET", f"directory/room/{part}"), ("DELETE", f"directory/room/{part}"),
            ("GET", f"profile/{part}"), ("PUT", f"rooms/{scene.room}/redact/{part}/{i}"),
        ]
        for method, path in requests:
            status, body = await api.request(
                method, path, json={"user_id": scene.bob.user_id}, token=token
            )
            assert_sane(status, body, (method, path))


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


async def test_unstorable_nul_is_a_bad_request(api: MatrixApi, scene: Scene) -> None:
    """PostgreSQL refuses U+0000 in jsonb; storage reports it and the client gets a 400."""
    status, body = await api.request(
        "PUT", f"user/{scene.alice.user_id}/account_data/org.example.nul",
        json={"a": "x\x00y"}, token=scene.alice.token,
    )
    assert (status, body["errcode"]) == (400, "M_INVALID_PARAM"), body


async def test_encoded_newlines_in_the_path_forge_no_log_line(
    api: MatrixApi, scene: Scene, caplog: pytest.LogCaptureFixture
) -> None:
    """A path with %0A/%0D that reaches a logged failure is logged on one line, escaped."""
    event_type = "org.example%0D%0Aforged%20line%0A"
    with caplog.at_level(logging.INFO, logger="homeserver.access"):
        status, _ = await api.request(
            "PUT", f"user/{scene.alice.user_id}/account_data/{event_type}",
            json={"a": "x\x00y"}, token=scene.alice.token,
        )
    assert status == 400
    lines = [r.getMessage() for r in caplog.records if r.name == "homeserver.access"]
    logged = [line for line in lines if "forged" in line]
    assert len(logged) == 1, lines
    assert "\n" not in logged[0] and "\r" not in logged[0], logged
    assert "%0A" in logged[0], logged

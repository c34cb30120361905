"""Generated bad input for Client-Server endpoints: malformed bodies and path segments, and the
check that the server answers them sanely (a 4xx with a Matrix error, never a 500).

Shared by test_bad_input.py (every route) and the endpoint modules that add their own cases.
"""

from __future__ import annotations

import string
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.helpers import MatrixApi

EXAMPLES = 60
NUL = "a\x00b"
# A lone UTF-16 surrogate: JSON can escape one (\ud800), but it is no text (no UTF-8).
LONE_SURROGATE = "a\ud800b"
# Past PostgreSQL's bigint (and orjson's 64 bits) both ways.
HUGE = [2**63, 2**64, 2**70, -(2**63) - 1, -(2**70)]
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
    "messages", "one_time_keys", "device_keys", "algorithm", "auth_data", "display_name",
    "status_msg", "actions", "conditions", "pushkey", "order", "search_term", "new_password",
    "first_message_index", "session_data", "rooms", "sessions", "since", "server",
]
json_scalars = (
    st.none() | st.booleans() | st.text(max_size=20)
    | st.sampled_from(["\x00", NUL, LONE_SURROGATE])
    | st.integers(min_value=-(2**60), max_value=2**60) | st.sampled_from(HUGE)
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
# A query parameter's value: numbers past 64 bits, U+0000, malformed numbers, any short text.
query_values = st.one_of(
    st.sampled_from([str(n) for n in HUGE] + ["\x00", NUL, "-1", "1e999", "0x10"]),
    st.integers().map(str), st.text(max_size=12),
)


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


async def send_body(
    api: MatrixApi, method: str, path: str, token: str | None, kind: str, value: Any
) -> tuple[int, Any]:
    """Send one generated body: raw bytes as they are (labelled JSON), anything else as JSON."""
    if kind == "raw":
        return await api.request(
            method, path, raw=value, token=token, headers={"Content-Type": "application/json"}
        )
    return await api.request(method, path, json=value, token=token)


def assert_sane(status: int, body: Any, context: Any, *, reaches_out: bool = False) -> None:
    """Never a 5xx; every error is Matrix-shaped (a 401 asking for more auth has no errcode).

    ``reaches_out``: the request may name another server that the server must ask (a remote
    alias to join or resolve, a remote user's profile). A name that does not resolve is a
    server that failed, not bad input: 502 or 504, Matrix-shaped, is the honest answer (as
    Synapse's "Failed to fetch alias")."""
    upstream = reaches_out and status in (502, 504)
    assert status < 500 or upstream, (status, body, context)
    if status >= 400 and not (status == 401 and isinstance(body, dict) and "flows" in body):
        assert isinstance(body, dict) and isinstance(body.get("errcode"), str), (
            status, body, context,
        )



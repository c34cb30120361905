"""Bad input to simplified sliding sync: every malformed request gets a 400 with a Matrix error,
never a 5xx; what a client may legitimately send (unknown extensions, unknown fields) is
accepted. Each bad body is also refused by tests/sliding_sync_schema.py, so the schema and the
server agree on what a request is.

Checked by hand against Synapse 1.163: it refuses the same bodies except a negative
timeline_limit (issue 14: Moot refuses it), unknown list names in extensions (ignored; issue 14:
refused), `unsubscribe_rooms` (a field Synapse does not read) and a bad `set_presence` (ignored;
MSC4186: M_INVALID_PARAM).
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from hypothesis import strategies as st

from tests.bad_input import collect, json_values
from tests.helpers import MatrixApi, User
from tests.sliding_sync import PATH, Connection, post, room_list, subscription
from tests.sliding_sync_schema import request_errors

pytestmark = pytest.mark.usefixtures("no_server_errors")

BODY_ERRORS = ("M_BAD_JSON", "M_INVALID_PARAM", "M_NOT_JSON", "M_MISSING_PARAM")
GOOD: dict[str, Any] = {
    "lists": {"all": room_list()},
    "room_subscriptions": {"!r:localhost": subscription()},
    "extensions": {"typing": {"enabled": True}},
}


def changed(path: tuple[str, ...], value: Any) -> dict[str, Any]:
    """GOOD with the field at `path` set to `value`."""
    body = copy.deepcopy(GOOD)
    node = body
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return body


LIST = ("lists", "all")
SUB = ("room_subscriptions", "!r:localhost")
BAD_BODIES: list[tuple[str, Any]] = [
    ("array", []),
    ("string", "lists"),
    ("number", 1),
    ("lists not an object", changed(("lists",), [])),
    ("list config not an object", changed(LIST, [[0, 1]])),
    ("ranges not a list", changed((*LIST, "ranges"), "0-19")),
    ("range not a pair", changed((*LIST, "ranges"), [0, 19])),
    ("range of one", changed((*LIST, "ranges"), [[0]])),
    ("range of three", changed((*LIST, "ranges"), [[0, 1, 2]])),
    ("negative start", changed((*LIST, "ranges"), [[-1, 5]])),
    ("negative end", changed((*LIST, "ranges"), [[0, -1]])),
    ("string bound", changed((*LIST, "ranges"), [["0", 5]])),
    ("float bound", changed((*LIST, "ranges"), [[0.5, 5]])),
    ("boolean bound", changed((*LIST, "ranges"), [[True, 5]])),
    ("null bound", changed((*LIST, "ranges"), [[None, 5]])),
    ("negative timeline_limit", changed((*LIST, "timeline_limit"), -1)),
    ("string timeline_limit", changed((*LIST, "timeline_limit"), "5")),
    ("float timeline_limit", changed((*LIST, "timeline_limit"), 1.5)),
    ("boolean timeline_limit", changed((*LIST, "timeline_limit"), True)),
    ("required_state not a list", changed((*LIST, "required_state"), "*")),
    ("required_state of one", changed((*LIST, "required_state"), [["m.room.name"]])),
    ("required_state of three", changed((*LIST, "required_state"), [["a", "b", "c"]])),
    ("required_state number", changed((*LIST, "required_state"), [[1, ""]])),
    ("required_state object", changed((*LIST, "required_state"), [{"type": "m.room.name"}])),
    ("filters not an object", changed((*LIST, "filters"), ["is_dm"])),
    ("is_dm not a boolean", changed((*LIST, "filters"), {"is_dm": "yes"})),
    ("is_encrypted not a boolean", changed((*LIST, "filters"), {"is_encrypted": 1})),
    ("is_invite not a boolean", changed((*LIST, "filters"), {"is_invite": "no"})),
    ("room_types not a list", changed((*LIST, "filters"), {"room_types": "m.space"})),
    ("not_room_types of numbers", changed((*LIST, "filters"), {"not_room_types": [1]})),
    ("list name too long", changed(("lists",), {"x" * 65: room_list()})),
    ("too many lists", changed(("lists",), {f"l{i}": room_list() for i in range(101)})),
    ("room_subscriptions not an object", changed(("room_subscriptions",), ["!r:localhost"])),
    ("subscription not an object", changed(SUB, 5)),
    ("subscription negative limit", changed((*SUB, "timeline_limit"), -5)),
    ("subscription bad required_state", changed((*SUB, "required_state"), [["a"]])),
    ("unsubscribe_rooms not a list", {**GOOD, "unsubscribe_rooms": "!r:localhost"}),
    ("unsubscribe_rooms of numbers", {**GOOD, "unsubscribe_rooms": [1]}),
    ("conn_id not a string", {**GOOD, "conn_id": 5}),
    ("extensions not an object", changed(("extensions",), [])),
    ("extension not an object", changed(("extensions", "typing"), True)),
    ("enabled not a boolean", changed(("extensions", "typing"), {"enabled": "yes"})),
    ("extension lists not a list", changed(("extensions", "typing"),
                                           {"enabled": True, "lists": "all"})),
    ("extension rooms of numbers", changed(("extensions", "receipts"),
                                           {"enabled": True, "rooms": [1]})),
    ("unknown list in an extension", changed(("extensions", "typing"),
                                             {"enabled": True, "lists": ["nope"]})),
    ("unknown list in account_data", changed(("extensions", "account_data"),
                                             {"enabled": True, "lists": ["all", "nope"]})),
    ("to_device since not a string", changed(("extensions", "to_device"),
                                             {"enabled": True, "since": 5})),
    ("to_device limit not an integer", changed(("extensions", "to_device"),
                                               {"enabled": True, "limit": "10"})),
]


@pytest.fixture
async def alice(api: MatrixApi) -> User:
    return await api.register("alice")


def expect_bad(status: int, answer: Any, case: str) -> None:
    assert status == 400, (case, status, answer)
    assert answer["errcode"] in BODY_ERRORS, (case, answer)


@pytest.mark.parametrize(("case", "body"), BAD_BODIES, ids=[c for c, _ in BAD_BODIES])
async def test_a_bad_body_is_a_400(api: MatrixApi, alice: User, case: str, body: Any) -> None:
    assert request_errors(body) or case.startswith("unknown list"), case
    status, answer = await post(api, alice, body, check_request=False)
    expect_bad(status, answer, case)


@pytest.mark.parametrize("raw", [
    b"{not json", b"", b"null", b"\xff\xfe", b'{"lists": ', b"[1,", b'{"a": 1}{"b": 2}',
])
async def test_malformed_json_is_a_400(api: MatrixApi, alice: User, raw: bytes) -> None:
    status, answer = await api.request(
        "POST", PATH, raw=raw, token=alice.token, headers={"Content-Type": "application/json"}
    )
    expect_bad(status, answer, repr(raw))


async def test_a_body_is_judged_the_same_every_time_it_comes(
    api: MatrixApi, alice: User
) -> None:
    """Parsed bodies are kept by their bytes (small ones): a good one serves again, a bad
    one is refused again, and a large one (parsed every time) is judged alike."""
    bad = changed((*LIST, "timeline_limit"), -1)
    large = changed(("lists",), {f"l{i:063d}": room_list() for i in range(90)})
    assert len(json.dumps(large)) > 8192
    large_bad = copy.deepcopy(large)
    large_bad["lists"][f"l{0:063d}"]["timeline_limit"] = -1
    for _ in range(2):
        expect_bad(*await post(api, alice, bad, check_request=False), "negative timeline_limit")
        expect_bad(*await post(api, alice, large_bad, check_request=False), "large, negative")
        assert (await post(api, alice, GOOD))[0] == 200
        assert (await post(api, alice, large))[0] == 200


async def test_a_bad_body_leaves_the_connection_usable(api: MatrixApi, alice: User) -> None:
    conn = Connection(api, alice, GOOD)
    await conn.sync()
    status, answer = await post(
        api, alice, changed((*LIST, "timeline_limit"), -1), {"pos": conn.pos or ""},
        check_request=False,
    )
    expect_bad(status, answer, "negative timeline_limit")
    await conn.sync()


@pytest.mark.parametrize(("param", "value"), [
    ("timeout", "soon"), ("timeout", "-1"), ("timeout", "1.5"), ("timeout", ""),
    ("set_presence", "busy"), ("set_presence", ""),
])
async def test_bad_query_parameters_are_a_400(
    api: MatrixApi, alice: User, param: str, value: str
) -> None:
    conn = Connection(api, alice, GOOD)
    await conn.sync()
    status, answer = await api.request(
        "POST", PATH, json=GOOD, token=alice.token, params={"pos": conn.pos or "", param: value}
    )
    assert (status, answer["errcode"]) == (400, "M_INVALID_PARAM"), (param, value, answer)


async def test_what_a_newer_client_may_send_is_accepted(api: MatrixApi, alice: User) -> None:
    """Unknown extensions must be ignored (MSC3575), and unknown fields too, or an older server
    breaks a newer client; an empty body is a request for nothing."""
    for body in (
        {**GOOD, "extensions": {"org.example.future": {"enabled": True}}},
        {**GOOD, "org.example.field": 1},
        changed((*LIST, "filters"), {"org.example.filter": True}),
        {},
    ):
        status, answer = await post(api, alice, body, check_request=False)
        assert status == 200, (body, answer)


@pytest.mark.parametrize(("case", "body"), [
    ("huge range end", changed((*LIST, "ranges"), [[0, 2**70]])),
    ("huge range start", changed((*LIST, "ranges"), [[2**63, 2**64]])),
    ("reversed range", changed((*LIST, "ranges"), [[5, 2]])),
    ("huge timeline_limit", changed((*LIST, "timeline_limit"), 2**70)),
    ("huge to_device limit", changed(("extensions", "to_device"),
                                     {"enabled": True, "limit": 2**70})),
    ("to_device since not a number", changed(("extensions", "to_device"),
                                             {"enabled": True, "since": "abc"})),
    ("long conn_id", {**GOOD, "conn_id": "c" * 10_000}),
    ("NUL in a list name", changed(("lists",), {"a\x00b": room_list()})),
    ("NUL in a room ID", changed(("room_subscriptions",), {"!a\x00b:localhost": subscription()})),
    ("NUL in required_state", changed((*LIST, "required_state"), [["m.room.name", "\x00"]])),
])
async def test_edge_values_never_fail_the_server(
    api: MatrixApi, alice: User, case: str, body: Any
) -> None:
    status, answer = await post(api, alice, body, check_request=False)
    assert status in (200, 400), (case, status, answer)


SS_KEYS = ["lists", "ranges", "required_state", "timeline_limit", "filters", "is_dm",
           "is_encrypted", "is_invite", "room_types", "not_room_types", "room_subscriptions",
           "unsubscribe_rooms", "extensions", "to_device", "e2ee", "account_data", "receipts",
           "typing", "enabled", "since", "limit", "rooms", "conn_id", "all", "!r:localhost"]
sliding_values = st.recursive(
    json_values,
    lambda children: st.lists(children, max_size=3)
    | st.dictionaries(st.sampled_from(SS_KEYS), children, max_size=4),
    max_leaves=16,
)


async def test_generated_bodies_never_fail_the_server(api: MatrixApi, alice: User) -> None:
    bodies = collect(st.dictionaries(st.sampled_from(SS_KEYS), sliding_values, max_size=5))
    for body in bodies:
        status, answer = await post(api, alice, body, check_request=False)
        assert status in (200, 400), (body, status, answer)

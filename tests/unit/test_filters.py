"""Sync filter parsing and matching (Client-Server API "Filtering")."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from homeserver.services.filters import EventFilter, Filter, FilterError


def event(type_: str = "m.room.message", sender: str = "@a:hs", **content: Any) -> dict[str, Any]:
    return {"type": type_, "sender": sender, "content": content}


def test_empty_filter_allows_everything() -> None:
    flt = Filter.parse({})
    assert flt == Filter()
    assert flt.room.timeline.allows(event(), "!r:hs")
    assert flt.room.allows_room("!r:hs")
    assert flt.room.timeline.limit is None
    assert not flt.room.include_leave


@pytest.mark.parametrize(
    "raw",
    [
        [],
        {"event_fields": "type"},
        {"event_fields": [1]},
        {"event_format": "xml"},
        {"room": []},
        {"room": {"rooms": "!r:hs"}},
        {"room": {"include_leave": "yes"}},
        {"room": {"timeline": {"limit": "10"}}},
        {"room": {"timeline": {"limit": -1}}},
        {"room": {"timeline": {"limit": True}}},
        {"room": {"timeline": {"types": [None]}}},
        {"room": {"state": {"lazy_load_members": 1}}},
        {"room": {"state": {"contains_url": "no"}}},
        {"presence": {"senders": {}}},
        {"account_data": 5},
    ],
)
def test_wrong_shapes_are_refused(raw: Any) -> None:
    with pytest.raises(FilterError):
        Filter.parse(raw)


def test_types_with_wildcards_and_not_types_winning() -> None:
    flt = EventFilter.parse({"types": ["m.room.*"], "not_types": ["m.room.member"]}, "")
    assert flt.allows(event("m.room.message"))
    assert flt.allows(event("m.room.name"))
    assert not flt.allows(event("m.room.member"))
    assert not flt.allows(event("m.call.invite"))
    assert flt.sql_types() is None  # a wildcard cannot be pushed into SQL


def test_senders_and_rooms() -> None:
    flt = EventFilter.parse(
        {"senders": ["@a:hs", "@b:hs"], "not_senders": ["@b:hs"], "not_rooms": ["!x:hs"]}, ""
    )
    assert flt.allows(event(sender="@a:hs"), "!r:hs")
    assert not flt.allows(event(sender="@b:hs"), "!r:hs")
    assert not flt.allows(event(sender="@c:hs"), "!r:hs")
    assert not flt.allows(event(sender="@a:hs"), "!x:hs")
    assert flt.sql_senders() == ["@a:hs", "@b:hs"]


def test_contains_url() -> None:
    with_url = EventFilter.parse({"contains_url": True}, "")
    without_url = EventFilter.parse({"contains_url": False}, "")
    assert with_url.allows(event(url="mxc://hs/x"))
    assert not with_url.allows(event(body="hi"))
    assert without_url.allows(event(body="hi"))


def test_room_filter_sections() -> None:
    flt = Filter.parse({
        "room": {
            "rooms": ["!a:hs", "!b:hs"], "not_rooms": ["!b:hs"], "include_leave": True,
            "timeline": {"limit": 3}, "state": {"lazy_load_members": True},
            "ephemeral": {"not_types": ["m.typing"]},
        }
    })
    assert flt.room.allows_room("!a:hs")
    assert not flt.room.allows_room("!b:hs")
    assert not flt.room.allows_room("!c:hs")
    assert flt.room.include_leave
    assert flt.room.timeline.limit == 3
    assert flt.room.state.lazy_load_members
    assert not flt.room.ephemeral.allows({"type": "m.typing", "content": {}})
    assert flt.room.ephemeral.allows({"type": "m.receipt", "content": {}})


def test_event_fields_projection_with_escaped_dot() -> None:
    flt = Filter.parse({"event_fields": ["type", "content.body", "content.m\\.rel", "nope.x"]})
    projected = flt.project({
        "type": "m.room.message", "sender": "@a:hs",
        "content": {"body": "hi", "msgtype": "m.text", "m.rel": 1},
    })
    assert projected == {"type": "m.room.message", "content": {"body": "hi", "m.rel": 1}}


@given(st.text(min_size=1))
def test_wildcard_and_literal_types(event_type: str) -> None:
    assert EventFilter.parse({"types": ["*"]}, "").allows_type(event_type)
    assert EventFilter.parse({"types": [event_type]}, "").allows_type(event_type)
    assert not EventFilter.parse({"not_types": [event_type]}, "").allows_type(event_type)

"""Other servers' directory pages are reused for `TTL_S` and held within `max_bytes`."""

from __future__ import annotations

from typing import Any

from homeserver.protocol.public_rooms import PublicRoomsQuery, clean_remote_page, federation_query
from homeserver.services.remote_directory_pages import TTL_S, RemoteDirectoryPages, weight_of
from tests.fake_clock import FakeClock

FIRST = PublicRoomsQuery(limit=10)


def page(name: str, size: int = 0) -> dict[str, Any]:
    return {"chunk": [{"room_id": f"!{name}:example.org", "topic": "x" * size}]}


def test_a_page_is_reused_until_it_expires_and_only_for_the_same_query() -> None:
    clock = FakeClock()
    pages = RemoteDirectoryPages(clock)
    pages.put("a.example", FIRST, page("one"))
    assert pages.get("a.example", FIRST) == page("one")
    assert pages.get("b.example", FIRST) is None
    assert pages.get("a.example", PublicRoomsQuery(limit=10, since="x")) is None
    assert pages.get("a.example", PublicRoomsQuery(limit=10, search_term="one")) is None
    clock.advance(TTL_S - 1)
    assert pages.get("a.example", FIRST) == page("one")
    clock.advance(1)
    assert pages.get("a.example", FIRST) is None
    assert pages.held_bytes == 0


def test_pages_are_held_within_the_byte_bound_oldest_forgotten_first() -> None:
    weight = weight_of("s0.example", FIRST, page("p0", 1000))
    pages = RemoteDirectoryPages(FakeClock(), max_bytes=3 * weight)
    for i in range(5):
        pages.put(f"s{i}.example", FIRST, page(f"p{i}", 1000))
        assert pages.held_bytes <= 3 * weight
    assert [pages.get(f"s{i}.example", FIRST) is not None for i in range(5)] == [
        False, False, True, True, True,
    ]
    pages.put("huge.example", FIRST, page("huge", 4 * weight))  # heavier than the bound
    assert pages.get("huge.example", FIRST) is None
    assert pages.get("s4.example", FIRST) is not None
    pages.put("s4.example", FIRST, page("p9", 1000))  # replacing does not count twice
    assert pages.held_bytes == 3 * weight


def test_search_terms_count_against_the_bound_as_much_as_pages() -> None:
    # A user's every keystroke is a query of its own: empty answers to long terms must not
    # pile up under a bound that weighs only the answers.
    pages = RemoteDirectoryPages(FakeClock(), max_bytes=50_000)
    queries = [PublicRoomsQuery(limit=10, search_term=f"{i}" + "x" * 10_000) for i in range(20)]
    for query in queries:
        pages.put("a.example", query, {"chunk": []})
        assert pages.held_bytes <= 50_000
    assert pages.get("a.example", queries[0]) is None
    assert pages.get("a.example", queries[-1]) == {"chunk": []}


def test_a_query_goes_to_another_server_as_get_unless_it_filters() -> None:
    assert federation_query(PublicRoomsQuery(limit=5, since="t", third_party_instance_id="irc")) \
        .params == {"limit": "5", "include_all_networks": "false", "since": "t",
                    "third_party_instance_id": "irc"}
    asked = federation_query(PublicRoomsQuery(limit=5, search_term="otter",
                                              room_types=(None, "m.space")))
    assert asked.params is None and asked.body == {
        "limit": 5, "include_all_networks": False,
        "filter": {"generic_search_term": "otter", "room_types": [None, "m.space"]},
    }


def test_a_peer_s_page_keeps_only_rooms_and_the_spec_s_fields() -> None:
    assert clean_remote_page({"chunk": {}}, 5) is None
    cleaned = clean_remote_page({
        "chunk": [{"room_id": "!a:example.org", "num_joined_members": 2, "room_version": "1",
                   "allowed_room_ids": [], "join_rule": "public"},
                  {"room_id": "!b:example.org"}, None],
        "next_batch": "", "prev_batch": "p", "total_room_count_estimate": True,
    }, 5)
    assert cleaned == {
        "chunk": [{"room_id": "!a:example.org", "num_joined_members": 2, "join_rule": "public",
                   "world_readable": False, "guest_can_join": False}],
        "prev_batch": "p",
    }

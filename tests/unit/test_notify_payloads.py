"""NOTIFY payloads: a message's list is split so that every payload fits PostgreSQL's limit."""

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from storage.notify import MAX_PAYLOAD_BYTES, chunk_payloads

TOKEN = "s123456_7_8_1700000000000_9_10_11"


def test_a_short_list_is_one_payload_without_cont() -> None:
    payloads = chunk_payloads({"t": TOKEN, "u": ["@a:x", "@b:x"]}, "u")
    assert [json.loads(p) for p in payloads] == [{"t": TOKEN, "u": ["@a:x", "@b:x"]}]


def test_an_empty_list_is_still_sent() -> None:
    assert [json.loads(p) for p in chunk_payloads({"t": TOKEN, "u": []}, "u")] == [
        {"t": TOKEN, "u": []}
    ]


def test_a_full_room_of_long_user_ids_is_split_in_order() -> None:
    users = [f"@{'u' * 200}{i:03}:example.org" for i in range(256)]  # ~56 kB of user IDs
    payloads = chunk_payloads({"t": TOKEN, "u": users}, "u")
    assert len(payloads) > 7
    assert all(len(p.encode()) <= MAX_PAYLOAD_BYTES for p in payloads)
    messages = [json.loads(p) for p in payloads]
    assert all(m["t"] == TOKEN for m in messages)
    assert "cont" not in messages[0] and all(m["cont"] is True for m in messages[1:])
    assert [u for m in messages for u in m["u"]] == users


def test_an_item_too_large_for_any_payload_is_refused() -> None:
    with pytest.raises(ValueError, match="does not fit"):
        chunk_payloads({"u": ["x" * MAX_PAYLOAD_BYTES]}, "u")


# Items are user and room IDs: ASCII and far shorter than a payload. (Any text of up to 300
# characters could need 3600 bytes once JSON-escaped: too large for every limit tried here,
# which the test above covers.)
@given(
    st.lists(st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=120),
             max_size=200),
    st.integers(min_value=400, max_value=8000),
)
def test_payloads_fit_and_keep_every_item_in_order(items: list[str], limit: int) -> None:
    payloads = chunk_payloads({"inv": "memberships", "k": items}, "k", limit)
    assert all(len(p.encode()) <= limit for p in payloads)
    assert [k for p in payloads for k in json.loads(p)["k"]] == items

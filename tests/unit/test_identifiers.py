"""Identifier grammar (appendices "Identifier Grammar")."""

from __future__ import annotations

import pytest

from homeserver.protocol.identifiers import (
    is_valid_event_id,
    is_valid_localpart_for_registration,
    is_valid_room_alias,
    is_valid_room_id,
    is_valid_server_name,
    is_valid_user_id,
    parse_user_id,
    server_name_of,
)

HASH = "Rqnc-F-dvnEYJTyHq_iKxU2bZ1CI92-kuZq3a5lr5Zg"


@pytest.mark.parametrize(
    "name",
    ["matrix.org", "matrix.org:8888", "1.2.3.4", "1.2.3.4:1234", "[1234:5678::abcd]",
     "[1234:5678::abcd]:5678", "localhost", "a-b.example", "[::1]"],
)
def test_valid_server_names(name: str) -> None:
    assert is_valid_server_name(name)


@pytest.mark.parametrize(
    "name",
    ["", "matrix.org:", "matrix.org:123456", "matrix.org:abc", "exa mple.org", "ex_ample.org",
     "[1234:5678::abcd", "1234:5678::abcd", "[zz::1]", "[1:2]", "256.1.1.1", "a" * 256,
     "example.org/path"],
)
def test_invalid_server_names(name: str) -> None:
    assert not is_valid_server_name(name)


def test_parse_user_id() -> None:
    assert parse_user_id("@alice:example.org") == ("alice", "example.org")
    assert parse_user_id("@bob:[::1]:8448") == ("bob", "[::1]:8448")
    for bad in ["alice:example.org", "@alice", "@alice:", "@a\x00b:x.org", "@a:bad_host"]:
        with pytest.raises(ValueError):
            parse_user_id(bad)


def test_user_id_historical_grammar_and_length() -> None:
    assert is_valid_user_id("@Alice Smith!:example.org")  # historical localparts accepted
    assert is_valid_user_id("@:example.org")  # even an empty one
    assert not is_valid_user_id("@" + "a" * 250 + ":example.org")  # > 255 bytes
    assert is_valid_user_id("@" + "a" * 242 + ":example.org")  # exactly 255 bytes
    assert not is_valid_user_id("#a:example.org")


def test_registration_localparts_are_strict() -> None:
    assert is_valid_localpart_for_registration("alice.b_c=d-e/f+g9")
    for bad in ["", "Alice", "al ice", "al:ice", "ali#ce", "é"]:
        assert not is_valid_localpart_for_registration(bad)


def test_server_name_of() -> None:
    assert server_name_of("@a:x.org") == "x.org"
    assert server_name_of("#a:x.org:80") == "x.org:80"
    assert server_name_of("!r:x.org") == "x.org"
    assert server_name_of("$e:x.org") == "x.org"
    for bad in ["!" + HASH, "$" + HASH, "a:x.org", "", "@a:"]:
        with pytest.raises(ValueError):
            server_name_of(bad)


def test_room_ids() -> None:
    assert is_valid_room_id("!opaque:example.org")
    assert is_valid_room_id("!" + HASH)
    assert not is_valid_room_id("!" + HASH[:-1])
    assert not is_valid_room_id("!:example.org")
    assert not is_valid_room_id("#a:example.org")
    assert not is_valid_room_id("!" + "a" * 260 + ":x.org")


def test_room_aliases() -> None:
    assert is_valid_room_alias("#room:example.org")
    assert is_valid_room_alias("#:example.org")
    assert not is_valid_room_alias("#room")
    assert not is_valid_room_alias("!room:example.org")
    assert not is_valid_room_alias("#" + "a" * 250 + ":example.org")


def test_event_ids() -> None:
    assert is_valid_event_id("$" + HASH)
    assert is_valid_event_id("$legacy:example.org")
    # Room v3: the hash in standard base64, '+' and '/' included.
    assert is_valid_event_id("$" + "a+/" * 14 + "b")
    assert not is_valid_event_id("$")
    assert not is_valid_event_id(HASH)
    assert not is_valid_event_id("$" + "a" * 300)

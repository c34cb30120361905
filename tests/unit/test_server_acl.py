"""Server ACLs (the m.room.server_acl event schema's five steps, appendices "Glob-style
matching"): no ACL allows, IP literals only when allowed, deny before allow, anything else
refused, ports never considered, globs with `*` and `?` matched case-insensitively."""

from __future__ import annotations

from typing import Any

import pytest

from homeserver.protocol.server_acl import glob_matches, server_allowed


def test_a_room_without_an_acl_admits_everyone() -> None:
    assert server_allowed(None, "evil.example")
    assert server_allowed(None, "127.0.0.1:8448")


@pytest.mark.parametrize("acl", [{}, {"deny": []}, {"allow": []}, {"allow": "*"}])
def test_no_allow_list_refuses_every_server(acl: dict[str, Any]) -> None:
    # "allow" defaults to an empty list (a string is not a list: it allows nobody either).
    assert not server_allowed(acl, "good.example")


@pytest.mark.parametrize("name", ["evil.com", "evil.com:8448", "evil.com:1234", "EVIL.com"])
def test_the_port_is_not_considered_and_case_does_not_matter(name: str) -> None:
    acl = {"allow": ["*"], "deny": ["evil.com"]}
    assert not server_allowed(acl, name)
    assert server_allowed(acl, name.lower().replace("evil", "good"))


def test_a_port_in_a_glob_matches_nothing() -> None:
    # Globs are matched against the name without its port, so a port in one never matches.
    acl = {"allow": ["*"], "deny": ["evil.com:8448"]}
    assert server_allowed(acl, "evil.com:8448")


def test_deny_wins_over_allow() -> None:
    acl = {"allow": ["*.example"], "deny": ["evil.example"]}
    assert server_allowed(acl, "good.example")
    assert not server_allowed(acl, "evil.example")
    assert not server_allowed(acl, "elsewhere.org")  # no allow glob matches


@pytest.mark.parametrize(("glob", "name", "matches"), [
    ("*.example.com", "a.example.com", True),
    ("*.example.com", "a.b.example.com", True),  # `*` crosses dots
    ("*.example.com", "example.com", False),
    ("*example.com", "example.com", True),  # zero characters
    ("ev?l.com", "evil.com", True),
    ("ev?l.com", "evl.com", False),  # `?` is exactly one character
    ("ev?l.com", "eviil.com", False),
    ("evil.com", "evilxcom", False),  # a dot is a dot, not a regex wildcard
    ("evil.com", "notevil.com", False),  # the whole name, not a part of it
    ("[ab]*", "a.example", False),  # brackets are literal
    ("[ab]*", "[ab].example", True),
])
def test_globs(glob: str, name: str, matches: bool) -> None:
    assert server_allowed({"allow": [glob]}, name) is matches
    assert server_allowed({"allow": ["*"], "deny": [glob]}, name) is not matches


@pytest.mark.parametrize("name", [
    "127.0.0.1", "127.0.0.1:8448", "[::1]", "[::1]:8448", "[2001:db8::1]:443",
])
def test_ip_literals_are_refused_only_when_allow_ip_literals_is_false(name: str) -> None:
    assert not server_allowed({"allow": ["*"], "allow_ip_literals": False}, name)
    assert server_allowed({"allow": ["*"], "allow_ip_literals": True}, name)
    assert server_allowed({"allow": ["*"]}, name)  # the default is true


@pytest.mark.parametrize("value", ["false", 0, None, []])
def test_allow_ip_literals_that_is_not_a_boolean_means_true(value: Any) -> None:
    assert server_allowed({"allow": ["*"], "allow_ip_literals": value}, "10.0.0.1:8448")


def test_a_name_that_only_looks_numeric_is_not_an_ip_literal() -> None:
    acl = {"allow": ["*"], "allow_ip_literals": False}
    assert server_allowed(acl, "1.2.3.example")
    assert server_allowed(acl, "256.0.0.1")  # no IPv4 address has an octet of 256


def test_ip_literals_are_matched_by_globs_without_their_port() -> None:
    acl = {"allow": ["*"], "deny": ["127.0.0.*", "[::1]"]}
    assert not server_allowed(acl, "127.0.0.1:1234")
    assert not server_allowed(acl, "[::1]:8448")
    assert server_allowed(acl, "10.0.0.1:1234")


def test_entries_that_are_not_strings_are_ignored() -> None:
    acl = {"allow": [None, 3, {"x": 1}, "good.example"], "deny": [1, "evil.example"]}
    assert server_allowed(acl, "good.example")
    assert not server_allowed(acl, "evil.example")
    assert not server_allowed(acl, "other.example")


@pytest.mark.parametrize(("pattern", "text", "expected"), [
    ("*", "", True), ("a*", "a", True), ("*a", "ba", True), ("*a", "ab", False),
    ("a*b*c", "aXbYc", True), ("a*b*c", "aXcYb", False), ("?", "x", True), ("?", "", False),
    ("*.example", "x.example", True), ("a?c", "abc", True), ("a?c", "abbc", False),
    ("**b", "b", True), ("a*a", "a", False), ("*ab*ab*", "xabyab", True),
])
def test_glob_matches(pattern: str, text: str, expected: bool) -> None:
    assert glob_matches(pattern, text) is expected


def test_a_pathological_glob_is_answered() -> None:
    """A regex of `.*`s would backtrack for hours on this (6 s already with 8 stars and 40
    characters); the piecewise matcher answers it in linear time, so the test just ends."""
    acl = {"allow": ["*"], "deny": ["*a" * 16 + "*b"]}
    assert server_allowed(acl, "a" * 200 + ".evil")

"""Picking the client's address and scheme behind reverse proxies (homeserver/api/
client_address.py): the pure rules, without a request."""

from __future__ import annotations

import ast
import ipaddress
from pathlib import Path

import pytest

from homeserver.api.client_address import pick_client_address, pick_scheme

LOOPBACK = (ipaddress.ip_network("127.0.0.1/32"), ipaddress.ip_network("::1/128"))
PROXIES = (ipaddress.ip_network("10.0.0.0/24"), ipaddress.ip_network("fd00::/64"))


@pytest.mark.parametrize(("peer", "header", "client"), [
    # nginx's $proxy_add_x_forwarded_for: what the client sent, then the address nginx saw.
    ("10.0.0.1", ["203.0.113.9"], "203.0.113.9"),
    ("10.0.0.1", ["198.51.100.1, 203.0.113.9"], "203.0.113.9"),
    # Several proxies: the right-most entry that is not one of ours.
    ("10.0.0.1", ["198.51.100.1, 203.0.113.9, 10.0.0.7, 10.0.0.2"], "203.0.113.9"),
    # Header lines are one list, in order.
    ("10.0.0.1", ["198.51.100.1", "203.0.113.9, 10.0.0.2"], "203.0.113.9"),
    # Every entry is a proxy of ours: the left-most one.
    ("10.0.0.1", ["10.0.0.3, 10.0.0.2"], "10.0.0.3"),
    # What the client wrote left of its own entry is never read, garbage included.
    ("10.0.0.1", ["not an address, 203.0.113.9"], "203.0.113.9"),
    ("10.0.0.1", ["10.0.0.9, 203.0.113.9"], "203.0.113.9"),
    # IPv6, bracketed or not, and IPv4-mapped addresses as the IPv4 ones.
    ("fd00::1", ["2001:db8::5"], "2001:db8::5"),
    ("fd00::1", ["[2001:db8::5]"], "2001:db8::5"),
    ("::ffff:10.0.0.1", ["::ffff:203.0.113.9"], "203.0.113.9"),
    ("10.0.0.1", [" 203.0.113.9 "], "203.0.113.9"),
])
def test_a_trusted_peer_names_the_right_most_untrusted_entry(
    peer: str, header: list[str], client: str,
) -> None:
    assert pick_client_address(peer, header, PROXIES) == client


@pytest.mark.parametrize("header", [
    [], [""], ["garbage"], ["203.0.113.9:4711"], ["203.0.113.9, "], ["203.0.113.9,,10.0.0.2"],
    ["203.0.113.9, 10.0.0.2 junk"], ["999.1.1.1"], ["unknown"],
])
def test_a_malformed_or_missing_chain_leaves_the_peer(header: list[str]) -> None:
    assert pick_client_address("10.0.0.1", header, PROXIES) == "10.0.0.1"


@pytest.mark.parametrize(("peer", "trusted"), [
    ("10.0.1.1", PROXIES),  # outside the CIDR
    ("127.0.0.2", LOOPBACK),  # loopback, but not the address configured
    ("10.0.0.1", ()),  # `trusted_proxies: []`
    ("", PROXIES),  # no socket address at all
])
def test_an_untrusted_peer_cannot_choose_its_address(
    peer: str, trusted: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...],
) -> None:
    assert pick_client_address(peer, ["203.0.113.9"], trusted) == peer


@pytest.mark.parametrize(("peer", "header", "scheme"), [
    ("10.0.0.1", ["https"], "https"),
    ("10.0.0.1", ["HTTPS"], "https"),
    ("10.0.0.1", ["http"], "http"),
    ("10.0.0.1", [], "http"),
    ("10.0.0.1", ["https", "http"], "http"),  # two answers: neither is believed
    ("10.0.0.1", ["https, http"], "http"),
    ("10.0.0.1", ["gopher"], "http"),
    ("10.0.1.1", ["https"], "http"),  # untrusted peer
])
def test_the_scheme_comes_from_a_trusted_peer_only(
    peer: str, header: list[str], scheme: str,
) -> None:
    assert pick_scheme(peer, header, "http", PROXIES) == scheme


def _reads_of_the_peer(path: Path) -> list[str]:
    """Where a module reads a request's socket address itself: `<request>.remote`, or the
    transport's `peername`."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if (isinstance(node, ast.Attribute) and node.attr == "remote"
                and "request" in ast.unparse(node.value).lower()):
            found.append(f"{path}:{node.lineno}: {ast.unparse(node)}")
        if isinstance(node, ast.Constant) and node.value == "peername":
            found.append(f"{path}:{node.lineno}: peername")
    return found


def test_only_client_address_reads_the_peer() -> None:
    """Everything that keys on the client (limits, last-seen, whois, the access log) goes
    through `client_address`, so none of them can be fooled by, or blind to, the proxy."""
    root = Path(__file__).resolve().parents[2]
    own = root / "homeserver" / "api" / "client_address.py"
    found = [
        hit for tree in ("homeserver", "federation") for path in sorted((root / tree).rglob("*.py"))
        if path != own for hit in _reads_of_the_peer(path)
    ]
    assert found == []
    assert _reads_of_the_peer(own)  # the check does see a read where there is one

"""Server names as addresses, and the outbound address policy."""

from __future__ import annotations

import ipaddress

import pytest

from federation.addresses import split_server_name
from homeserver.protocol.addresses import AddressPolicy, ip_literal


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("matrix.org", ("matrix.org", None)),
        ("matrix.org:8888", ("matrix.org", 8888)),
        ("1.2.3.4", ("1.2.3.4", None)),
        ("1.2.3.4:1234", ("1.2.3.4", 1234)),
        ("[1234:5678::abcd]", ("1234:5678::abcd", None)),
        ("[1234:5678::abcd]:5678", ("1234:5678::abcd", 5678)),
        ("127.0.0.1:18448", ("127.0.0.1", 18448)),
    ],
)
def test_split_the_spec_examples(name: str, expected: tuple[str, int | None]) -> None:
    assert split_server_name(name) == expected


@pytest.mark.parametrize(
    "name", ["", "a b", "host:", "host:0", "host:65536", "[::1", "[zz::1]", "1.2.3.256", "h:p"]
)
def test_invalid_server_names(name: str) -> None:
    with pytest.raises(ValueError):
        split_server_name(name)


def test_ip_literal() -> None:
    assert ip_literal("::1") == ipaddress.ip_address("::1")
    assert ip_literal("10.0.0.1") == ipaddress.ip_address("10.0.0.1")
    assert ip_literal("example.org") is None


@pytest.mark.parametrize(
    ("ip", "reason"),
    [
        ("127.0.0.1", "loopback"),
        ("127.5.6.7", "loopback"),
        ("::1", "loopback"),
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("192.168.1.1", "private"),
        ("fc00::1", "private"),
        ("fd12:3456::1", "private"),
        ("169.254.169.254", "link-local"),  # the cloud metadata service
        ("fe80::1", "link-local"),
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("224.0.0.1", "multicast"),
        ("ff02::1", "multicast"),
        ("100.64.0.1", "not globally routable"),  # carrier-grade NAT
        ("::ffff:127.0.0.1", "loopback"),  # IPv4-mapped
        ("::ffff:10.0.0.1", "private"),
        ("2002:7f00:1::", "loopback"),  # 6to4 wrapping 127.0.0.1
        ("192.0.2.1", "private"),  # documentation range
        ("fec0::1", "site-local"),  # deprecated (RFC 3879), still routed on old networks
    ],
)
def test_refused_by_default(ip: str, reason: str) -> None:
    assert AddressPolicy().refusal(ipaddress.ip_address(ip)) == reason


@pytest.mark.parametrize("ip", ["8.8.8.8", "1.1.1.1", "2001:4860:4860::8888", "2a00:1450::1"])
def test_public_addresses_are_allowed(ip: str) -> None:
    assert AddressPolicy().refusal(ipaddress.ip_address(ip)) is None


@pytest.mark.parametrize("ip", ["127.0.0.1", "::1", "10.0.0.1", "fe80::1", "8.8.8.8"])
def test_allow_private_lets_local_addresses_through(ip: str) -> None:
    assert AddressPolicy(allow_private=True).refusal(ipaddress.ip_address(ip)) is None


@pytest.mark.parametrize("ip", ["0.0.0.0", "::", "224.0.0.1"])
def test_nothing_serves_on_unspecified_or_multicast(ip: str) -> None:
    assert AddressPolicy(allow_private=True).refusal(ipaddress.ip_address(ip)) is not None

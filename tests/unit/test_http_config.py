"""`http.trusted_proxies` and `well_known.*` are parsed and checked when the config is loaded
(homeserver/config.py), so a typo stops the server with the key's name instead of trusting
the wrong peers or serving a discovery file clients cannot use."""

from __future__ import annotations

import datetime
import ipaddress
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from homeserver.config import Config, ConfigError, parse_config


def parse(raw: dict[str, Any]) -> Config:
    return parse_config(yaml.safe_dump(raw), Path("/srv/moot"))


def test_the_default_trusts_the_loopback_addresses_nginx_connects_from() -> None:
    assert parse({}).http.trusted_proxies == (
        ipaddress.ip_network("127.0.0.1/32"), ipaddress.ip_network("::1/128"),
    )


def test_trusted_proxies_are_cidrs_and_a_bare_address_is_one_host() -> None:
    config = parse({"http": {"trusted_proxies": ["10.0.0.0/8", "192.0.2.7", "fd00::/64", "::1"]}})
    assert config.http.trusted_proxies == tuple(map(ipaddress.ip_network, [
        "10.0.0.0/8", "192.0.2.7/32", "fd00::/64", "::1/128",
    ]))
    assert parse({"http": {"trusted_proxies": []}}).http.trusted_proxies == ()


@pytest.mark.parametrize("entry", ["10.0.0.1/8", "10.0.0.0/33", "nginx", "", "::1/129", 10, None])
def test_a_bad_trusted_proxy_is_refused_naming_the_entry(entry: Any) -> None:
    with pytest.raises(ConfigError, match=r"^http\.trusted_proxies\[1\]: "):
        parse({"http": {"trusted_proxies": ["127.0.0.1", entry]}})


def test_the_old_key_is_gone() -> None:
    with pytest.raises(ConfigError, match=r"unknown configuration key: listeners\.trusted_proxies "
                       r"\(moved to http\.trusted_proxies\)"):
        parse({"listeners": {"trusted_proxies": ["127.0.0.1"]}})


@pytest.mark.parametrize("server", ["matrix.example.org", "matrix.example.org:443",
                                    "192.0.2.1:8448", "[2001:db8::1]:443"])
def test_delegation_takes_a_server_name_with_an_optional_port(server: str) -> None:
    assert parse({"well_known": {"server": server}}).well_known.server == server


@pytest.mark.parametrize("server", ["https://matrix.example.org", "matrix.example.org:port",
                                    "matrix example.org", "", 443])
def test_a_bad_delegation_is_refused(server: Any) -> None:
    with pytest.raises(ConfigError, match=r"^well_known\.server: "):
        parse({"well_known": {"server": server}})


@pytest.mark.parametrize(("client", "error"), [
    ("https://matrix.example.org", "well_known.client: expected a mapping"),
    ({"m.homeserver": "https://matrix.example.org"},
     "well_known.client.m.homeserver: expected a mapping"),
    ({"m.homeserver": {"base_url": "matrix.example.org"}},
     "well_known.client.m.homeserver.base_url: 'matrix.example.org' is not an http(s) URL"),
    ({"m.homeserver": None}, "well_known.client.m.homeserver: expected a mapping"),
    ({"m.homeserver": {"base_url": None}}, "well_known.client.m.homeserver.base_url: "),
    ({"m.homeserver": {"base_url": ["https://a.example"]}},
     "well_known.client.m.homeserver.base_url: "),
    ({"m.homeserver": {"base_url": "https://a.example"}, "since": datetime.date(2026, 1, 1)},
     "well_known.client: must hold only JSON values"),
    ({"m.homeserver": {"base_url": "https://a.example"}, 7: "x"}, "well_known.client: "),
])
def test_a_bad_client_file_is_refused(client: Any, error: str) -> None:
    with pytest.raises(ConfigError, match=f"^{re.escape(error)}"):
        parse({"well_known": {"client": client}})


@pytest.mark.parametrize(("client", "error"), [
    ({"m.identity_server": {"base_url": "https://id.example.org"}},
     "well_known.client: m.homeserver is required"),
    ({"m.homeserver": {}}, "well_known.client.m.homeserver.base_url: None is not"),
    ({"m.homeserver": {"base_url": "https://a.example"}, "m.identity_server": {}},
     "well_known.client.m.identity_server.base_url: None is not"),
])
def test_the_spec_required_keys_of_a_client_file_are_required(client: Any, error: str) -> None:
    with pytest.raises(ConfigError, match=f"^{re.escape(error)}"):
        parse({"well_known": {"client": client}})


def test_a_client_file_keeps_keys_of_its_own() -> None:
    client = {"m.homeserver": {"base_url": "https://a.example"}, "x": [1.5, None]}
    assert parse({"well_known": {"client": client}}).well_known.client == client

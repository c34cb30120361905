"""`config.sample.yaml` and the config dataclasses agree, and bad configs are refused clearly.

The sample documents every key with its default; if a key is added to one side only, operators
either cannot find it or get an "unknown key" error for a documented setting.
"""

from __future__ import annotations

import dataclasses
import re
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from homeserver.config import Config, ConfigError, parse_config
from homeserver.setup import sample_config_text

DATA_DIR = Path("/srv/moot")


def dataclass_keys(cls: type[Any], prefix: str = "") -> Iterator[str]:
    """Every dotted leaf key of a config dataclass, skipping internal fields."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if f.metadata.get("internal"):
            continue
        path = prefix + f.name
        if dataclasses.is_dataclass(hints[f.name]):
            yield from dataclass_keys(hints[f.name], path + ".")
        else:
            yield path


def yaml_keys(node: dict[str, Any], prefix: str = "") -> Iterator[str]:
    """Every dotted leaf key of a parsed YAML mapping (an empty mapping is a leaf: `{}`)."""
    for key, value in node.items():
        if isinstance(value, dict) and value:
            yield from yaml_keys(value, f"{prefix}{key}.")
        else:
            yield prefix + key


def sample_with(dotted: str, value: Any) -> str:
    """The sample config with one key set (created if missing), as YAML text."""
    raw = yaml.safe_load(sample_config_text())
    *parents, leaf = dotted.split(".")
    node = raw
    for p in parents:
        node = node.setdefault(p, {})
    node[leaf] = value
    return yaml.safe_dump(raw)


def test_sample_and_dataclasses_have_the_same_keys() -> None:
    in_sample = set(yaml_keys(yaml.safe_load(sample_config_text())))
    in_code = set(dataclass_keys(Config))
    assert in_sample - in_code == set(), "documented in config.sample.yaml but not in the code"
    assert in_code - in_sample == set(), "in the code but not documented in config.sample.yaml"


def test_sample_parses_to_the_defaults() -> None:
    assert parse_config(sample_config_text(), DATA_DIR) == dataclasses.replace(
        Config(), data_dir=DATA_DIR
    )


def test_an_empty_file_means_all_defaults() -> None:
    assert parse_config("", DATA_DIR) == dataclasses.replace(Config(), data_dir=DATA_DIR)


@pytest.mark.parametrize(
    "dotted", ["colour", "server.nmae", "listeners.client.tls", "rate_limits.per_user.rate"]
)
def test_unknown_keys_are_refused_by_dotted_path(dotted: str) -> None:
    with pytest.raises(ConfigError, match=rf"unknown configuration key: {re.escape(dotted)}$"):
        parse_config(sample_with(dotted, 1), DATA_DIR)


@pytest.mark.parametrize(
    ("dotted", "value"),
    [
        ("listeners.client.port", "8008"),
        ("listeners.client.port", True),
        ("registration.enabled", "yes"),
        ("rooms.max_members", 25.5),
        ("rate_limits.per_user.per_second", "fast"),
        ("server.server_name", None),
        ("server", "localhost"),
        ("rate_limits.per_ip", [1, 2]),
    ],
)
def test_wrong_types_are_refused_naming_the_key(dotted: str, value: Any) -> None:
    with pytest.raises(ConfigError, match=rf"^{re.escape(dotted)}:"):
        parse_config(sample_with(dotted, value), DATA_DIR)


def test_an_integer_is_accepted_where_a_float_is_expected() -> None:
    config = parse_config(sample_with("rate_limits.per_user.per_second", 3), DATA_DIR)
    assert config.rate_limits.per_user.per_second == 3.0


@pytest.mark.parametrize("members", [300, 257, 1])
def test_max_members_out_of_range_is_refused(members: int) -> None:
    with pytest.raises(ConfigError, match=r"rooms\.max_members.*256"):
        parse_config(sample_with("rooms.max_members", members), DATA_DIR)


def test_max_members_may_be_lowered() -> None:
    assert parse_config(sample_with("rooms.max_members", 5), DATA_DIR).rooms.max_members == 5


def test_invalid_yaml_is_refused() -> None:
    with pytest.raises(ConfigError, match="not valid YAML"):
        parse_config("server: [unclosed", DATA_DIR)


def test_a_top_level_list_is_refused() -> None:
    with pytest.raises(ConfigError, match="expected a mapping"):
        parse_config("- server\n", DATA_DIR)


WORKERS = """
database:
  url: postgresql://moot@db/moot
workers:
  sync1:
    client: {host: 127.0.0.1, port: 8018}
    metrics: {host: 127.0.0.1, port: 9118}
  sync2:
    client: {port: 8019}
    metrics: null
  pusher1: {push: true}
"""


def test_workers_are_read_by_name() -> None:
    config = parse_config(WORKERS, DATA_DIR)
    assert config.worker("sync1").client.port == 8018
    assert config.worker("sync1").metrics.port == 9118
    assert config.worker("sync2").metrics.port is None  # null: no metrics listener
    assert config.worker("pusher1").client.port is None  # a push worker needs no listener
    assert config.push_worker == "pusher1"
    assert not config.worker("sync1").push


def test_without_a_push_worker_the_main_process_delivers() -> None:
    text = WORKERS.replace("{push: true}", "{push: false, client: {port: 8020}}")
    assert parse_config(text, DATA_DIR).push_worker is None


def test_an_unknown_worker_name_is_a_config_error_naming_the_known_ones() -> None:
    known = r"\(configured: pusher1, sync1, sync2\)"
    with pytest.raises(ConfigError, match=rf"no worker named 'sync3' {known}"):
        parse_config(WORKERS, DATA_DIR).worker("sync3")


def test_a_worker_needs_an_external_database() -> None:
    text = WORKERS.replace("url: postgresql://moot@db/moot", "url: null")
    config = parse_config(text.replace("  pusher1: {push: true}\n", ""), DATA_DIR)
    with pytest.raises(ConfigError, match=r"^database\.url:"):
        config.worker("sync1")


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("workers:\n  sync1: {metrics: null}\n", r"^workers\.sync1\.client\.port:"),
        ("workers:\n  sync1: {client: {port: 1}, federation: {}}\n",
         r"unknown configuration key: workers\.sync1\.federation$"),
        ("workers:\n  'a/b': {client: {port: 1}}\n", r"^workers\.a/b: a worker name"),
        ("workers: [sync1]\n", r"^workers: expected a mapping"),
        ("database: {url: postgresql://db/moot}\nworkers:\n  p1: {push: true}\n"
         "  p2: {push: true}\n",
         r"^workers\.p2\.push: only one worker delivers pushes \(p1 does\)"),
        ("workers:\n  p1: {push: 1}\n", r"workers\.p1\.push"),
        ("workers:\n  p1: {push: true}\n", r"^workers\.p1\.push: .* database\.url must"),
    ],
)
def test_bad_worker_sections_are_refused_naming_the_key(text: str, error: str) -> None:
    with pytest.raises(ConfigError, match=error):
        parse_config(text, DATA_DIR)

"""Application service registrations: the YAML format the bridges write, namespaces, and the
start-up loader's errors (file, field, reason) and duplicate checks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from homeserver.config import ConfigError, parse_config
from homeserver.protocol.appservice import (
    Registration,
    RegistrationError,
    is_exclusive_alias,
    is_exclusive_user,
    is_interested_in_alias,
    is_interested_in_room,
    is_interested_in_user,
    parse_registration,
)
from homeserver.services.appservices import AppServices, load_appservices

SERVER = "example.org"

# What mautrix-whatsapp's `-g` writes (tokens shortened), unknown MSC keys included.
MAUTRIX_YAML = r"""
id: whatsapp
url: http://localhost:29318
as_token: as-secret
hs_token: hs-secret
sender_localpart: SH98XxA4xvgFtCXgqvPWsyEzNpvqsPeO
rate_limited: false
namespaces:
    users:
        - regex: ^@whatsappbot:example\.org$
          exclusive: true
        - regex: ^@whatsapp_.*:example\.org$
          exclusive: true
de.sorunome.msc2409.push_ephemeral: true
push_ephemeral: true
org.matrix.msc3202: true
io.element.msc4190: true
"""


def spec_example() -> dict[str, Any]:
    """The IRC bridge registration of the spec's "Registration" section."""
    return {
        "id": "IRC Bridge",
        "url": "http://127.0.0.1:1234",
        "as_token": "30c05ae9",
        "hs_token": "312df522",
        "sender_localpart": "_irc_bot",
        "namespaces": {
            "users": [{"exclusive": True, "regex": "@_irc_bridge_.*"}],
            "aliases": [{"exclusive": False, "regex": "#_irc_bridge_.*"}],
            "rooms": [],
        },
    }


def test_the_spec_example_parses_with_defaults() -> None:
    reg = parse_registration(spec_example(), SERVER)
    assert (reg.id, reg.url, reg.as_token, reg.hs_token) == (
        "IRC Bridge", "http://127.0.0.1:1234", "30c05ae9", "312df522"
    )
    assert reg.sender == "@_irc_bot:example.org"
    assert reg.rate_limited is True
    assert reg.receive_ephemeral is False
    assert reg.protocols == ()
    assert len(reg.users) == 1 and reg.users[0].exclusive
    assert len(reg.aliases) == 1 and not reg.aliases[0].exclusive
    assert reg.rooms == ()


def test_a_mautrix_registration_parses() -> None:
    reg = parse_registration(yaml.safe_load(MAUTRIX_YAML), SERVER)
    assert reg.rate_limited is False
    assert reg.receive_ephemeral is True
    assert is_exclusive_user(reg, "@whatsapp_123:example.org")
    assert is_exclusive_user(reg, "@whatsappbot:example.org")
    assert not is_interested_in_user(reg, "@alice:example.org")


@pytest.mark.parametrize("key", [
    "receive_ephemeral", "de.sorunome.msc2409.push_ephemeral", "push_ephemeral",
])
def test_each_spelling_of_receive_ephemeral_turns_it_on(key: str) -> None:
    assert parse_registration({**spec_example(), key: True}, SERVER).receive_ephemeral


def test_null_url_and_protocols() -> None:
    reg = parse_registration({**spec_example(), "url": None, "protocols": ["irc"]}, SERVER)
    assert reg.url is None
    assert reg.protocols == ("irc",)


def registration() -> Registration:
    raw = spec_example()
    raw["namespaces"] = {
        "users": [
            {"exclusive": True, "regex": "@_irc_.*"},
            {"exclusive": False, "regex": "@bot_.*"},
        ],
        "aliases": [
            {"exclusive": True, "regex": "#_irc_.*"},
            {"exclusive": False, "regex": "#shared_.*"},
        ],
        "rooms": [{"exclusive": False, "regex": "!bridged:example.org"}],
    }
    return parse_registration(raw, SERVER)


def test_user_namespaces() -> None:
    reg = registration()
    assert is_interested_in_user(reg, "@_irc_alice:example.org")
    assert is_interested_in_user(reg, "@bot_x:example.org")
    assert is_interested_in_user(reg, "@_irc_bot:example.org")  # the sender
    assert not is_interested_in_user(reg, "@alice:example.org")
    assert is_exclusive_user(reg, "@_irc_alice:example.org")
    assert is_exclusive_user(reg, reg.sender)
    assert not is_exclusive_user(reg, "@bot_x:example.org")  # non-exclusive namespace


def test_user_namespaces_cover_local_users_only() -> None:
    reg = registration()
    assert not is_interested_in_user(reg, "@_irc_alice:elsewhere.org")
    assert not is_exclusive_user(reg, "@_irc_alice:elsewhere.org")
    assert not is_interested_in_user(reg, "not a user id")


def test_a_regex_must_match_the_whole_identifier() -> None:
    raw = spec_example()
    raw["namespaces"]["users"] = [{"exclusive": True, "regex": "@_irc_"}]
    reg = parse_registration(raw, SERVER)
    assert not is_interested_in_user(reg, "@_irc_alice:example.org")
    assert not is_interested_in_user(reg, "@x@_irc_:example.org")


def test_alias_and_room_namespaces() -> None:
    reg = registration()
    assert is_interested_in_alias(reg, "#_irc_chan:example.org")
    assert is_exclusive_alias(reg, "#_irc_chan:example.org")
    assert is_interested_in_alias(reg, "#shared_a:example.org")
    assert not is_exclusive_alias(reg, "#shared_a:example.org")
    assert not is_interested_in_alias(reg, "#other:example.org")
    assert is_interested_in_room(reg, "!bridged:example.org")
    assert not is_interested_in_room(reg, "!other:example.org")


def edited(path: tuple[str, ...], value: Any) -> dict[str, Any]:
    raw = spec_example()
    target: Any = raw
    for key in path[:-1]:
        target = target[key]
    if value is ...:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return raw


@pytest.mark.parametrize(("path", "value", "field", "reason"), [
    (("id",), ..., "id", "required"),
    (("as_token",), "", "as_token", "non-empty string"),
    (("hs_token",), 5, "hs_token", "non-empty string"),
    (("url",), ..., "url", "required"),
    (("url",), "ftp://x", "url", "http(s) URL"),
    (("sender_localpart",), "bad:name", "sender_localpart", "valid user ID"),
    (("namespaces",), ..., "namespaces", "required"),
    (("namespaces",), [], "namespaces", "mapping"),
    (("namespaces", "users"), {"regex": "x"}, "namespaces.users", "list"),
    (("namespaces", "users"), ["x"], "namespaces.users[0]", "mapping"),
    (("namespaces", "aliases"), [{"exclusive": True}], "namespaces.aliases[0].regex",
     "non-empty string"),
    (("namespaces", "users"), [{"regex": "@a.*", "exclusive": "yes"}],
     "namespaces.users[0].exclusive", "true or false"),
    (("namespaces", "rooms"), [{"regex": "![", "exclusive": False}],
     "namespaces.rooms[0].regex", "not a regular expression"),
    (("rate_limited",), "no", "rate_limited", "true or false"),
    (("protocols",), "irc", "protocols", "list of protocol names"),
    (("push_ephemeral",), 1, "push_ephemeral", "true or false"),
])
def test_errors_name_the_field_and_the_reason(
    path: tuple[str, ...], value: Any, field: str, reason: str
) -> None:
    with pytest.raises(RegistrationError) as caught:
        parse_registration(edited(path, value), SERVER)
    assert caught.value.field == field
    assert reason in caught.value.reason


def test_a_document_that_is_not_a_mapping_is_refused() -> None:
    with pytest.raises(RegistrationError, match="mapping"):
        parse_registration(["id", "x"], SERVER)


def write_config(tmp_path: Path, files: dict[str, Any]) -> list[str]:
    for name, content in files.items():
        text = content if isinstance(content, str) else yaml.safe_dump(content)
        (tmp_path / name).write_text(text)
    return list(files)


def load(tmp_path: Path, names: list[str]) -> AppServices:
    config = parse_config(
        yaml.safe_dump({"server": {"server_name": SERVER},
                        "appservices": {"registration_files": names}}),
        tmp_path,
    )
    return load_appservices(config)


def test_files_load_relative_to_the_config_directory(tmp_path: Path) -> None:
    other = {**spec_example(), "id": "other", "as_token": "a2", "hs_token": "h2"}
    names = write_config(tmp_path, {"irc.yaml": spec_example(), "wa.yaml": MAUTRIX_YAML,
                                    "other.yaml": other})
    services = load(tmp_path, names)
    assert [r.id for r in services] == ["IRC Bridge", "whatsapp", "other"]
    assert services.by_as_token("as-secret") is services.get("whatsapp")
    assert services.by_as_token("nope") is None
    assert services.exclusive_owner_of_user("@whatsapp_1:example.org") is services.get("whatsapp")
    assert services.exclusive_owner_of_user("@alice:example.org") is None
    assert services.exclusive_owner_of_alias("#_irc_x:example.org") is None  # not exclusive


def test_a_bad_file_names_the_file_the_field_and_the_reason(tmp_path: Path) -> None:
    bad = edited(("namespaces", "users"), [{"regex": "(", "exclusive": True}])
    names = write_config(tmp_path, {"bad.yaml": bad})
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, names)
    message = str(caught.value)
    assert str(tmp_path / "bad.yaml") in message
    assert "namespaces.users[0].regex" in message
    assert "not a regular expression" in message


@pytest.mark.parametrize(("text", "reason"), [
    ("id: [unclosed", "not valid YAML"),
    (None, "cannot read it"),
])
def test_unreadable_files_are_named(tmp_path: Path, text: str | None, reason: str) -> None:
    if text is not None:
        (tmp_path / "reg.yaml").write_text(text)
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, ["reg.yaml"])
    assert str(tmp_path / "reg.yaml") in str(caught.value)
    assert reason in str(caught.value)


@pytest.mark.parametrize("field", ["id", "as_token", "hs_token"])
def test_duplicates_are_refused(tmp_path: Path, field: str) -> None:
    second = {**spec_example(), "id": "second", "as_token": "a2", "hs_token": "h2"}
    second[field] = spec_example()[field]
    names = write_config(tmp_path, {"one.yaml": spec_example(), "two.yaml": second})
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, names)
    message = str(caught.value)
    assert str(tmp_path / "two.yaml") in message and f"{field}:" in message
    assert str(tmp_path / "one.yaml") in message
    assert spec_example()[field] not in message.replace(str(tmp_path), "")  # no secrets

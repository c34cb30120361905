"""The merging of application services' third-party answers (protocol/third_party_networks.py):
the shapes Synapse gives clients, and what is left out."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from homeserver.protocol.third_party_networks import (
    instance_id,
    merge_descriptions,
    merge_entities,
    parse_instance_id,
    protocol_description,
)


def test_instances_get_ids_from_service_and_network() -> None:
    answer = {"icon": "mxc://a/b", "instances": [
        {"network_id": "libera", "desc": "Libera"}, {"desc": "no network"},
    ]}
    described = protocol_description("irc-bridge", answer)
    assert described == {"icon": "mxc://a/b", "instances": [
        {"network_id": "libera", "desc": "Libera", "instance_id": "irc-bridge|libera"},
        {"desc": "no network"},
    ]}
    assert "instance_id" not in answer["instances"][0]  # the answer itself is not changed


def test_invalid_descriptions_are_left_out() -> None:
    answers: list[object] = [None, [], "x", {}, {"instances": {}}, {"instances": ["x"]}]
    for answer in answers:
        assert protocol_description("s", answer) is None, answer
    assert merge_descriptions([None, None]) is None
    assert merge_descriptions([]) is None


def test_the_first_description_wins_and_instances_add_up() -> None:
    first = {"icon": "first", "instances": [{"desc": "1"}]}
    second = {"icon": "second", "user_fields": ["x"], "instances": [{"desc": "2"}]}
    assert merge_descriptions([None, first, second]) == {
        "icon": "first", "instances": [{"desc": "1"}, {"desc": "2"}],
    }


def test_only_well_formed_entities_are_kept() -> None:
    good_location = {"alias": "#a:b", "protocol": "irc", "fields": {}}
    good_user = {"userid": "@a:b", "protocol": "irc", "fields": {"n": "a"}}
    bad: list[Any] = [
        "x", {"alias": "#a:b", "protocol": "irc"}, {"alias": 1, "protocol": "irc", "fields": {}},
        {"alias": "#a:b", "protocol": None, "fields": {}},
        {"alias": "#a:b", "protocol": "irc", "fields": []},
    ]
    assert merge_entities("location", [[good_location, *bad], {"not": "a list"}, None,
                                       [good_user, good_location]]) == [good_location] * 2
    assert merge_entities("user", [[good_location, good_user]]) == [good_user]


@given(st.text(min_size=1).filter(lambda s: "|" not in s), st.text(min_size=1))
def test_instance_ids_round_trip(service_id: str, network_id: str) -> None:
    assert parse_instance_id(instance_id(service_id, network_id)) == (service_id, network_id)


def test_a_foreign_instance_id_names_no_network() -> None:
    assert parse_instance_id("irc-freenode") == ("irc-freenode", "")

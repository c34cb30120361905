"""Canonical JSON: every example of appendices "Canonical JSON", plus the value rules."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from homeserver.protocol.canonical_json import (
    MAX_INT,
    MAX_NESTING_DEPTH,
    MIN_INT,
    JSONNestingError,
    check_canonical_json,
    decode_json_strict,
    encode_canonical_json,
    loads_bounded,
)
from homeserver.protocol.errors import CanonicalJSONError

SPEC_EXAMPLES = [
    ("{}", "{}"),
    ('{\n    "one": 1,\n    "two": "Two"\n}', '{"one":1,"two":"Two"}'),
    ('{\n    "b": "2",\n    "a": "1"\n}', '{"a":"1","b":"2"}'),
    ('{"b":"2","a":"1"}', '{"a":"1","b":"2"}'),
    (
        """{
            "auth": {
                "success": true,
                "mxid": "@john.doe:example.com",
                "profile": {
                    "display_name": "John Doe",
                    "three_pids": [
                        {"medium": "email", "address": "john.doe@example.org"},
                        {"medium": "msisdn", "address": "123456789"}
                    ]
                }
            }
        }""",
        '{"auth":{"mxid":"@john.doe:example.com","profile":{"display_name":"John Doe",'
        '"three_pids":[{"address":"john.doe@example.org","medium":"email"},'
        '{"address":"123456789","medium":"msisdn"}]},"success":true}}',
    ),
    ('{\n    "a": "日本語"\n}', '{"a":"日本語"}'),
    ('{\n    "本": 2,\n    "日": 1\n}', '{"日":1,"本":2}'),
    ('{\n    "a": "\\u65E5"\n}', '{"a":"日"}'),
    ('{\n    "a": null\n}', '{"a":null}'),
    ('{\n    "a": -0,\n    "b": 1e10\n}', '{"a":0,"b":10000000000}'),
]


@pytest.mark.parametrize(("given_json", "expected"), SPEC_EXAMPLES)
def test_spec_examples(given_json: str, expected: str) -> None:
    assert encode_canonical_json(decode_json_strict(given_json)) == expected.encode("utf-8")


def test_control_characters_use_short_escapes() -> None:
    assert encode_canonical_json({"a": "\n\t\x01\"\\"}) == b'{"a":"\\n\\t\\u0001\\"\\\\"}'


@pytest.mark.parametrize("value", [1.5, 1.0, -0.0, float("nan"), float("inf"), {"a": [0.5]}])
def test_floats_are_refused(value: object) -> None:
    with pytest.raises(CanonicalJSONError):
        encode_canonical_json(value)


@pytest.mark.parametrize("value", [MAX_INT + 1, MIN_INT - 1, 2**64, {"x": [-(2**53)]}])
def test_integers_out_of_range_are_refused(value: object) -> None:
    with pytest.raises(CanonicalJSONError):
        check_canonical_json(value)


def test_range_bounds_are_accepted() -> None:
    assert encode_canonical_json([MIN_INT, MAX_INT]) == b"[-9007199254740991,9007199254740991]"


@pytest.mark.parametrize(
    "value", [{1: "a"}, {"a": {b"x": 1}}, {"a": object()}, {"a": "\ud800"}, {"a": {1, 2}}]
)
def test_non_json_values_are_refused(value: object) -> None:
    with pytest.raises(CanonicalJSONError):
        encode_canonical_json(value)


def test_booleans_are_not_integers() -> None:
    assert encode_canonical_json({"t": True, "f": False}) == b'{"f":false,"t":true}'


@pytest.mark.parametrize(
    "text", ["NaN", '{"a": Infinity}', "[-Infinity]", '{"a":1,"a":2}', "{", b"\xff"]
)
def test_decode_refuses_non_strict_json(text: str | bytes) -> None:
    with pytest.raises(CanonicalJSONError):
        decode_json_strict(text)


def test_decode_keeps_real_fractions_as_floats_for_the_caller_to_refuse() -> None:
    value = decode_json_strict('{"a": 1.5}')
    with pytest.raises(CanonicalJSONError):
        check_canonical_json(value)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(MIN_INT, MAX_INT) | st.text(),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(), children, max_size=4),
    max_leaves=20,
)


@given(json_values)
def test_round_trip(value: object) -> None:
    encoded = encode_canonical_json(value)
    assert decode_json_strict(encoded) == value
    assert encode_canonical_json(decode_json_strict(encoded)) == encoded


@given(st.integers(min_value=MAX_INT + 1) | st.integers(max_value=MIN_INT - 1))
def test_any_out_of_range_integer_is_refused(i: int) -> None:
    with pytest.raises(CanonicalJSONError):
        encode_canonical_json({"i": i})


@given(st.floats())
def test_any_float_is_refused(f: float) -> None:
    with pytest.raises(CanonicalJSONError):
        encode_canonical_json([f])


def test_loads_bounded_allows_the_bound_and_refuses_one_more() -> None:
    at_bound = "[" * MAX_NESTING_DEPTH + "]" * MAX_NESTING_DEPTH
    assert loads_bounded(at_bound) is not None
    assert loads_bounded('{"a": [1, {"b": null}]}') == {"a": [1, {"b": None}]}
    with pytest.raises(JSONNestingError):
        loads_bounded("[" + at_bound + "]")
    with pytest.raises(JSONNestingError):
        loads_bounded('{"a":' * 3 + "1" + "}" * 3, max_depth=2)


@pytest.mark.parametrize("text", ["[" * 100_000, "[" * 5000 + "]" * 5000, "NaN", "[Infinity]", "{"])
def test_loads_bounded_reports_bad_or_unparseable_json_as_value_error(text: str) -> None:
    with pytest.raises(ValueError) as info:
        loads_bounded(text)
    assert not isinstance(info.value, JSONNestingError)


def test_loads_bounded_takes_bytes_and_scalars() -> None:
    assert loads_bounded(b'{"x": 1}') == {"x": 1}
    assert loads_bounded("3") == 3


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(MIN_INT, MAX_INT) | st.text(max_size=5),
    lambda children: st.lists(children, max_size=40)
    | st.dictionaries(st.text(max_size=5), children, max_size=40),
    max_leaves=400,
)


@given(JSON_VALUES)
def test_gradual_encoding_is_the_same_bytes(value: object) -> None:
    assert encode_canonical_json(value, gradual=True) == encode_canonical_json(value)


def test_gradual_encoding_of_long_runs_and_nested_members() -> None:
    value = {
        "runs": [{"a": i} for i in range(1000)] + [[[i]] for i in range(300)],
        "wide": {f"k{i:04}": i if i % 3 else {"n": [[i], {}]} for i in range(1000)},
    }
    assert encode_canonical_json(value, gradual=True) == encode_canonical_json(value)
    with pytest.raises(CanonicalJSONError):
        encode_canonical_json({"x": [{"a": 1}] * 300 + [1.5]}, gradual=True)


@pytest.mark.parametrize(
    "text", ['{"a": "\\ud800"}', '["x\\uDC00"]', '{"\\udbff": 1}', b'["\\ud800\\ud800"]'],
)
def test_lone_surrogates_are_refused(text: str | bytes) -> None:
    with pytest.raises(ValueError, match="surrogate"):
        loads_bounded(text)


def test_escaped_surrogate_pairs_are_text() -> None:
    assert loads_bounded('{"a": "\\ud83d\\ude00 \\uD83D\\uDE00"}') == {"a": "\U0001f600 \U0001f600"}


# -- rooms v1-v5: canonical JSON without the number rules ---------------------------------------

def test_lenient_mode_admits_floats_and_big_integers_as_canonicaljson_writes_them() -> None:
    value = {"f": 50.57, "e": 5.114698e4, "big": 2**70, "neg": -(2**60), "one": 1.0}
    assert encode_canonical_json(value, strict=False) == (
        b'{"big":1180591620717411303424,"e":51146.98,"f":50.57,"neg":-1152921504606846976,'
        b'"one":1.0}')
    check_canonical_json(value, strict=False)
    with pytest.raises(CanonicalJSONError):
        check_canonical_json(value)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf"), {1: 2},
                                   "\ud800", object()])
def test_lenient_mode_still_refuses_what_is_no_json(value: object) -> None:
    with pytest.raises(CanonicalJSONError):
        encode_canonical_json({"v": value}, strict=False)
    with pytest.raises(CanonicalJSONError):
        check_canonical_json([value], strict=False)


@given(st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: st.lists(children) | st.dictionaries(st.text(), children),
    max_leaves=20,
))
def test_lenient_encoding_is_python_json_sorted_and_compact(value: object) -> None:
    expected = json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True,
                          allow_nan=False).encode()
    assert encode_canonical_json(value, strict=False) == expected
    assert encode_canonical_json(value, strict=False, gradual=True) == expected

"""X-Matrix request authentication: server-server-api.md "Request Authentication".

The spec's own example header and example signing code, then every way a header can be
malformed, forged, replayed or misaddressed.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest
import signedjson.sign
from unpaddedbase64 import encode_base64

from federation.inbound_auth import LARGE_BODIES_AT_ONCE, OFF_LOOP_BYTES, RequestAuthenticator
from federation.request_auth import (
    RequestAuthError,
    XMatrixCredentials,
    authorization_header,
    check_destination,
    parse_authorization,
    request_json,
    verify_request,
    x_matrix_values,
)
from homeserver.protocol.signing import (
    decode_signing_key_base64,
    generate_signing_key,
    verify_key_of,
)

# appendices "Cryptographic Test Vectors": the seed, server name and key ID.
SEED = "YJDBA9Xnr2sVqXD9Vj7XVUnmFZcZrlw8Md7kMW+3XA1"
KEY = decode_signing_key_base64("ed25519", "1", SEED)
ORIGIN = "origin.hs.example.com"
DEST = "destination.hs.example.com"

SPEC_HEADER = (
    'X-Matrix origin="origin.hs.example.com",destination="destination.hs.example.com",'
    'key="ed25519:key1",sig="ABCDEF..."'
)


def spec_authorization_headers(
    origin_name: str, origin_signing_key: Any, destination_name: str, request_method: str,
    request_target: str, content: Any = None,
) -> tuple[str, str]:
    """The spec's example python code, verbatim but for str instead of bytes."""
    request_json = {
        "method": request_method,
        "uri": request_target,
        "origin": origin_name,
        "destination": destination_name,
    }
    if content is not None:
        request_json["content"] = content
    signed_json = signedjson.sign.sign_json(request_json, origin_name, origin_signing_key)
    authorization_headers = []
    for key, sig in signed_json["signatures"][origin_name].items():
        authorization_headers.append(
            'X-Matrix origin="%s",destination="%s",key="%s",sig="%s"'  # noqa: UP031 (verbatim)
            % (origin_name, destination_name, key, sig)
        )
    return ("Authorization", authorization_headers[0])


def verify(header: str, *, method: str = "POST", uri: str = "/target", content: Any = None,
           this_server: str = DEST, key: Any = KEY) -> XMatrixCredentials:
    creds = parse_authorization(header)
    verify_request(creds, method=method, uri=uri, content=content, this_server=this_server,
                   verify_key=verify_key_of(key))
    return creds


# --- the spec's examples --------------------------------------------------------------------

def test_parses_the_spec_example_header() -> None:
    assert parse_authorization(SPEC_HEADER) == XMatrixCredentials(
        origin=ORIGIN, destination=DEST, key_id="ed25519:key1", signature="ABCDEF..."
    )


@pytest.mark.parametrize("content", [None, {}, {"a": [1, "b", {"c": None}]}])
def test_header_is_the_spec_example_codes_output(content: Any) -> None:
    expected = spec_authorization_headers(ORIGIN, KEY, DEST, "POST", "/target", content)[1]
    assert authorization_header("POST", "/target", ORIGIN, DEST, content, KEY) == expected


def test_signed_object_is_step_one() -> None:
    assert request_json("post", "/target", ORIGIN, DEST, {"x": 1}) == {
        "method": "POST", "uri": "/target", "origin": ORIGIN, "destination": DEST,
        "content": {"x": 1},
    }
    assert "content" not in request_json("GET", "/t", ORIGIN, DEST)


def test_round_trip_with_and_without_a_body() -> None:
    uri = "/_matrix/federation/v1/query/profile?user_id=%40a%3Ad&field=displayname"
    header = authorization_header("GET", uri, ORIGIN, DEST, None, KEY)
    assert verify(header, method="GET", uri=uri).origin == ORIGIN
    body = {"pdus": [], "edus": [{"edu_type": "m.typing"}]}
    header = authorization_header("PUT", "/_matrix/federation/v1/send/1", ORIGIN, DEST, body, KEY)
    verify(header, method="PUT", uri="/_matrix/federation/v1/send/1", content=body)


# --- header syntax (RFC 9110 auth-params, as the spec summarises them) ----------------------

@pytest.mark.parametrize(
    "header",
    [
        'x-matrix origin="origin.hs.example.com",destination="destination.hs.example.com",'
        'key="ed25519:key1",sig="ABCDEF..."',
        'X-Matrix   ORIGIN="origin.hs.example.com" , Destination="destination.hs.example.com"'
        ' ,\tkey="ed25519:key1",\tSIG="ABCDEF..."',
        'X-Matrix sig="ABCDEF...",key="ed25519:key1",destination="destination.hs.example.com",'
        'origin="origin.hs.example.com"',
        # token values unquoted; colons unquoted for older servers
        "X-Matrix origin=origin.hs.example.com,destination=destination.hs.example.com,"
        "key=ed25519:key1,sig=ABCDEF...",
        # escapes inside quoted values are undone
        'X-Matrix origin="origin.hs.example.com",destination="destination.hs.example.com",'
        'key="ed25519:key1",sig="ABC\\DEF..."',
        # unknown parameters are ignored, empty list elements too
        'X-Matrix origin="origin.hs.example.com",,destination="destination.hs.example.com",'
        'key="ed25519:key1",sig="ABCDEF...",x-extra="1"',
    ],
)
def test_header_syntax_variants(header: str) -> None:
    assert parse_authorization(header) == parse_authorization(SPEC_HEADER)


def test_origin_with_port_and_ipv6_literal() -> None:
    creds = parse_authorization(
        'X-Matrix origin="127.0.0.1:18448",destination="[::1]:8448",key="ed25519:a_b",sig="x"'
    )
    assert (creds.origin, creds.destination) == ("127.0.0.1:18448", "[::1]:8448")


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        ("Bearer abc", "not of the X-Matrix scheme"),
        ("X-Matrix", "not of the X-Matrix scheme"),
        ('X-Matrixorigin="a"', "not of the X-Matrix scheme"),
        ('X-Matrix destination="d",key="ed25519:k",sig="s"', "missing parameter.*origin"),
        ('X-Matrix origin="o",destination="d",sig="s"', "missing parameter.*key"),
        ('X-Matrix origin="o",destination="d",key="ed25519:k"', "missing parameter.*sig"),
        ('X-Matrix origin="o",origin="p",key="ed25519:k",sig="s"', "given twice"),
        ('X-Matrix key="ed25519:k",sig="s",origin="o', "unterminated"),
        ('X-Matrix key="ed25519:k",sig="s",origin="o\\', "unterminated"),
        ('X-Matrix origin="o" key="ed25519:k",sig="s"', "expected ','"),
        ('X-Matrix origin,key="ed25519:k",sig="s"', "has no value"),
        ('X-Matrix origin=,key="ed25519:k",sig="s"', "empty value"),
        ('X-Matrix ="o",key="ed25519:k",sig="s"', "parameter name"),
        ('X-Matrix origin="not a server",key="ed25519:k",sig="s"', "not a server name"),
        ('X-Matrix origin="o",destination="d d",key="ed25519:k",sig="s"', "not a server name"),
        ('X-Matrix origin="o",key="ed25519",sig="s"', "not a key ID"),
    ],
)
def test_malformed_headers_are_refused(header: str, reason: str) -> None:
    with pytest.raises(RequestAuthError, match=reason):
        parse_authorization(header)


def test_only_x_matrix_values_are_considered() -> None:
    assert x_matrix_values(["Bearer t", SPEC_HEADER, "X-Matrixy a=b"]) == [SPEC_HEADER]


# --- forged, replayed and misaddressed requests ---------------------------------------------

def test_wrong_destination_is_refused_before_any_key_is_needed() -> None:
    creds = parse_authorization(authorization_header("GET", "/t", ORIGIN, "other.example", None,
                                                     KEY))
    with pytest.raises(RequestAuthError, match=re.escape("addressed to 'other.example'")):
        check_destination(creds, DEST)
    with pytest.raises(RequestAuthError, match="addressed to"):
        verify(authorization_header("GET", "/t", ORIGIN, "other.example", None, KEY),
               method="GET", uri="/t")


def test_server_names_compare_exactly() -> None:
    header = authorization_header("GET", "/t", ORIGIN, DEST.upper(), None, KEY)
    with pytest.raises(RequestAuthError, match="addressed to"):
        verify(header, method="GET", uri="/t")


def test_a_header_without_destination_is_checked_as_if_it_named_us() -> None:
    """Older senders leave `destination` out: accept them when they signed for us, but a
    signature made for another destination must still fail."""
    signed_for_us = authorization_header("GET", "/t", ORIGIN, DEST, None, KEY)
    creds = parse_authorization(signed_for_us)
    stripped = f'X-Matrix origin="{ORIGIN}",key="{creds.key_id}",sig="{creds.signature}"'
    assert verify(stripped, method="GET", uri="/t").destination is None
    signed_for_other = parse_authorization(
        authorization_header("GET", "/t", ORIGIN, "other.example", None, KEY)
    )
    stripped = f'X-Matrix origin="{ORIGIN}",key="{creds.key_id}",sig="{signed_for_other.signature}"'
    with pytest.raises(RequestAuthError, match="does not verify"):
        verify(stripped, method="GET", uri="/t")


@pytest.mark.parametrize(
    "received",
    [
        {"method": "PUT"},
        {"uri": "/target?x=1"},
        {"uri": "/other"},
        {"content": {"a": 2}},
        {"content": None},
    ],
)
def test_a_header_cannot_be_replayed_on_another_request(received: dict[str, Any]) -> None:
    header = authorization_header("POST", "/target", ORIGIN, DEST, {"a": 1}, KEY)
    verify(header, content={"a": 1})
    kwargs: dict[str, Any] = {"method": "POST", "uri": "/target", "content": {"a": 1}, **received}
    with pytest.raises(RequestAuthError, match="does not verify"):
        verify(header, **kwargs)


def test_forged_signatures_are_refused() -> None:
    other_key = generate_signing_key("1")
    forged = authorization_header("GET", "/t", ORIGIN, DEST, None, other_key)
    with pytest.raises(RequestAuthError, match="does not verify"):
        verify(forged, method="GET", uri="/t")
    creds = parse_authorization(authorization_header("GET", "/t", ORIGIN, DEST, None, KEY))
    flipped = creds.signature[:-2] + ("A" if creds.signature[-2] != "A" else "B") + "g"
    for sig in (flipped, "not base64!", ""):
        header = f'X-Matrix origin="{ORIGIN}",destination="{DEST}",key="ed25519:1",sig="{sig}"'
        with pytest.raises(RequestAuthError):
            verify(header, method="GET", uri="/t")


def test_a_claimed_origin_must_have_signed() -> None:
    header = authorization_header("GET", "/t", ORIGIN, DEST, None, KEY)
    creds = parse_authorization(header)
    impostor = header.replace(f'origin="{ORIGIN}"', 'origin="evil.example"')
    with pytest.raises(RequestAuthError, match="does not verify"):
        verify_request(parse_authorization(impostor), method="GET", uri="/t", content=None,
                       this_server=DEST, verify_key=verify_key_of(KEY))
    assert creds.origin == ORIGIN


def test_a_body_that_is_not_canonical_json_cannot_verify() -> None:
    header = authorization_header("POST", "/t", ORIGIN, DEST, {"a": 1}, KEY)
    with pytest.raises(RequestAuthError):
        verify(header, uri="/t", content={"a": 1.5})


def test_the_body_as_received_is_checked_without_encoding_it_again() -> None:
    content = {"b": [1, 2], "a": "x"}
    header = authorization_header("PUT", "/t", ORIGIN, DEST, content, KEY)
    creds = parse_authorization(header)

    def check(raw: bytes, value: Any = content) -> None:
        verify_request(creds, method="PUT", uri="/t", content=value, this_server=DEST,
                       verify_key=verify_key_of(KEY), raw_content=raw)

    check(b'{"a":"x","b":[1,2]}')  # what was signed, as sent
    check(b'{ "b": [1, 2],\n "a": "x" }\n')  # sent otherwise: encoded again, still verifies
    with pytest.raises(RequestAuthError, match="does not verify"):
        check(b'{"a":"y","b":[1,2]}', {"a": "y", "b": [1, 2]})

    def signed_raw(raw: bytes, value: Any) -> None:
        message = (b'{"content":' + raw + b',"destination":"' + DEST.encode()
                   + b'","method":"PUT","origin":"' + ORIGIN.encode() + b'","uri":"/t"}')
        sig = encode_base64(KEY.sign(message).signature)
        verify_request(XMatrixCredentials(ORIGIN, DEST, creds.key_id, sig), method="PUT",
                       uri="/t", content=value, this_server=DEST,
                       verify_key=verify_key_of(KEY), raw_content=raw)

    # A float is canonical JSON to the lenient rules a body carrying PDUs of rooms v1-v5
    # needs (each PDU meets its own version's rules later), as Synapse signs and checks it.
    signed_raw(b'{"a":1.5}', {"a": 1.5})
    # What is no JSON value at all still fails, whatever was signed.
    with pytest.raises(RequestAuthError, match="not canonical"):
        signed_raw(b'{"a":NaN}', {"a": float("nan")})


async def test_large_bodies_wait_for_a_place_and_small_ones_do_not() -> None:
    """At most LARGE_BODIES_AT_ONCE large bodies (or bodies of unknown length) are read and
    held at once; a small or empty body never waits behind them."""
    authenticator = RequestAuthenticator(
        "us.example", keyring=None, on_peer_contact=lambda origin: None  # type: ignore[arg-type]
    )
    large = [authenticator.reading(10 * OFF_LOOP_BYTES) for _ in range(LARGE_BODIES_AT_ONCE)]
    for place in large:
        await place.__aenter__()
    waiting = asyncio.ensure_future(authenticator.reading(None).__aenter__())
    async with authenticator.reading(0), authenticator.reading(OFF_LOOP_BYTES):
        pass  # a GET and a small body go straight in
    await asyncio.sleep(0)
    assert not waiting.done()
    await large[0].__aexit__(None, None, None)
    await asyncio.wait_for(waiting, timeout=5)

"""X-Matrix request authentication: signing outbound requests, parsing and checking inbound ones.

Implements server-server-api.md "Request Authentication". Pure: no I/O, no clock. The caller
supplies the key (outbound: our signing key; inbound: the origin's verify key, which the keyring
finds by the `key` parameter this module parses out of the header).

Theory of operation. A request is signed by wrapping it in a JSON object
``{"method", "uri", "origin", "destination"[, "content"]}`` and signing that object with the
origin's key (appendices "Signing JSON"). The header carries only the signature, so the
receiver rebuilds the same object from what it actually received - its own method, raw URI and
parsed body - and checks the signature over it. A header therefore cannot be moved to another
method, path, query, body or destination: the object would differ and the signature fail.

Inbound checks happen in the order that costs least and leaks least: header syntax and
required parameters (:func:`parse_authorization`), the destination (:func:`check_destination`),
and only then, with a key in hand, the signature (:func:`verify_request`). Every failure is a
:class:`RequestAuthError`, which the HTTP edge turns into 401 ``M_UNAUTHORIZED``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from homeserver.protocol.canonical_json import check_canonical_json, encode_canonical_json
from homeserver.protocol.errors import CanonicalJSONError, SignatureError
from homeserver.protocol.identifiers import is_valid_server_name
from homeserver.protocol.signing import (
    SigningKey,
    VerifyKeyLike,
    key_id,
    sign_json,
    signature_matches,
    verify_json,
)

__all__ = [
    "RequestAuthError",
    "XMatrixCredentials",
    "authorization_header",
    "check_destination",
    "parse_authorization",
    "request_json",
    "verify_request",
    "x_matrix_values",
]

SCHEME = "X-Matrix"
# "ed25519:a_AbCd": an algorithm, a colon and a version of [a-zA-Z0-9_] (keys.yaml).
_KEY_ID_RE = re.compile(r"[a-z0-9_]+:[A-Za-z0-9_]+")
# RFC 9110 optional whitespace around list commas and '='.
_OWS = " \t"
# Unquoted values end at a comma, whitespace or a quote. RFC 9110 tokens are stricter, but the
# spec asks receivers to accept colons unquoted (older servers), and base64 signatures carry
# '/' and '+': being lenient here costs nothing, since every value is checked afterwards.
_UNQUOTED_END = frozenset(', \t"')
_TOKEN_CHARS = frozenset(
    "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
)


class RequestAuthError(Exception):
    """The request's X-Matrix authentication is missing, malformed, misaddressed or forged."""


@dataclass(frozen=True, slots=True)
class XMatrixCredentials:
    """The parameters of one ``Authorization: X-Matrix ...`` header."""

    origin: str
    # None when an older sender left it out (the spec says to accept that).
    destination: str | None
    key_id: str
    signature: str


def request_json(
    method: str, uri: str, origin: str, destination: str, content: Any = None
) -> dict[str, Any]:
    """The object that is signed for a request ("Step 1"); ``content`` None means no body."""
    obj: dict[str, Any] = {
        "method": method.upper(),
        "uri": uri,
        "origin": origin,
        "destination": destination,
    }
    if content is not None:
        obj["content"] = content
    return obj


def _quote(value: str) -> str:
    # The compatibility advice: no backslashes in values. Server names, key IDs and base64
    # never contain '"' or '\\', so quoting never needs an escape for what we send.
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def authorization_header(
    method: str, uri: str, origin: str, destination: str, content: Any,
    signing_key: SigningKey,
) -> str:
    """The ``Authorization`` header value for a request from ``origin`` to ``destination``.

    ``uri`` is the path with its query string, exactly as it goes on the request line;
    ``content`` is the JSON value of the body, or None for a request without one. The
    format follows the spec's advice for older receivers: one space after the scheme,
    lower-case names, no whitespace around commas. The body may carry PDUs of rooms v1-v5,
    whose numbers canonical JSON does not bound there (floats, big integers): it is signed
    with the lenient rules, as Synapse signs it.
    """
    signed = sign_json(request_json(method, uri, origin, destination, content), origin,
                       signing_key, strict=False)
    kid = key_id(signing_key)
    sig = signed["signatures"][origin][kid]
    params = (
        f"origin={_quote(origin)}",
        f"destination={_quote(destination)}",
        f"key={_quote(kid)}",
        f"sig={_quote(sig)}",
    )
    return f"{SCHEME} " + ",".join(params)


def _skip(text: str, i: int, chars: str) -> int:
    while i < len(text) and text[i] in chars:
        i += 1
    return i


def _parse_params(text: str) -> dict[str, str]:
    """RFC 9110 ``#auth-param``: ``name=value`` pairs, names lower-cased, values unescaped."""
    params: dict[str, str] = {}
    i = 0
    while True:
        i = _skip(text, i, _OWS + ",")  # empty list elements are allowed
        if i >= len(text):
            return params
        start = i
        while i < len(text) and text[i] in _TOKEN_CHARS:
            i += 1
        name = text[start:i].lower()
        if not name:
            raise RequestAuthError(f"X-Matrix: expected a parameter name at {text[i:]!r}")
        i = _skip(text, i, _OWS)
        if i >= len(text) or text[i] != "=":
            raise RequestAuthError(f"X-Matrix: parameter {name!r} has no value")
        i = _skip(text, i + 1, _OWS)
        if i < len(text) and text[i] == '"':
            value, i = _quoted_string(text, i)
        else:
            start = i
            while i < len(text) and text[i] not in _UNQUOTED_END:
                i += 1
            value = text[start:i]
            if not value:
                raise RequestAuthError(f"X-Matrix: parameter {name!r} has an empty value")
        if name in params:
            # Two different origins or signatures in one header would be ambiguous.
            raise RequestAuthError(f"X-Matrix: parameter {name!r} is given twice")
        params[name] = value
        i = _skip(text, i, _OWS)
        if i < len(text) and text[i] != ",":
            raise RequestAuthError(f"X-Matrix: expected ',' after parameter {name!r}")


def _quoted_string(text: str, i: int) -> tuple[str, int]:
    """The unescaped value of the quoted-string starting at ``text[i] == '"'``, and the
    index after its closing quote. A backslash-character pair stands for the character."""
    out: list[str] = []
    i += 1
    while i < len(text):
        c = text[i]
        if c == "\\":
            if i + 1 >= len(text):
                break
            out.append(text[i + 1])
            i += 2
        elif c == '"':
            return "".join(out), i + 1
        else:
            out.append(c)
            i += 1
    raise RequestAuthError("X-Matrix: unterminated quoted value")


def parse_authorization(header: str) -> XMatrixCredentials:
    """Parse an ``Authorization`` header value of the X-Matrix scheme.

    The scheme name is case-insensitive and followed by one or more spaces; parameter names
    are case-insensitive and may come in any order; unknown parameters are ignored. ``origin``,
    ``key`` and ``sig`` are required; ``destination`` may be absent (older senders).
    """
    scheme, sep, rest = header.strip(_OWS).partition(" ")
    if scheme.lower() != SCHEME.lower() or not sep:
        raise RequestAuthError("the Authorization header is not of the X-Matrix scheme")
    params = _parse_params(rest.lstrip(" "))
    missing = [p for p in ("origin", "key", "sig") if p not in params]
    if missing:
        raise RequestAuthError(f"X-Matrix: missing parameter(s) {', '.join(missing)}")
    origin, destination = params["origin"], params.get("destination")
    if not is_valid_server_name(origin):
        raise RequestAuthError(f"X-Matrix: origin {origin!r} is not a server name")
    if destination is not None and not is_valid_server_name(destination):
        raise RequestAuthError(f"X-Matrix: destination {destination!r} is not a server name")
    if not _KEY_ID_RE.fullmatch(params["key"]):
        raise RequestAuthError(f"X-Matrix: key {params['key']!r} is not a key ID")
    return XMatrixCredentials(origin, destination, params["key"], params["sig"])


def check_destination(credentials: XMatrixCredentials, this_server: str) -> None:
    """Refuse a request addressed to another server (the spec's MUST for ``destination``).

    Server names are compared exactly: they are case-sensitive (appendices "Server Name").
    """
    if credentials.destination is not None and credentials.destination != this_server:
        raise RequestAuthError(
            f"the request is addressed to {credentials.destination!r}, not to this server"
        )


def verify_request(
    credentials: XMatrixCredentials, *, method: str, uri: str, content: Any,
    this_server: str, verify_key: VerifyKeyLike, raw_content: bytes | None = None,
    gradual: bool = False,
) -> None:
    """Check the header's signature over the request as received.

    ``uri`` is the raw request target (path and query, undecoded), ``content`` the parsed JSON
    body or None when the request had none, ``verify_key`` the origin's key named by
    ``credentials.key_id``. A header without ``destination`` is checked as if it named this
    server, so that a signature made for another destination still fails.

    ``raw_content``, the body as received, is tried first as the content's canonical form:
    senders normally send the bytes they signed, and then nothing needs encoding again. It is
    sound: the signature covers exactly these bytes, which parse to exactly ``content``.
    Otherwise the content is encoded canonically (``gradual``: see `encode_canonical_json`).
    Both with the lenient rules: a body may carry PDUs of rooms v1-v5, whose numbers
    canonical JSON does not bound (each PDU is held to its room version's rules later).
    """
    check_destination(credentials, this_server)
    if raw_content is not None and content is not None:
        if raw_body_verifies(
            credentials, method=method, uri=uri, this_server=this_server,
            verify_key=verify_key, raw_content=raw_content,
        ):
            try:
                check_canonical_json(content, strict=False)
            except CanonicalJSONError as e:
                raise RequestAuthError(f"the body is not canonical JSON: {e}") from e
            return
    obj: dict[str, Any] = request_json(method, uri, credentials.origin, this_server, content)
    obj["signatures"] = {credentials.origin: {credentials.key_id: credentials.signature}}
    try:
        verify_json(
            obj, credentials.origin, credentials.key_id, verify_key, gradual=gradual,
            strict=False,
        )
    except SignatureError as e:
        raise RequestAuthError(f"the X-Matrix signature does not verify: {e}") from e


def raw_body_verifies(
    credentials: XMatrixCredentials, *, method: str, uri: str, this_server: str,
    verify_key: VerifyKeyLike, raw_content: bytes,
) -> bool:
    """Whether the signature covers the body exactly as received, taken as the canonical
    form of the content (what senders send). Needs no parsing: a large body that fails this
    can be refused before it costs a parse."""
    head = encode_canonical_json(request_json(method, uri, credentials.origin, this_server))
    # "content" sorts before every other key of the signed object.
    message = b'{"content":' + raw_content.strip() + b"," + head[1:]
    return signature_matches(message, credentials.signature, verify_key)


def x_matrix_values(values: Iterable[str]) -> list[str]:
    """The X-Matrix values among ``Authorization`` header values (other schemes skipped)."""
    return [v for v in values if v.strip(_OWS)[: len(SCHEME) + 1].lower() == "x-matrix "]

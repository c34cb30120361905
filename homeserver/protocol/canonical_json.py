"""Canonical JSON: strict validation, encoding and decoding.

Implements appendices.md "Canonical JSON" (and rooms "Canonical JSON", v6+: servers MUST
strictly enforce it). The byte encoding itself is delegated to the ``canonicaljson``
library; what this module adds is the *value* rules the library does not enforce:

- numbers must be integers in ``[-(2**53)+1, (2**53)-1]``;
- floats are not permitted at all (``1.0`` and ``1.5`` alike);
- object keys must be strings, strings must be encodable as UTF-8 (no lone surrogates).

Rooms v1-v5 do not enforce the number rules (rooms fragments v1-canonical-json: servers MUST
NOT; appendices: "integers might not be in the range"): with ``strict=False`` finite floats
and integers of any size are encoded as the ``canonicaljson`` library (and so Synapse) writes
them, ``50.57``, ``1e+100``, ``1180591620717411303424``, so that hashes and signatures of such
events agree with the servers that made them. The other rules hold in every version.

Decoding is the place where a JSON *text* such as ``1e10`` or ``-0`` is mapped to the integer
it denotes, as the appendices' last example requires (``{"a":-0,"b":1e10}`` canonicalises to
``{"a":0,"b":10000000000}``). A number with a real fractional part stays a float and is then
refused by :func:`check_canonical_json`.

:func:`loads_bounded` is the lenient parser for client input: plain JSON, but with ``NaN`` /
``Infinity`` refused and nesting bounded, so that no request body can exhaust the stack of the
code that walks it later.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

import canonicaljson

from homeserver.protocol.errors import CanonicalJSONError

MIN_INT = -(2**53) + 1
MAX_INT = 2**53 - 1

# Deeper than any real Matrix body; shallow enough that recursive walkers stay safe.
MAX_NESTING_DEPTH = 64


class JSONNestingError(ValueError):
    """The JSON text is well-formed but nested deeper than :data:`MAX_NESTING_DEPTH`."""


def _normalise(value: object, path: str, strict: bool) -> object:
    """Validate ``value`` recursively and return it as plain dict/list/str/int/bool/None
    (and float, when not ``strict``)."""
    # bool is a subclass of int: test it first so True is not range-checked as 1.
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        if strict and not MIN_INT <= value <= MAX_INT:
            raise CanonicalJSONError(f"integer out of canonical JSON range at {path}")
        return int(value)
    if isinstance(value, float):
        if strict:
            raise CanonicalJSONError(f"floats are not permitted in canonical JSON (at {path})")
        if not math.isfinite(value):
            raise CanonicalJSONError(f"NaN and infinities are not JSON (at {path})")
        return float(value)
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as e:
            raise CanonicalJSONError(f"string is not valid Unicode at {path}") from e
        return value
    if isinstance(value, Mapping):
        out: dict[str, object] = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise CanonicalJSONError(f"object key {k!r} is not a string at {path}")
            _normalise(k, path, strict)
            out[k] = _normalise(v, f"{path}.{k}", strict)
        return out
    if isinstance(value, list | tuple):
        return [_normalise(v, f"{path}[{i}]", strict) for i, v in enumerate(value)]
    raise CanonicalJSONError(f"type {type(value).__name__} is not JSON at {path}")


def _plain_and_valid(value: object) -> bool:
    """True when ``value`` holds only dict, list, str, int, bool and None, all within the
    rules; False when it holds another type (a tuple, a Mapping) that `_normalise` converts.
    A rule broken is left to `_normalise`, whose error names the path: this walk builds no
    paths and copies nothing, since events are hashed and signed several times each."""
    if isinstance(value, str):
        return type(value) is str and (value.isascii() or _encodable(value))
    if value is None or isinstance(value, bool):
        return True
    if isinstance(value, int):
        return type(value) is int and MIN_INT <= value <= MAX_INT
    if isinstance(value, dict):
        return type(value) is dict and all(
            isinstance(k, str) and _plain_and_valid(k) and _plain_and_valid(v)
            for k, v in value.items()
        )
    if isinstance(value, list):
        return type(value) is list and all(_plain_and_valid(v) for v in value)
    return False


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def check_canonical_json(value: object, *, strict: bool = True) -> None:
    """Raise :class:`CanonicalJSONError` unless ``value`` is representable as canonical JSON
    (``strict=False``: as the lenient canonical JSON of rooms v1-v5)."""
    if not (strict and _plain_and_valid(value)):
        _normalise(value, "$", strict)


def encode_canonical_json(
    value: object, *, gradual: bool = False, strict: bool = True
) -> bytes:
    """Encode ``value`` as canonical JSON bytes, refusing floats and out-of-range integers.

    ``strict=False`` admits finite floats and integers of any size (rooms v1-v5).
    ``gradual`` produces the same bytes in many short calls of the C encoder instead of one,
    for large values encoded in a worker thread: one call holds the GIL throughout (about a
    second for a 9 MB federation transaction), which would stall the event loop as surely
    as encoding on it.
    """
    # The strict rules' fast check holds for almost every value, under either rules (what is
    # strictly valid the lenient walk would return unchanged): only what breaks them (floats
    # and big integers of the old rooms, or errors to name) takes the copying walk.
    plain = value if _plain_and_valid(value) else _normalise(value, "$", strict)
    if not gradual:
        return canonicaljson.encode_canonical_json(plain)
    pieces: list[bytes] = []
    _encode_gradually(plain, pieces)
    return b"".join(pieces)


# The most flat members (values, or a few values in an array or object) encoded in one call.
_GRADUAL_BATCH = 256


def _encode_gradually(value: object, pieces: list[bytes]) -> None:
    """Append the canonical encoding of ``value`` to ``pieces`` in short calls of the C
    encoder: a container is written here, each run of its flat members encoded in one call
    (a run of an array as an array, of an object as an object, without their brackets), its
    other members recursively. Keys are taken in sorted order, so the bytes are the same.
    Runs are slices, never per-member objects: millions of those would make the garbage
    collector's passes, which hold the GIL too, as long as the encoding they replace."""
    if _flat(value):
        pieces.append(canonicaljson.encode_canonical_json(value))
        return
    is_object = isinstance(value, dict)
    if isinstance(value, dict):
        keys = sorted(value)
        members = [value[k] for k in keys]
    else:
        assert isinstance(value, list)
        keys, members = [], value
    count = len(members)
    pieces.append(b"{" if is_object else b"[")
    i = 0
    while i < count:
        separator = b"," if i else b""
        j = i
        while j < count and j - i < _GRADUAL_BATCH and _flat(members[j]):
            j += 1
        if j > i:
            run = dict(zip(keys[i:j], members[i:j], strict=True)) if is_object else members[i:j]
            pieces.append(separator + canonicaljson.encode_canonical_json(run)[1:-1])
            i = j
            continue
        key = canonicaljson.encode_canonical_json(keys[i]) + b":" if is_object else b""
        pieces.append(separator + key)
        _encode_gradually(members[i], pieces)
        i += 1
    pieces.append(b"}" if is_object else b"]")


def _flat(value: object) -> bool:
    """A value, or an array or object of at most a few values: quick to encode in one call."""
    if not isinstance(value, dict | list):
        return True
    members = value.values() if isinstance(value, dict) else value
    return len(members) <= 16 and not any(isinstance(m, dict | list) for m in members)


def _reject_constant(name: str) -> object:
    raise CanonicalJSONError(f"JSON constant {name} is not permitted")


def _parse_number_with_fraction(text: str) -> object:
    # JSON texts like 1e10 or 2.0 denote integers; keep those as int so they encode
    # canonically without exponent or decimal point. Anything else stays a float, which
    # check_canonical_json will refuse.
    try:
        d = Decimal(text)
    except InvalidOperation as e:  # pragma: no cover - json already validated the syntax
        raise CanonicalJSONError(f"bad number {text!r}") from e
    if d.is_finite() and d == d.to_integral_value():
        return int(d)
    return float(text)


def _no_duplicate_keys(pairs: list[tuple[str, object]]) -> dict[str, object]:
    out: dict[str, object] = {}
    for k, v in pairs:
        if k in out:
            raise CanonicalJSONError(f"duplicate object key {k!r}")
        out[k] = v
    return out


def decode_json_strict(data: bytes | str) -> object:
    """Parse JSON, refusing ``NaN``/``Infinity``, duplicate keys and invalid UTF-8.

    Integral numbers written with an exponent or fraction become ``int``; callers still
    validate ranges and remaining floats with :func:`check_canonical_json`.
    """
    if isinstance(data, bytes | bytearray):
        try:
            text = bytes(data).decode("utf-8")
        except UnicodeDecodeError as e:
            raise CanonicalJSONError("JSON is not valid UTF-8") from e
    else:
        text = data
    try:
        return json.loads(
            text,
            parse_constant=_reject_constant,
            parse_float=_parse_number_with_fraction,
            object_pairs_hook=_no_duplicate_keys,
        )
    except CanonicalJSONError:
        raise
    except (ValueError, RecursionError) as e:
        raise CanonicalJSONError(f"invalid JSON: {e}") from e


def _nesting_exceeds(value: dict[str, Any] | list[Any], max_depth: int) -> bool:
    """Whether arrays/objects nest deeper than ``max_depth`` (iterative: no recursion)."""
    stack: list[tuple[dict[str, Any] | list[Any], int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        for child in node.values() if isinstance(node, dict) else node:
            if isinstance(child, dict | list):
                if depth >= max_depth:
                    return True
                stack.append((child, depth + 1))
    return False


def loads_bounded(text: str | bytes, max_depth: int = MAX_NESTING_DEPTH) -> Any:
    """Parse client JSON: ``ValueError`` if invalid, :class:`JSONNestingError` if too deep.

    ``json`` recurses once per nesting level, so a text like ``[[[[…`` thousands deep raises
    ``RecursionError`` mid-parse; that is reported as invalid JSON like any other bad input.
    """
    try:
        value = json.loads(text, parse_constant=_reject_constant)
    except RecursionError:
        raise ValueError("JSON is nested too deeply to parse") from None
    if isinstance(value, dict | list) and _nesting_exceeds(value, max_depth):
        raise JSONNestingError(f"JSON nested deeper than {max_depth} levels")
    if _escapes_surrogates(text):
        _refuse_lone_surrogates(value)
    return value


def _escapes_surrogates(text: str | bytes) -> bool:
    """Whether the text has a `\\uD800`-`\\uDFFF` escape: halves of a surrogate pair (an
    emoji written as escapes) or a lone one. Raw text never holds one: UTF-8 cannot."""
    if isinstance(text, bytes):
        return b"\\ud" in text or b"\\uD" in text
    return "\\ud" in text or "\\uD" in text


def _refuse_lone_surrogates(value: Any) -> None:
    """ValueError when a string holds a lone surrogate (`"\\ud800"` parses to one): it is no
    Unicode text, and encoding it as UTF-8 (canonical JSON, PostgreSQL) would fail later."""
    try:
        json.dumps(value, ensure_ascii=False).encode()
    except UnicodeEncodeError:
        raise ValueError("JSON holds a lone UTF-16 surrogate, which is not text") from None

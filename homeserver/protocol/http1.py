"""HTTP/1.1 for a lean client: a POST request's bytes, and a bounded parse of its response.

Pure (no I/O): the push gateway client (`services/push_gateway_client.py`) writes `request`
and feeds what arrives to `parse_response` until it returns a response. Only what a JSON API
answering one request per connection turn needs: a status line, headers, and a body framed by
`Content-Length`, by chunked transfer coding or by the end of the connection; interim (1xx)
responses are skipped. Everything is bounded (`MAX_HEAD_BYTES`, the caller's body limit), and
anything malformed is a `ValueError`, never a guess.
"""

from __future__ import annotations

from dataclasses import dataclass

MAX_HEAD_BYTES = 16 * 1024
_NO_BODY = frozenset({204, 304})


class BodyTooLarge(ValueError):
    """The response declared, or grew to, more body bytes than the limit."""


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    body: bytes
    keep_alive: bool  # the connection may carry the next request


def request(target: str, host: str, headers: bytes, body: bytes) -> bytes:
    """A POST of a JSON body. `target` and `host` come from a parsed URL (no spaces or line
    breaks); `headers` are further complete header lines, each ending in CRLF."""
    if any(c in target or c in host for c in " \r\n"):
        raise ValueError("a request target or host with a space or line break")
    return (
        f"POST {target} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n"
    ).encode("ascii") + headers + b"\r\n" + body


def parse_response(data: bytes, eof: bool, max_body: int) -> tuple[Response, int] | None:
    """The first complete response in `data` and how many bytes it took; None until more
    bytes (or the end of the stream, `eof`) complete it."""
    start = 0
    while True:
        end = data.find(b"\r\n\r\n", start)
        if end < 0:
            if len(data) - start > MAX_HEAD_BYTES:
                raise ValueError("a response head larger than 16 KiB")
            if eof:
                raise ValueError("the connection closed before a response")
            return None
        if end - start > MAX_HEAD_BYTES:
            raise ValueError("a response head larger than 16 KiB")
        status, version, fields = _head(data[start:end])
        start = end + 4
        if not 100 <= status < 200:
            break
        if status == 101:
            raise ValueError("the server switched protocols")
    keep_alive = version == "HTTP/1.1" and "close" not in _tokens(fields.get("connection", ""))
    if status in _NO_BODY:
        return Response(status, b"", keep_alive), start
    if "transfer-encoding" in fields:
        if _tokens(fields["transfer-encoding"])[-1:] != ["chunked"]:
            raise ValueError(f"transfer coding {fields['transfer-encoding']!r}")
        found = _chunked(data, start, eof, max_body)
        if found is None:
            return None
        body, used = found
        return Response(status, body, keep_alive), used
    if "content-length" in fields:
        length = _length(fields["content-length"])
        if length > max_body:
            raise BodyTooLarge(f"{length} bytes is more than {max_body}")
        if len(data) - start < length:
            if eof:
                raise ValueError("the connection closed within the body")
            return None
        return Response(status, data[start:start + length], keep_alive), start + length
    # Neither: the body is all that comes until the server closes the connection.
    if len(data) - start > max_body:
        raise BodyTooLarge(f"more than {max_body} bytes")
    if not eof:
        return None
    return Response(status, data[start:], False), len(data)


def _head(head: bytes) -> tuple[int, str, dict[str, str]]:
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or parts[0] not in ("HTTP/1.1", "HTTP/1.0"):
        raise ValueError(f"not an HTTP/1.x status line: {lines[0][:80]!r}")
    if len(parts[1]) != 3 or not parts[1].isdigit():
        raise ValueError(f"status {parts[1][:10]!r}")
    fields: dict[str, str] = {}
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if not colon or not name or name != name.strip():
            raise ValueError(f"header line {line[:80]!r}")
        name = name.lower()
        value = value.strip(" \t")
        if name in fields:
            if name == "content-length" and fields[name] != value:
                raise ValueError("conflicting Content-Length headers")
            if name != "content-length":
                value = f"{fields[name]}, {value}"
        fields[name] = value
    return int(parts[1]), parts[0], fields


def _tokens(value: str) -> list[str]:
    return [t.strip().lower() for t in value.split(",") if t.strip()]


def _length(value: str) -> int:
    if not value.isdigit() or len(value) > 18:
        raise ValueError(f"Content-Length {value[:20]!r}")
    return int(value)


def _chunked(data: bytes, pos: int, eof: bool, max_body: int) -> tuple[bytes, int] | None:
    """A chunked body starting at `pos` (trailers skipped): the body and where it ended."""
    body = bytearray()
    while True:
        line_end = data.find(b"\r\n", pos)
        if line_end < 0:
            _incomplete(data, pos, eof)
            return None
        size_text = data[pos:line_end].split(b";", 1)[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            raise ValueError(f"chunk size {size_text[:20]!r}") from None
        if size_text.startswith((b"-", b"+", b"0x", b"0X")) or len(size_text) > 16:
            raise ValueError(f"chunk size {size_text[:20]!r}")
        pos = line_end + 2
        if size == 0:
            while True:  # trailer lines, then an empty line
                line_end = data.find(b"\r\n", pos)
                if line_end < 0:
                    _incomplete(data, pos, eof)
                    return None
                if line_end == pos:
                    return bytes(body), pos + 2
                pos = line_end + 2
        if len(body) + size > max_body:
            raise BodyTooLarge(f"more than {max_body} bytes")
        if len(data) < pos + size + 2:
            _incomplete(data, len(data), eof)  # (the chunk itself is bounded above)
            return None
        if data[pos + size:pos + size + 2] != b"\r\n":
            raise ValueError("a chunk not followed by CRLF")
        body += data[pos:pos + size]
        pos += size + 2


def _incomplete(data: bytes, pos: int, eof: bool) -> None:
    """ValueError unless more bytes may still complete the body from `pos` on."""
    if eof:
        raise ValueError("the connection closed within a chunked body")
    if len(data) - pos > MAX_HEAD_BYTES:
        raise ValueError("a chunk line or trailer larger than 16 KiB")

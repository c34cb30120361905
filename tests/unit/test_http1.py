"""The lean client's HTTP/1.1: the request it writes and the bounded parse of responses
(framed by Content-Length, chunked coding or the end of the connection; interim responses;
keep-alive; malformed and oversized answers refused)."""

from __future__ import annotations

import pytest

from homeserver.protocol.http1 import BodyTooLarge, Response, parse_response, request

LIMIT = 1024


def parse(data: bytes, eof: bool = False) -> tuple[Response, int] | None:
    return parse_response(data, eof, LIMIT)


def test_the_request_names_its_target_host_and_length() -> None:
    sent = request("/_matrix/push/v1/notify?a=1", "gw.example:8080", b"X-A: b\r\n", b'{"x":1}')
    assert sent == (
        b"POST /_matrix/push/v1/notify?a=1 HTTP/1.1\r\nHost: gw.example:8080\r\n"
        b"Content-Type: application/json\r\nContent-Length: 7\r\nX-A: b\r\n\r\n{\"x\":1}"
    )
    with pytest.raises(ValueError):
        request("/a b", "gw", b"", b"")
    with pytest.raises(ValueError):
        request("/", "gw\r\nX-Evil: 1", b"", b"")


def test_a_content_length_body_arrives_in_pieces() -> None:
    whole = b'HTTP/1.1 200 OK\r\nContent-Length: 15\r\n\r\n{"rejected":[]}'
    for cut in range(len(whole)):
        assert parse(whole[:cut]) is None
    assert parse(whole + b"HTTP/1.1") == (Response(200, b'{"rejected":[]}', True), len(whole))
    with pytest.raises(ValueError):
        parse(whole[:-1], eof=True)


def test_keep_alive_follows_the_version_and_connection_header() -> None:
    close = b"HTTP/1.1 200 OK\r\nConnection: keep-alive, Close\r\nContent-Length: 0\r\n\r\n"
    assert parse(close) == (Response(200, b"", False), len(close))
    old = b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n"
    assert parse(old) == (Response(200, b"", False), len(old))
    no_body = b"HTTP/1.1 204 No Content\r\n\r\n"
    assert parse(no_body) == (Response(204, b"", True), len(no_body))


def test_a_chunked_body_with_extensions_and_trailers() -> None:
    whole = (
        b"HTTP/1.1 503 Busy\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5;ext=1\r\nhello\r\nA\r\n, gateway!\r\n0\r\nX-Trailer: t\r\n\r\n"
    )
    for cut in range(len(whole)):
        assert parse(whole[:cut]) is None
    assert parse(whole) == (Response(503, b"hello, gateway!", True), len(whole))
    with pytest.raises(ValueError):
        parse(whole[:-3], eof=True)
    for bad in (b"-5\r\nhello\r\n", b"5\r\nhelloXX", b"zz\r\n"):
        with pytest.raises(ValueError):
            parse(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + bad)


def test_a_body_to_the_end_of_the_connection() -> None:
    whole = b"HTTP/1.1 200 OK\r\n\r\n{}"
    assert parse(whole) is None
    assert parse(whole, eof=True) == (Response(200, b"{}", False), len(whole))


def test_interim_responses_are_skipped() -> None:
    whole = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}"
    assert parse(whole) == (Response(200, b"{}", True), len(whole))
    with pytest.raises(ValueError):
        parse(b"HTTP/1.1 101 Switching Protocols\r\n\r\n")


@pytest.mark.parametrize("data", [
    b"HTTP/1.1 200 OK\r\nContent-Length: 2000\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n800\r\n",
    b"HTTP/1.1 200 OK\r\n\r\n" + b"x" * 2000,
])
def test_bodies_over_the_limit_are_refused_unread(data: bytes) -> None:
    with pytest.raises(BodyTooLarge):
        parse(data)


@pytest.mark.parametrize("data", [
    b"HTTP/2 200\r\n\r\n",
    b"HTTP/1.1 2000 OK\r\n\r\n",
    b"SSH-2.0-OpenSSH\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nno colon\r\n\r\n",
    b"HTTP/1.1 200 OK\r\n folded: x\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
    b"HTTP/1.1 200 OK\r\n" + b"X: y\r\n" * 4000,
])
def test_malformed_responses_are_refused(data: bytes) -> None:
    with pytest.raises(ValueError):
        parse(data)


def test_nothing_at_all_before_the_end_is_a_failure() -> None:
    with pytest.raises(ValueError):
        parse(b"", eof=True)

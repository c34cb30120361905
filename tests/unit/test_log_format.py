"""`logging.format`: what each format writes for a record, and the path the logs may show.

The served process is tested end to end in tests/interop/test_json_logs.py; these pin the
formatter's fields (the worker name, tracebacks, records of a request) without a server.
"""

from __future__ import annotations

import contextvars
import json
import logging
import sys
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from aiohttp.test_utils import make_mocked_request

from homeserver.api.http import loggable_path
from homeserver.config import ConfigError, parse_config
from homeserver.logs import ACCESS_FIELDS, ACCESS_LINE, REQUEST_ID, TEXT_FORMAT, JsonFormatter

ACCESS_ARGS = ("0123456789ab", "192.0.2.7", "PUT", "/_matrix/client/v3/rooms/!r:x/send/m/1",
               "/_matrix/client/v3/rooms/{roomId}/send/{eventType}/{txnId}", 200, 3.2, "@a:x")


def record(msg: str, *args: object, name: str = "homeserver.x", exc: bool = False
           ) -> logging.LogRecord:
    exc_info = None
    if exc:
        try:
            raise RuntimeError("the cause")
        except RuntimeError:
            exc_info = sys.exc_info()
    return logging.LogRecord(name, logging.WARNING, "", 0, msg, args, exc_info)


def as_json(rec: logging.LogRecord, worker: str | None = None) -> dict[str, object]:
    line = JsonFormatter(worker).format(rec)
    assert "\n" not in line
    value = json.loads(line)
    assert isinstance(value, dict)
    return value


def test_a_record_is_one_json_object_with_its_time_in_utc() -> None:
    rec = record("two\nlines %s", "and\nmore")
    entry = as_json(rec)
    assert entry["message"] == "two\nlines and\nmore"
    assert (entry["level"], entry["logger"]) == ("WARNING", "homeserver.x")
    ts = datetime.fromisoformat(str(entry["ts"]))
    assert ts.utcoffset() == timedelta(0)
    assert abs(ts.timestamp() - rec.created) < 0.001
    assert "request_id" not in entry and "worker" not in entry and "exc_info" not in entry


def test_the_access_record_names_its_facts() -> None:
    entry = as_json(record(ACCESS_LINE, *ACCESS_ARGS, name="homeserver.access"))
    named = dict(zip(ACCESS_FIELDS, ACCESS_ARGS, strict=True))
    assert {k: entry[k] for k in ACCESS_FIELDS} == named


def test_the_text_access_line_tells_the_same_facts() -> None:
    line = logging.Formatter(TEXT_FORMAT).format(record(ACCESS_LINE, *ACCESS_ARGS))
    for fact in ACCESS_ARGS:
        assert str(fact) in line


def test_records_of_a_request_carry_its_id() -> None:
    def during_a_request() -> dict[str, object]:
        REQUEST_ID.set("feedc0ffee12")
        return as_json(record("meanwhile"))

    assert contextvars.copy_context().run(during_a_request)["request_id"] == "feedc0ffee12"
    assert "request_id" not in as_json(record("later"))


def test_a_worker_names_itself_and_a_traceback_is_one_field() -> None:
    entry = as_json(record("failed", exc=True), worker="sync1")
    assert entry["worker"] == "sync1"
    traceback = entry["exc_info"]
    assert isinstance(traceback, str)
    assert traceback.startswith("Traceback") and "RuntimeError: the cause" in traceback


def test_the_logged_path_has_no_query_string() -> None:
    request = make_mocked_request(
        "GET", "/_matrix/client/v3/a%0Ab?access_token=syt_secret&from=s1"
    )
    assert loggable_path(request) == "/_matrix/client/v3/a%0Ab"


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_the_formats_are_text_and_json(fmt: str) -> None:
    config = parse_config(f"logging: {{format: {fmt}}}\n", Path("."))
    assert config.logging.format == fmt


def test_another_format_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"^logging\.format:"):
        parse_config("logging: {format: xml}\n", Path("."))
    assert parse_config("", Path(".")).logging.format == "text"

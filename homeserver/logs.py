"""How the process writes its log: `logging.format: text` (a line for people) or `json` (one
JSON object per line, for log collectors), and the request ID every record of a request shares.

The HTTP middleware (api/http.py) sets `REQUEST_ID` for the time it handles a request, so the
JSON formatter stamps every record logged meanwhile (and by tasks started meanwhile, which copy
the context) with it; the access record carries its facts as the arguments of `ACCESS_LINE`,
which the text format interpolates and the JSON format names. Both formats tell the same facts.
Nothing here reads the request: what may be logged (never a token, a password or a body) is the
middleware's choice.
"""

from __future__ import annotations

import logging
import sys
import time
from contextvars import Context, ContextVar, copy_context
from typing import Any

import orjson

REQUEST_ID: ContextVar[str | None] = ContextVar("moot_request_id", default=None)

ACCESS_LOGGER = "homeserver.access"


def outside_requests() -> Context:
    """A context for a task that a request starts but that serves others too and outlives it
    (a destination's federation sender, a room's writer): without the request's ID, which
    would otherwise stamp all of that task's records, for as long as it runs."""
    context = copy_context()
    context.run(REQUEST_ID.set, None)
    return context


# The access record of a request: its facts as positional arguments, in this order, each
# with its place in the text line. Positional rather than a dict: the text format, on the hot
# path, costs what it did before the JSON format existed (two more fields aside).
_ACCESS = (
    ("request_id", "%s"), ("client_ip", "%s"), ("method", "%s"), ("path", "%s"),
    ("route", "(%s)"), ("status", "%d"), ("duration_ms", "%.1fms"), ("user", "user=%s"),
)
ACCESS_FIELDS = tuple(name for name, _ in _ACCESS)
ACCESS_LINE = " ".join(placeholder for _, placeholder in _ACCESS)

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

FORMATS = ("text", "json")


class JsonFormatter(logging.Formatter):
    """Every record as one line of JSON: `ts` (ISO 8601, UTC), `level`, `logger`, `message`,
    `request_id` while a request is handled, `worker` in a worker process, the access fields
    on an access record, and `exc_info` (the traceback, as text) when there is one."""

    def __init__(self, worker: str | None = None) -> None:
        super().__init__()
        self._worker = worker

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = REQUEST_ID.get()
        if request_id is not None:
            entry["request_id"] = request_id
        if self._worker is not None:
            entry["worker"] = self._worker
        if record.msg is ACCESS_LINE and isinstance(record.args, tuple):
            entry.update(zip(ACCESS_FIELDS, record.args, strict=True))
        if record.exc_info:
            entry["exc_info"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack_info"] = record.stack_info
        return orjson.dumps(entry).decode()


def setup_logging(level: str, fmt: str, worker: str | None = None) -> None:
    """Log records of `level` and above to stderr in `fmt` (one of FORMATS)."""
    # Neither format uses the caller's file and line, thread, process or multiprocessing
    # name: not collecting them makes each record a third cheaper (the logging HOWTO's
    # "Optimization"), which counts at one access log line per request.
    logging._srcfile = None  # type: ignore[attr-defined]
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        JsonFormatter(worker) if fmt == "json" else logging.Formatter(TEXT_FORMAT)
    )
    logging.basicConfig(level=level.upper(), handlers=[handler])

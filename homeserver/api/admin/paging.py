"""The offset paging of Synapse's admin listings: `from` (an offset, which Synapse hands back
as `next_token`), `limit` and `dir` (`f` oldest first, `b` newest first). Synapse answers a
negative `from` or `limit` with 400 M_INVALID_PARAM, and so does Moot, also for one that is
no integer; a page holds at most `MAX_LIMIT` entries, whatever `limit` asks."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, overload

from aiohttp import web

from homeserver.errors import invalid_param

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
MAX_VALUE = 2**63 - 1  # PostgreSQL's bigint: an offset or a timestamp beyond is no value


@dataclass(frozen=True, slots=True)
class Page:
    start: int  # offset of the first entry
    limit: int
    backwards: bool  # dir=b

    def next_token(self, total: int, key: str = "next_token") -> dict[str, Any]:
        """`{key: …}` (the `from` of the next page) while entries remain past this page,
        else nothing."""
        end = self.start + self.limit
        return {key: end} if end < total else {}


@overload
def non_negative(request: web.Request, key: str, default: int) -> int: ...
@overload
def non_negative(request: web.Request, key: str, default: None) -> int | None: ...


def non_negative(request: web.Request, key: str, default: int | None) -> int | None:
    """An integer query parameter that may not be negative (Synapse's 400 for one that is)."""
    raw = request.query.get(key)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise invalid_param(f"'{key}' must be a non-negative integer") from None
    if not 0 <= value <= MAX_VALUE:
        raise invalid_param(f"'{key}' must be a non-negative integer")
    return value


def page_of(request: web.Request, *, default_dir: str) -> Page:
    """The page a listing request asks for."""
    direction = request.query.get("dir", default_dir)
    if direction not in ("f", "b"):
        raise invalid_param("'dir' must be 'f' or 'b'")
    limit = min(MAX_LIMIT, non_negative(request, "limit", DEFAULT_LIMIT))
    return Page(non_negative(request, "from", 0), limit, direction == "b")

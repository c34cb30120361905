"""The offset paging of Synapse's admin listings: `from` (an offset, which Synapse hands back
as `next_token`), `limit` and `dir` (`f` oldest first, `b` newest first). Synapse answers a
negative `from` or `limit` with 400 M_INVALID_PARAM, and so does Moot, also for one that is
no integer; a page holds at most `MAX_LIMIT` entries, whatever `limit` asks."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aiohttp import web

from homeserver.errors import invalid_param

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000


@dataclass(frozen=True, slots=True)
class Page:
    start: int  # offset of the first entry
    limit: int
    backwards: bool  # dir=b

    def next_token(self, total: int) -> dict[str, Any]:
        """`{"next_token": …}` while entries remain past this page, else nothing."""
        end = self.start + self.limit
        return {"next_token": end} if end < total else {}


def _non_negative(request: web.Request, key: str, default: int) -> int:
    raw = request.query.get(key)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise invalid_param(f"'{key}' must be a non-negative integer") from None
    if value < 0:
        raise invalid_param(f"'{key}' must be a non-negative integer")
    return value


def page_of(request: web.Request, *, default_dir: str) -> Page:
    """The page a listing request asks for."""
    direction = request.query.get("dir", default_dir)
    if direction not in ("f", "b"):
        raise invalid_param("'dir' must be 'f' or 'b'")
    limit = min(MAX_LIMIT, _non_negative(request, "limit", DEFAULT_LIMIT))
    return Page(_non_negative(request, "from", 0), limit, direction == "b")

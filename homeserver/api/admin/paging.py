"""The query parameters every admin listing reads: `from` (an offset, as Synapse's
`next_token`), `limit` and `dir`, checked at the edge so a value PostgreSQL can't hold is a
400 M_INVALID_PARAM rather than a 500."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from homeserver.api.http import query_bool
from homeserver.errors import MatrixError, invalid_param

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000  # a bigger `limit` is served as this many (the paging still adds up)
_BIGINT = 2**63 - 1  # the largest number a query parameter may carry to PostgreSQL


def query_count(request: web.Request, key: str, default: int | None, lowest: int = 0) -> int:
    """A non-negative integer parameter (an offset, a size, a timestamp): from `lowest` to
    PostgreSQL's bigint, else M_INVALID_PARAM; `default` None makes it required."""
    raw = request.query.get(key)
    if raw is None:
        if default is None:
            raise MatrixError(400, "M_MISSING_PARAM", f"'{key}' is required")
        return default
    try:
        value = int(raw)
    except ValueError:
        raise invalid_param(f"'{key}' must be an integer") from None
    if not lowest <= value <= _BIGINT:
        raise invalid_param(f"'{key}' must be an integer from {lowest} to {_BIGINT}")
    return value


@dataclass(frozen=True, slots=True)
class Page:
    start: int  # offset of the first row served
    limit: int  # most rows served
    backwards: bool  # `dir=b`: the listing's order reversed

    def next_token(self, served: int, total: int) -> dict[str, str]:
        """`next_token` (a string offset, as Synapse sends it) while rows remain."""
        following = self.start + served
        return {"next_token": str(following)} if served and following < total else {}


def query_page(request: web.Request, default_limit: int = DEFAULT_LIMIT) -> Page:
    start = query_count(request, "from", 0)
    limit = min(query_count(request, "limit", default_limit, lowest=1), MAX_LIMIT)
    direction = request.query.get("dir", "f")
    if direction not in ("f", "b"):
        raise invalid_param("'dir' must be 'f' or 'b'")
    return Page(start, limit, direction == "b")


def query_flag(request: web.Request, key: str) -> bool | None:
    """An optional boolean filter (`true`/`false`): None when absent."""
    return query_bool(request, key) if key in request.query else None

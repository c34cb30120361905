"""The query parameters of Synapse's admin listings, checked at the edge: `from` (an offset,
which Synapse hands back as `next_token`), `limit` and `dir`, and the other counts listings
take (timestamps, sizes). Synapse answers a negative `from` or `limit` with 400
M_INVALID_PARAM, and so does Moot, also for one that is no integer or is past what PostgreSQL's
bigint holds (a 500 otherwise); a page holds at most `MAX_LIMIT` entries, whatever `limit`
asks."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from homeserver.api.http import query_bool
from homeserver.errors import MatrixError, invalid_param

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
MAX_VALUE = 2**63 - 1  # PostgreSQL's bigint: an offset or a timestamp beyond is no value


def optional_count(request: web.Request, key: str, lowest: int = 0) -> int | None:
    """An integer parameter from `lowest` to PostgreSQL's bigint, None when absent;
    anything else is M_INVALID_PARAM."""
    raw = request.query.get(key)
    if raw is None:
        return None
    try:
        value = int(raw)
    except ValueError:
        raise invalid_param(f"'{key}' must be an integer") from None
    if not lowest <= value <= MAX_VALUE:
        raise invalid_param(f"'{key}' must be an integer from {lowest} to {MAX_VALUE}")
    return value


def query_count(request: web.Request, key: str, default: int | None, lowest: int = 0) -> int:
    """`optional_count` with a default; `default` None makes the parameter required."""
    value = optional_count(request, key, lowest)
    if value is not None:
        return value
    if default is None:
        raise MatrixError(400, "M_MISSING_PARAM", f"'{key}' is required")
    return default


def query_order(request: web.Request, orders: Collection[str], default: str) -> str:
    """`order_by`: one of `orders` (the columns a listing sorts by), else M_INVALID_PARAM."""
    order_by = request.query.get("order_by", default)
    if order_by not in orders:
        raise invalid_param(f"'order_by' must be one of {', '.join(sorted(orders))}")
    return order_by


def query_flag(request: web.Request, key: str) -> bool | None:
    """An optional boolean filter (`true`/`false`): None when absent."""
    return query_bool(request, key) if key in request.query else None


@dataclass(frozen=True, slots=True)
class Page:
    start: int  # offset of the first entry
    limit: int  # most entries served
    backwards: bool  # dir=b

    def next_token(
        self, total: int, key: str = "next_token", *, text: bool = False
    ) -> dict[str, Any]:
        """`{key: …}` (the `from` of the next page) while entries remain past this page, else
        nothing; `text` for the listings where Synapse sends it as a string."""
        end = self.start + self.limit
        if end >= total:
            return {}
        return {key: str(end) if text else end}


def query_page(
    request: web.Request, *, default_dir: str = "f", default_limit: int = DEFAULT_LIMIT
) -> Page:
    """The page a listing request asks for."""
    direction = request.query.get("dir", default_dir)
    if direction not in ("f", "b"):
        raise invalid_param("'dir' must be 'f' or 'b'")
    limit = min(MAX_LIMIT, query_count(request, "limit", default_limit, lowest=1))
    return Page(query_count(request, "from", 0), limit, direction == "b")

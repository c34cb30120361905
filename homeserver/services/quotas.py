"""What the per-user quotas (`quotas` in the config) share: how a stored value is measured, and
how a refusal reads.

A count past its quota is 403 M_FORBIDDEN (retrying cannot help until the user deletes
something; the spec's M_RESOURCE_LIMIT_EXCEEDED is for server-wide limits and needs an admin
contact), a value past its size 413 M_TOO_LARGE, like a request body that is too large.
"""

from __future__ import annotations

import json
from typing import Any

from homeserver.errors import MatrixError, forbidden, too_large


def json_size(value: Any) -> int:
    """Bytes of `value` as compact JSON: about what PostgreSQL stores of it (any integer a
    client's JSON can hold is fine here)."""
    return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())


def over_quota(what: str, limit: int) -> MatrixError:
    """403 for a write that would make `what` exceed `limit`."""
    return forbidden(f"Quota exceeded: at most {limit} {what}")


def check_size(value: Any, what: str, limit: int) -> None:
    """413 M_TOO_LARGE if `value` is bigger than `limit` bytes as JSON."""
    if json_size(value) > limit:
        raise too_large(f"{what} is limited to {limit} bytes")

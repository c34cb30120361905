"""Matrix errors: raised anywhere above storage, turned into responses by one middleware."""

from __future__ import annotations

from typing import Any


class MatrixError(Exception):
    """An error with a Matrix `errcode`, an HTTP status and optional extra response fields."""

    def __init__(self, status: int, errcode: str, error: str, **extra: Any) -> None:
        super().__init__(f"{errcode}: {error}")
        self.status = status
        self.errcode = errcode
        self.error = error
        self.extra = extra

    def to_json(self) -> dict[str, Any]:
        return {"errcode": self.errcode, "error": self.error, **self.extra}


def forbidden(error: str) -> MatrixError:
    return MatrixError(403, "M_FORBIDDEN", error)


def bad_json(error: str) -> MatrixError:
    return MatrixError(400, "M_BAD_JSON", error)


def not_found(error: str) -> MatrixError:
    return MatrixError(404, "M_NOT_FOUND", error)


def invalid_param(error: str) -> MatrixError:
    return MatrixError(400, "M_INVALID_PARAM", error)


def too_large(error: str) -> MatrixError:
    return MatrixError(413, "M_TOO_LARGE", error)


def limit_exceeded(retry_after_ms: int) -> MatrixError:
    return MatrixError(
        429, "M_LIMIT_EXCEEDED", "Too many requests", retry_after_ms=retry_after_ms
    )


def unknown_token(error: str = "Unknown or expired access token") -> MatrixError:
    return MatrixError(401, "M_UNKNOWN_TOKEN", error, soft_logout=False)


def room_full_error(limit: int, detail: str = "") -> MatrixError:
    """The member cap (`rooms.max_members`) refused a seat; one wording wherever it is hit."""
    suffix = f"; {detail}" if detail else ""
    return forbidden(
        f"Room is full: it holds at most {limit} members (joined and invited users count)"
        f"{suffix}"
    )


def federation_unavailable() -> MatrixError:
    """What a server without federation answers where another server would be asked."""
    return MatrixError(502, "M_UNKNOWN", "Federation is not available on this server")

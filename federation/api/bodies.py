"""Typed access to the JSON bodies of signed federation requests, with Matrix errors.

`@authenticated` has already parsed the body (the signature covers it); what is left is its
shape: an object where the spec wants one (400 M_BAD_JSON), required fields present (400
M_MISSING_PARAM).
"""

from __future__ import annotations

from typing import Any

from federation.inbound_auth import AuthenticatedRequest
from homeserver.errors import MatrixError, bad_json


def object_body(auth: AuthenticatedRequest) -> dict[str, Any]:
    if not isinstance(auth.content, dict):
        raise bad_json("The request body must be a JSON object")
    return auth.content


def required_object(body: dict[str, Any], key: str) -> dict[str, Any]:
    if key not in body:
        raise MatrixError(400, "M_MISSING_PARAM", f"'{key}' is required")
    value = body[key]
    if not isinstance(value, dict):
        raise bad_json(f"'{key}' must be an object")
    return value

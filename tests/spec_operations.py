"""The Client-Server API's operations, read from the spec's OpenAPI, with the version that added
each: what /versions may claim and which paths had an r0 form are both derived from this.

"Added in" is the operation's `x-addedInMatrixVersion`. An operation without one existed in
r0 (v1.0 is r0.6.1 renamed), except the few whose OpenAPI lacks the field although the spec's
changelog (content/changelog/v1.*.md) adds them later: those are in `ADDED_BY_CHANGELOG`.

An operation is optional when the spec says a server need not implement it: its description
says so ("the server is not required to implement this endpoint", `POST /login/get_token`), or
its documented answer for a server without the feature is the unknown-endpoint error itself
(a 404 response "With `M_UNRECOGNIZED`: the homeserver does not support ...",
`GET /auth_metadata` for a server without the OAuth 2.0 API).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import yaml

from tests.helpers import CS_API

# Operations whose OpenAPI carries no x-addedInMatrixVersion though a changelog adds them.
ADDED_BY_CHANGELOG = {
    "/_matrix/client/v1/rooms/{roomId}/relations/{eventId}": (1, 3),  # v1.3, MSC2675
    "/_matrix/client/v1/rooms/{roomId}/relations/{eventId}/{relType}": (1, 3),
    "/_matrix/client/v1/rooms/{roomId}/relations/{eventId}/{relType}/{eventType}": (1, 3),
    "/_matrix/client/v1/auth_metadata": (1, 15),  # v1.15, MSC2965
    "/_matrix/client/v1/mutual_rooms": (1, 19),  # v1.19, MSC2666
}
R0 = (1, 0)


@dataclass(frozen=True)
class Operation:
    method: str
    path: str  # the full path template, e.g. /_matrix/client/v3/rooms/{roomId}/send/...
    added: tuple[int, int]  # (1, 0) for r0
    deprecated: bool
    optional: bool  # the spec lets a server leave it out (see the module docstring)

    @property
    def name(self) -> str:
        return f"{self.method} {self.path}"


def _version(raw: object) -> tuple[int, int]:
    major, minor = str(raw).split(".")
    return int(major), int(minor)


@functools.cache
def operations(api: Path = CS_API) -> tuple[Operation, ...]:
    found = []
    for file in sorted(api.glob("*.yaml")):
        spec = yaml.safe_load(file.read_text())
        base = spec["servers"][0]["variables"]["basePath"]["default"]
        for raw_path, item in spec.get("paths", {}).items():
            # The spec disambiguates two GET /events operations with a trailing space.
            path = base + raw_path.strip()
            for method, op in item.items():
                if method not in ("get", "put", "post", "delete"):
                    continue
                added = op.get("x-addedInMatrixVersion")
                version = _version(added) if added else ADDED_BY_CHANGELOG.get(path, R0)
                found.append(Operation(
                    method.upper(), path, version, bool(op.get("deprecated")), _optional(op)
                ))
    return tuple(found)


def _optional(op: dict[str, Any]) -> bool:
    if "not required to implement this endpoint" in op.get("description", ""):
        return True
    not_found = op.get("responses", {}).get("404", {}).get("description", "")
    return bool(not_found.startswith("With `M_UNRECOGNIZED`"))


def fill(path: str, server_name: str) -> str:
    """The path with a dummy for each parameter: well-formed IDs of things that don't exist."""
    dummies = {
        "roomId": f"!nothere:{server_name}", "userId": f"@nobody:{server_name}",
        "eventId": "$nothere", "roomAlias": f"#nothere:{server_name}",
        "roomIdOrAlias": f"#nothere:{server_name}", "serverName": server_name,
        "mediaId": "nothere", "kind": "override", "ruleId": "nothere",
        "eventType": "m.nothere", "type": "m.nothere", "stateKey": "", "txnId": "t1",
        "keyName": "displayname", "receiptType": "m.read", "relType": "m.thread",
        "deviceId": "NOTHERE", "version": "1", "sessionId": "nothere", "tag": "u.nothere",
        "filterId": "1", "protocol": "nothere", "fileName": "nothere.txt",
    }

    def value(match: re.Match[str]) -> str:
        return quote(dummies.get(match.group(1), "nothere"), safe="")

    return re.sub(r"\{(\w+)\}", value, path)


def version_name(version: tuple[int, int]) -> str:
    return f"v{version[0]}.{version[1]}"

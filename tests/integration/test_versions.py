"""`GET /versions` claims exactly the spec versions whose Client-Server endpoints are served.

What "served" and "claimed" mean here:

* The operations of a version are every operation in the spec's Client-Server OpenAPI
  (data/api/client-server/*.yaml, deprecated ones included: they are still part of the version)
  whose "added in" version (tests/spec_operations.py: `x-addedInMatrixVersion`, else the
  changelog, else r0) is at or below it. Endpoints the spec has removed are not in the OpenAPI
  and do not count.
* Every probe must answer below 500 (a dummy request is client input, never a server fault).
* An operation is served when a request to it (dummy path parameters naming things that don't
  exist, an empty JSON body, the access token of a fresh user) gets any answer but the spec's
  answer for an unknown endpoint: 404 or 405 with M_UNRECOGNIZED. A 404 M_NOT_FOUND for a dummy
  ID, a 403, a 400 for the empty body all mean the endpoint is there.
* Operations the spec lets a server leave out (`Operation.optional`: `POST /login/get_token`,
  `GET /auth_metadata` without OAuth 2.0) are not required.
* A version may be claimed only if all its other operations are served, and is then claimed with all
  lower ones. r0.x (r0.0.1 to r0.6.1, which v1.0 renamed) are claimed when everything in r0 is
  served, as the spec's `/versions` examples and Synapse list them.

The test computes the highest fully served version from the live routes and asserts that
/versions claims exactly the versions up to it, so a claim can neither run ahead of the routes
nor be left behind when endpoints are added.
"""

from __future__ import annotations

from typing import Any

from tests.conftest import RunningServer
from tests.helpers import MatrixApi, validate_response
from tests.spec_operations import R0, Operation, fill, operations, version_name

R0_VERSIONS = ["r0.0.1", "r0.1.0", "r0.2.0", "r0.3.0", "r0.4.0", "r0.5.0", "r0.6.0", "r0.6.1"]


async def probe(api: MatrixApi, op: Operation, server_name: str, token: str) -> tuple[int, Any]:
    # No long-polls: /events, /sync and media downloads answer at once.
    return await api.request(
        op.method, fill(op.path, server_name),
        json={} if op.method in ("POST", "PUT") else None, token=token,
        params={"timeout": "0", "timeout_ms": "0"},
    )


def unrecognized(status: int, body: Any) -> bool:
    errcode = body.get("errcode") if isinstance(body, dict) else None
    return status in (404, 405) and errcode == "M_UNRECOGNIZED"


async def unserved(api: MatrixApi, homeserver: RunningServer) -> list[Operation]:
    # Probed by a user of its own, whose token the probes may spend (POST /logout): the
    # operations that log out come last.
    user = await api.register("prober")
    missing, failed = [], []
    for op in sorted(operations(), key=lambda op: "/logout" in op.path):
        status, body = await probe(api, op, homeserver.server_name, user.token)
        if unrecognized(status, body) and not op.optional:
            missing.append(op)
        if status >= 500:
            failed.append((op.name, status, body))
    assert not failed, f"server errors on dummy requests: {failed}"
    return missing


def claimable(missing: list[Operation]) -> list[str]:
    """The versions all of whose operations are served (see the module docstring)."""
    first_gap = min((op.added for op in missing), default=None)
    newest = max(op.added for op in operations())
    claim = []
    if first_gap is None or first_gap > R0:
        claim += R0_VERSIONS
    for minor in range(1, newest[1] + 1):
        if first_gap is None or (1, minor) < first_gap:
            claim.append(version_name((1, minor)))
    return claim


async def test_versions_claims_exactly_what_is_served(
    api: MatrixApi, homeserver: RunningServer,
) -> None:
    body = await api.ok("GET", "/_matrix/client/versions")
    validate_response("versions.yaml", "/versions", "get", 200, body)
    missing = await unserved(api, homeserver)
    expected = claimable(missing)
    gaps = sorted((op.added, op.name) for op in missing)
    assert body["versions"] == expected, f"first unserved operations: {gaps[:10]}"
    assert expected, f"not even r0 is served: {gaps[:10]}"


async def test_unstable_features_are_served(api: MatrixApi) -> None:
    """Nothing is advertised as an unstable feature that this server doesn't implement: only
    Simplified Sliding Sync, whose route answers (an empty body starts a connection)."""
    body = await api.ok("GET", "/_matrix/client/versions")
    assert body["unstable_features"] == {"org.matrix.simplified_msc3575": True}
    user = await api.register("prober")
    served = await api.ok(
        "POST", "/_matrix/client/unstable/org.matrix.simplified_msc3575/sync", json={},
        token=user.token,
    )
    assert served["pos"]

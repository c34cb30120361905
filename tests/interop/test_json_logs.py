"""`logging.format` as an operator gets it: a served process (`python -m homeserver run`)
driven over HTTP, its stderr read back.

A password login, a wrong password, a token in the query string and one in the header, a 404
and a request that logs a record of its own (a report): with `json`, every line is a JSON
object, each request has an access record of its own with its facts (the user when known),
and records logged while a request is handled carry its ID; in both formats, no password and
no access token appears anywhere. A worker process names itself in each of its records.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp

from homeserver.logs import ACCESS_FIELDS
from tests.helpers import MatrixApi
from tests.interop.conftest import ServerProcess, SpawnServer
from tests.worker_cluster import WORKER, worker_cluster

ALICE_PASSWORD = "alice-pw-4d1f9c"
BOB_PASSWORD = "bob-pw-8e27a0"
WRONG_PASSWORD = "wrong-pw-c63b15"
WHOAMI = "/_matrix/client/v3/account/whoami"
REPORT = "/_matrix/client/v3/users/{userId}/report"


@dataclass
class Session:
    """What the requests were made with: the secrets that must not be logged, and alice."""

    secrets: list[str]
    alice: str


async def drive(server: ServerProcess) -> Session:
    """The requests of the module docstring, then a graceful stop (every line written)."""
    async with aiohttp.ClientSession() as http:
        api = MatrixApi(server.url, http)
        alice = await api.register("alice", ALICE_PASSWORD)
        bob = await api.register("bob", BOB_PASSWORD)
        second = await api.login(alice)
        status, _ = await api.request("POST", "login", json={
            "type": "m.login.password", "password": WRONG_PASSWORD,
            "identifier": {"type": "m.id.user", "user": "alice"},
        })
        assert status == 403
        await api.ok("GET", WHOAMI, params={"access_token": second.token})
        await api.ok("GET", WHOAMI, token=alice.token)
        status, _ = await api.request(
            "GET", "/_matrix/client/v3/no/such/thing", params={"access_token": second.token}
        )
        assert status == 404
        await api.ok("POST", f"users/{bob.user_id}/report", json={"reason": "spam"},
                     token=second.token)
    assert await server.stop() == 0, server.log_tail()
    return Session(
        [ALICE_PASSWORD, BOB_PASSWORD, WRONG_PASSWORD, alice.token, bob.token, second.token],
        alice.user_id,
    )


def assert_nothing_secret(log: str, session: Session) -> None:
    leaked = [secret for secret in session.secrets if secret in log]
    assert not leaked, f"logged: {leaked}"


def one(records: list[dict[str, Any]], **facts: Any) -> dict[str, Any]:
    found = [r for r in records if all(r.get(k) == v for k, v in facts.items())]
    assert len(found) == 1, (facts, found)
    return found[0]


async def test_json_logs_are_one_object_per_line_with_each_request_s_facts(
    spawn_server: SpawnServer, database_url: str
) -> None:
    server = await spawn_server(database_url, overrides={"logging.format": "json"})
    session = await drive(server)
    log = server.log_path.read_text()
    assert_nothing_secret(log, session)

    records = [json.loads(line) for line in log.splitlines()]
    for record in records:
        assert isinstance(record, dict), record
        assert {"ts", "level", "logger", "message"} <= record.keys(), record
        assert datetime.fromisoformat(record["ts"]).utcoffset() == timedelta(0)
        assert "worker" not in record
    assert any(r["message"] == "Moot stopped" for r in records)

    access = [r for r in records if r["logger"] == "homeserver.access"]
    for record in access:
        assert set(ACCESS_FIELDS) <= record.keys(), record
        assert record["client_ip"] == "127.0.0.1"
        assert isinstance(record["duration_ms"], float) and record["duration_ms"] >= 0
        assert "?" not in record["path"]
    ids = [r["request_id"] for r in access]
    assert len(set(ids)) == len(ids), "request IDs repeat"

    logins = [r for r in access if r["path"] == "/_matrix/client/v3/login"]
    assert sorted(r["status"] for r in logins) == [200, 403]
    assert all(r["user"] is None and r["method"] == "POST" for r in logins)
    whoami = [r for r in access if r["route"] == WHOAMI]
    facts = [(r["path"], r["status"], r["user"]) for r in whoami]
    assert facts == [(WHOAMI, 200, session.alice)] * 2
    missing = one(access, status=404)
    assert missing["path"] == "/_matrix/client/v3/no/such/thing"
    assert missing["user"] == session.alice  # its token was valid

    report = one(access, route=REPORT)
    assert (report["status"], report["user"]) == (200, session.alice)
    logged_meanwhile = one(records, logger="homeserver.reports")
    assert logged_meanwhile["request_id"] == report["request_id"]
    assert one(records, request_id=report["request_id"], logger="homeserver.access") == report


async def test_text_logs_by_default_tell_the_same_facts_and_no_secret(
    spawn_server: SpawnServer, database_url: str
) -> None:
    server = await spawn_server(database_url)
    session = await drive(server)
    log = server.log_path.read_text()
    assert_nothing_secret(log, session)
    lines = [line for line in log.splitlines() if f" GET {WHOAMI} ({WHOAMI}) 200 " in line]
    assert len(lines) == 2, log
    assert all(line.endswith(f" user={session.alice}") for line in lines), lines
    assert all(" 127.0.0.1 " in line and " INFO homeserver.access: " in line for line in lines)


async def test_a_worker_names_itself_in_every_json_record(
    database_url: str, tmp_path: Path
) -> None:
    async with worker_cluster(database_url, tmp_path, {"logging.format": "json"}) as cluster:
        alice = await cluster.on_main.register("alice")
        await cluster.on_worker.ok("GET", "sync", token=alice.token, params={"timeout": "0"})
    main, worker = (
        [json.loads(line) for line in process.log_path.read_text().splitlines()]
        for process in (cluster.main, cluster.worker)
    )
    assert worker and all(record["worker"] == WORKER for record in worker)
    assert one(worker, path="/_matrix/client/v3/sync")["user"] == alice.user_id
    assert main and not any("worker" in record for record in main)

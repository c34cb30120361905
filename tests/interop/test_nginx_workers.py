"""The shipped deploy/nginx-workers.conf, run by a real nginx in front of the main process and a
/sync worker: a /sync long-poll through the proxy is held by the worker, and a message sent
through the proxy (to the main process) reaches the client through it."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import aiohttp

from homeserver.config import load_config
from tests.helpers import MatrixApi, User
from tests.interop.conftest import CHECKOUT
from tests.nginx_proxy import CLIENT, FEDERATION, WORKER_1, WORKER_2, nginx_binary, nginx_in_front
from tests.worker_cluster import DEADLINE_S, worker_cluster

SHIPPED = CHECKOUT / "deploy" / "nginx-workers.conf"
LONG_POLL_MS = int(DEADLINE_S * 1000)
MESSAGES_ONLY = json.dumps({"room": {"timeline": {"types": ["m.room.message"]}}})


async def sync(api: MatrixApi, user: User, since: str | None) -> dict[str, Any]:
    """A long-poll for messages only, leaving presence alone (it would wake the poll too)."""
    params = {"timeout": str(LONG_POLL_MS), "filter": MESSAGES_ONLY, "set_presence": "offline"}
    body: dict[str, Any] = await api.ok(
        "GET", "sync", token=user.token, params={**params, **({"since": since} if since else {})})
    return body


def messages(body: dict[str, Any], room_id: str) -> list[str]:
    room = body["rooms"]["join"].get(room_id, {})
    return [e["event_id"] for e in room.get("timeline", {}).get("events", [])]


async def test_sync_through_nginx_is_served_by_the_worker(
    database_url: str, tmp_path: Path
) -> None:
    binary = nginx_binary()
    async with worker_cluster(database_url, tmp_path) as cluster:
        federation_port = load_config(cluster.main.config_path).listeners.federation.port
        assert federation_port is not None
        upstreams = {CLIENT: cluster.main.client_port, FEDERATION: federation_port,
                     WORKER_1: cluster.worker.client_port, WORKER_2: cluster.worker.client_port}
        async with (
            nginx_in_front(binary, SHIPPED, tmp_path / "nginx", upstreams) as nginx,
            aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=False)) as session,
        ):
            api = MatrixApi(nginx.https, session)
            alice = await api.register("alice")
            room_id = await api.create_room(alice)
            since = (await api.ok("GET", "sync", token=alice.token,
                                  params={"set_presence": "offline"}))["next_batch"]
            poll = asyncio.create_task(sync(api, alice, since))
            await cluster.wait_until_held(poll)
            event_id = await api.send_message(alice, room_id, "through the proxy")
            body, deadline = await poll, time.monotonic() + DEADLINE_S
            # The worker may wake for the room's creation, heard of just now, before the message.
            while event_id not in messages(body, room_id):
                assert time.monotonic() < deadline, "the message never reached the worker"
                body = await sync(api, alice, body["next_batch"])

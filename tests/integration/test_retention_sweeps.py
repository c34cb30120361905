"""The retention sweeps (issue 20): what a redaction removed, unused media and old client
addresses are gone from storage, proven by a text dump of the whole database and by the media
store, not merely hidden; and the sweeps' metrics.

Sweeps are run by calling the scheduler's `run_once` (the server's own round also runs at
start-up, every `retention.purge_interval_ms`), with a fake clock where time must pass.
"""

from __future__ import annotations

import secrets
from itertools import count
from typing import TYPE_CHECKING, Any

import aiohttp
import asyncpg
import pytest

from tests.database_dump import dump_text
from tests.fake_clock import FakeClock
from tests.helpers import MatrixApi, User
from tests.loopback_clients import client_at
from tests.metrics_scrape import sample, scrape

if TYPE_CHECKING:
    from tests.conftest import MakeServer, RunningServer

pytestmark = pytest.mark.usefixtures("no_server_errors")

PLAINTEXT = {"encryption.default": "off"}
DAY_S = 86_400
MARKER_IP = "198.51.100.77"
V3_MEDIA = "/_matrix/media/v3"
_txns = count()


def marker() -> str:
    """A word found nowhere else (the search index keeps it whole: letters and digits)."""
    return "zq" + secrets.token_hex(8)


async def sweep(server: RunningServer) -> None:
    sweeps = server.hs.retention_sweeps
    assert sweeps is not None
    assert all((await sweeps.run_once()).values())


async def send(api: MatrixApi, user: User, room_id: str, content: dict[str, Any]) -> str:
    body = await api.ok(
        "PUT", f"rooms/{room_id}/send/m.room.message/r{next(_txns)}", json=content,
        token=user.token,
    )
    return str(body["event_id"])


async def redact(api: MatrixApi, user: User, room_id: str, event_id: str) -> None:
    await api.ok(
        "PUT", f"rooms/{room_id}/redact/{event_id}/x{next(_txns)}", json={}, token=user.token
    )


async def search(api: MatrixApi, user: User, term: str) -> list[str]:
    body = await api.ok("POST", "search", token=user.token, json={
        "search_categories": {"room_events": {"search_term": term}}
    })
    return [r["result"]["event_id"] for r in body["search_categories"]["room_events"]["results"]]


async def upload(api: MatrixApi, user: User, data: bytes) -> str:
    body = await api.ok(
        "POST", f"{V3_MEDIA}/upload", raw=data, token=user.token,
        headers={"Content-Type": "application/octet-stream"},
    )
    return str(body["content_uri"])


async def download_status(api: MatrixApi, server: RunningServer, mxc: str) -> int:
    media_id = mxc.rsplit("/", 1)[1]
    status, _ = await api.request(
        "GET", f"{V3_MEDIA}/download/{server.server_name}/{media_id}"
    )
    return status


def store_holds(server: RunningServer, data: bytes) -> bool:
    """Whether a file of the media store holds `data`."""
    root = server.data_dir / "media"
    return any(data in p.read_bytes() for p in root.rglob("*") if p.is_file())


# -- redactions -------------------------------------------------------------------------------


async def test_a_redacted_message_its_edit_and_its_search_entry_leave_no_trace(
    make_homeserver: MakeServer, database_url: str, http: aiohttp.ClientSession
) -> None:
    """The message is censored at redaction; its edit (m.replace, which the spec leaves
    unredacted but which holds the replacing text) by the sweep; search forgets both."""
    server = await make_homeserver(PLAINTEXT)
    api = MatrixApi(server.url, http)
    alice = await api.register("alice")
    room_id = await api.create_room(alice)
    original, edited, kept = marker(), marker(), marker()
    message = await send(api, alice, room_id, {"msgtype": "m.text", "body": original})
    await send(api, alice, room_id, {
        "msgtype": "m.text", "body": f"* {edited}",
        "m.new_content": {"msgtype": "m.text", "body": edited},
        "m.relates_to": {"rel_type": "m.replace", "event_id": message},
    })
    await api.send_message(alice, room_id, kept)
    assert await search(api, alice, original) == [message]
    assert len(await search(api, alice, edited)) == 1
    await redact(api, alice, room_id, message)
    await sweep(server)

    dump = await dump_text(database_url)
    assert original not in dump
    assert edited not in dump
    assert kept in dump  # what nobody redacted stays
    assert await search(api, alice, original) == []
    assert await search(api, alice, edited) == []
    assert len(await search(api, alice, kept)) == 1
    # The room keeps working.
    await api.send_message(alice, room_id, "still here")
    await api.sync(alice)


async def test_rows_stored_uncensored_by_an_older_version_are_censored_by_the_sweep(
    make_homeserver: MakeServer, database_url: str, http: aiohttp.ClientSession
) -> None:
    """A database written before redacted rows were censored keeps the original in the row
    (served redacted all the same); the sweep rewrites it."""
    server = await make_homeserver(PLAINTEXT)
    api = MatrixApi(server.url, http)
    alice = await api.register("alice")
    room_id = await api.create_room(alice)
    secret = marker()
    message = await send(api, alice, room_id, {"msgtype": "m.text", "body": secret})
    conn = await asyncpg.connect(database_url)
    try:
        original = await conn.fetchval("SELECT json FROM events WHERE event_id = $1", message)
        await redact(api, alice, room_id, message)
        await conn.execute("UPDATE events SET json = $2 WHERE event_id = $1", message, original)
    finally:
        await conn.close()
    assert secret in await dump_text(database_url)
    await sweep(server)
    assert secret not in await dump_text(database_url)
    event = await api.ok("GET", f"rooms/{room_id}/event/{message}", token=alice.token)
    assert event["content"] == {}


# -- media ------------------------------------------------------------------------------------


async def test_media_only_a_redacted_message_referred_to_is_deleted(
    make_homeserver: MakeServer, database_url: str, http: aiohttp.ClientSession
) -> None:
    server = await make_homeserver(PLAINTEXT)
    api = MatrixApi(server.url, http)
    alice = await api.register("alice")
    room_id = await api.create_room(alice)
    alone, shared, thumb = (marker().encode() for _ in range(3))
    alone_uri, shared_uri, thumb_uri = [await upload(api, alice, d) for d in (alone, shared, thumb)]
    image = await send(api, alice, room_id, {
        "msgtype": "m.image", "body": "a.png", "url": alone_uri,
        "info": {"thumbnail_url": thumb_uri},
    })
    file = await send(api, alice, room_id, {"msgtype": "m.file", "body": "b", "url": shared_uri})
    await send(api, alice, room_id, {"msgtype": "m.file", "body": "again", "url": shared_uri})
    await redact(api, alice, room_id, image)
    await redact(api, alice, room_id, file)
    await sweep(server)

    assert not store_holds(server, alone)
    assert not store_holds(server, thumb)
    assert await download_status(api, server, alone_uri) == 404
    assert await download_status(api, server, thumb_uri) == 404
    # Another message still shows the shared file.
    assert store_holds(server, shared)
    assert await download_status(api, server, shared_uri) == 200


async def test_media_not_downloaded_for_its_lifetime_is_deleted_but_avatars_stay(
    make_homeserver: MakeServer, http: aiohttp.ClientSession
) -> None:
    clock = FakeClock()
    server = await make_homeserver(
        {"media.retention.local_lifetime_ms": DAY_S * 1000}, clock=clock
    )
    api = MatrixApi(server.url, http)
    alice = await api.register("alice")
    idle, read, avatar = (marker().encode() for _ in range(3))
    idle_uri, read_uri, avatar_uri = [await upload(api, alice, d) for d in (idle, read, avatar)]
    await api.ok(
        "PUT", f"profile/{alice.user_id}/avatar_url", json={"avatar_url": avatar_uri},
        token=alice.token,
    )
    clock.advance(2 * DAY_S)
    assert await download_status(api, server, read_uri) == 200
    await sweep(server)

    assert not store_holds(server, idle)
    assert await download_status(api, server, idle_uri) == 404
    assert store_holds(server, read)
    assert store_holds(server, avatar)
    assert await download_status(api, server, avatar_uri) == 200


# -- client addresses -------------------------------------------------------------------------


async def register_from(api: MatrixApi, localpart: str, address: str, agent: str) -> User:
    status, body = await api.request(
        "POST", "register", headers={"X-Forwarded-For": address, "User-Agent": agent},
        json={"username": localpart, "password": "pw-123456", "auth": {"type": "m.login.dummy"}},
    )
    assert status == 200, body
    user = User(body["user_id"], body["access_token"], body["device_id"], "pw-123456")
    # A request with the token records the user agent too.
    await api.ok(
        "GET", "account/whoami", token=user.token,
        headers={"X-Forwarded-For": address, "User-Agent": agent},
    )
    return user


async def test_an_idle_devices_address_and_user_agent_are_deleted_after_the_period(
    make_homeserver: MakeServer, database_url: str
) -> None:
    clock = FakeClock()
    server = await make_homeserver(
        {"privacy.client_ip_retention_ms": 28 * DAY_S * 1000}, clock=clock
    )
    agent = "Agent" + marker()
    async with client_at(server, "127.0.0.1") as api:
        alice = await register_from(api, "alice", MARKER_IP, agent)
        dump = await dump_text(database_url)
        assert MARKER_IP in dump and agent in dump
        clock.advance(27 * DAY_S)
        await sweep(server)
        assert MARKER_IP in await dump_text(database_url)  # not due yet

        clock.advance(2 * DAY_S)
        busy = await api.login(alice)  # a device in use keeps its address
        await sweep(server)
        dump = await dump_text(database_url)
        assert MARKER_IP not in dump and agent not in dump
        devices = {d["device_id"]: d for d in
                   (await api.ok("GET", "devices", token=busy.token))["devices"]}
        assert "last_seen_ip" not in devices[alice.device_id]
        assert devices[busy.device_id]["last_seen_ip"] == "127.0.0.1"
        whois = await api.ok("GET", f"admin/whois/{alice.user_id}", token=busy.token)
        [session] = whois["devices"][alice.device_id]["sessions"]
        assert all("ip" not in c for c in session["connections"])


async def test_a_retention_of_zero_stores_no_address(
    make_homeserver: MakeServer, database_url: str
) -> None:
    server = await make_homeserver({"privacy.client_ip_retention_ms": 0})
    agent = "Agent" + marker()
    async with client_at(server, "127.0.0.1") as api:
        alice = await register_from(api, "alice", MARKER_IP, agent)
        dump = await dump_text(database_url)
        assert MARKER_IP not in dump and agent not in dump
        [device] = (await api.ok("GET", "devices", token=alice.token))["devices"]
        assert "last_seen_ip" not in device and "last_seen_ts" in device


# -- metrics ----------------------------------------------------------------------------------


async def test_every_sweep_has_its_series_and_a_run_marks_its_success(
    make_homeserver: MakeServer, http: aiohttp.ClientSession
) -> None:
    server = await make_homeserver()
    await sweep(server)
    text = await scrape(server, http)
    for name in ("rooms", "redactions", "media", "client_ips"):
        sample(text, "moot_retention_purged_events_total", sweep=name)
        sample(text, "moot_retention_purged_bytes_total", sweep=name)
        sample(text, "moot_retention_sweep_seconds_count", sweep=name)
        sample(text, "moot_retention_last_success_timestamp_seconds", sweep=name)
    for name in ("redactions", "media", "client_ips"):
        assert sample(text, "moot_retention_last_success_timestamp_seconds", sweep=name) > 0
        assert sample(text, "moot_retention_sweep_seconds_count", sweep=name) >= 1

"""The shipped deploy/nginx.conf, run by a real nginx in front of a real Moot: everything Moot
serves reaches it through the proxy (client, 20 MB media, federation on 443 and 8448,
well-known files, /health), long-polls survive it, and Moot sees the client's own address,
which neither a spoofed X-Forwarded-For through nginx nor one sent straight to Moot changes.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import shutil
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from homeserver.setup import write_tls_certificate
from tests.conftest import MakeServer, RunningServer
from tests.helpers import MatrixApi, User
from tests.interop.conftest import CHECKOUT
from tests.nginx_proxy import (
    CLIENT,
    FEDERATION,
    TRUSTED_LOOPBACK,
    WORKER_1,
    WORKER_2,
    Nginx,
    OutsidePorts,
    localized,
    nginx_binary,
    nginx_in_front,
)

SHIPPED = CHECKOUT / "deploy" / "nginx.conf"
DEBIAN = Path("/etc/nginx")  # the package's own configuration, which includes conf.d/*.conf
CLIENT_ADDRESS = "127.0.0.5"  # a loopback address of its own, not nginx's 127.0.0.1
UPLOAD_BYTES = 20 * 1024 * 1024
LONG_POLL_MS = 30_000


@dataclass
class Deployment:
    moot: RunningServer
    nginx: Nginx
    session: aiohttp.ClientSession  # connects from CLIENT_ADDRESS, accepts any certificate

    @property
    def through_nginx(self) -> MatrixApi:
        return MatrixApi(self.nginx.https, self.session)

    @property
    def straight_to_moot(self) -> MatrixApi:
        return MatrixApi(self.moot.url, self.session)


@pytest.fixture
async def deployment(make_homeserver: MakeServer, tmp_path: Path) -> AsyncIterator[Deployment]:
    binary = nginx_binary()
    moot = await make_homeserver(TRUSTED_LOOPBACK)
    upstreams = {CLIENT: moot.hs.ports["client"], FEDERATION: moot.hs.ports["federation"]}
    connector = aiohttp.TCPConnector(local_addr=(CLIENT_ADDRESS, 0), ssl=False)
    async with (
        nginx_in_front(binary, SHIPPED, tmp_path / "nginx", upstreams) as nginx,
        aiohttp.ClientSession(connector=connector,
                              timeout=aiohttp.ClientTimeout(total=120)) as session,
    ):
        yield Deployment(moot, nginx, session)


async def test_a_20_mb_upload_and_its_download_through_nginx(deployment: Deployment) -> None:
    api = deployment.through_nginx
    alice = await api.register("alice")
    data = os.urandom(UPLOAD_BYTES)
    uploaded = await api.ok("POST", "/_matrix/media/v3/upload", raw=data, token=alice.token,
                            headers={"Content-Type": "application/octet-stream"})
    media = uploaded["content_uri"].removeprefix("mxc://")
    for path in (f"/_matrix/client/v1/media/download/{media}",
                 f"/_matrix/media/v3/download/{media}"):
        async with deployment.session.get(
            deployment.nginx.https + path, headers={"Authorization": f"Bearer {alice.token}"}
        ) as resp:
            assert resp.status == 200, (path, resp.status)
            assert hashlib.sha256(await resp.read()).digest() == hashlib.sha256(data).digest()


async def test_login_and_a_long_poll_sync_through_nginx(deployment: Deployment) -> None:
    api = deployment.through_nginx
    alice = await api.login(await api.register("alice"))
    room_id = await api.create_room(alice)
    since = (await api.ok("GET", "sync", token=alice.token))["next_batch"]
    poll = asyncio.create_task(api.ok("GET", "sync", token=alice.token, params={
        "since": since, "timeout": str(LONG_POLL_MS)}))
    event_id = await api.send_message(alice, room_id, "through the proxy")
    answer = await poll
    events = answer["rooms"]["join"][room_id]["timeline"]["events"]
    assert [e["event_id"] for e in events] == [event_id]


async def test_http_is_redirected_to_https(deployment: Deployment) -> None:
    async with deployment.session.get(
        deployment.nginx.http + "/_matrix/client/versions", allow_redirects=False,
        headers={"Host": "matrix.example.org"},
    ) as resp:
        assert resp.status == 301
        assert resp.headers["Location"] == "https://matrix.example.org/_matrix/client/versions"


async def federation_get(
    session: aiohttp.ClientSession, base: str, path: str, host: str = "example.org"
) -> Any:
    async with session.get(base + path, headers={"Host": host}) as resp:
        assert resp.status == 200, (base, path, resp.status, await resp.text())
        return await resp.json()


async def test_federation_on_443_and_on_8448(deployment: Deployment) -> None:
    """443 serves the servers that found matrix.example.org:443 by delegation, 8448 those that
    ask example.org itself."""
    nginx, session = deployment.nginx, deployment.session
    direct = f"https://127.0.0.1:{deployment.moot.hs.ports['federation']}"
    own_key = await federation_get(session, direct, "/_matrix/key/v2/server")
    for base, host in ((nginx.https, "matrix.example.org"), (nginx.federation, "example.org")):
        version = await federation_get(session, base, "/_matrix/federation/v1/version", host)
        assert version["server"]["name"] == "Moot"
        key = await federation_get(session, base, "/_matrix/key/v2/server", host)
        assert (key["server_name"], key["verify_keys"]) \
            == (deployment.moot.server_name, own_key["verify_keys"])


async def answer(session: aiohttp.ClientSession, url: str, host: str) -> tuple[int, str, str]:
    """Status, content type and body of GET `url`, with the headers nginx sends Moot."""
    headers = {"Host": host, "X-Forwarded-Proto": "https"}
    async with session.get(url, headers=headers) as resp:
        return resp.status, resp.content_type, await resp.text()


@pytest.mark.parametrize(("host", "path"), [
    ("matrix.example.org", "/.well-known/matrix/client"),
    ("matrix.example.org", "/.well-known/matrix/server"),
    ("example.org", "/.well-known/matrix/client"),
    ("example.org", "/.well-known/matrix/server"),
    ("matrix.example.org", "/health"),
    ("matrix.example.org", "/_matrix/client/v3/admin/whois/@nobody:localhost"),
])
async def test_moot_answers_through_nginx_as_it_answers_directly(
    deployment: Deployment, host: str, path: str
) -> None:
    """nginx passes these on to Moot (its own 404 would be an HTML page, not Moot's JSON).
    Moot is asked directly from 127.0.0.1, a trusted proxy, as nginx asks it."""
    through = await answer(deployment.session, deployment.nginx.https + path, host)
    async with aiohttp.ClientSession() as as_nginx:
        assert through == await answer(as_nginx, deployment.moot.url + path, host)


async def address_of(api: MatrixApi, user: User) -> str:
    """The last-seen address Moot recorded for the device `user` logged in with."""
    devices = (await api.ok("GET", "devices", token=user.token))["devices"]
    (device,) = [d for d in devices if d["device_id"] == user.device_id]
    return str(device["last_seen_ip"])


async def logged_in(api: MatrixApi, user: User, headers: dict[str, str]) -> User:
    body = await api.ok("POST", "login", headers=headers, json={
        "type": "m.login.password", "password": user.password,
        "identifier": {"type": "m.id.user", "user": user.user_id}})
    return User(body["user_id"], body["access_token"], body["device_id"], user.password)


async def test_moot_records_the_client_address_nginx_forwards(deployment: Deployment) -> None:
    api = deployment.through_nginx
    alice = await api.register("alice")
    assert await address_of(api, await logged_in(api, alice, {})) == CLIENT_ADDRESS
    # A client that names another address: nginx appends the one it saw, which Moot takes.
    spoofed = await logged_in(api, alice, {"X-Forwarded-For": "203.0.113.9"})
    assert await address_of(api, spoofed) == CLIENT_ADDRESS


async def test_a_forwarded_address_from_an_untrusted_peer_is_ignored(
    deployment: Deployment,
) -> None:
    """Straight to Moot from 127.0.0.5, which is not a trusted proxy."""
    api = deployment.straight_to_moot
    alice = await api.register("alice")
    spoofed = await logged_in(api, alice, {"X-Forwarded-For": "203.0.113.9"})
    assert await address_of(api, spoofed) == CLIENT_ADDRESS


@pytest.mark.parametrize("name", ["nginx.conf", "nginx-workers.conf"])
def test_the_file_passes_nginx_t_inside_debians_own_config(name: str, tmp_path: Path) -> None:
    """Installed as the README says, beside the package's http block and default site."""
    binary = nginx_binary()
    if not (DEBIAN / "nginx.conf").exists():
        print(f"SKIPPED: no {DEBIAN}/nginx.conf (Debian's nginx package)")
        pytest.skip("Debian's nginx configuration is not installed")
    etc = tmp_path / "etc"
    shutil.copytree(DEBIAN, etc)
    write_tls_certificate(etc / "cert.pem", etc / "key.pem", "matrix.example.org")
    shipped = (CHECKOUT / "deploy" / name).read_text()
    unchanged = {port: int(port) for port in (CLIENT, FEDERATION, WORKER_1, WORKER_2)
                 if f"127.0.0.1:{port};" in shipped}
    (etc / "conf.d" / "moot.conf").write_text(localized(
        shipped, OutsidePorts.free(), unchanged, etc / "cert.pem", etc / "key.pem"))
    main = (DEBIAN / "nginx.conf").read_text().replace(str(DEBIAN) + "/", f"{etc}/")
    (etc / "nginx.conf").write_text(re.sub(r"^pid .*$", f"pid {tmp_path}/nginx.pid;", main,
                                           flags=re.MULTILINE))
    result = subprocess.run(
        [binary, "-t", "-c", str(etc / "nginx.conf"), "-e", str(tmp_path / "error.log")],
        capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr


async def test_delegation_and_health_through_nginx(
    make_homeserver: MakeServer, tmp_path: Path
) -> None:
    """With well_known.server set, both 443 blocks hand out the delegation; /health is 200."""
    delegated = "matrix.example.org:443"
    moot = await make_homeserver({**TRUSTED_LOOPBACK, "well_known.server": delegated})
    upstreams = {CLIENT: moot.hs.ports["client"], FEDERATION: moot.hs.ports["federation"]}
    async with (
        nginx_in_front(nginx_binary(), SHIPPED, tmp_path / "nginx", upstreams) as nginx,
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=False)) as session,
    ):
        for host in ("example.org", "matrix.example.org"):
            async with session.get(
                nginx.https + "/.well-known/matrix/server", headers={"Host": host}
            ) as resp:
                assert (resp.status, await resp.json()) == (200, {"m.server": delegated})
        async with session.get(nginx.https + "/health") as resp:
            assert (resp.status, await resp.text()) == (200, "OK")

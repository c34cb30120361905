"""`/.well-known/matrix/server` and `/.well-known/matrix/client` on the client listener
(`well_known.*`, issue 19), with the CORS headers browsers need, and the `well_known` of login
responses, which says the same as the file whenever it says anything."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import aiohttp
import pytest

from tests.auth_flows import password_login
from tests.helpers import MatrixApi
from tests.loopback_clients import client_at

if TYPE_CHECKING:
    from tests.conftest import MakeServer, RunningServer

pytestmark = pytest.mark.usefixtures("no_server_errors")

SERVER_FILE = "/.well-known/matrix/server"
CLIENT_FILE = "/.well-known/matrix/client"
CLIENT_DISCOVERY = {
    "m.homeserver": {"base_url": "https://matrix.example.org"},
    "m.identity_server": {"base_url": "https://id.example.org"},
    "org.example.custom": {"list": [1, 2.5, True, None]},
}


async def fetch(
    server: RunningServer, path: str, headers: dict[str, str] | None = None,
    method: str = "GET", local: str = "127.0.0.1",
) -> tuple[int, Any, Any]:
    """Status, JSON body and headers of one request from loopback address `local`."""
    connector = aiohttp.TCPConnector(local_addr=(local, 0))
    async with aiohttp.ClientSession(connector=connector) as session, session.request(
        method, server.url + path, headers=headers
    ) as response:
        body = await response.json(content_type=None) if method == "GET" else None
        return response.status, body, response.headers


def assert_cors(headers: Any) -> None:
    assert headers["Access-Control-Allow-Origin"] == "*"
    assert "GET" in headers["Access-Control-Allow-Methods"]
    assert "Authorization" in headers["Access-Control-Allow-Headers"]


async def login_well_known(server: RunningServer) -> Any:
    async with aiohttp.ClientSession() as session:
        api = MatrixApi(server.url, session)
        user = await api.register("wendy")
        body = await api.ok("POST", "login", json=password_login(user.user_id))
    return body.get("well_known")


async def test_delegation_is_served_with_cors(make_homeserver: MakeServer) -> None:
    server = await make_homeserver({"well_known.server": "matrix.example.org:443"})
    status, body, headers = await fetch(server, SERVER_FILE)
    assert (status, body) == (200, {"m.server": "matrix.example.org:443"})
    assert headers["Content-Type"].startswith("application/json")
    assert_cors(headers)
    status, _, headers = await fetch(server, SERVER_FILE, method="OPTIONS")
    assert status == 200
    assert_cors(headers)


async def test_no_delegation_is_a_404(make_homeserver: MakeServer) -> None:
    server = await make_homeserver()
    status, body, headers = await fetch(server, SERVER_FILE)
    assert (status, body["errcode"]) == (404, "M_NOT_FOUND")
    assert_cors(headers)


async def test_the_configured_client_file_is_served_as_is_and_given_at_login(
    make_homeserver: MakeServer,
) -> None:
    server = await make_homeserver({
        "well_known.client": CLIENT_DISCOVERY,
        "server.public_baseurl": "https://ignored.example.org/",
    })
    status, body, headers = await fetch(server, CLIENT_FILE)
    assert (status, body) == (200, CLIENT_DISCOVERY)
    assert_cors(headers)
    assert await login_well_known(server) == CLIENT_DISCOVERY


async def test_the_client_file_falls_back_to_the_public_base_url(
    make_homeserver: MakeServer,
) -> None:
    server = await make_homeserver({"server.public_baseurl": "https://matrix.example.org/"})
    expected = {"m.homeserver": {"base_url": "https://matrix.example.org"}}
    status, body, _ = await fetch(server, CLIENT_FILE, {"Host": "elsewhere.example"})
    assert (status, body) == (200, expected)
    assert await login_well_known(server) == expected


async def test_unconfigured_the_client_file_names_what_the_proxy_was_asked(
    make_homeserver: MakeServer,
) -> None:
    """Through nginx (X-Forwarded-Proto $scheme, Host $host) the base URL is the one the client
    used, never the proxy's hop to us; the scheme header of an untrusted peer is ignored. A
    guess is never handed to clients at login."""
    server = await make_homeserver({"http.trusted_proxies": ["127.0.0.2"]})
    proxied = {"Host": "matrix.example.org", "X-Forwarded-Proto": "https"}
    status, body, _ = await fetch(server, CLIENT_FILE, proxied, local="127.0.0.2")
    assert (status, body) == (200, {"m.homeserver": {"base_url": "https://matrix.example.org"}})
    status, body, _ = await fetch(server, CLIENT_FILE, proxied, local="127.0.0.1")
    assert (status, body) == (200, {"m.homeserver": {"base_url": "http://matrix.example.org"}})
    status, body, _ = await fetch(server, CLIENT_FILE, local="127.0.0.1")
    port = server.hs.ports["client"]
    assert (status, body) == (200, {"m.homeserver": {"base_url": f"http://127.0.0.1:{port}"}})
    status, body, _ = await fetch(server, CLIENT_FILE, {"Host": "bad host/"}, local="127.0.0.2")
    assert (status, body["errcode"]) == (404, "M_NOT_FOUND")
    assert await login_well_known(server) is None


async def test_the_files_are_not_on_the_federation_listener(make_homeserver: MakeServer) -> None:
    """Discovery is done against the client listener (where the proxy on 443 sends it), as
    Synapse serves it."""
    server = await make_homeserver({"well_known.server": "matrix.example.org:443"})
    url = f"https://127.0.0.1:{server.hs.ports['federation']}{SERVER_FILE}"
    async with aiohttp.ClientSession() as session, session.get(url, ssl=False) as response:
        assert response.status == 404


async def test_by_default_nginx_on_the_same_machine_is_trusted(
    make_homeserver: MakeServer,
) -> None:
    server = await make_homeserver()
    async with client_at(server, "127.0.0.1") as proxy:
        status, body = await proxy.request(
            "GET", CLIENT_FILE, headers={"Host": "chat.example.net", "X-Forwarded-Proto": "https"}
        )
    assert (status, body) == (200, {"m.homeserver": {"base_url": "https://chat.example.net"}})

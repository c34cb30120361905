"""HTTP to push gateways, under the address policy: the URL is the user's choice.

A pusher's `data.url` is any URL a user typed, so without a check any user could make this
server POST to its own loopback, the cloud metadata service or the office network
(server-side request forgery). The gateway client is bound to `push.allow_private_addresses`
through the same :class:`~homeserver.services.checked_resolver.CheckedResolver` URL previews
use: every address a name resolves to is checked and the connection is pinned to a checked
one. `check_url` is the earlier, friendlier refusal at `/pushers/set`; the check at delivery
is the one that holds (DNS answers change).

Plain `http` is accepted as well as `https`: Sygnal serves plain HTTP behind its operator's
proxy, and the spec's HTTPS wording is advice to clients. No redirects are followed, no
cookies kept, no proxy from the environment used.
"""

from __future__ import annotations

import json
from typing import Any

import aiohttp
from yarl import URL

from homeserver.protocol.addresses import AddressPolicy, numeric_ipv4
from homeserver.services.checked_resolver import AddressRefused, CheckedResolver, check_literal
from homeserver.services.host_resolver import ResolveFailed, SystemResolver
from homeserver.services.http_bodies import BodyTooLarge, read_bounded

DNS_TIMEOUT_S = 5.0
REQUEST_TIMEOUT_S = 20.0
CONNECT_TIMEOUT_S = 5.0
MAX_ANSWER_BYTES = 64 * 1024  # a `rejected` list of a few pushkeys
USER_AGENT = "Moot push (Matrix homeserver)"


class GatewayFailed(Exception):
    """The gateway could not be reached, or did not accept the notification."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status  # the HTTP status it answered, if it answered


class PushGatewayClient:
    """One pooled HTTP client for every push gateway."""

    def __init__(self, policy: AddressPolicy) -> None:
        self.policy = policy
        self._session: aiohttp.ClientSession | None = None
        self._lookup = SystemResolver(timeout_s=DNS_TIMEOUT_S)

    def _get_session(self) -> aiohttp.ClientSession:
        # Made on first use, inside the running loop that will also close it.
        if self._session is None:
            connector = aiohttp.TCPConnector(
                resolver=CheckedResolver(self.policy, self._lookup), use_dns_cache=False,
                limit=100, limit_per_host=10,
            )
            self._session = aiohttp.ClientSession(
                connector=connector, cookie_jar=aiohttp.DummyCookieJar(), trust_env=False,
                timeout=aiohttp.ClientTimeout(
                    total=REQUEST_TIMEOUT_S, sock_connect=CONNECT_TIMEOUT_S
                ),
                headers={"User-Agent": USER_AGENT},
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
        self._lookup.close()

    async def check_url(self, url: str) -> None:
        """AddressRefused if the URL's host is a forbidden address, or a name that resolves
        only to forbidden addresses. A name that does not resolve now is accepted: it may
        resolve later, and delivery checks every address it connects to anyway."""
        parsed = URL(url)
        host = parsed.raw_host or ""
        try:
            numeric = numeric_ipv4(host)
        except ValueError:
            raise AddressRefused(f"{host} is not an address") from None
        check_literal(self.policy, parsed if numeric is None else parsed.with_host(str(numeric)))
        try:
            await CheckedResolver(self.policy, self._lookup).resolve(host, parsed.port or 0)
        except ResolveFailed:
            return

    async def notify(self, url: str, body: dict[str, Any]) -> Any:
        """POST the notification; the gateway's JSON answer (None if it is not JSON).
        AddressRefused for a forbidden address, GatewayFailed for everything else."""
        target = URL(url)
        check_literal(self.policy, target)
        try:
            async with self._get_session().post(
                target, json=body, allow_redirects=False,
            ) as resp:
                answer = await read_bounded(resp, MAX_ANSWER_BYTES)
                if resp.status != 200:
                    raise GatewayFailed(f"{target.host} answered {resp.status}", resp.status)
        except (AddressRefused, GatewayFailed):
            raise
        except (ResolveFailed, BodyTooLarge) as e:
            raise GatewayFailed(str(e)) from None
        except (aiohttp.ClientError, TimeoutError, ValueError) as e:
            raise GatewayFailed(f"{target.host}: {type(e).__name__}: {e}") from None
        try:
            return json.loads(answer)
        except ValueError:
            return None

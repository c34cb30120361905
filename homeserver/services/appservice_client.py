"""Requests from this server to application services (application-service-api "Homeserver ->
Application Service API"): transactions, user and alias queries, pings.

Every request carries `Authorization: Bearer <hs_token>`, as the spec has required since v1.4.
The legacy `access_token` query parameter is not sent: the spec says to send it only when
supporting appservices written for older versions, and it would put the token in their access
logs. Appservice URLs come from files the operator wrote, so loopback and private addresses are
allowed (a bridge usually runs beside the server). Every request has a bounded timeout.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.parse
from dataclasses import dataclass

import aiohttp

from homeserver.protocol.appservice import Registration

APP_PREFIX = "/_matrix/app/v1"
# How much of an appservice's error body a ping reports back (for debugging, not storage).
_MAX_BODY_CHARS = 4096


class AppServiceError(Exception):
    """A request to an appservice failed: no answer (`status` None) or a non-2xx one."""

    def __init__(self, reason: str, status: int | None = None, body: str = "") -> None:
        super().__init__(reason)
        self.status = status
        self.body = body


class AppServiceTimeout(AppServiceError):
    """The appservice did not answer within the timeout."""


@dataclass(frozen=True, slots=True)
class PingResult:
    duration_ms: int


class AppServiceClient:
    """One HTTP session for every appservice. The timeouts are attributes so that an
    operator's need (or a test's) can change them."""

    def __init__(
        self, *, transaction_timeout_s: float = 30.0, query_timeout_s: float = 10.0
    ) -> None:
        self.transaction_timeout_s = transaction_timeout_s
        self.query_timeout_s = query_timeout_s
        self._session: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def put_transaction(self, registration: Registration, txn_id: int, body: str) -> None:
        """PUT one transaction; returns once the appservice answered 2xx."""
        path = f"/transactions/{txn_id}"
        await self._request(registration, "PUT", path, body, self.transaction_timeout_s)

    async def query_user(self, registration: Registration, user_id: str) -> bool:
        """Whether the appservice says the user exists (it created it if so): only the
        status is read."""
        return await self._query(registration, f"/users/{_segment(user_id)}")

    async def query_alias(self, registration: Registration, alias: str) -> bool:
        """Whether the appservice says the alias exists (it created it if so)."""
        return await self._query(registration, f"/rooms/{_segment(alias)}")

    async def ping(self, registration: Registration, transaction_id: str | None) -> PingResult:
        """POST /ping and time it; AppServiceError (or AppServiceTimeout) on failure."""
        body = json.dumps({} if transaction_id is None else {"transaction_id": transaction_id})
        started = time.monotonic()
        await self._request(registration, "POST", "/ping", body, self.query_timeout_s)
        return PingResult(round((time.monotonic() - started) * 1000))

    async def _query(self, registration: Registration, path: str) -> bool:
        try:
            await self._request(registration, "GET", path, None, self.query_timeout_s)
        except AppServiceError:
            return False
        return True

    async def _request(
        self, registration: Registration, method: str, path: str, body: str | None,
        timeout_s: float,
    ) -> None:
        if registration.url is None:
            raise AppServiceError(f"appservice {registration.id} has no URL")
        url = registration.url.rstrip("/") + APP_PREFIX + path
        headers = {"Authorization": f"Bearer {registration.hs_token}"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        try:
            async with asyncio.timeout(timeout_s):
                async with self.session().request(
                    method, url, data=body, headers=headers, allow_redirects=False
                ) as response:
                    text = await response.text(errors="replace")
        except TimeoutError:
            raise AppServiceTimeout(f"no answer within {timeout_s} s") from None
        except (aiohttp.ClientError, OSError) as e:
            raise AppServiceError(str(e) or type(e).__name__) from None
        if not 200 <= response.status < 300:
            raise AppServiceError(
                f"answered {response.status}", response.status, text[:_MAX_BODY_CHARS]
            )

    def session(self) -> aiohttp.ClientSession:
        """The one session, opened at first use (also for the third-party lookups)."""
        if self._session is None:
            self._session = aiohttp.ClientSession()
        return self._session


def _segment(value: str) -> str:
    """A path segment: every reserved character escaped (an alias holds '#' and ':')."""
    return urllib.parse.quote(value, safe="")

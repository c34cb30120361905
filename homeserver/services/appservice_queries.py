"""Asking application services about users and aliases they may own, and pinging them
(application-service-api "Querying" and "Pinging").

When a user ID of this server that no account holds is looked up (a profile, an invite, a
join) or an alias of this server that the directory lacks is resolved, the appservices whose
namespaces cover it are asked, one after the other, until one says it exists: only the status
of the answer counts (200: the appservice has created it through the Client-Server API by the
time it answers); the caller then reads its own tables again. Each question has the client's
bounded query timeout; a timeout or an error counts as "no".
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from homeserver.errors import MatrixError, forbidden
from homeserver.protocol.appservice import (
    Registration,
    is_interested_in_alias,
    is_interested_in_user,
)
from homeserver.services.appservice_client import (
    AppServiceClient,
    AppServiceError,
    AppServiceTimeout,
)


class AppServiceQueries:
    def __init__(
        self, registrations: Sequence[Registration], client: AppServiceClient,
        answered_ping: Callable[[str], None],
    ) -> None:
        self.registrations = tuple(registrations)
        self.client = client
        self.answered_ping = answered_ping  # the sender ends the appservice's backoff

    async def user_exists(self, user_id: str) -> bool:
        """Whether an appservice with `user_id` in a user namespace says it exists now."""
        return await self._ask(
            lambda r: is_interested_in_user(r, user_id),
            lambda r: self.client.query_user(r, user_id),
        )

    async def alias_exists(self, alias: str) -> bool:
        """Whether an appservice with `alias` in an alias namespace says it exists now."""
        return await self._ask(
            lambda r: is_interested_in_alias(r, alias),
            lambda r: self.client.query_alias(r, alias),
        )

    async def _ask(
        self, covers: Callable[[Registration], bool],
        query: Callable[[Registration], Awaitable[bool]],
    ) -> bool:
        """Ask the covering appservices in turn until one says yes."""
        for registration in self.registrations:
            if registration.url is not None and covers(registration) and await query(registration):
                return True
        return False

    async def ping(
        self, caller: Registration, appservice_id: str, transaction_id: str | None
    ) -> dict[str, Any]:
        """`POST /appservice/{appserviceId}/ping` by `caller` (the appservice whose as_token
        authenticated the request): {duration_ms}, or the spec's errors."""
        if caller.id != appservice_id:
            raise forbidden("Provided access token is not the appservice's as_token")
        if caller.url is None:
            raise MatrixError(400, "M_URL_NOT_SET", "Application service doesn't have a URL")
        try:
            result = await self.client.ping(caller, transaction_id)
        except AppServiceTimeout:
            raise MatrixError(
                504, "M_CONNECTION_TIMEOUT", "Connection to application service timed out"
            ) from None
        except AppServiceError as e:
            if e.status is None:
                raise MatrixError(
                    502, "M_CONNECTION_FAILED", f"Connection to application service failed: {e}"
                ) from None
            error = MatrixError(502, "M_BAD_STATUS", f"Ping returned status {e.status}")
            error.extra.update(status=e.status, body=e.body)  # `status` is also the HTTP one's name
            raise error from None
        self.answered_ping(caller.id)
        return {"duration_ms": result.duration_ms}

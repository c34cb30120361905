"""Third-party network lookups (`/thirdparty/*`), answered by the application services that
bridge the networks.

Which services are asked: for a protocol, those whose registration lists it in `protocols`; for
a reverse lookup by Matrix ID (`/thirdparty/location?alias=`, `/thirdparty/user?userid=`), those
that list any protocol and hold the alias or user in their namespaces. A service without a
`url` is never asked. All are asked at once, each for at most `timeout_s` seconds and
`MAX_ANSWER_BYTES` bytes; one that is down, slow, refuses or answers something malformed is left
out of the answer and logged, so that one broken bridge never breaks the lookup for the others.
No redirect is followed: the request carries the hs_token, which goes to the registered URL only.
How the answers merge is in homeserver/protocol/third_party_networks.py.

Nothing is cached: clients ask for the protocols once per session, and a bridge that changes its
networks is seen at once.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import aiohttp

from homeserver.errors import not_found
from homeserver.protocol.appservice import (
    Registration,
    is_interested_in_alias,
    is_interested_in_user,
)
from homeserver.protocol.third_party_networks import (
    ENTITY_ID_FIELD,
    EntityKind,
    merge_descriptions,
    merge_entities,
    protocol_description,
)
from homeserver.services.appservice_client import AppServiceClient
from homeserver.services.appservices import AppServices
from homeserver.services.http_bodies import BodyTooLarge, read_bounded

log = logging.getLogger(__name__)

# A user is waiting for the answer (the protocol picker, a bridge's user search): a service
# that has not answered by then is left out rather than waited for.
LOOKUP_TIMEOUT_S = 5.0
MAX_ANSWER_BYTES = 1 << 20
APP_PATH = "/_matrix/app/v1/thirdparty"


@dataclass(frozen=True, slots=True)
class _Question:
    """One GET to one service: the path under APP_PATH and its query."""

    service: Registration
    path: str
    query: Mapping[str, str]


class ThirdPartyLookups:
    def __init__(
        self, appservices: AppServices, client: AppServiceClient,
        timeout_s: float = LOOKUP_TIMEOUT_S,
    ) -> None:
        self.appservices = appservices
        self.client = client
        self.timeout_s = timeout_s

    def _bridging(self, protocol: str) -> list[Registration]:
        return [s for s in self.appservices if s.url is not None and protocol in s.protocols]

    async def protocols(self) -> dict[str, Any]:
        """Every protocol some service describes, by name (spec GET /thirdparty/protocols)."""
        names = list(dict.fromkeys(p for s in self.appservices for p in s.protocols))
        described = await asyncio.gather(*(self._description(name) for name in names))
        return {name: d for name, d in zip(names, described, strict=True) if d is not None}

    async def protocol(self, name: str) -> dict[str, Any]:
        """One protocol (spec GET /thirdparty/protocol/{protocol}); 404 when no service
        bridging it describes it."""
        description = await self._description(name)
        if description is None:
            raise not_found(f"No application service here describes the protocol {name!r}")
        return description

    async def _description(self, protocol: str) -> dict[str, Any] | None:
        services = self._bridging(protocol)
        path = f"/protocol/{quote(protocol, safe='')}"
        answers = await self._ask_all([_Question(s, path, {}) for s in services])
        return merge_descriptions(
            protocol_description(s.id, answer)
            for s, answer in zip(services, answers, strict=True)
        )

    async def find(
        self, kind: EntityKind, protocol: str, fields: Mapping[str, str]
    ) -> list[dict[str, Any]]:
        """Locations or users of a protocol matching the client's `fields`; 404 when no
        service bridges the protocol."""
        services = self._bridging(protocol)
        if not services:
            raise not_found(f"No application service here bridges the protocol {protocol!r}")
        path = f"/{kind}/{quote(protocol, safe='')}"
        answers = await self._ask_all([_Question(s, path, fields) for s in services])
        return merge_entities(kind, answers)

    async def find_by_matrix_id(self, kind: EntityKind, matrix_id: str) -> list[dict[str, Any]]:
        """The third-party locations of a room alias, or users of a Matrix user ID."""
        interested = is_interested_in_alias if kind == "location" else is_interested_in_user
        query = {ENTITY_ID_FIELD[kind]: matrix_id}
        questions = [
            _Question(s, f"/{kind}", query) for s in self.appservices
            if s.url is not None and s.protocols and interested(s, matrix_id)
        ]
        return merge_entities(kind, await self._ask_all(questions))

    async def _ask_all(self, questions: Sequence[_Question]) -> list[object]:
        """Each question's decoded answer (None for none), in the order asked."""
        if not questions:
            return []
        timeout = aiohttp.ClientTimeout(total=self.timeout_s)
        session = self.client.session()
        return list(await asyncio.gather(*(_ask(session, timeout, q) for q in questions)))


async def _ask(
    session: aiohttp.ClientSession, limit: aiohttp.ClientTimeout, question: _Question
) -> object:
    service = question.service
    assert service.url is not None  # services without a URL are never asked
    url = service.url.rstrip("/") + APP_PATH + question.path
    headers = {"Authorization": f"Bearer {service.hs_token}"}
    try:
        async with session.get(
            url, params=dict(question.query), headers=headers, allow_redirects=False,
            timeout=limit,
        ) as resp:
            if resp.status != 200:
                log.warning("appservice %s answered %s to %s", service.id, resp.status, url)
                return None
            body = await read_bounded(resp, MAX_ANSWER_BYTES)
        return json.loads(body)
    except (aiohttp.ClientError, TimeoutError, BodyTooLarge, ValueError) as e:
        log.warning("appservice %s gave no usable answer to %s: %r", service.id, url, e)
        return None

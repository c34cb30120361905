"""The keyring: other servers' signing keys, fetched, checked and cached in PostgreSQL.

Answers one question - "the key K of server S, valid at time T" - for request authentication
now and for event signatures later (server-server-api.md "Retrieving server keys").

Theory of operation:

- A stored key answers if its ``valid_until_ts`` is after T. Keys the server lists as old
  (``old_verify_keys``) answer for events signed before their ``expired_ts``, never for
  requests. Stored keys are kept in memory once read (the signatures of every received PDU
  ask for them); storing a server's keys forgets the ones kept.
- Otherwise the server is asked (`GET /_matrix/key/v2/server`). When it cannot be reached or
  its answer fails the checks, each configured notary is asked in turn
  (`POST /_matrix/key/v2/query`); a notary's answer counts only with the server's own valid
  self-signature *and* a valid signature of the notary, whose key is fetched from the notary
  itself. Whatever fails a check is logged and dropped: nothing unchecked is ever stored
  (:mod:`federation.key_response` holds the checks).
- Lookups of one server share one fetch; a server is fetched at most once per
  ``refetch_interval_s``, so requests signed with made-up key IDs cannot make us hammer it.
- For request authentication, servers we hold no keys of are fetched at most
  ``unknown_fetches_per_minute`` times a minute in all: anyone can sign requests as a fresh
  made-up origin, and each would otherwise cost a discovery, a DNS lookup and a connection
  attempt. Event signatures are not budgeted: joining a room may need the keys of hundreds of
  servers at once, and events arrive from servers we asked or whose requests authenticated.
  The per-server attempt times and errors are kept for the ``MAX_TRACKED_SERVERS`` most
  recently seen servers only.
- Fetching the key of a notary, and fetching on behalf of the notary API, go to that server
  only (never through notaries), so no fetch ever waits on another and two servers that are
  each other's notary cannot deadlock.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any, Protocol

from federation.bounded import LruDict, WindowBudget
from federation.key_response import (
    CheckedKeyResponse,
    KeyResponseError,
    check_key_response,
    check_notary_signature,
    decode_key,
)
from federation.transport import FederationError
from homeserver.protocol.canonical_json import decode_json_strict, encode_canonical_json
from homeserver.protocol.signing import VerifyKeyLike
from homeserver.services.clock import Clock
from storage import server_keys as store
from storage.database import Database

log = logging.getLogger(__name__)

KEY_PATH = "/_matrix/key/v2/server"
QUERY_PATH = "/_matrix/key/v2/query"
DEFAULT_REFETCH_INTERVAL_S = 60.0
DEFAULT_UNKNOWN_FETCHES_PER_MINUTE = 60
MAX_TRACKED_SERVERS = 10_000


class KeyLookupError(Exception):
    """No trustworthy key answers the question (unknown, expired, or unreachable server)."""


class KeyClient(Protocol):
    """What the keyring needs of the federation client."""

    async def get_json(self, destination: str, path: str) -> Any: ...

    async def post_json(self, destination: str, path: str, content: Any) -> Any: ...


def _usable(key: store.StoredVerifyKey | None, valid_at_ts: int, for_requests: bool) -> bool:
    if key is None or key.valid_until_ts <= valid_at_ts:
        return False
    return not (for_requests and key.expired_ts is not None)


class Keyring:
    def __init__(
        self, db: Database, client: KeyClient, *, server_name: str, own_key_id: str,
        own_verify_key: VerifyKeyLike, notaries: Sequence[str] = (),
        clock: Clock, refetch_interval_s: float = DEFAULT_REFETCH_INTERVAL_S,
        unknown_fetches_per_minute: int = DEFAULT_UNKNOWN_FETCHES_PER_MINUTE,
    ) -> None:
        self.db = db
        self.client = client
        self.server_name = server_name
        self.own_key_id = own_key_id
        self.own_verify_key = own_verify_key
        self.notaries = [n for n in notaries if n != server_name]
        self._clock = clock
        self.refetch_interval_s = refetch_interval_s
        self._inflight: dict[str, asyncio.Task[None]] = {}
        self._last_attempt: LruDict[str, float] = LruDict(MAX_TRACKED_SERVERS)
        self._last_errors: LruDict[str, str] = LruDict(MAX_TRACKED_SERVERS)
        self._unknown_fetches = WindowBudget(unknown_fetches_per_minute, 60.0, clock)
        self._keys: dict[tuple[str, str], store.StoredVerifyKey] = {}

    async def get_verify_key(
        self, server_name: str, key_id: str, *, valid_at_ts: int | None = None,
        for_requests: bool = False,
    ) -> VerifyKeyLike:
        """The key ``key_id`` of ``server_name`` for a signature made at ``valid_at_ts`` (now
        by default); ``for_requests`` accepts only current keys. Raises KeyLookupError."""
        if server_name == self.server_name:
            if key_id != self.own_key_id:
                raise KeyLookupError(f"this server has no key {key_id}")
            return self.own_verify_key
        valid_at = self._clock.now_ms() if valid_at_ts is None else valid_at_ts
        stored = await self._stored(server_name, key_id)
        if not _usable(stored, valid_at, for_requests):
            if stored is not None and for_requests and stored.expired_ts is not None:
                raise KeyLookupError(f"{key_id} of {server_name} is an old key")
            await self._refresh(server_name, key_id, valid_at, budgeted=for_requests)
            stored = await self._stored(server_name, key_id)
        if stored is None or not _usable(stored, valid_at, for_requests):
            why = self._last_errors.get(server_name)
            state = "unknown" if stored is None else "not valid at that time"
            raise KeyLookupError(
                f"key {key_id} of {server_name} is {state}" + (f" ({why})" if why else "")
            )
        return decode_key(stored.key_id, stored.verify_key)

    async def notary_response(
        self, server_name: str, minimum_valid_until_ts: int
    ) -> dict[str, Any] | None:
        """The newest checked key response of ``server_name`` for the notary API; refreshed
        from the server itself first when the stored one does not last until the minimum.
        The stored response is returned even when stale: notaries hand on what they last
        saw of a server that is down, so that old signatures stay checkable."""
        stored = await self.db.run(lambda c: store.get_key_response(c, server_name))
        if (stored is None or stored.valid_until_ts < minimum_valid_until_ts) and self._may_try(
            server_name
        ):
            await self._fetch(server_name)
            stored = await self.db.run(lambda c: store.get_key_response(c, server_name))
        if stored is None:
            return None
        response = decode_json_strict(stored.response)
        return response if isinstance(response, dict) else None

    # --- fetching -------------------------------------------------------------------------

    async def _stored(self, server_name: str, key_id: str) -> store.StoredVerifyKey | None:
        """The stored key, kept in memory once read: every signature of every received PDU
        asks for it, and only `_store` changes the rows (it forgets the server's keys)."""
        key = self._keys.get((server_name, key_id))
        if key is None:
            key = await self.db.run(lambda c: store.get_verify_key(c, server_name, key_id))
            if key is not None:
                self._keys[(server_name, key_id)] = key
        return key

    def _may_try(self, server_name: str) -> bool:
        """Whether the server may be asked now; if so, the attempt is recorded."""
        last = self._last_attempt.get(server_name)
        now = self._clock.monotonic()
        if last is not None and now - last < self.refetch_interval_s:
            return False
        self._last_attempt.set(server_name, now)
        return True

    def _may_fetch_unknown(self, server_name: str) -> bool:
        """Whether a fetch of ``server_name``, of which we hold no keys, fits the budget."""
        if self._unknown_fetches.take():
            return True
        self._last_errors.set(server_name, "too many key fetches for unknown servers")
        log.warning("not fetching the keys of unknown server %s: over the budget", server_name)
        return False

    async def _refresh(
        self, server_name: str, key_id: str, valid_at: int, *, budgeted: bool
    ) -> None:
        """Fetch the server's keys (origin, then notaries), sharing a fetch in flight;
        ``budgeted``: within the budget for servers we hold no keys of."""
        unknown = budgeted and await self.db.run(
            lambda c: store.get_key_response(c, server_name)
        ) is None
        task = self._inflight.get(server_name)  # read after the await: no fetch is missed
        if task is None:
            if not self._may_try(server_name):
                return
            if unknown and not self._may_fetch_unknown(server_name):
                return
            # Notaries are asked for the key by ID with a minimum validity, both optional in
            # the spec: Synapse fetches from the origin on a cache miss only for a query that
            # names the key, and refuses criteria without the timestamp.
            query = {key_id: {"minimum_valid_until_ts": valid_at}}
            task = asyncio.create_task(self._fetch(server_name, notary_query=query))
            self._inflight[server_name] = task
            task.add_done_callback(lambda _t: self._inflight.pop(server_name, None))
        await asyncio.shield(task)

    async def _fetch(
        self, server_name: str, *, notary_query: dict[str, Any] | None = None
    ) -> None:
        """From the server itself, then, with a ``notary_query``, from each notary."""
        errors: list[str] = []
        try:
            response = await self.client.get_json(server_name, KEY_PATH)
            await self._store(check_key_response(response, server_name, self._clock.now_ms()),
                              server_name)
            self._last_errors.pop(server_name)
            return
        except (FederationError, KeyResponseError) as e:
            errors.append(f"{server_name}: {e}")
        if notary_query is not None:
            for notary in self.notaries:
                if notary == server_name:
                    continue
                try:
                    if await self._fetch_via_notary(server_name, notary, notary_query, errors):
                        self._last_errors.pop(server_name)
                        return
                except (FederationError, KeyResponseError, KeyLookupError) as e:
                    errors.append(f"notary {notary}: {e}")
        self._last_errors.set(server_name, "; ".join(errors))
        log.warning("could not fetch the keys of %s: %s", server_name, "; ".join(errors))

    async def _fetch_via_notary(
        self, server_name: str, notary: str, query: dict[str, Any], errors: list[str]
    ) -> bool:
        body = await self.client.post_json(
            notary, QUERY_PATH, {"server_keys": {server_name: query}}
        )
        entries = body.get("server_keys") if isinstance(body, dict) else None
        if not isinstance(entries, list):
            raise KeyResponseError("the notary's answer has no server_keys list")
        stored = False
        for entry in entries:
            if not isinstance(entry, dict) or entry.get("server_name") != server_name:
                continue
            try:
                checked = check_key_response(entry, server_name, self._clock.now_ms())
                await self._check_notary_signature(entry, notary)
            except (KeyResponseError, KeyLookupError) as e:
                errors.append(f"notary {notary}: {e}")
                continue
            await self._store(checked, notary)
            stored = True
        if not stored and not entries:
            errors.append(f"notary {notary}: has no keys of {server_name}")
        return stored

    async def _check_notary_signature(self, entry: dict[str, Any], notary: str) -> None:
        signatures = entry.get("signatures")
        by_notary = signatures.get(notary) if isinstance(signatures, dict) else None
        if not isinstance(by_notary, dict) or not by_notary:
            raise KeyResponseError(f"the answer is not signed by the notary {notary}")
        problems = []
        for kid in by_notary:
            try:
                check_notary_signature(entry, notary, kid, await self._notary_key(notary, kid))
                return
            except (KeyResponseError, KeyLookupError) as e:
                problems.append(str(e))
        raise KeyResponseError("; ".join(problems))

    async def _notary_key(self, notary: str, key_id: str) -> VerifyKeyLike:
        """The notary's current key, asked of the notary itself (never of other notaries)."""
        stored = await self._stored(notary, key_id)
        if not _usable(stored, self._clock.now_ms(), True) and self._may_try(notary):
            await self._fetch(notary)
            stored = await self._stored(notary, key_id)
        if stored is None or not _usable(stored, self._clock.now_ms(), True):
            raise KeyLookupError(f"no valid key {key_id} of the notary {notary}")
        return decode_key(stored.key_id, stored.verify_key)

    async def _store(self, checked: CheckedKeyResponse, fetched_from: str) -> None:
        now = self._clock.now_ms()
        text = encode_canonical_json(checked.response).decode("utf-8")
        keys = [
            store.NewVerifyKey(k.key_id, k.key_base64, k.valid_until_ts, k.expired_ts)
            for k in checked.keys
        ]

        async def write(conn: Any) -> None:
            newer = await store.upsert_key_response(
                conn, checked.server_name, checked.valid_until_ts, now, fetched_from, text
            )
            await store.upsert_verify_keys(
                conn, checked.server_name, keys, now, fetched_from, overwrite=newer
            )

        await self.db.transaction(write, name="store_server_keys")
        for cached in [k for k in self._keys if k[0] == checked.server_name]:
            del self._keys[cached]
        log.info("stored %d key(s) of %s from %s", len(keys), checked.server_name, fetched_from)


"""Replication between the main process and the workers that share its PostgreSQL.

Theory of operation. The main process writes every stream. Whenever it wakes local /sync
long-polls (`Notifier.on_notify`; writers notify only after their write committed), it also
publishes those users with its current stream token on the `moot_replication` channel; a worker
advances its follower streams to that token and wakes the same users locally. The in-memory
state a worker's /sync reads and the main process changes goes through the same channel, ahead
of the wake-up that follows the change (one queue keeps them in order): cached memberships,
one-time-key counts, access tokens, erased users and redacted or purged events are dropped,
and typing (which lives only in memory) is mirrored. Workers send the main process what their
/sync would write (presence activity) and the access tokens they revoked, on `moot_to_main`.

Positions. A worker serves nothing before it knows the positions: it asks the main process
(`hello`), which answers with its current token and the typing that changed since the worker's
typing position. If no answer comes in time the main process is down, so nothing is in flight
and the positions stored in the database are safe to read. The worker does the same after its
LISTEN connection was lost, then wakes every local long-poll. A client may hold a token from a
process this one has not heard from yet (the NOTIFY is still on its way): its /sync first waits
for those positions (`catch_up`), because answering with older ones would deliver twice.

Messages, JSON of at most `MAX_PAYLOAD_BYTES` (longer lists are split over several):
  main → workers  {"t": token, "u": [user]}  wake (also "epoch": id of the main process's run,
                                             "all": wake everyone, "hello": the nonce answered)
                  {"inv": "memberships" | "key_counts", "k": [user]}
                  {"inv": "tokens", "k": [[user, device or null]]}
                  {"inv": "events", "k": [event_id]}  (redacted or purged: drop the
                                                       cached PDUs)
                  {"inv": "erased", "k": [user]}      (erased or reactivated: read the
                                                       erased users again)
                  {"typing": room, "u": [user], "p": position}
  workers → main  {"presence": [user, state]}, {"inv": "tokens", ...} and
                  {"hello": nonce, "typing": position}
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
from collections.abc import Coroutine
from dataclasses import dataclass, fields
from typing import Any

from homeserver import metrics
from homeserver.config import Config
from homeserver.services.clock import Clock
from homeserver.services.e2e_keys import E2EKeysService
from homeserver.services.ephemeral import TypingService
from homeserver.services.notifier import Notifier
from homeserver.services.presence import PRESENCE_STATES, PresenceService
from homeserver.services.requester import Requester
from homeserver.services.rooms.cache import RoomCache
from homeserver.services.rooms.view import RoomView
from homeserver.services.streams import Streams, StreamToken, load_streams
from homeserver.services.sync import SyncParts, SyncRequest, SyncService
from homeserver.services.token_cache import TokenCache
from storage.database import Database
from storage.notify import Listener, Publisher, chunk_payloads

log = logging.getLogger(__name__)

REPLICATION = "moot_replication"
TO_MAIN = "moot_to_main"
HELLO_TIMEOUT_S = 2.0
CATCH_UP_TIMEOUT_S = 1.0
RESYNC_MIN_INTERVAL_S = 10.0
# Streams whose positions name rows in the database. Typing lives in the main process's
# memory and starts again from its clock when it restarts; a client shown it twice loses
# nothing, so a /sync does not wait for it.
DURABLE_STREAMS = tuple(f.name for f in fields(StreamToken) if f.name != "typing")


@dataclass(slots=True)
class Replicated:
    """What replication reads and invalidates in one process."""

    streams: Streams
    notifier: Notifier
    engine: RoomCache
    e2e_keys: E2EKeysService
    tokens: TokenCache
    typing: TypingService
    presence: PresenceService


class _Endpoint:
    """One process's publisher and listener, and the message plumbing both roles share."""

    def __init__(self, dsn: str, state: Replicated, listen_to: str) -> None:
        self.state = state
        self.publisher = Publisher(dsn)
        self.listener = Listener(dsn, [listen_to], self._receive, self._on_connect)
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        await self.publisher.start()
        try:
            await self.listener.start()
        except BaseException:
            await self.publisher.close()
            raise

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await self.listener.close()
        await self.publisher.close()

    def send(self, channel: str, message: dict[str, Any], split: str | None = None) -> None:
        payloads = chunk_payloads(message, split) if split else [_dumps(message)]
        for payload in payloads:
            self.publisher.publish(channel, payload)
        metrics.REPLICATION_MESSAGES.labels("published").inc(len(payloads))

    def _receive(self, channel: str, payload: str) -> None:
        metrics.REPLICATION_MESSAGES.labels("received").inc()
        try:
            message = json.loads(payload)
            if not isinstance(message, dict):
                raise TypeError("not an object")
            self.handle(message)
        except (KeyError, TypeError, ValueError) as e:
            log.warning("ignored a malformed message on %s (%s): %.200s", channel, e, payload)

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def handle(self, message: dict[str, Any]) -> None:
        raise NotImplementedError

    async def _on_connect(self, reconnected: bool) -> None:
        if reconnected:
            metrics.REPLICATION_RECONNECTS.inc()


class MainReplication(_Endpoint):
    """The writer's side: publishes wake-ups and changes, applies what workers send."""

    def __init__(self, dsn: str, state: Replicated, *, serves_sync: bool = True) -> None:
        super().__init__(dsn, state, TO_MAIN)
        self.epoch = secrets.token_hex(8)
        # The users' wake-ups are for workers that serve /sync; a push worker alone needs
        # none, and publishing one per commit is a tenth of a busy writer's time.
        if serves_sync:
            state.notifier.on_notify.append(self._wake)
        state.engine.on_memberships_changed.append(
            lambda user: self.send(REPLICATION, {"inv": "memberships", "k": [user]})
        )
        state.engine.on_event_redacted.append(
            lambda event_id: self.send(REPLICATION, {"inv": "events", "k": [event_id]})
        )
        state.engine.on_erased_changed.append(
            lambda user: self.send(REPLICATION, {"inv": "erased", "k": [user]})
        )
        state.engine.on_events_purged.append(
            lambda event_ids: self.send(REPLICATION, {"inv": "events", "k": event_ids}, "k")
        )
        state.e2e_keys.on_counts_changed.append(
            lambda user: self.send(REPLICATION, {"inv": "key_counts", "k": [user]})
        )
        state.tokens.on_drop.append(
            lambda user, device: self.send(REPLICATION, {"inv": "tokens", "k": [[user, device]]})
        )
        state.typing.on_change.append(self._typing)

    async def start(self) -> None:
        await super().start()
        # Workers may have missed wake-ups of a previous run that died before publishing them.
        self._token_message(epoch=self.epoch, all=True)

    def _token_message(self, **extra: Any) -> None:
        self.send(REPLICATION, {"t": self.state.streams.current().encode(), "u": [], **extra})

    def _wake(self, users: list[str]) -> None:
        self.send(REPLICATION, {"t": self.state.streams.current().encode(), "u": users}, "u")

    def _typing(self, room_id: str, users: list[str], position: int) -> None:
        self.send(REPLICATION, {"typing": room_id, "p": position, "u": users}, "u")

    def handle(self, message: dict[str, Any]) -> None:
        if "presence" in message:
            user_id, state = message["presence"]
            if not isinstance(user_id, str) or state not in PRESENCE_STATES:
                raise ValueError("bad presence")
            self.spawn(self._presence(user_id, state))
        elif message.get("inv") == "tokens":
            for user_id, device_id in message["k"]:
                self.state.tokens.drop(str(user_id), None if device_id is None else str(device_id))
        elif "hello" in message:
            self._answer(str(message["hello"]), int(message.get("typing", 0)))
        else:
            raise KeyError("unknown message")

    def _answer(self, nonce: str, typing_after: int) -> None:
        """A worker (re)connected: the positions, this run's epoch and the typing it missed."""
        self._token_message(epoch=self.epoch)
        for room_id, users, position in self.state.typing.changed_since(typing_after):
            self._typing(room_id, users, position)
        self._token_message(hello=nonce)

    async def _presence(self, user_id: str, state: str) -> None:
        try:
            await self.state.presence.sync_activity(user_id, state)
        except Exception:
            log.exception("presence from a worker for %s failed", user_id)


class WorkerReplication(_Endpoint):
    """A worker's side: follows the main process's positions and applies its changes."""

    def __init__(self, dsn: str, state: Replicated, db: Database, clock: Clock) -> None:
        super().__init__(dsn, state, REPLICATION)
        self.db = db
        self.clock = clock
        self.epoch: str | None = None
        self._hellos: dict[str, asyncio.Future[None]] = {}
        self._advanced: list[asyncio.Future[None]] = []
        self._resync_lock = asyncio.Lock()
        self._last_resync = float("-inf")
        state.presence.forward = lambda user, presence: self.send(
            TO_MAIN, {"presence": [user, presence]}
        )
        state.tokens.on_drop.append(
            lambda user, device: self.send(TO_MAIN, {"inv": "tokens", "k": [[user, device]]})
        )

    async def _on_connect(self, reconnected: bool) -> None:
        await super()._on_connect(reconnected)
        if reconnected:  # changes announced while disconnected were missed
            self.state.engine.forget_memberships()
            self.state.engine.events.clear()
            self.state.engine.forget_erased()
            self.state.e2e_keys.forget_counts()
            self.state.tokens.clear()
        await self.resync()
        if reconnected:
            self.state.notifier.notify_all()  # they may have missed wake-ups meanwhile

    async def resync(self) -> None:
        """Learn the current positions: from the main process, else from the database."""
        loop = asyncio.get_running_loop()
        async with self._resync_lock:
            self._last_resync = self.clock.monotonic()
            nonce = secrets.token_hex(8)
            answered = self._hellos[nonce] = loop.create_future()
            self.send(TO_MAIN, {"hello": nonce, "typing": self.state.streams.typing.current})
            try:
                await asyncio.wait_for(answered, HELLO_TIMEOUT_S)
                metrics.REPLICATION_RESYNCS.labels("main").inc()
            except TimeoutError:
                log.warning(
                    "the main process did not answer within %.0f s; reading stream positions "
                    "from the database", HELLO_TIMEOUT_S,
                )
                stored = await self.db.run(
                    lambda conn: load_streams(conn, self.clock, follower=True)
                )
                self._advance(stored.current())
                metrics.REPLICATION_RESYNCS.labels("database").inc()
            finally:
                self._hellos.pop(nonce, None)

    async def catch_up(self, since: StreamToken) -> None:
        """Wait (briefly) until this process has heard of every position in `since`."""
        deadline = self.clock.monotonic() + CATCH_UP_TIMEOUT_S
        while not self._covers(since):
            remaining = deadline - self.clock.monotonic()
            if remaining <= 0:
                break
            advanced = asyncio.get_running_loop().create_future()
            self._advanced.append(advanced)
            try:
                await asyncio.wait_for(advanced, remaining)
            except TimeoutError:
                break
        since_resync = self.clock.monotonic() - self._last_resync
        if not self._covers(since) and since_resync > RESYNC_MIN_INTERVAL_S:
            # A wake-up went missing (the main process died before publishing it, say).
            await self.resync()

    def _covers(self, since: StreamToken) -> bool:
        current = self.state.streams.current()
        return all(getattr(since, name) <= getattr(current, name) for name in DURABLE_STREAMS)

    def _advance(self, token: StreamToken) -> None:
        self.state.streams.advance_to(token)
        advanced, self._advanced = self._advanced, []
        for fut in advanced:
            if not fut.done():
                fut.set_result(None)

    def handle(self, message: dict[str, Any]) -> None:
        state = self.state
        if "t" in message:
            self._apply_token(message)
        elif "typing" in message:
            state.typing.mirror(
                str(message["typing"]), [str(u) for u in message["u"]], int(message["p"]),
                add=bool(message.get("cont")),
            )
        elif message.get("inv") == "memberships":
            for user_id in message["k"]:
                state.engine.memberships_changed(str(user_id))
        elif message.get("inv") == "erased":
            state.engine.forget_erased()
        elif message.get("inv") == "events":
            for event_id in message["k"]:
                state.engine.events.discard(str(event_id))
        elif message.get("inv") == "key_counts":
            for user_id in message["k"]:
                state.e2e_keys.forget_counts(str(user_id))
        elif message.get("inv") == "tokens":
            for user_id, device_id in message["k"]:
                state.tokens.forget(str(user_id), None if device_id is None else str(device_id))
        else:
            raise KeyError("unknown message")

    def _apply_token(self, message: dict[str, Any]) -> None:
        token = StreamToken.parse(str(message["t"]))
        epoch = message.get("epoch")
        if epoch is not None and epoch != self.epoch:
            if self.epoch is not None:  # the main process restarted and forgot its typists
                self.state.typing.clear_mirror(token.typing)
            self.epoch = str(epoch)
        self._advance(token)
        if message.get("all"):
            self.state.notifier.notify_all()
        else:
            self.state.notifier.notify_users(str(u) for u in message["u"])
        answered = self._hellos.get(str(message.get("hello")))
        if answered is not None and not answered.done():
            answered.set_result(None)


class WorkerSyncService(SyncService):
    """/sync in a worker: first hear of the positions of the client's token (see above)."""

    def __init__(
        self, db: Database, config: Config, engine: RoomView, notifier: Notifier,
        streams: Streams, clock: Clock, *, e2e_keys: E2EKeysService, parts: SyncParts,
        replication: WorkerReplication,
    ) -> None:
        super().__init__(
            db, config, engine, notifier, streams, clock, e2e_keys=e2e_keys, parts=parts
        )
        self.replication = replication

    async def sync(self, requester: Requester, request: SyncRequest) -> dict[str, Any]:
        if request.since is not None:
            await self.replication.catch_up(request.since)
        return await super().sync(requester, request)


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))

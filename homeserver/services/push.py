"""Push rules, notifications and pushers (Client-Server API "Push Notifications").

Theory of operation. A user's rules are their own rows plus their changes to the server-default
rules, merged by the pure `homeserver.protocol.push_rules`. Every change is stored, drops the
user's compiled ruleset from the in-memory cache and republishes the whole ruleset as the
`m.push_rules` global account data event, which /sync delivers.

The room engine calls `on_event` inside the transaction that persists each event, so the
notifications of an event commit with it and count in the same /sync that shows the event (the
spec requires that). It evaluates the rules of every local joined member except the sender (plus
a local invitee), from cached compiled rulesets and the state the engine already holds, and
stages one row per set of actions with the users it notifies (`NotificationGroup`); the engine
writes a batch's rows in one statement, and with them, in one more, a push per http pusher of
each notified user who holds one (`storage/push_deliveries.py`; who holds one is known in
memory, `PusherOwners`, so a batch notifying nobody with a pusher costs nothing more). After
the commit (`committed`) the in-memory unread counts (`UnreadCounts`) take them in and the
push sender (`PushSender`) is woken; a read receipt drops a user's count for the room.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict, defaultdict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

import asyncpg

from homeserver import metrics
from homeserver.errors import MatrixError, forbidden, invalid_param, not_found
from homeserver.protocol import push_rules
from homeserver.protocol.identifiers import server_name_of
from homeserver.protocol.power_levels import user_power_level
from homeserver.protocol.push_rules import CompiledRuleset, EventContext, InvalidPushRule
from homeserver.protocol.relations import THREAD, relation_of, thread_root
from homeserver.protocol.state_keys import CREATE, POWER_LEVELS, StateKey
from homeserver.services.account_data import GLOBAL, AccountDataService
from homeserver.services.checked_resolver import AddressRefused
from homeserver.services.clock import Clock
from homeserver.services.event_views import drop_expired, load_events, serialize_events
from homeserver.services.push_sender import PushSender
from homeserver.services.requester import Requester, device_of
from homeserver.services.rooms.view import RoomView
from homeserver.services.rooms.writes import EventWrites, PersistedEvent
from homeserver.services.unread_counts import UnreadCounts
from storage import push as push_store
from storage import state as state_store
from storage.database import Database
from storage.push import MAIN, NotificationGroup, Pusher
from storage.push_deliveries import HTTP

log = logging.getLogger(__name__)

PUSH_RULES_TYPE = "m.push_rules"
_RULESET_CACHE_SIZE = 50_000
# Each http pusher is one more request per notification to a URL the user chose, and one more
# queue: without a bound, one account could turn every message it gets into thousands of
# requests. Phones and browsers register one or two each; Synapse users rarely exceed a dozen.
MAX_PUSHERS_PER_USER = 100


def _rule_error(e: InvalidPushRule) -> MatrixError:
    return MatrixError(400, e.errcode, str(e))


async def read_ruleset(
    conn: asyncpg.Connection, user_id: str
) -> dict[str, list[dict[str, Any]]]:
    """The user's push ruleset as `GET /pushrules/global/` serves it."""
    own = await push_store.get_user_rules(conn, [user_id])
    changes = await push_store.get_default_changes(conn, [user_id])
    return push_rules.build_ruleset(user_id, own[user_id], changes[user_id])


def check_kind(kind: str) -> str:
    if kind not in push_rules.KINDS:
        raise invalid_param(f"Unknown push rule kind {kind!r}")
    return kind


class PushService:
    def __init__(
        self, db: Database, engine: RoomView, account_data: AccountDataService,
        server_name: str, unread: UnreadCounts, clock: Clock, *, sender: PushSender,
    ) -> None:
        self.clock = clock
        self.sender = sender
        self.db = db
        self.unread = unread
        self.engine = engine
        self.account_data = account_data
        self.server_name = server_name
        self._local_suffix = ":" + server_name
        self._compiled: OrderedDict[str, CompiledRuleset] = OrderedDict()
        self._hits = metrics.CACHE_REQUESTS.child("push_rules", "hit")
        self._misses = metrics.CACHE_REQUESTS.child("push_rules", "miss")
        self._entries = metrics.CACHE_ENTRIES.child("push_rules")
        # Bumped on every change of a user's rules, so a cache fill that raced one is dropped.
        self._epochs: defaultdict[str, int] = defaultdict(int)
        self._user_locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)

    # ---- the rules API ----------------------------------------------------------------------

    async def ruleset(self, user_id: str) -> dict[str, list[dict[str, Any]]]:
        return await self.db.run(lambda conn: read_ruleset(conn, user_id))

    async def get_rule(self, user_id: str, kind: str, rule_id: str) -> dict[str, Any]:
        """The rule as the ruleset shows it, or M_NOT_FOUND."""
        for rule in (await self.ruleset(user_id))[check_kind(kind)]:
            if rule["rule_id"] == rule_id:
                return rule
        raise not_found("The push rule was not found.")

    async def put_rule(
        self, user_id: str, kind: str, rule_id: str, body: dict[str, Any],
        before: str | None, after: str | None,
    ) -> None:
        """Create or update a user rule; `before`/`after` place it next to another user rule."""
        try:
            rule = push_rules.parse_user_rule(check_kind(kind), rule_id, body)
        except InvalidPushRule as e:
            raise _rule_error(e) from None

        async def store(conn: asyncpg.Connection) -> None:
            own = (await push_store.get_user_rules(conn, [user_id]))[user_id]
            ids = [r.rule_id for r in own if r.kind == kind]
            order = _place(ids, rule_id, before, after)
            await push_store.upsert_rule(conn, user_id, rule)
            await push_store.set_priorities(conn, user_id, kind, order)

        await self._change(user_id, store)

    async def delete_rule(self, user_id: str, kind: str, rule_id: str) -> None:
        check_kind(kind)

        async def delete(conn: asyncpg.Connection) -> None:
            if not await push_store.delete_rule(conn, user_id, kind, rule_id):
                if push_rules.is_default_rule_id(kind, rule_id):
                    raise not_found("Server-default push rules cannot be deleted.")
                raise not_found("The push rule was not found.")

        await self._change(user_id, delete)

    async def set_enabled(self, user_id: str, kind: str, rule_id: str, enabled: bool) -> None:
        await self._update(user_id, kind, rule_id, enabled=enabled)

    async def set_actions(self, user_id: str, kind: str, rule_id: str, actions: Any) -> None:
        try:
            checked = push_rules.validate_actions(actions)
        except InvalidPushRule as e:
            raise _rule_error(e) from None
        await self._update(user_id, kind, rule_id, actions=checked)

    async def _update(
        self, user_id: str, kind: str, rule_id: str, *, enabled: bool | None = None,
        actions: list[Any] | None = None,
    ) -> None:
        """Change a user rule, or record the user's change to a server-default rule."""
        check_kind(kind)

        async def update(conn: asyncpg.Connection) -> None:
            if push_rules.is_default_rule_id(kind, rule_id):
                await push_store.upsert_default_change(
                    conn, user_id, kind, rule_id, enabled=enabled, actions=actions
                )
            elif not await push_store.update_rule(
                conn, user_id, kind, rule_id, enabled=enabled, actions=actions
            ):
                raise not_found("The push rule was not found.")

        await self._change(user_id, update)

    async def _change(
        self, user_id: str, fn: Callable[[asyncpg.Connection], Awaitable[None]]
    ) -> None:
        """Store a change (one writer per user), drop the cached ruleset, publish m.push_rules."""
        async def run(conn: asyncpg.Connection) -> dict[str, list[dict[str, Any]]]:
            await fn(conn)
            return await read_ruleset(conn, user_id)

        async with self._user_locks[user_id]:
            try:
                ruleset = await self.db.transaction(run, name="push_rules")
            finally:
                self._epochs[user_id] += 1
                self._compiled.pop(user_id, None)
                self._entries.value = len(self._compiled)
            await self.account_data.set(user_id, GLOBAL, PUSH_RULES_TYPE, {"global": ruleset})

    # ---- evaluation (called by the room engine inside the event's transaction) ---------------

    async def on_event(
        self, conn: asyncpg.Connection, event: PersistedEvent,
        state_before: Mapping[StateKey, Mapping[str, Any]], members: set[str],
        writes: EventWrites,
    ) -> None:
        """Stage a notification row for every local user the event notifies."""
        pdu, room_id = event.pdu, event.stored.room_id
        sender = pdu["sender"]
        recipients = [u for u in members if u != sender and u.endswith(self._local_suffix)]
        invitee = pdu.get("state_key")
        if (
            pdu["type"] == "m.room.member" and pdu["content"].get("membership") == "invite"
            and isinstance(invitee, str) and invitee != sender and self._is_local(invitee)
            and invitee not in members
        ):
            recipients.append(invitee)
        # Those ignoring the sender hear nothing of their messages nor invites (their other
        # state events still reach them, spec "Ignoring Users", and so still notify).
        if "state_key" not in pdu:
            checked = recipients
        elif pdu["type"] == "m.room.member" and invitee in recipients and (
            pdu["content"].get("membership") == "invite"
        ):
            checked = [invitee]
        else:
            checked = []
        if checked:
            lists = await self.account_data.ignore_lists.of(conn, checked)
            recipients = [u for u in recipients if sender not in lists.get(u, ())]
        if not recipients:
            return
        rulesets = await self._rulesets(conn, recipients)
        # Every event's auth types include the power levels and the create event.
        power_levels_event = state_before.get(POWER_LEVELS)
        power_levels = power_levels_event["content"] if power_levels_event else None
        create = state_before.get(CREATE, {})
        version = await self.engine.room_version(conn, room_id)
        names: dict[str, str] = {}
        if any(r.uses_display_name for r in rulesets.values()):
            names = await self._display_names(conn, room_id, recipients)
        ctx = EventContext(
            {**pdu, "event_id": event.event_id}, len(members),
            user_power_level(sender, power_levels, create, version), power_levels,
        )
        # Grouped by actions first: whether they notify is then asked once per group, not
        # once per member (a room's members mostly match the same rule).
        by_actions: dict[str, tuple[push_rules.CompiledRule, list[str]]] = {}
        for user_id, rule in self._evaluate(rulesets, ctx, names, event.event_id).items():
            matched = by_actions.get(rule.actions_json)
            if matched is None:
                matched = by_actions[rule.actions_json] = (rule, [])
            matched[1].append(user_id)
        notifying = [(a, r, u) for a, (r, u) in by_actions.items() if r.notifies]
        if not notifying:
            return
        thread_id = await self._thread_of(conn, pdu["content"])
        ts = self.clock.now_ms()
        groups = [
            NotificationGroup(
                room_id, event.event_id, event.stream_ordering, actions_json, rule.highlight,
                ts, user_ids, thread_id,
            )
            for actions_json, rule, user_ids in notifying
        ]
        writes.notifications.extend(groups)
        for group in groups:
            owners = self.sender.owners.among(group.user_ids)
            if owners:
                writes.pushes_due.append(replace(group, user_ids=owners))

    async def _thread_of(self, conn: asyncpg.Connection, content: dict[str, Any]) -> str:
        """The thread an event's notification counts in (threading.md: per-thread
        notification counts): a thread reply's root; for an edit, reference or other relation
        of a thread reply, that reply's root (as Synapse does); else the main timeline. Only
        an event with a relation other than `m.thread` costs a read (of its parent)."""
        relation = relation_of(content)
        if relation is None:
            return MAIN
        rel_type, parent_id = relation
        if rel_type == THREAD:
            return parent_id
        parent = (await self.engine.get_pdus(conn, [parent_id])).get(parent_id)
        parent_content = parent.get("content") if parent is not None else None
        root = thread_root(parent_content) if isinstance(parent_content, dict) else None
        return root or MAIN

    @staticmethod
    def _evaluate(
        rulesets: dict[str, CompiledRuleset], ctx: EventContext, names: dict[str, str],
        event_id: str,
    ) -> dict[str, push_rules.CompiledRule]:
        """Every recipient's matching rule; if that fails, user by user, so that one user's
        unusable rule does not cost the others their notifications."""
        try:
            return push_rules.evaluate_many(rulesets, ctx, names)
        except Exception:
            log.exception("push rules failed on %s; evaluating user by user", event_id)
        out = {}
        for user_id, ruleset in rulesets.items():
            try:
                rule = push_rules.evaluate_rule(ruleset, ctx, names.get(user_id))
            except Exception:
                log.exception("push rules of %s failed on %s", user_id, event_id)
                continue
            if rule is not None:
                out[user_id] = rule
        return out

    def committed(self, writes: EventWrites) -> None:
        self.unread.notified(writes.notifications)
        self.sender.queued(writes.pushes)
        # A local user's own event reads the room up to it (push.md "Marking notifications
        # as read": "by using the API or by sending an event").
        for new in writes.events:
            stored = new.stored
            if stored.stream_ordering is not None and self._is_local(stored.sender):
                self.unread.read_moved(stored.sender, stored.room_id)

    def _is_local(self, user_id: str) -> bool:
        return server_name_of(user_id) == self.server_name

    async def _rulesets(
        self, conn: asyncpg.Connection, user_ids: Sequence[str]
    ) -> dict[str, CompiledRuleset]:
        """Compiled rulesets from the cache; the missing ones with two queries in all."""
        out: dict[str, CompiledRuleset] = {}
        missing = []
        for user_id in user_ids:
            compiled = self._compiled.get(user_id)
            if compiled is None:
                missing.append(user_id)
            else:
                self._compiled.move_to_end(user_id)
                out[user_id] = compiled
        self._hits.value += len(out)
        if not missing:
            return out
        self._misses.value += len(missing)
        epochs = {u: self._epochs[u] for u in missing}
        own = await push_store.get_user_rules(conn, missing)
        changes = await push_store.get_default_changes(conn, missing)
        for user_id in missing:
            ruleset = push_rules.build_ruleset(user_id, own[user_id], changes[user_id])
            out[user_id] = compiled = push_rules.compile_ruleset(ruleset, user_id)
            if self._epochs[user_id] == epochs[user_id]:
                self._compiled[user_id] = compiled
        while len(self._compiled) > _RULESET_CACHE_SIZE:
            self._compiled.popitem(last=False)
        self._entries.value = len(self._compiled)
        return out

    async def _display_names(
        self, conn: asyncpg.Connection, room_id: str, user_ids: Sequence[str]
    ) -> dict[str, str]:
        """Each user's display name in the room, from their current member event."""
        keys = [("m.room.member", u) for u in user_ids]
        state = await state_store.get_current_state_for_keys(conn, room_id, keys)
        pdus = await self.engine.get_pdus(conn, list(state.values()))
        names = {}
        for (_, user_id), event_id in state.items():
            name = pdus[event_id]["content"].get("displayname")
            if isinstance(name, str) and name:
                names[user_id] = name
        return names

    # ---- notifications ----------------------------------------------------------------------

    async def notifications(
        self, requester: Requester, before: int, limit: int, only_highlight: bool
    ) -> dict[str, Any]:
        """`GET /notifications`: newest first, `next_token` while a full page came back."""

        async def read(conn: asyncpg.Connection) -> dict[str, Any]:
            rows = await push_store.get_notifications(
                conn, requester.user_id, before, only_highlight, limit
            )
            # Notifications of expired events go before the retention sweep deletes them.
            stored = await drop_expired(
                conn, self.engine, await load_events(conn, [r.event_id for r in rows])
            )
            events = await serialize_events(
                conn, self.engine, stored, requester, now=self.clock.now_ms()
            )
            by_id = {e["event_id"]: e for e in events}
            out = []
            for row in rows:
                event = by_id.get(row.event_id)
                if event is None:
                    continue
                event.pop("room_id", None)
                out.append({
                    "actions": row.actions, "event": event, "read": row.read,
                    "room_id": row.room_id, "ts": row.ts,
                })
            body: dict[str, Any] = {"notifications": out}
            if len(rows) == limit:
                body["next_token"] = str(rows[-1].stream_ordering)
            return body

        return await self.db.run(read)

    # ---- pushers ----------------------------------------------------------------------------

    async def pushers(self, user_id: str) -> list[Pusher]:
        return await self.db.run(lambda conn: push_store.get_pushers(conn, user_id))

    async def set_pusher(self, requester: Requester, pusher: Pusher, append: bool) -> None:
        """Create or replace; without `append` the pushkey is taken from any other user. An
        http pusher whose gateway is, or resolves only to, an address deliveries may not go
        to is refused now rather than failing every delivery later."""
        device_id = device_of(requester)
        url = pusher.data.get("url")
        if pusher.kind == "http" and isinstance(url, str):
            try:
                await self.sender.client.check_url(url)
            except AddressRefused as e:
                raise invalid_param(
                    f"'data.url' is not a gateway this server may connect to ({e}); see "
                    "push.allow_private_addresses"
                ) from None

        async def store(conn: asyncpg.Connection) -> list[str]:
            losing = []
            if not append:
                losing = await push_store.delete_other_users_pushers(
                    conn, pusher.app_id, pusher.pushkey, requester.user_id
                )
            others = await push_store.count_other_pushers(
                conn, requester.user_id, pusher.app_id, pusher.pushkey
            )
            if others >= MAX_PUSHERS_PER_USER:
                raise forbidden(
                    f"A user may have at most {MAX_PUSHERS_PER_USER} pushers; delete one first"
                )
            await push_store.upsert_pusher(
                conn, requester.user_id, device_id, pusher, self.clock.now_ms()
            )
            # An upsert of another kind may replace the user's only http pusher.
            return losing if pusher.kind == HTTP else [*losing, requester.user_id]

        await self.sender.owners.write(
            self.db, store, adding=requester.user_id if pusher.kind == HTTP else None
        )

    async def delete_pusher(self, user_id: str, app_id: str, pushkey: str) -> None:
        async def delete(conn: asyncpg.Connection) -> list[str]:
            await push_store.delete_pusher(conn, user_id, app_id, pushkey)
            return [user_id]

        await self.sender.owners.write(self.db, delete)


def _place(ids: list[str], rule_id: str, before: str | None, after: str | None) -> list[str]:
    """The kind's rule IDs, most important first, with `rule_id` placed as asked: next to
    `before` (above it) or `after` (below it); a new rule goes on top, an updated one stays."""
    anchor = before if before is not None else after
    others = [i for i in ids if i != rule_id]
    if anchor is None:
        return ids if rule_id in ids else [rule_id, *others]
    if anchor.startswith("."):
        raise invalid_param("A rule cannot be placed relative to a server-default rule")
    if anchor not in others:
        raise MatrixError(400, "M_UNKNOWN", f"before/after rule not found: {anchor}")
    index = others.index(anchor) + (0 if before is not None else 1)
    return [*others[:index], rule_id, *others[index:]]

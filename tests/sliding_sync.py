"""A small Simplified Sliding Sync client for tests: one connection (a user's device and a
`conn_id`) that keeps its `pos`, and checks every request it sends and every answer it gets
against tests/sliding_sync_schema.py.

Lists are not sticky (as in Synapse): the connection keeps its request body and sends it
whole every time; a test changes `conn.body` between requests as a client would.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterable
from typing import Any

from homeserver import metrics
from tests.helpers import MatrixApi, User
from tests.sliding_sync_schema import validate_error, validate_request, validate_response

PATH = "/_matrix/client/unstable/org.matrix.simplified_msc3575/sync"
FEATURE = "org.matrix.simplified_msc3575"
# A long-poll a test expects to be woken: far longer than the wake deadline, so that a
# response before the deadline can only be the wake-up.
LONG_POLL_MS = 30_000
WAKE_DEADLINE_S = 10.0
# The state Element X asks for in its room list (matrix-rust-sdk's RoomListService defaults);
# its room subscriptions add the pinned events.
ELEMENT_X_STATE = [
    ["m.room.name", ""], ["m.room.encryption", ""], ["m.room.member", "$LAZY"],
    ["m.room.member", "$ME"], ["m.room.topic", ""], ["m.room.avatar", ""],
    ["m.room.canonical_alias", ""], ["m.room.power_levels", ""],
    ["org.matrix.msc3401.call.member", "*"], ["m.room.join_rules", ""],
    ["m.room.tombstone", ""], ["m.room.create", ""],
    ["m.room.history_visibility", ""], ["io.element.functional_members", ""],
    ["m.space.parent", "*"], ["m.space.child", "*"], ["m.beacon_info", "*"],
]
ELEMENT_X_SUBSCRIPTION_STATE = [*ELEMENT_X_STATE, ["m.room.pinned_events", ""]]
KEEP = object()  # `pos=KEEP`: send the connection's own pos


def room_list(
    ranges: Iterable[Iterable[int]] | None = ((0, 19),), timeline_limit: int = 1,
    required_state: Iterable[Iterable[str]] = (), filters: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One list config (`ranges=None` leaves the range out: every matching room)."""
    config: dict[str, Any] = {
        "timeline_limit": timeline_limit,
        "required_state": [list(pair) for pair in required_state],
    }
    if ranges is not None:
        config["ranges"] = [list(r) for r in ranges]
    if filters is not None:
        config["filters"] = filters
    return config


def one_list(**config: Any) -> dict[str, Any]:
    """A request body with one list, "l" (`config` as for `room_list`)."""
    return {"lists": {"l": room_list(**config)}}


def subscription(
    timeline_limit: int = 1, required_state: Iterable[Iterable[str]] = ()
) -> dict[str, Any]:
    return {"timeline_limit": timeline_limit, "required_state": [list(p) for p in required_state]}


async def room_of_two(api: MatrixApi) -> tuple[User, User, str]:
    """alice and bob, both joined to alice's public room "Two"."""
    alice = await api.register("alice")
    bob = await api.register("bob")
    room_id = await api.create_room(alice, preset="public_chat", name="Two")
    await api.join(bob, room_id)
    return alice, bob, room_id


async def post(
    api: MatrixApi, user: User, body: Any, params: dict[str, str] | None = None,
    *, check_request: bool = True,
) -> tuple[int, Any]:
    """One request; the answer is checked against the schema (a 200) or as a Matrix error.
    `check_request=False` is for bad-input tests, which send what no client should."""
    params = params or {}
    if check_request:
        validate_request(body, params)
    status, answer = await api.request("POST", PATH, json=body, token=user.token, params=params)
    assert status < 500, (status, answer)
    if status == 200:
        validate_response(answer)
    else:
        validate_error(answer)
    return status, answer


class Connection:
    """One sliding sync connection: a device (the user's token) and a `conn_id`."""

    def __init__(
        self, api: MatrixApi, user: User, body: dict[str, Any] | None = None,
        conn_id: str | None = None,
    ) -> None:
        self.api = api
        self.user = user
        self.body: dict[str, Any] = body if body is not None else {}
        self.conn_id = conn_id
        self.pos: str | None = None

    def request_body(self) -> dict[str, Any]:
        body = dict(self.body)
        if self.conn_id is not None:
            body["conn_id"] = self.conn_id
        return body

    async def request(
        self, *, pos: Any = KEEP, timeout_ms: int | None = None,
        set_presence: str | None = "offline", body: dict[str, Any] | None = None,
    ) -> tuple[int, Any]:
        """Send one request without touching `self.pos` (`pos=None` sends none;
        `set_presence=None` leaves the parameter out, which marks the user online)."""
        sent_pos = self.pos if pos is KEEP else pos
        params = {} if set_presence is None else {"set_presence": set_presence}
        if sent_pos is not None:
            params["pos"] = sent_pos
        if timeout_ms is not None:
            params["timeout"] = str(timeout_ms)
        return await post(self.api, self.user, body or self.request_body(), params)

    async def sync(self, *, timeout_ms: int | None = None, **kwargs: Any) -> dict[str, Any]:
        """Send one request from `self.pos`; expect a 200 and continue from its `pos`."""
        status, answer = await self.request(timeout_ms=timeout_ms, **kwargs)
        assert status == 200, (status, answer)
        self.pos = answer["pos"]
        result: dict[str, Any] = answer
        return result

    async def restart(self) -> dict[str, Any]:
        """Start the connection over (no `pos`), as a client does after M_UNKNOWN_POS."""
        self.pos = None
        return await self.sync()

    def long_poll(self) -> asyncio.Task[dict[str, Any]]:
        """A request that waits for changes, started as a task: the test makes the change and
        then awaits `woken(task)`."""
        return asyncio.create_task(self.sync(timeout_ms=LONG_POLL_MS))

    async def waiting(self) -> asyncio.Task[dict[str, Any]]:
        """A long-poll that the server, running in this event loop, holds: a change made after
        this returns reaches the client only by waking it."""
        before = long_polls_held()
        poll = self.long_poll()
        await held(poll, before)
        assert not poll.done(), f"the long-poll returned at once: {poll.result()}"
        return poll

    async def expect_unknown_pos(self, pos: Any = KEEP) -> None:
        status, answer = await self.request(pos=pos)
        assert (status, answer["errcode"]) == (400, "M_UNKNOWN_POS"), (status, answer)


async def woken(poll: Awaitable[dict[str, Any]]) -> dict[str, Any]:
    """The answer of a long-poll, which must come before the wake deadline: well before the
    poll's own timeout, so that it can only be the wake-up (the deadline bounds a hang, not a
    speed)."""
    return await asyncio.wait_for(poll, WAKE_DEADLINE_S)


def long_polls_held() -> float:
    """How many long-polls the servers of this process hold (the notifier's gauge)."""
    value: float = metrics.SYNC_LONG_POLLS._value.get()
    return value


async def held(poll: asyncio.Task[Any], before: float) -> None:
    """Until a server running in this event loop holds one more long-poll than `before` (it
    registers before it reads anything), or `poll` ended."""
    while long_polls_held() <= before and not poll.done():  # noqa: ASYNC110
        await asyncio.sleep(0)


# -- reading answers -----------------------------------------------------------------------------


def rooms(answer: dict[str, Any]) -> dict[str, dict[str, Any]]:
    result: dict[str, dict[str, Any]] = answer.get("rooms") or {}
    return result


def count(answer: dict[str, Any], list_name: str) -> int:
    value: int = answer["lists"][list_name]["count"]
    return value


def timeline(room: dict[str, Any]) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = room.get("timeline") or []
    return events


def bodies(room: dict[str, Any]) -> list[str]:
    return [e["content"]["body"] for e in timeline(room) if e["type"] == "m.room.message"]


def state_pairs(room: dict[str, Any]) -> set[tuple[str, str]]:
    return {(e["type"], e["state_key"]) for e in room.get("required_state") or []}


def extension(answer: dict[str, Any], name: str) -> dict[str, Any]:
    result: dict[str, Any] = (answer.get("extensions") or {}).get(name) or {}
    return result


def expanded(room: dict[str, Any]) -> bool:
    """`expanded_timeline` as MSC4186 names it, or Synapse's `unstable_expanded_timeline`."""
    return bool(room.get("expanded_timeline") or room.get("unstable_expanded_timeline"))


def ordered(answer: dict[str, Any]) -> list[str]:
    """The rooms of an answer, most recent first by `bump_stamp` (ties: any order)."""
    return sorted(rooms(answer), key=lambda r: -rooms(answer)[r]["bump_stamp"])

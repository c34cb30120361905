"""Sending and reading room events over HTTP: txn idempotency, state, redaction, size limits,
/messages pagination and filters, /context and /event."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.helpers import MatrixApi, User, validate_response

TEXT = {"msgtype": "m.text", "body": "hi"}


async def messages(api: MatrixApi, user: User, room: str, **params: Any) -> dict[str, Any]:
    """GET /messages, checking the 200 body against the spec's schema."""
    str_params = {k: v if isinstance(v, str) else json.dumps(v) for k, v in params.items()}
    str_params.setdefault("dir", "b")
    status, body = await api.request(
        "GET", f"rooms/{room}/messages", token=user.token, params=str_params
    )
    assert status == 200, body
    validate_response("message_pagination.yaml", "/rooms/{roomId}/messages", "get", 200, body)
    result: dict[str, Any] = body
    return result


def bodies(chunk: list[dict[str, Any]]) -> list[str]:
    return [e["content"]["body"] for e in chunk if e["type"] == "m.room.message"]


async def login(api: MatrixApi, user: User) -> User:
    """A second device of the same user."""
    body = await api.ok("POST", "login", json={
        "type": "m.login.password", "identifier": {"type": "m.id.user", "user": user.user_id},
        "password": user.password,
    })
    return User(body["user_id"], body["access_token"], body["device_id"])


async def send(
    api: MatrixApi, user: User, room: str, txn: str, content: Any = TEXT,
    event_type: str = "m.room.message",
) -> tuple[int, Any]:
    return await api.request(
        "PUT", f"rooms/{room}/send/{event_type}/{txn}", json=content, token=user.token
    )


async def test_txn_id_is_idempotent_per_device(api: MatrixApi) -> None:
    alice = await api.register("alice")
    room = await api.create_room(alice)
    first = await send(api, alice, room, "txn1")
    again = await send(api, alice, room, "txn1", {"msgtype": "m.text", "body": "changed"})
    assert first[0] == again[0] == 200
    assert first[1]["event_id"] == again[1]["event_id"]

    phone = await login(api, alice)
    other = await send(api, phone, room, "txn1")
    assert other[0] == 200
    assert other[1]["event_id"] != first[1]["event_id"]

    page = await messages(api, alice, room, limit="50")
    sent = [e for e in page["chunk"] if e["type"] == "m.room.message"]
    assert [e["event_id"] for e in sent] == [other[1]["event_id"], first[1]["event_id"]]
    own = next(e for e in sent if e["event_id"] == first[1]["event_id"])
    assert own["unsigned"]["transaction_id"] == "txn1"
    from_phone = next(e for e in sent if e["event_id"] == other[1]["event_id"])
    assert "transaction_id" not in from_phone["unsigned"]


async def test_txn_id_is_scoped_to_the_request_path(api: MatrixApi) -> None:
    """Spec "Transaction identifiers": a retransmission has the same txn ID *and* path."""
    alice = await api.register("alice")
    first = await api.create_room(alice)
    second = await api.create_room(alice)
    status, one = await send(api, alice, first, "same")
    assert status == 200
    status, two = await send(api, alice, second, "same")
    assert status == 200
    assert two["event_id"] != one["event_id"]
    page = await messages(api, alice, second)
    assert one["event_id"] not in {e["event_id"] for e in page["chunk"]}


async def test_state_put_and_get(api: MatrixApi) -> None:
    alice = await api.register("alice")
    room = await api.create_room(alice)
    status, body = await api.request(
        "PUT", f"rooms/{room}/state/m.room.topic", json={"topic": "one"}, token=alice.token
    )
    assert status == 200 and body["event_id"].startswith("$")
    status, body = await api.request(
        "PUT", f"rooms/{room}/state/org.example.thing/key1", json={"v": 1}, token=alice.token
    )
    assert status == 200
    assert await api.ok("GET", f"rooms/{room}/state/m.room.topic", token=alice.token) == {
        "topic": "one"
    }
    assert await api.ok(
        "GET", f"rooms/{room}/state/org.example.thing/key1", token=alice.token
    ) == {"v": 1}
    status, err = await api.request(
        "GET", f"rooms/{room}/state/org.example.thing/other", token=alice.token
    )
    assert (status, err["errcode"]) == (404, "M_NOT_FOUND")
    status, err = await api.request("GET", f"rooms/{room}/state/m.room.avatar", token=alice.token)
    assert (status, err["errcode"]) == (404, "M_NOT_FOUND")

    full = await api.ok("GET", f"rooms/{room}/state", token=alice.token)
    keys = {(e["type"], e["state_key"]) for e in full}
    assert {("m.room.create", ""), ("m.room.member", alice.user_id), ("m.room.topic", ""),
            ("org.example.thing", "key1"), ("m.room.power_levels", "")} <= keys
    assert all("event_id" in e and "sender" in e for e in full)


async def test_repeating_the_current_state_creates_no_event(api: MatrixApi) -> None:
    """Issue 13: the same state (type, key, content) from the same sender answers with the
    event already there and adds none (Synapse's `deduplicate_state_event`); other content,
    or another sender, is a new event."""
    alice = await api.register("alice")
    bob = await api.register("bob")
    room = await api.create_room(alice, preset="public_chat")
    await api.join(bob, room)

    async def put(user: User, event_type: str, key: str, content: Any) -> str:
        body = await api.ok(
            "PUT", f"rooms/{room}/state/{event_type}/{key}", json=content, token=user.token
        )
        event_id: str = body["event_id"]
        return event_id

    async def timeline() -> list[str]:
        page = await messages(api, alice, room, limit=100)
        return [e["event_id"] for e in page["chunk"]]

    first = await put(alice, "org.example.thing", "k", {"v": 1, "list": [1, "a"]})
    before = await timeline()
    assert await put(alice, "org.example.thing", "k", {"list": [1, "a"], "v": 1}) == first
    assert await api.ok("PUT", f"rooms/{room}/state/org.example.thing/k", token=alice.token,
                        json={"v": 1, "list": [1, "a"]}) == {"event_id": first}
    assert await timeline() == before
    # Content that differs only in JSON type, or comes from someone else, is new state.
    changed = await put(alice, "org.example.thing", "k", {"v": True, "list": [1, "a"]})
    assert changed not in (first, *before)
    assert await put(alice, "org.example.thing", "", {"v": True, "list": [1, "a"]}) != changed
    power = await api.ok("GET", f"rooms/{room}/state/m.room.power_levels", token=alice.token)
    power["users"][bob.user_id] = 100
    levels = await put(alice, "m.room.power_levels", "", power)
    assert await put(alice, "m.room.power_levels", "", power) == levels
    by_bob = await put(bob, "m.room.power_levels", "", power)
    assert by_bob != levels
    # A member event sent as state takes the membership path, and is deduplicated as well.
    own = await api.ok("GET", f"rooms/{room}/state/m.room.member/{bob.user_id}",
                       token=bob.token, params={"format": "event"})
    assert await put(bob, "m.room.member", bob.user_id, own["content"]) == own["event_id"]
    assert (await timeline())[0] == by_bob


async def test_non_member_and_low_power_are_refused(api: MatrixApi) -> None:
    alice = await api.register("alice")
    bob = await api.register("bob")
    room = await api.create_room(alice, preset="public_chat")
    status, err = await send(api, bob, room, "t")
    assert (status, err["errcode"]) == (403, "M_FORBIDDEN")

    await api.join(bob, room)
    power = await api.ok("GET", f"rooms/{room}/state/m.room.power_levels", token=bob.token)
    power["users"][bob.user_id] = 100
    status, err = await api.request(
        "PUT", f"rooms/{room}/state/m.room.power_levels", json=power, token=bob.token
    )
    assert (status, err["errcode"]) == (403, "M_FORBIDDEN")
    status, err = await api.request(
        "PUT", f"rooms/{room}/state/m.room.name", json={"name": "mine"}, token=bob.token
    )
    assert (status, err["errcode"]) == (403, "M_FORBIDDEN")


@pytest.mark.parametrize("version", ["10", "11", "12"])
async def test_redact_own_event(api: MatrixApi, version: str) -> None:
    alice = await api.register("alice")
    room = await api.create_room(alice, room_version=version)
    target = await api.send_message(alice, room, "oops")
    status, body = await api.request(
        "PUT", f"rooms/{room}/redact/{target}/r1", json={"reason": "typo"}, token=alice.token
    )
    assert status == 200, body
    redaction_id = body["event_id"]

    event = await api.ok("GET", f"rooms/{room}/event/{target}", token=alice.token)
    assert event["content"] == {}
    assert event["unsigned"]["redacted_because"]["event_id"] == redaction_id
    page = await messages(api, alice, room)
    by_id = {e["event_id"]: e for e in page["chunk"]}
    assert by_id[target]["content"] == {}
    assert by_id[target]["unsigned"]["redacted_because"]["content"]["reason"] == "typo"
    assert by_id[redaction_id]["type"] == "m.room.redaction"


async def test_redact_others_needs_power(api: MatrixApi) -> None:
    alice = await api.register("alice")
    bob = await api.register("bob")
    room = await api.create_room(alice, preset="public_chat")
    await api.join(bob, room)
    by_alice = await api.send_message(alice, room, "alice says")
    by_bob = await api.send_message(bob, room, "bob says")
    status, err = await api.request(
        "PUT", f"rooms/{room}/redact/{by_alice}/r1", json={}, token=bob.token
    )
    assert (status, err["errcode"]) == (403, "M_FORBIDDEN")
    status, _ = await api.request(
        "PUT", f"rooms/{room}/redact/{by_bob}/r2", json={}, token=alice.token
    )
    assert status == 200
    status, err = await api.request(
        "PUT", f"rooms/{room}/redact/$unknown/r3", json={}, token=alice.token
    )
    assert (status, err["errcode"]) == (404, "M_NOT_FOUND")


async def test_size_and_number_limits(api: MatrixApi) -> None:
    alice = await api.register("alice")
    room = await api.create_room(alice)
    status, err = await send(api, alice, room, "big", {"body": "x" * 66000})
    assert (status, err["errcode"]) == (413, "M_TOO_LARGE")
    cases = [('{"n": 1.5}', "M_BAD_JSON"), ('{"n": 9007199254740992}', "M_BAD_JSON"),
             ('{"a": {"b": [-9007199254740992]}}', "M_BAD_JSON"), ('{"n": NaN}', "M_NOT_JSON")]
    for i, (bad, errcode) in enumerate(cases):
        status, err = await api.request(
            "PUT", f"rooms/{room}/send/m.room.message/n{i}", raw=bad.encode(),
            token=alice.token, headers={"Content-Type": "application/json"},
        )
        assert (status, err["errcode"]) == (400, errcode), bad
    status, _ = await send(api, alice, room, "ok", {"n": 2**53 - 1, "body": "fine"})
    assert status == 200
    status, err = await send(api, alice, room, "create", {}, event_type="m.room.create")
    assert (status, err["errcode"]) == (403, "M_FORBIDDEN")
    status, err = await api.request(
        "PUT", f"rooms/{room}/state/m.room.create", json={}, token=alice.token
    )
    assert (status, err["errcode"]) == (403, "M_FORBIDDEN")


async def test_messages_paginate_both_ways(api: MatrixApi) -> None:
    alice = await api.register("alice")
    room = await api.create_room(alice)
    for i in range(5):
        await api.send_message(alice, room, f"m{i}")

    page1 = await messages(api, alice, room, limit="2")
    assert bodies(page1["chunk"]) == ["m4", "m3"]
    page2 = await messages(api, alice, room, limit="2", **{"from": page1["end"]})
    assert bodies(page2["chunk"]) == ["m2", "m1"]
    assert page2["start"] == page1["end"]

    forwards = await messages(api, alice, room, dir="f", limit="100")
    assert bodies(forwards["chunk"]) == ["m0", "m1", "m2", "m3", "m4"]
    assert forwards["chunk"][0]["type"] == "m.room.create"
    # Newer events may follow the newest: `end` goes on from it; an empty page has none.
    caught_up = await messages(api, alice, room, dir="f", **{"from": forwards["end"]})
    assert caught_up["chunk"] == [] and "end" not in caught_up

    # Forwards from where the backwards page stopped: the newest two again.
    again = await messages(api, alice, room, dir="f", limit="10", **{"from": page1["end"]})
    assert bodies(again["chunk"]) == ["m3", "m4"]

    # `to` bounds a page: backwards from now down to where page1 ended.
    bounded = await messages(api, alice, room, limit="10", to=page1["end"])
    assert bodies(bounded["chunk"]) == ["m4", "m3"]

    for bad in ({"dir": "x"}, {"from": "garbage"}, {"limit": "many"}, {"filter": "{"}):
        status, err = await api.request(
            "GET", f"rooms/{room}/messages", token=alice.token, params=bad
        )
        assert (status, err["errcode"]) == (400, "M_INVALID_PARAM"), (bad, err)


async def test_messages_end_and_sync_tokens(api: MatrixApi) -> None:
    alice = await api.register("alice")
    room = await api.create_room(alice)
    for i in range(3):
        await api.send_message(alice, room, f"m{i}")
    next_batch = (await api.sync(alice))["next_batch"]
    back = await messages(api, alice, room, limit="2", **{"from": next_batch})
    assert bodies(back["chunk"]) == ["m2", "m1"]
    assert "end" in back
    await api.send_message(alice, room, "m3")
    await api.send_message(alice, room, "m4")
    # Forwards from a /sync token, short of the limit: `end` still says where to go on.
    page = await messages(api, alice, room, dir="f", limit="10", **{"from": next_batch})
    assert bodies(page["chunk"]) == ["m3", "m4"]
    await api.send_message(alice, room, "m5")
    page = await messages(api, alice, room, dir="f", limit="10", **{"from": page["end"]})
    assert bodies(page["chunk"]) == ["m5"]
    # `to` reached going back: the page still answers `end`.
    bounded = await messages(api, alice, room, limit="10", to=back["end"])
    assert bodies(bounded["chunk"]) == ["m5", "m4", "m3", "m2", "m1"] and "end" in bounded


async def test_messages_filter_and_lazy_members(api: MatrixApi) -> None:
    alice = await api.register("alice")
    bob = await api.register("bob")
    carol = await api.register("carol")
    room = await api.create_room(alice, preset="public_chat")
    await api.join(bob, room)
    await api.join(carol, room)
    await api.send_message(alice, room, "from alice")
    await api.send_message(bob, room, "from bob")
    await api.ok("PUT", f"rooms/{room}/state/m.room.topic", json={"topic": "t"}, token=alice.token)

    only_messages = await messages(api, alice, room, filter={"types": ["m.room.message"]})
    assert {e["type"] for e in only_messages["chunk"]} == {"m.room.message"}
    assert bodies(only_messages["chunk"]) == ["from bob", "from alice"]

    lazy = await messages(api, carol, room, filter={
        "types": ["m.room.message"], "senders": [bob.user_id], "lazy_load_members": True,
    })
    assert bodies(lazy["chunk"]) == ["from bob"]
    assert [(e["type"], e["state_key"]) for e in lazy["state"]] == [
        ("m.room.member", bob.user_id)
    ]


async def test_leaver_sees_nothing_after_leaving(api: MatrixApi) -> None:
    alice = await api.register("alice")
    bob = await api.register("bob")
    dave = await api.register("dave")
    room = await api.create_room(alice, preset="public_chat")
    await api.join(bob, room)
    await api.send_message(alice, room, "before")
    await api.ok("POST", f"rooms/{room}/leave", json={}, token=bob.token)
    await api.send_message(alice, room, "after")

    page = await messages(api, bob, room, limit="50")
    assert bodies(page["chunk"]) == ["before"]
    forwards = await messages(api, bob, room, dir="f", limit="50")
    assert bodies(forwards["chunk"]) == ["before"]

    status, err = await api.request("GET", f"rooms/{room}/messages", token=dave.token)
    assert (status, err["errcode"]) == (403, "M_FORBIDDEN")


async def test_context_and_event(api: MatrixApi) -> None:
    alice = await api.register("alice")
    dave = await api.register("dave")
    room = await api.create_room(alice, name="ctx")
    ids = [await api.send_message(alice, room, f"c{i}") for i in range(5)]

    ctx = await api.ok("GET", f"rooms/{room}/context/{ids[2]}", token=alice.token,
                       params={"limit": "4"})
    assert ctx["event"]["event_id"] == ids[2]
    assert [e["event_id"] for e in ctx["events_before"]] == [ids[1], ids[0]]
    assert [e["event_id"] for e in ctx["events_after"]] == [ids[3], ids[4]]
    assert {"m.room.create", "m.room.name", "m.room.member"} <= {e["type"] for e in ctx["state"]}
    assert isinstance(ctx["start"], str) and isinstance(ctx["end"], str)

    event = await api.ok("GET", f"rooms/{room}/event/{ids[0]}", token=alice.token)
    assert (event["event_id"], event["content"]["body"], event["room_id"]) == (ids[0], "c0", room)
    assert event["sender"] == alice.user_id and "origin_server_ts" in event

    for path in (f"rooms/{room}/event/$nope", f"rooms/{room}/context/$nope"):
        status, err = await api.request("GET", path, token=alice.token)
        assert (status, err["errcode"]) == (404, "M_NOT_FOUND"), path
    # Not a member: /context is forbidden, /event not found (rooms.yaml: "not found or you do
    # not have permission to read this event").
    status, err = await api.request("GET", f"rooms/{room}/context/{ids[0]}", token=dave.token)
    assert (status, err["errcode"]) == (403, "M_FORBIDDEN")
    status, err = await api.request("GET", f"rooms/{room}/event/{ids[0]}", token=dave.token)
    assert (status, err["errcode"]) == (404, "M_NOT_FOUND")


async def test_a_redaction_never_reaches_into_another_room(api: MatrixApi) -> None:
    """A redaction smuggled in as a state event, or aimed at another room's event, redacts
    nothing outside its own room."""
    victim = await api.register("victim")
    mallory = await api.register("mallory")
    victims_room = await api.create_room(victim, preset="public_chat")
    target = await api.send_message(victim, victims_room, "keep me")
    own_room = await api.create_room(mallory, preset="public_chat")
    status, _ = await api.request(
        "PUT", f"rooms/{own_room}/state/m.room.redaction",
        json={"redacts": target}, token=mallory.token,
    )
    assert status == 200  # a state event of that type is allowed; it just redacts nothing
    status, body = await api.request(
        "PUT", f"rooms/{own_room}/redact/{target}/t1", json={}, token=mallory.token
    )
    # Issue 13: refused as a bad request, as Synapse does (Sytest "PUT /redact disallows
    # redaction of event in different room").
    assert (status, body["errcode"]) == (400, "M_UNKNOWN"), body
    # Through the victim's room, where she is not: refused before anything is looked up.
    for event_id in (target, "$unknown"):
        status, body = await api.request(
            "PUT", f"rooms/{victims_room}/redact/{event_id}/t2", json={}, token=mallory.token
        )
        assert (status, body["errcode"]) == (403, "M_FORBIDDEN"), body
    event = await api.ok("GET", f"rooms/{victims_room}/event/{target}", token=victim.token)
    assert event["content"] == {"msgtype": "m.text", "body": "keep me"}
    assert "redacted_because" not in event["unsigned"]

"""Compatibility paths: `r0` as an alias of `v3` for what existed in r0, cross-signing under
`unstable`, `POST /send` without a transaction ID, and the deprecated event stream and
initialSync endpoints (old_sync.yaml, peeking_events.yaml, room_initial_sync.yaml)."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.conftest import RunningServer
from tests.e2e_keys import Identity
from tests.helpers import MatrixApi, User, validate_response
from tests.spec_operations import R0, fill, operations

V3 = "/_matrix/client/v3/"
R0_PREFIX = "/_matrix/client/r0/"
MEDIA_V3 = "/_matrix/media/v3/"


def r0_path(path: str) -> str | None:
    for v3, r0 in ((V3, R0_PREFIX), (MEDIA_V3, "/_matrix/media/r0/")):
        if path.startswith(v3):
            return r0 + path.removeprefix(v3)
    return None


def errcode(body: Any) -> str | None:
    return body.get("errcode") if isinstance(body, dict) else None


async def answer(api: MatrixApi, method: str, path: str, token: str | None) -> tuple[int, Any]:
    # No long-polls: /events, /sync and media downloads answer at once.
    return await api.request(
        method, path, json={} if method in ("POST", "PUT") else None, token=token,
        params={"timeout": "0", "timeout_ms": "0"},
    )


async def test_every_r0_endpoint_answers_under_r0_as_under_v3(
    api: MatrixApi, homeserver: RunningServer,
) -> None:
    """Every operation the spec had in r0 (see tests/spec_operations.py), where v3 serves it,
    answers the same status and errcode under r0. GETs are made as a user; anything else
    without a token, so that no request (a logout, a deactivation) changes the next."""
    alice = await api.register("alice")
    compared = 0
    for op in operations():
        old = r0_path(op.path)
        if old is None or op.added > R0:
            continue
        token = alice.token if op.method == "GET" else None
        path = fill(op.path, homeserver.server_name)
        v3 = await answer(api, op.method, path, token)
        if v3[0] in (404, 405) and errcode(v3[1]) == "M_UNRECOGNIZED":
            continue  # not served at all: /versions says so (test_versions.py)
        r0 = await answer(api, op.method, fill(old, homeserver.server_name), token)
        assert (r0[0], errcode(r0[1])) == (v3[0], errcode(v3[1])), (op.name, v3, r0)
        compared += 1
    assert compared > 80


async def test_endpoints_added_after_r0_have_no_r0_path(
    api: MatrixApi, homeserver: RunningServer,
) -> None:
    alice = await api.register("alice")
    for op in operations():
        old = r0_path(op.path)
        if old is None or op.added <= R0:
            continue
        status, body = await answer(api, op.method, fill(old, homeserver.server_name),
                                    alice.token if op.method == "GET" else None)
        assert (status, errcode(body)) in ((404, "M_UNRECOGNIZED"), (405, "M_UNRECOGNIZED")), \
            (op.name, status, body)


async def test_a_conversation_over_r0(api: MatrixApi) -> None:
    alice = await api.register("alice")
    room = await api.ok("POST", R0_PREFIX + "createRoom", json={}, token=alice.token)
    room_id = room["room_id"]
    sent = await api.ok(
        "PUT", f"{R0_PREFIX}rooms/{room_id}/send/m.room.message/r0txn",
        json={"msgtype": "m.text", "body": "old client"}, token=alice.token,
    )
    body = await api.ok("GET", R0_PREFIX + "sync", token=alice.token)
    events = body["rooms"]["join"][room_id]["timeline"]["events"]
    assert events[-1]["event_id"] == sent["event_id"]
    page = await api.ok("GET", f"{R0_PREFIX}rooms/{room_id}/messages?dir=b", token=alice.token)
    assert page["chunk"][0]["event_id"] == sent["event_id"]


async def test_cross_signing_upload_under_unstable(api: MatrixApi) -> None:
    alice = await api.register("alice")
    identity = Identity(alice)
    unstable = "/_matrix/client/unstable/keys/"
    result = await api.ok("POST", unstable + "device_signing/upload", json=identity.body(),
                          token=alice.token)
    validate_response("cross_signing.yaml", "/keys/device_signing/upload", "post", 200, result)
    result = await api.ok("POST", unstable + "signatures/upload", json={}, token=alice.token)
    assert result == {"failures": {}}
    keys = await api.ok("POST", "keys/query", json={"device_keys": {alice.user_id: []}},
                        token=alice.token)
    assert keys["master_keys"][alice.user_id] == identity.body()["master_key"]


async def test_post_send_without_a_transaction_id(api: MatrixApi) -> None:
    alice = await api.register("alice")
    room_id = await api.create_room(alice)
    content = {"msgtype": "m.text", "body": "no txn"}
    first = await api.ok("POST", f"rooms/{room_id}/send/m.room.message", json=content,
                         token=alice.token)
    again = await api.ok("POST", f"rooms/{room_id}/send/m.room.message", json=content,
                         token=alice.token)
    assert first["event_id"] != again["event_id"]  # no transaction ID: no deduplication
    page = await api.ok("GET", f"rooms/{room_id}/messages?dir=b&limit=2", token=alice.token)
    assert [e["event_id"] for e in page["chunk"]] == [again["event_id"], first["event_id"]]
    status, body = await api.request("POST", f"rooms/{room_id}/send/m.room.message",
                                     raw=b"[]", token=alice.token)
    assert (status, body["errcode"]) == (400, "M_BAD_JSON")


async def events(api: MatrixApi, user: User, **params: str) -> dict[str, Any]:
    body: dict[str, Any] = await api.ok("GET", "events", token=user.token, params=params)
    validate_response("old_sync.yaml", "/events", "get", 200, body)
    return body


async def test_event_stream_follows_the_sync_positions(api: MatrixApi) -> None:
    alice = await api.register("alice")
    room_id = await api.create_room(alice)
    since = (await api.sync(alice))["next_batch"]
    first = await api.send_message(alice, room_id, "one")
    body = await events(api, alice, **{"from": since, "timeout": "0"})
    assert body["start"] == since
    assert [(e["event_id"], e["room_id"]) for e in body["chunk"]] == [(first, room_id)]

    # Nothing new: an empty chunk at once with timeout=0, `end` where it was.
    quiet = await events(api, alice, **{"from": body["end"], "timeout": "0"})
    assert quiet["chunk"] == [] and quiet["end"] == body["end"]

    # Long-polling: the request waits and answers with the next event.
    waiting = asyncio.create_task(events(api, alice, **{"from": body["end"], "timeout": "30000"}))
    second = await api.send_message(alice, room_id, "two")
    woken = await asyncio.wait_for(waiting, 30)
    assert [e["event_id"] for e in woken["chunk"]] == [second]

    # The end token of /events continues a /sync.
    third = await api.send_message(alice, room_id, "three")
    synced = await api.sync(alice, since=woken["end"])
    assert [e["event_id"] for e in synced["rooms"]["join"][room_id]["timeline"]["events"]] \
        == [third]

    status, bad = await api.request("GET", "events", token=alice.token,
                                    params={"from": "garbage", "timeout": "0"})
    assert (status, bad["errcode"]) == (400, "M_INVALID_PARAM")


async def test_event_stream_hides_rooms_of_others(api: MatrixApi) -> None:
    alice = await api.register("alice")
    bob = await api.register("bob")
    since = (await api.sync(bob))["next_batch"]
    room_id = await api.create_room(alice)
    await api.send_message(alice, room_id, "private")
    body = await events(api, bob, **{"from": since, "timeout": "0"})
    assert body["chunk"] == []


async def test_peeking_event_stream_of_a_world_readable_room(api: MatrixApi) -> None:
    alice = await api.register("alice")
    bob = await api.register("bob")
    readable = await api.create_room(alice, initial_state=[{
        "type": "m.room.history_visibility", "state_key": "",
        "content": {"history_visibility": "world_readable"},
    }])
    private = await api.create_room(alice)
    since = (await api.sync(bob))["next_batch"]
    sent = await api.send_message(alice, readable, "for all")
    await api.send_message(alice, private, "for members")
    body = await api.ok("GET", "events", token=bob.token,
                        params={"from": since, "timeout": "0", "room_id": readable})
    validate_response("peeking_events.yaml", "/events ", "get", 200, body)
    assert [e["event_id"] for e in body["chunk"]] == [sent]
    status, refused = await api.request(
        "GET", "events", token=bob.token, params={"from": since, "room_id": private},
    )
    assert (status, refused["errcode"]) == (403, "M_FORBIDDEN")


async def test_initial_sync(api: MatrixApi) -> None:
    alice = await api.register("alice")
    bob = await api.register("bob")
    room_id = await api.create_room(alice, name="Tea")
    sent = [await api.send_message(alice, room_id, f"m{i}") for i in range(3)]
    invited = await api.create_room(bob)
    await api.invite(bob, invited, alice)
    left = await api.create_room(alice)
    await api.ok("POST", f"rooms/{left}/leave", json={}, token=alice.token)
    await api.ok("PUT", f"user/{alice.user_id}/account_data/m.tea", json={"pot": 1},
                 token=alice.token)

    body = await api.ok("GET", "initialSync", token=alice.token, params={"limit": "2"})
    validate_response("old_sync.yaml", "/initialSync", "get", 200, body)
    rooms = {r["room_id"]: r for r in body["rooms"]}
    assert set(rooms) == {room_id, invited}
    joined = rooms[room_id]
    assert joined["membership"] == "join"
    assert [e["event_id"] for e in joined["messages"]["chunk"]] == sent[1:]
    assert ("m.room.name", "") in {(e["type"], e["state_key"]) for e in joined["state"]}
    assert rooms[invited]["membership"] == "invite"
    assert rooms[invited]["invite"]["content"]["membership"] == "invite"
    assert {"type": "m.tea", "content": {"pot": 1}} in body["account_data"]

    # `messages.start` pages further back with /messages; `end` continues with /events.
    older = await api.ok("GET", f"rooms/{room_id}/messages", token=alice.token,
                         params={"from": joined["messages"]["start"], "dir": "b", "limit": "1"})
    assert [e["event_id"] for e in older["chunk"]] == sent[:1]
    later = await api.send_message(alice, room_id, "later")
    stream = await events(api, alice, **{"from": body["end"], "timeout": "0"})
    assert [e["event_id"] for e in stream["chunk"]] == [later]

    archived = await api.ok("GET", "initialSync", token=alice.token,
                            params={"archived": "true"})
    validate_response("old_sync.yaml", "/initialSync", "get", 200, archived)
    assert {r["room_id"]: r["membership"] for r in archived["rooms"]}[left] == "leave"
    status, bad = await api.request("GET", "initialSync", token=alice.token,
                                    params={"archived": "1"})
    assert (status, bad["errcode"]) == (400, "M_INVALID_PARAM")


async def test_room_initial_sync_and_peeking(api: MatrixApi) -> None:
    alice = await api.register("alice")
    bob = await api.register("bob")
    readable = await api.create_room(alice, preset="public_chat", initial_state=[{
        "type": "m.room.history_visibility", "state_key": "",
        "content": {"history_visibility": "world_readable"},
    }])
    await api.ok("PUT", f"directory/list/room/{readable}", json={"visibility": "public"},
                 token=alice.token)
    sent = await api.send_message(alice, readable, "hello")

    mine = await api.ok("GET", f"rooms/{readable}/initialSync", token=alice.token)
    validate_response("room_initial_sync.yaml", "/rooms/{roomId}/initialSync", "get", 200, mine)
    assert mine["membership"] == "join" and mine["visibility"] == "public"
    assert mine["messages"]["chunk"][-1]["event_id"] == sent

    peek = await api.ok("GET", f"rooms/{readable}/initialSync", token=bob.token)
    validate_response("room_initial_sync.yaml", "/rooms/{roomId}/initialSync", "get", 200, peek)
    assert "membership" not in peek
    assert peek["messages"]["chunk"][-1]["event_id"] == sent
    assert {e["type"] for e in peek["state"]} >= {"m.room.create", "m.room.member"}

    private = await api.create_room(alice)
    status, body = await api.request("GET", f"rooms/{private}/initialSync", token=bob.token)
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN")


async def test_get_event_by_id_without_its_room(api: MatrixApi) -> None:
    alice = await api.register("alice")
    bob = await api.register("bob")
    room_id = await api.create_room(alice)
    sent = await api.send_message(alice, room_id, "hi")
    event = await api.ok("GET", f"events/{sent}", token=alice.token)
    validate_response("old_sync.yaml", "/events/{eventId}", "get", 200, event)
    assert (event["event_id"], event["room_id"]) == (sent, room_id)
    for token, event_id in ((bob.token, sent), (alice.token, "$nothere")):
        status, body = await api.request("GET", f"events/{event_id}", token=token)
        assert (status, body["errcode"]) == (404, "M_NOT_FOUND")

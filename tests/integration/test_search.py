"""Server-side search over room events: POST /search (room_events)."""

from __future__ import annotations

from typing import Any

from tests.bad_input import assert_sane, bodies, collect
from tests.helpers import MatrixApi, User, validate_response


async def search(
    api: MatrixApi, user: User, term: str, next_batch: str | None = None, **criteria: Any
) -> dict[str, Any]:
    params = {"next_batch": next_batch} if next_batch else None
    body = await api.ok(
        "POST", "search", json={"search_categories": {"room_events": {
            "search_term": term, **criteria,
        }}}, token=user.token, params=params,
    )
    validate_response("search.yaml", "/search", "post", 200, body)
    room_events: dict[str, Any] = body["search_categories"]["room_events"]
    return room_events


def event_ids(result: dict[str, Any]) -> list[str]:
    return [r["result"]["event_id"] for r in result["results"]]


async def test_search_finds_messages_names_and_topics(api: MatrixApi) -> None:
    alice = await api.register("alice")
    room = await api.create_room(alice, preset="public_chat", name="Martian plans",
                                 topic="Red planet")
    hit = await api.send_message(alice, room, "The martians are coming")
    await api.send_message(alice, room, "nothing to see here")
    result = await search(api, alice, "martian")
    assert hit in event_ids(result)
    assert {"martian", "martians"} & set(result["highlights"])
    [message] = [r for r in result["results"] if r["result"]["event_id"] == hit]
    assert message["result"]["content"]["body"] == "The martians are coming"
    assert message["rank"] > 0
    by_type = {r["result"]["type"] for r in result["results"]}
    assert by_type == {"m.room.message", "m.room.name"}
    assert result["count"] == 2
    only_body = await search(api, alice, "martian", keys=["content.body"])
    assert event_ids(only_body) == [hit]
    topic = await search(api, alice, "planet", keys=["content.topic"])
    assert [r["result"]["type"] for r in topic["results"]] == ["m.room.topic"]


async def test_rank_and_recent_order(api: MatrixApi) -> None:
    alice = await api.register("alice")
    room = await api.create_room(alice, preset="public_chat")
    strong = await api.send_message(alice, room, "apple apple apple pie with apple")
    weak = await api.send_message(alice, room, "one apple among many other words in a long text")
    assert event_ids(await search(api, alice, "apple", order_by="rank")) == [strong, weak]
    assert event_ids(await search(api, alice, "apple", order_by="recent")) == [weak, strong]
    assert event_ids(await search(api, alice, "apple")) == [strong, weak]  # rank by default


async def test_pagination_in_both_orders(api: MatrixApi) -> None:
    alice = await api.register("alice")
    room = await api.create_room(alice, preset="public_chat")
    sent = [await api.send_message(alice, room, f"banana number {i}") for i in range(5)]
    for order in ("rank", "recent"):
        seen: list[str] = []
        token = None
        for _ in range(5):
            page = await search(api, alice, "banana", token, order_by=order,
                                filter={"limit": 2})
            # `count` is only given when every match fits on the page (it is optional).
            assert "count" not in page
            seen += event_ids(page)
            token = page.get("next_batch")
            if token is None:
                break
        assert sorted(seen) == sorted(sent), order
        if order == "recent":
            assert seen == list(reversed(sent))
    status, body = await api.request(
        "POST", "search", params={"next_batch": "k0"}, token=alice.token,
        json={"search_categories": {"room_events": {"search_term": "a", "order_by": "recent"}}},
    )
    assert (status, body["errcode"]) == (400, "M_INVALID_PARAM")


async def test_only_joined_rooms_and_no_encrypted_events(api: MatrixApi) -> None:
    alice = await api.register("alice")
    bob = await api.register("bob")
    room = await api.create_room(alice, preset="public_chat")
    await api.send_message(alice, room, "cucumber salad")
    assert event_ids(await search(api, bob, "cucumber")) == []  # bob is not in the room
    await api.join(bob, room)
    assert len(event_ids(await search(api, bob, "cucumber"))) == 1
    secret = await api.create_room(alice, preset="private_chat")  # encrypted by default
    await api.ok(
        "PUT", f"rooms/{secret}/send/m.room.encrypted/t1",
        json={"algorithm": "m.megolm.v1.aes-sha2", "ciphertext": "cucumber",
              "sender_key": "k", "session_id": "s", "device_id": "D"},
        token=alice.token,
    )
    assert len(event_ids(await search(api, alice, "cucumber"))) == 1
    # Redacted messages no longer match.
    [hit] = event_ids(await search(api, alice, "cucumber"))
    await api.ok("PUT", f"rooms/{room}/redact/{hit}/r1", json={}, token=alice.token)
    assert event_ids(await search(api, alice, "cucumber")) == []


async def test_filter_context_state_and_groups(api: MatrixApi) -> None:
    alice = await api.register("alice")
    bob = await api.register("bob")
    room = await api.create_room(alice, preset="public_chat")
    other = await api.create_room(alice, preset="public_chat")
    await api.join(bob, room)
    before = await api.send_message(alice, room, "first")
    hit = await api.send_message(bob, room, "grape juice")
    after = await api.send_message(alice, room, "last")
    await api.send_message(alice, other, "grape jelly")
    result = await search(api, alice, "grape", filter={"rooms": [room]})
    assert event_ids(result) == [hit]
    assert len(event_ids(await search(api, alice, "grape", filter={"senders": [alice.user_id]})))\
        == 1
    assert event_ids(await search(api, alice, "grape", filter={"not_rooms": [room]})) != [hit]
    result = await search(
        api, alice, "grape", filter={"rooms": [room]}, include_state=True,
        event_context={"before_limit": 1, "after_limit": 1, "include_profile": True},
        groupings={"group_by": [{"key": "room_id"}, {"key": "sender"}]},
    )
    context = result["results"][0]["context"]
    assert [e["event_id"] for e in context["events_before"]] == [before]
    assert [e["event_id"] for e in context["events_after"]] == [after]
    assert set(context["profile_info"]) == {alice.user_id}
    assert {e["type"] for e in result["state"][room]} >= {"m.room.create", "m.room.member"}
    assert result["groups"]["room_id"][room]["results"] == [hit]
    assert result["groups"]["sender"][bob.user_id]["results"] == [hit]


async def test_search_errors(api: MatrixApi) -> None:
    alice = await api.register("alice")
    cases = [
        ({}, 400, "M_MISSING_PARAM"),
        ({"search_categories": []}, 400, "M_BAD_JSON"),
        ({"search_categories": {"room_events": {}}}, 400, "M_MISSING_PARAM"),
        ({"search_categories": {"room_events": {"search_term": 1}}}, 400, "M_BAD_JSON"),
        ({"search_categories": {"room_events": {"search_term": "a", "order_by": "best"}}},
         400, "M_INVALID_PARAM"),
        ({"search_categories": {"room_events": {"search_term": "a", "keys": ["content.x"]}}},
         400, "M_INVALID_PARAM"),
        ({"search_categories": {"room_events": {"search_term": "a", "filter": {"limit": -1}}}},
         400, "M_BAD_JSON"),
        ({"search_categories": {"room_events": {
            "search_term": "a", "groupings": {"group_by": [{"key": "type"}]}}}},
         400, "M_INVALID_PARAM"),
    ]
    for json, status, errcode in cases:
        got, body = await api.request("POST", "search", json=json, token=alice.token)
        assert (got, body["errcode"]) == (status, errcode), json
    assert await api.ok("POST", "search", json={"search_categories": {}}, token=alice.token) == {
        "search_categories": {}
    }
    got, body = await api.request("POST", "search", json={"search_categories": {}})
    assert (got, body["errcode"]) == (401, "M_MISSING_TOKEN")


async def test_search_survives_arbitrary_bodies(api: MatrixApi) -> None:
    alice = await api.register("alice")
    room = await api.create_room(alice, preset="public_chat")
    await api.send_message(alice, room, "some searchable text")
    for kind, value in collect(bodies):
        if kind == "raw":
            status, body = await api.request(
                "POST", "search", raw=value, token=alice.token,
                headers={"Content-Type": "application/json"},
            )
        else:
            wrapped = {"search_categories": {"room_events": value}}
            for json in (value, wrapped):
                status, body = await api.request("POST", "search", json=json, token=alice.token)
                assert_sane(status, body, json)
        assert_sane(status, body, value)


async def test_count_never_reveals_matches_the_user_may_not_see(api: MatrixApi) -> None:
    """History visibility "joined": a late joiner must not learn, through `count`, how many
    earlier messages contain the term."""
    alice = await api.register("alice")
    bob = await api.register("bob")
    room = await api.create_room(
        alice, preset="public_chat",
        initial_state=[{"type": "m.room.history_visibility",
                        "content": {"history_visibility": "joined"}}],
    )
    for i in range(3):
        await api.send_message(alice, room, f"secret plan {i}")
    await api.join(bob, room)
    await api.send_message(alice, room, "secret plan for everyone")
    page = await search(api, bob, "secret", None)
    assert [r["result"]["content"]["body"] for r in page["results"]] == ["secret plan for everyone"]
    assert "count" not in page
    own = await search(api, alice, "secret", None)
    assert own["count"] == 4

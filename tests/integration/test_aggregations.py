"""Bundled aggregations (client-server-api "Aggregations of child events", modules "Event
replacements" and "Threading"): `unsigned.m.relations` on /event, /context, /messages,
/relations, /search and gappy /sync timelines; `recurse` on /relations; thread validation."""

from __future__ import annotations

import json
from typing import Any

from tests.helpers import MatrixApi, User, validate_response


async def send(api: MatrixApi, user: User, room_id: str, content: dict[str, Any],
               event_type: str = "m.room.message") -> str:
    status, body = await api.request(
        "POST", f"rooms/{room_id}/send/{event_type}", json=content, token=user.token
    )
    assert status == 200, body
    event_id: str = body["event_id"]
    return event_id


def edit(original: str, text: str, *, new_content: bool = True) -> dict[str, Any]:
    content: dict[str, Any] = {
        "msgtype": "m.text", "body": f"* {text}",
        "m.relates_to": {"rel_type": "m.replace", "event_id": original},
    }
    if new_content:
        content["m.new_content"] = {"msgtype": "m.text", "body": text}
    return content


def related(rel_type: str, parent: str, text: str) -> dict[str, Any]:
    return {"msgtype": "m.text", "body": text,
            "m.relates_to": {"rel_type": rel_type, "event_id": parent}}


def relations(event: dict[str, Any]) -> dict[str, Any]:
    bundle: dict[str, Any] = event["unsigned"].get("m.relations", {})
    return bundle


async def get_event(api: MatrixApi, user: User, room_id: str, event_id: str) -> dict[str, Any]:
    body: dict[str, Any] = await api.ok(
        "GET", f"rooms/{room_id}/event/{event_id}", token=user.token
    )
    validate_response("rooms.yaml", "/rooms/{roomId}/event/{eventId}", "get", 200, body)
    return body


async def public_room(api: MatrixApi, *names: str) -> tuple[str, list[User]]:
    """A public room the first of these new users made and the others joined."""
    users = [await api.register(name) for name in names]
    room_id = await api.create_room(users[0], preset="public_chat")
    for user in users[1:]:
        await api.join(user, room_id)
    return room_id, users


async def test_the_latest_valid_edit_is_bundled_and_the_content_left_alone(
    api: MatrixApi,
) -> None:
    room_id, (alice, bob) = await public_room(api, "alice", "bob")
    original = await api.send_message(alice, room_id, "I like cake")
    first = await send(api, alice, room_id, edit(original, "I like chocolate cake"))
    second = await send(api, alice, room_id, edit(original, "I like carrot cake"))
    # Invalid edits: another sender, no m.new_content, another event type.
    await send(api, bob, room_id, edit(original, "Bob was here"))
    await send(api, alice, room_id, edit(original, "no new content", new_content=False))
    await send(api, alice, room_id, edit(original, "odd type"), "org.example.note")
    # A reaction is not bundled.
    await send(api, bob, room_id, {"m.relates_to": {
        "rel_type": "m.annotation", "event_id": original, "key": "👍"}}, "m.reaction")

    event = await get_event(api, bob, room_id, original)
    assert event["content"]["body"] == "I like cake"  # spec v1.7: the content stays
    bundle = relations(event)
    assert set(bundle) == {"m.replace"}
    assert bundle["m.replace"]["event_id"] == second
    assert bundle["m.replace"]["content"]["m.new_content"]["body"] == "I like carrot cake"
    assert bundle["m.replace"]["sender"] == alice.user_id

    messages = await api.ok("GET", f"rooms/{room_id}/messages", token=bob.token,
                            params={"dir": "b", "limit": "20"})
    validate_response("message_pagination.yaml", "/rooms/{roomId}/messages", "get", 200,
                      messages)
    in_page = next(e for e in messages["chunk"] if e["event_id"] == original)
    assert relations(in_page)["m.replace"]["event_id"] == second
    context = await api.ok("GET", f"rooms/{room_id}/context/{original}", token=bob.token,
                           params={"limit": "2"})
    validate_response("event_context.yaml", "/rooms/{roomId}/context/{eventId}", "get", 200,
                      context)
    assert relations(context["event"])["m.replace"]["event_id"] == second
    found = await api.ok("POST", "search", token=bob.token, json={"search_categories": {
        "room_events": {"search_term": "like", "keys": ["content.body"]}}})
    validate_response("search.yaml", "/search", "post", 200, found)
    hit = next(r["result"] for r in found["search_categories"]["room_events"]["results"]
               if r["result"]["event_id"] == original)
    assert relations(hit)["m.replace"]["event_id"] == second

    # Redacting the latest edit falls back to the one before; redacting the original drops
    # the edit from its bundle (event_replacements.md "Redactions of edited events").
    await api.ok("PUT", f"rooms/{room_id}/redact/{second}/r1", json={}, token=alice.token)
    assert relations(await get_event(api, bob, room_id, original))["m.replace"]["event_id"] \
        == first
    await api.ok("PUT", f"rooms/{room_id}/redact/{original}/r2", json={}, token=alice.token)
    assert "m.replace" not in relations(await get_event(api, bob, room_id, original))


async def test_a_flood_of_edits_by_another_member_leaves_the_bundle_alone(
    api: MatrixApi,
) -> None:
    room_id, (alice, bob) = await public_room(api, "alice", "bob")
    original = await api.send_message(alice, room_id, "mine")
    mine = await send(api, alice, room_id, edit(original, "still mine"))
    for i in range(30):
        await send(api, bob, room_id, edit(original, f"Bob's {i}"))
    bundle = relations(await get_event(api, bob, room_id, original))
    assert set(bundle) == {"m.replace"}
    assert (bundle["m.replace"]["event_id"], bundle["m.replace"]["content"]) == (
        mine, edit(original, "still mine")
    )


async def test_encrypted_edits_are_bundled_by_their_clear_relation(api: MatrixApi) -> None:
    alice = await api.register("alice")
    room_id = await api.create_room(alice)
    megolm = {"algorithm": "m.megolm.v1.aes-sha2", "ciphertext": "AwgAEn...",
              "sender_key": "abc", "device_id": "DEV", "session_id": "s1"}
    original = await send(api, alice, room_id, megolm, "m.room.encrypted")
    edit_id = await send(api, alice, room_id, {
        **megolm, "ciphertext": "AwgBEn...",
        "m.relates_to": {"rel_type": "m.replace", "event_id": original},
    }, "m.room.encrypted")
    bundle = relations(await get_event(api, alice, room_id, original))
    assert bundle["m.replace"]["event_id"] == edit_id


async def test_threads_and_references_are_summarised(api: MatrixApi) -> None:
    room_id, (alice, bob, carol) = await public_room(api, "alice", "bob", "carol")
    root = await api.send_message(alice, room_id, "root")
    await send(api, bob, room_id, related("m.thread", root, "one"))
    reply = await send(api, bob, room_id, related("m.thread", root, "two"))
    reply_edit = await send(api, bob, room_id, edit(reply, "two, edited"))
    carols = await send(api, carol, room_id, related("m.thread", root, "three"))
    reference = await send(api, carol, room_id, related("m.reference", root, "see above"))
    await api.ok("PUT", f"user/{alice.user_id}/account_data/m.ignored_user_list",
                 json={"ignored_users": {carol.user_id: {}}}, token=alice.token)

    seen_by_bob = relations(await get_event(api, bob, room_id, root))
    assert seen_by_bob["m.thread"]["count"] == 3
    assert seen_by_bob["m.thread"]["latest_event"]["event_id"] == carols
    assert seen_by_bob["m.thread"]["current_user_participated"] is True
    assert seen_by_bob["m.reference"] == {"chunk": [{"event_id": reference}]}

    # Alice ignores Carol: her reply neither counts nor is the latest; Alice sent the root.
    thread = relations(await get_event(api, alice, room_id, root))["m.thread"]
    assert (thread["count"], thread["current_user_participated"]) == (2, True)
    assert thread["latest_event"]["event_id"] == reply
    # The latest reply carries its own aggregations.
    assert relations(thread["latest_event"])["m.replace"]["event_id"] == reply_edit

    dave = await api.register("dave")
    await api.join(dave, room_id)
    thread = relations(await get_event(api, dave, room_id, root))["m.thread"]
    assert thread["current_user_participated"] is False

    # /threads lists the root with the same summary, counted without Carol for Alice.
    threads = await api.ok("GET", f"/_matrix/client/v1/rooms/{room_id}/threads",
                           token=alice.token)
    validate_response("threads_list.yaml", "/rooms/{roomId}/threads", "get", 200, threads)
    assert [e["event_id"] for e in threads["chunk"]] == [root]
    assert relations(threads["chunk"][0])["m.thread"]["count"] == 2

    # Children in /relations are bundled too.
    page = await api.ok("GET", f"/_matrix/client/v1/rooms/{room_id}/relations/{root}/m.thread",
                        token=bob.token)
    validate_response("relations.yaml", "/rooms/{roomId}/relations/{eventId}/{relType}", "get",
                      200, page)
    bundled = {e["event_id"]: relations(e) for e in page["chunk"]}
    assert bundled[reply]["m.replace"]["event_id"] == reply_edit


async def test_sync_bundles_only_gappy_timelines(api: MatrixApi) -> None:
    alice = await api.register("alice")
    room_id = await api.create_room(alice)
    since = (await api.sync(alice))["next_batch"]
    root = await api.send_message(alice, room_id, "root")
    await send(api, alice, room_id, related("m.thread", root, "reply"))
    await api.send_message(alice, room_id, "after")

    def root_in(body: dict[str, Any]) -> dict[str, Any]:
        timeline = body["rooms"]["join"][room_id]["timeline"]
        event: dict[str, Any] = next(e for e in timeline["events"] if e["event_id"] == root)
        return {"limited": timeline["limited"], "bundle": relations(event)}

    complete = root_in(await api.sync(alice, since=since))
    assert complete == {"limited": False, "bundle": {}}
    gappy_body = await api.sync(alice, filter=json.dumps({"room": {"timeline": {"limit": 3}}}))
    validate_response("sync.yaml", "/sync", "get", 200, gappy_body)
    gappy = root_in(gappy_body)
    assert gappy["limited"] is True
    assert gappy["bundle"]["m.thread"]["count"] == 1


async def test_relations_recurse(api: MatrixApi) -> None:
    alice = await api.register("alice")
    room_id = await api.create_room(alice)
    root = await api.send_message(alice, room_id, "root")
    reply = await send(api, alice, room_id, related("m.thread", root, "reply"))
    reply_edit = await send(api, alice, room_id, edit(reply, "reply, edited"))
    reaction = await send(api, alice, room_id, {"m.relates_to": {
        "rel_type": "m.annotation", "event_id": reply_edit, "key": "👍"}}, "m.reaction")
    base = f"/_matrix/client/v1/rooms/{room_id}/relations/{root}"
    path = "/rooms/{roomId}/relations/{eventId}"

    plain = await api.ok("GET", base, token=alice.token)
    assert [e["event_id"] for e in plain["chunk"]] == [reply]
    assert "recursion_depth" not in plain
    deep = await api.ok("GET", base, token=alice.token, params={"recurse": "true"})
    validate_response("relations.yaml", path, "get", 200, deep)
    assert [e["event_id"] for e in deep["chunk"]] == [reaction, reply_edit, reply]
    assert deep["recursion_depth"] == 3
    only = await api.ok("GET", base + "/m.annotation", token=alice.token,
                        params={"recurse": "true", "dir": "f"})
    assert [e["event_id"] for e in only["chunk"]] == [reaction]
    flat = await api.ok("GET", base, token=alice.token, params={"recurse": "false"})
    assert [e["event_id"] for e in flat["chunk"]] == [reply]
    assert flat["recursion_depth"] == 1


async def test_a_thread_cannot_start_from_an_event_with_a_relation(api: MatrixApi) -> None:
    alice = await api.register("alice")
    room_id = await api.create_room(alice)
    root = await api.send_message(alice, room_id, "root")
    reply = await send(api, alice, room_id, related("m.thread", root, "reply"))
    changed = await send(api, alice, room_id, edit(root, "root, edited"))
    for parent in (reply, changed):
        status, body = await api.request(
            "POST", f"rooms/{room_id}/send/m.room.message",
            json=related("m.thread", parent, "nested"), token=alice.token,
        )
        assert (status, body["errcode"]) == (400, "M_UNKNOWN"), parent
    await send(api, alice, room_id, related("m.thread", root, "fine"))


async def test_sync_bundles_the_timeline_of_a_room_joined_since(api: MatrixApi) -> None:
    """Synapse bundles for a room newly joined (its timeline is `limited` then: the client
    holds none of its history), even when the window holds every event."""
    alice, bob = await api.register("alice"), await api.register("bob")
    room_id = await api.create_room(alice, preset="public_chat")
    root = await api.send_message(alice, room_id, "root")
    await send(api, alice, room_id, related("m.thread", root, "reply"))
    wide = json.dumps({"room": {"timeline": {"limit": 50}}})
    since = (await api.sync(bob, filter=wide))["next_batch"]
    await api.join(bob, room_id)
    body = await api.sync(bob, since=since, filter=wide)
    timeline = body["rooms"]["join"][room_id]["timeline"]
    assert timeline["limited"] is True
    event = next(e for e in timeline["events"] if e["event_id"] == root)
    assert relations(event)["m.thread"]["count"] == 1

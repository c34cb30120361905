"""Knocking as clients see it (client-server-api "Knocking on rooms"): the knocker's /sync
`rooms.knock` with `knock_state`, the admins' timeline, and accepting (invite) or denying
(kick) a knock."""

from __future__ import annotations

from typing import Any

from tests.helpers import MatrixApi, User, validate_response


async def sync(api: MatrixApi, user: User, since: str | None = None) -> dict[str, Any]:
    body = await api.sync(user, **({"since": since} if since else {}), timeout=0)
    validate_response("sync.yaml", "/sync", "get", 200, body)
    return body


async def knock_room(api: MatrixApi, admin: User) -> str:
    return await api.create_room(admin, room_version="10", name="Knock knock", initial_state=[
        {"type": "m.room.join_rules", "state_key": "", "content": {"join_rule": "knock"}},
    ])


def member_events(events: list[dict[str, Any]], user: User) -> list[str]:
    return [e["content"]["membership"] for e in events
            if e["type"] == "m.room.member" and e["state_key"] == user.user_id]


async def test_a_knock_is_in_the_knockers_sync_and_the_admins_timeline(api: MatrixApi) -> None:
    alice, bob = await api.register("alice"), await api.register("bob")
    room_id = await knock_room(api, alice)
    bob_since = (await sync(api, bob))["next_batch"]
    alice_since = (await sync(api, alice))["next_batch"]
    await api.ok("POST", f"knock/{room_id}", json={"reason": "let me in"}, token=bob.token)

    body = await sync(api, bob, bob_since)
    assert room_id not in body["rooms"]["join"] and room_id not in body["rooms"]["invite"]
    state = body["rooms"]["knock"][room_id]["knock_state"]["events"]
    by_type = {e["type"]: e for e in state}
    assert by_type["m.room.name"]["content"]["name"] == "Knock knock"
    assert by_type["m.room.join_rules"]["content"]["join_rule"] == "knock"
    assert member_events(state, bob) == ["knock"]
    # Once told, an incremental sync does not repeat it; an initial sync does.
    assert room_id not in (await sync(api, bob, body["next_batch"]))["rooms"]["knock"]
    assert room_id in (await sync(api, bob))["rooms"]["knock"]

    timeline = (await sync(api, alice, alice_since))["rooms"]["join"][room_id]["timeline"]
    knock = next(e for e in timeline["events"] if e["type"] == "m.room.member")
    assert (knock["state_key"], knock["content"]["membership"], knock["content"]["reason"]) \
        == (bob.user_id, "knock", "let me in")


async def test_accepting_a_knock_invites_and_denying_it_kicks(api: MatrixApi) -> None:
    alice, bob, carol = [await api.register(n) for n in ("alice", "bob", "carol")]
    room_id = await knock_room(api, alice)
    for knocker in (bob, carol):
        await api.ok("POST", f"knock/{room_id}", json={}, token=knocker.token)
    bob_body, carol_body = await sync(api, bob), await sync(api, carol)
    assert room_id in bob_body["rooms"]["knock"] and room_id in carol_body["rooms"]["knock"]
    bob_since, carol_since = bob_body["next_batch"], carol_body["next_batch"]

    await api.invite(alice, room_id, bob)  # accepted
    body = await sync(api, bob, bob_since)
    assert room_id not in body["rooms"]["knock"]
    assert member_events(body["rooms"]["invite"][room_id]["invite_state"]["events"], bob) \
        == ["invite"]
    await api.join(bob, room_id)
    assert room_id in (await sync(api, bob, body["next_batch"]))["rooms"]["join"]

    await api.ok("POST", f"rooms/{room_id}/kick", json={"user_id": carol.user_id,
                                                        "reason": "no"}, token=alice.token)
    body = await sync(api, carol, carol_since)
    assert room_id not in body["rooms"]["knock"]
    left = body["rooms"]["leave"][room_id]["timeline"]["events"]
    assert member_events(left, carol) == ["leave"]
    assert room_id not in (await sync(api, carol))["rooms"]["knock"]
    status, error = await api.request("POST", f"rooms/{room_id}/join", json={},
                                      token=carol.token)
    assert (status, error["errcode"]) == (403, "M_FORBIDDEN")

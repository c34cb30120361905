"""Push rules, notification counts in /sync, /notifications and pushers, over HTTP."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest

from homeserver.services import push as push_service
from tests.bad_input import assert_sane, bodies, collect, segments, send_body
from tests.helpers import MatrixApi, User, validate_response
from tests.push_rooms import GroupRoom, group_room, send

RULES = "pushrules/global"
GATEWAY = "https://push.example.org/_matrix/push/v1/notify"


def pusher(**overrides: Any) -> dict[str, Any]:
    body = {
        "kind": "http", "app_id": "org.example.app", "pushkey": "key-1",
        "app_display_name": "Example", "device_display_name": "Phone", "lang": "en",
        "data": {"url": GATEWAY, "format": "event_id_only"},
    }
    body.update(overrides)
    return body


async def rule_ids(api: MatrixApi, user: User, kind: str) -> list[str]:
    body = await api.ok("GET", f"{RULES}/", token=user.token)
    return [r["rule_id"] for r in body[kind]]


@pytest.fixture
async def room(api: MatrixApi) -> GroupRoom:
    return await group_room(api, preset="public_chat")


async def counts(
    api: MatrixApi, user: User, room_id: str, since: str
) -> tuple[dict[str, Any], str]:
    body = await api.sync(user, since=since, timeout=0)
    return body["rooms"]["join"][room_id]["unread_notifications"], body["next_batch"]


# ---- rules ------------------------------------------------------------------------------------

async def test_default_rules_are_served(api: MatrixApi) -> None:
    alice = await api.register("alice")
    body = await api.ok("GET", "pushrules/", token=alice.token)
    validate_response("pushrules.yaml", "/pushrules/", "get", 200, body)
    assert body["global"]["override"][0]["rule_id"] == ".m.rule.master"
    rules = await api.ok("GET", f"{RULES}/", token=alice.token)
    validate_response("pushrules.yaml", "/pushrules/global/", "get", 200, rules)
    assert rules == body["global"]
    underride = [r["rule_id"] for r in rules["underride"]]
    assert underride[-2:] == [".m.rule.message", ".m.rule.encrypted"]
    mention = next(r for r in rules["override"] if r["rule_id"] == ".m.rule.is_user_mention")
    assert mention["conditions"][0]["value"] == alice.user_id
    one = await api.ok("GET", f"{RULES}/underride/.m.rule.message", token=alice.token)
    validate_response("pushrules.yaml", "/pushrules/global/{kind}/{ruleId}", "get", 200, one)
    assert one == {
        "rule_id": ".m.rule.message", "default": True, "enabled": True, "actions": ["notify"],
        "conditions": [{"kind": "event_match", "key": "type", "pattern": "m.room.message"}],
    }


async def test_rule_crud_with_ordering(api: MatrixApi) -> None:
    alice = await api.register("alice")
    since = (await api.sync(alice))["next_batch"]
    for rule_id in ("a", "b"):
        await api.ok("PUT", f"{RULES}/override/{rule_id}", token=alice.token, json={
            "actions": ["notify"],
            "conditions": [{"kind": "event_match", "key": "content.body", "pattern": rule_id}],
        })
    assert (await rule_ids(api, alice, "override"))[:3] == [".m.rule.master", "b", "a"]
    await api.ok("PUT", f"{RULES}/override/c", token=alice.token, json={"actions": []},
                 params={"before": "a"})
    await api.ok("PUT", f"{RULES}/override/d", token=alice.token, json={"actions": []},
                 params={"after": "a"})
    assert (await rule_ids(api, alice, "override"))[1:6] == [
        "b", "c", "a", "d", ".m.rule.suppress_notices"
    ]
    # Updating keeps the place; before/after move it.
    await api.ok("PUT", f"{RULES}/override/b", token=alice.token, json={"actions": ["notify"]})
    assert (await rule_ids(api, alice, "override"))[1:5] == ["b", "c", "a", "d"]
    await api.ok("PUT", f"{RULES}/override/b", token=alice.token, json={"actions": []},
                 params={"after": "d"})
    assert (await rule_ids(api, alice, "override"))[1:5] == ["c", "a", "d", "b"]

    await api.ok("PUT", f"{RULES}/content/cake", token=alice.token,
                 json={"pattern": "cake*lie", "actions": ["notify"]})
    rule = await api.ok("GET", f"{RULES}/content/cake", token=alice.token)
    validate_response("pushrules.yaml", "/pushrules/global/{kind}/{ruleId}", "get", 200, rule)
    assert rule == {"rule_id": "cake", "default": False, "enabled": True,
                    "actions": ["notify"], "pattern": "cake*lie"}
    await api.ok("PUT", f"{RULES}/content/cake/enabled", token=alice.token,
                 json={"enabled": False})
    enabled = await api.ok("GET", f"{RULES}/content/cake/enabled", token=alice.token)
    validate_response("pushrules.yaml", "/pushrules/global/{kind}/{ruleId}/enabled", "get",
                      200, enabled)
    assert enabled == {"enabled": False}
    tweak = ["notify", {"set_tweak": "sound", "value": "bing"}]
    await api.ok("PUT", f"{RULES}/content/cake/actions", token=alice.token,
                 json={"actions": tweak})
    actions = await api.ok("GET", f"{RULES}/content/cake/actions", token=alice.token)
    validate_response("pushrules.yaml", "/pushrules/global/{kind}/{ruleId}/actions", "get",
                      200, actions)
    assert actions == {"actions": tweak}
    await api.ok("DELETE", f"{RULES}/content/cake", token=alice.token)
    status, body = await api.request("GET", f"{RULES}/content/cake", token=alice.token)
    assert (status, body["errcode"]) == (404, "M_NOT_FOUND")

    sync = await api.sync(alice, since=since, timeout=0)
    events = [e for e in sync["account_data"]["events"] if e["type"] == "m.push_rules"]
    assert events and events[-1]["content"]["global"] == await api.ok(
        "GET", f"{RULES}/", token=alice.token
    )


async def test_default_rules_can_be_changed_not_deleted(api: MatrixApi) -> None:
    alice = await api.register("alice")
    await api.ok("PUT", f"{RULES}/override/.m.rule.master/enabled", token=alice.token,
                 json={"enabled": True})
    await api.ok("PUT", f"{RULES}/underride/.m.rule.message/actions", token=alice.token,
                 json={"actions": []})
    rules = await api.ok("GET", f"{RULES}/", token=alice.token)
    assert rules["override"][0]["enabled"] is True
    message = next(r for r in rules["underride"] if r["rule_id"] == ".m.rule.message")
    assert message["actions"] == [] and message["default"] is True
    status, body = await api.request("DELETE", f"{RULES}/underride/.m.rule.message",
                                     token=alice.token)
    assert (status, body["errcode"]) == (404, "M_NOT_FOUND")
    status, body = await api.request("PUT", f"{RULES}/override/.m.rule.master",
                                     token=alice.token, json={"actions": []})
    assert (status, body["errcode"]) == (400, "M_INVALID_PARAM")


@pytest.mark.parametrize(
    ("method", "path", "body", "params", "status", "errcode"),
    [
        ("GET", f"{RULES}/sideways/x", None, None, 400, "M_INVALID_PARAM"),
        ("PUT", f"{RULES}/sideways/x", {"actions": []}, None, 400, "M_INVALID_PARAM"),
        ("GET", f"{RULES}/override/nope", None, None, 404, "M_NOT_FOUND"),
        ("DELETE", f"{RULES}/override/nope", None, None, 404, "M_NOT_FOUND"),
        ("GET", f"{RULES}/override/nope/enabled", None, None, 404, "M_NOT_FOUND"),
        ("PUT", f"{RULES}/override/nope/enabled", {"enabled": True}, None, 404, "M_NOT_FOUND"),
        ("PUT", f"{RULES}/override/nope/actions", {"actions": []}, None, 404, "M_NOT_FOUND"),
        ("PUT", f"{RULES}/override/x", {"actions": []}, {"before": "nope"}, 400, "M_UNKNOWN"),
        ("PUT", f"{RULES}/override/x", {"actions": []}, {"after": ".m.rule.master"}, 400,
         "M_INVALID_PARAM"),
        ("PUT", f"{RULES}/override/x", {}, None, 400, "M_MISSING_PARAM"),
        ("PUT", f"{RULES}/override/x", {"actions": ["shout"]}, None, 400, "M_INVALID_PARAM"),
        ("PUT", f"{RULES}/content/x", {"actions": []}, None, 400, "M_MISSING_PARAM"),
        ("PUT", f"{RULES}/override/.m.rule.master/enabled", {}, None, 400, "M_MISSING_PARAM"),
        ("PUT", f"{RULES}/override/.m.rule.master/enabled", {"enabled": "yes"}, None, 400,
         "M_BAD_JSON"),
        ("PUT", f"{RULES}/override/.m.rule.master/actions", {"actions": 1}, None, 400,
         "M_INVALID_PARAM"),
        ("PUT", "user/{me}/account_data/m.push_rules", {"global": {}}, None, 405, "M_BAD_JSON"),
    ],
)
async def test_rule_errors(
    api: MatrixApi, method: str, path: str, body: Any, params: dict[str, str] | None,
    status: int, errcode: str,
) -> None:
    alice = await api.register("alice")
    got, answer = await api.request(
        method, path.format(me=alice.user_id), json=body, token=alice.token, params=params
    )
    assert (got, answer["errcode"]) == (status, errcode), answer


async def test_rules_of_one_kind(api: MatrixApi) -> None:
    """Issue 13: `GET /pushrules/global/{kind}/` lists that kind's rules, as the ruleset does."""
    alice = await api.register("alice")
    await api.ok("PUT", f"{RULES}/content/cake", token=alice.token,
                 json={"pattern": "cake", "actions": ["notify"]})
    rules = await api.ok("GET", f"{RULES}/", token=alice.token)
    for kind in ("override", "content", "room", "sender", "underride"):
        assert await api.ok("GET", f"{RULES}/{kind}/", token=alice.token) == rules[kind], kind
    assert rules["content"][0]["rule_id"] == "cake"
    status, body = await api.request("GET", f"{RULES}/sideways/", token=alice.token)
    assert (status, body["errcode"]) == (400, "M_INVALID_PARAM")


@pytest.mark.parametrize(
    ("method", "path"),
    [
        # Without the trailing slash the spec's ruleset paths have (Synapse, Sytest 80torture).
        ("GET", "pushrules"), ("GET", RULES), ("GET", f"{RULES}/room"),
        # An unknown scope.
        ("GET", "pushrules/device/"), ("GET", "pushrules/device/room/x"),
        ("PUT", "pushrules/device/room/x"), ("DELETE", "pushrules/device/room/x"),
        # A missing or empty rule ID.
        ("PUT", f"{RULES}/room"), ("PUT", f"{RULES}/room/"), ("DELETE", f"{RULES}/room/"),
        ("PUT", RULES), ("PUT", "pushrules/"),
        # An unknown attribute, or more path after one.
        ("GET", f"{RULES}/override/.m.rule.master/not_an_attr"),
        ("PUT", f"{RULES}/override/.m.rule.master/not_an_attr"),
        ("GET", f"{RULES}/override/.m.rule.master/enabled/more"),
    ],
)
async def test_unrecognized_rule_paths(api: MatrixApi, method: str, path: str) -> None:
    """Issue 13: a push rules path the spec does not define is a bad request (400
    M_UNRECOGNIZED, as Synapse answers), not an unknown endpoint, and never a 5xx."""
    alice = await api.register("alice")
    status, body = await api.request(
        method, path, token=alice.token, json={"actions": [], "enabled": True}
    )
    assert (status, body["errcode"]) == (400, "M_UNRECOGNIZED"), body
    # The rules are untouched by it.
    master = await api.ok("GET", f"{RULES}/override/.m.rule.master", token=alice.token)
    assert master["enabled"] is False


async def test_rules_need_a_token(api: MatrixApi) -> None:
    status, body = await api.request("GET", f"{RULES}/")
    assert (status, body["errcode"]) == (401, "M_MISSING_TOKEN")


# ---- counts -----------------------------------------------------------------------------------

async def test_counts_rise_on_messages_and_mentions_and_reset_on_receipt(
    api: MatrixApi, room: GroupRoom
) -> None:
    since = (await api.sync(room.alice))["next_batch"]
    await api.send_message(room.bob, room.room_id, "plain message")
    unread, since = await counts(api, room.alice, room.room_id, since)
    assert unread == {"notification_count": 1, "highlight_count": 0}
    mention = {"msgtype": "m.text", "body": "hey alice",
               "m.mentions": {"user_ids": [room.alice.user_id]}}
    last = await send(api, room.bob, room.room_id, "m.room.message", mention)
    unread, since = await counts(api, room.alice, room.room_id, since)
    assert unread == {"notification_count": 2, "highlight_count": 1}
    # Carol was not mentioned; the sender's own events never count for him.
    carol = (await api.sync(room.carol))["rooms"]["join"][room.room_id]["unread_notifications"]
    assert carol == {"notification_count": 2, "highlight_count": 0}
    bob = (await api.sync(room.bob))["rooms"]["join"][room.room_id]["unread_notifications"]
    assert bob == {"notification_count": 0, "highlight_count": 0}

    await api.ok("POST", f"rooms/{room.room_id}/receipt/m.read/{last}", json={},
                 token=room.alice.token)
    unread, since = await counts(api, room.alice, room.room_id, since)
    assert unread == {"notification_count": 0, "highlight_count": 0}
    # A private receipt resets too.
    notice = await api.send_message(room.bob, room.room_id, "another")
    unread, since = await counts(api, room.alice, room.room_id, since)
    assert unread["notification_count"] == 1
    await api.ok("POST", f"rooms/{room.room_id}/receipt/m.read.private/{notice}", json={},
                 token=room.alice.token)
    unread, since = await counts(api, room.alice, room.room_id, since)
    assert unread == {"notification_count": 0, "highlight_count": 0}


async def test_own_events_read_the_room_up_to_them(api: MatrixApi) -> None:
    alice, bob, carol = [await api.register(n) for n in ("alice", "bob", "carol")]
    room_id = await api.create_room(alice, preset="public_chat")
    await api.join(carol, room_id)
    await api.invite(alice, room_id, bob)
    since = (await api.sync(bob))["next_batch"]
    await api.join(bob, room_id)
    for i in range(3):
        await api.send_message(alice, room_id, f"m{i}")
    # The invite (a notification for bob) lies before his join: read.
    unread, since = await counts(api, bob, room_id, since)
    assert unread == {"notification_count": 3, "highlight_count": 0}
    mention = {"msgtype": "m.text", "body": "hey bob",
               "m.mentions": {"user_ids": [bob.user_id]}}
    await send(api, alice, room_id, "m.room.message", mention)
    unread, since = await counts(api, bob, room_id, since)
    assert unread == {"notification_count": 4, "highlight_count": 1}
    # Bob's own message reads everything before it; what follows counts again.
    await api.send_message(bob, room_id, "mine")
    unread, since = await counts(api, bob, room_id, since)
    assert unread == {"notification_count": 0, "highlight_count": 0}
    await api.send_message(carol, room_id, "after")
    unread, since = await counts(api, bob, room_id, since)
    assert unread == {"notification_count": 1, "highlight_count": 0}
    full = (await api.sync(bob))["rooms"]["join"][room_id]["unread_notifications"]
    assert full == {"notification_count": 1, "highlight_count": 0}


async def test_encrypted_events_and_notices(api: MatrixApi, room: GroupRoom) -> None:
    since = (await api.sync(room.alice))["next_batch"]
    encrypted = {"algorithm": "m.megolm.v1.aes-sha2", "ciphertext": "AwgAEn", "sender_key": "k",
                 "device_id": "D", "session_id": "s"}
    await send(api, room.bob, room.room_id, "m.room.encrypted", encrypted)
    await send(api, room.bob, room.room_id, "m.room.message", {"msgtype": "m.notice", "body": "n"})
    unread, _ = await counts(api, room.alice, room.room_id, since)
    assert unread == {"notification_count": 1, "highlight_count": 0}


async def test_room_mention_needs_power(api: MatrixApi, room: GroupRoom) -> None:
    since = (await api.sync(room.carol))["next_batch"]
    everyone = {"msgtype": "m.text", "body": "@room", "m.mentions": {"room": True}}
    await send(api, room.bob, room.room_id, "m.room.message", everyone)  # bob has level 0
    await send(api, room.alice, room.room_id, "m.room.message", everyone)  # alice created it
    unread, _ = await counts(api, room.carol, room.room_id, since)
    assert unread == {"notification_count": 2, "highlight_count": 1}


async def test_user_rules_change_what_counts(api: MatrixApi, room: GroupRoom) -> None:
    await api.ok("PUT", f"{RULES}/room/{quote(room.room_id)}", token=room.alice.token,
                 json={"actions": []})
    await api.ok("PUT", f"{RULES}/content/tea", token=room.carol.token,
                 json={"pattern": "tea", "actions": ["notify", {"set_tweak": "highlight"}]})
    since_a = (await api.sync(room.alice))["next_batch"]
    since_c = (await api.sync(room.carol))["next_batch"]
    await api.send_message(room.bob, room.room_id, "time for TEA!")
    assert (await counts(api, room.alice, room.room_id, since_a))[0]["notification_count"] == 0
    assert (await counts(api, room.carol, room.room_id, since_c))[0] == {
        "notification_count": 1, "highlight_count": 1,
    }


async def test_notifications_endpoint(api: MatrixApi, room: GroupRoom) -> None:
    first = await api.send_message(room.bob, room.room_id, "one")
    mention = {"msgtype": "m.text", "body": "two",
               "m.mentions": {"user_ids": [room.alice.user_id]}}
    second = await send(api, room.bob, room.room_id, "m.room.message", mention)
    await api.ok("POST", f"rooms/{room.room_id}/receipt/m.read/{first}", json={},
                 token=room.alice.token)
    body = await api.ok("GET", "notifications", token=room.alice.token)
    validate_response("notifications.yaml", "/notifications", "get", 200, body)
    listed = [(n["event"]["event_id"], n["read"]) for n in body["notifications"]]
    assert listed == [(second, False), (first, True)]
    assert body["notifications"][0]["room_id"] == room.room_id
    assert "next_token" not in body
    highlights = await api.ok("GET", "notifications", token=room.alice.token,
                              params={"only": "highlight"})
    assert [n["event"]["event_id"] for n in highlights["notifications"]] == [second]
    page = await api.ok("GET", "notifications", token=room.alice.token, params={"limit": "1"})
    assert [n["event"]["event_id"] for n in page["notifications"]] == [second]
    rest = await api.ok("GET", "notifications", token=room.alice.token,
                        params={"limit": "1", "from": page["next_token"]})
    assert [n["event"]["event_id"] for n in rest["notifications"]] == [first]
    for params in ({"from": "x"}, {"from": "-1"}, {"limit": "z"}):
        status, error = await api.request("GET", "notifications", token=room.alice.token,
                                          params=params)
        assert (status, error["errcode"]) == (400, "M_INVALID_PARAM")


# ---- pushers ----------------------------------------------------------------------------------

async def test_pushers_round_trip(api: MatrixApi) -> None:
    alice = await api.register("alice")
    bob = await api.register("bob")
    assert await api.ok("GET", "pushers", token=alice.token) == {"pushers": []}
    await api.ok("POST", "pushers/set", json=pusher(profile_tag="tag"), token=alice.token)
    body = await api.ok("GET", "pushers", token=alice.token)
    validate_response("pusher.yaml", "/pushers", "get", 200, body)
    expected = {k: v for k, v in pusher(profile_tag="tag").items() if k != "append"}
    assert body == {"pushers": [expected]}
    await api.ok("POST", "pushers/set", json=pusher(lang="de"), token=alice.token)
    assert [p["lang"] for p in (await api.ok("GET", "pushers", token=alice.token))["pushers"]] \
        == ["de"]
    # append: true shares the pushkey; without it, Bob takes it from Alice.
    await api.ok("POST", "pushers/set", json=pusher(append=True), token=bob.token)
    assert len((await api.ok("GET", "pushers", token=alice.token))["pushers"]) == 1
    await api.ok("POST", "pushers/set", json=pusher(), token=bob.token)
    assert (await api.ok("GET", "pushers", token=alice.token))["pushers"] == []
    await api.ok("POST", "pushers/set", json={"kind": None, "app_id": "org.example.app",
                                              "pushkey": "key-1"}, token=bob.token)
    assert (await api.ok("GET", "pushers", token=bob.token))["pushers"] == []


async def test_a_pusher_goes_with_the_device_that_registered_it(api: MatrixApi) -> None:
    alice = await api.register("alice")
    await api.ok("POST", "pushers/set", json=pusher(), token=alice.token)
    phone = await api.ok("POST", "login", json={
        "type": "m.login.password", "identifier": {"type": "m.id.user", "user": "alice"},
        "password": alice.password,
    })
    await api.ok("POST", "logout", json={}, token=alice.token)  # deletes the first device
    assert await api.ok("GET", "pushers", token=phone["access_token"]) == {"pushers": []}


async def test_a_user_has_a_bounded_number_of_pushers(
    api: MatrixApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(push_service, "MAX_PUSHERS_PER_USER", 3)
    alice = await api.register("alice")
    bob = await api.register("bob")
    for n in range(3):
        await api.ok("POST", "pushers/set", json=pusher(pushkey=f"key-{n}"), token=alice.token)
    status, answer = await api.request("POST", "pushers/set", json=pusher(pushkey="key-3"),
                                       token=alice.token)
    assert (status, answer["errcode"]) == (403, "M_FORBIDDEN"), answer
    # Updating one she has is no new pusher; another user has a bound of his own.
    await api.ok("POST", "pushers/set", json=pusher(pushkey="key-0", lang="de"),
                 token=alice.token)
    await api.ok("POST", "pushers/set", json=pusher(pushkey="key-3"), token=bob.token)
    await api.ok("POST", "pushers/set", json={"kind": None, "app_id": "org.example.app",
                                              "pushkey": "key-1"}, token=alice.token)
    await api.ok("POST", "pushers/set", json=pusher(pushkey="key-4"), token=alice.token)
    listed = (await api.ok("GET", "pushers", token=alice.token))["pushers"]
    assert sorted(p["pushkey"] for p in listed) == ["key-0", "key-2", "key-4"]


@pytest.mark.parametrize(
    ("body", "errcode"),
    [
        ({"app_id": "a", "pushkey": "k"}, "M_MISSING_PARAM"),
        (pusher(lang=None) | {"lang": None}, "M_BAD_JSON"),
        ({k: v for k, v in pusher().items() if k not in ("lang", "data")}, "M_MISSING_PARAM"),
        (pusher(kind="carrier-pigeon"), "M_INVALID_PARAM"),
        (pusher(app_id="x" * 65), "M_INVALID_PARAM"),
        (pusher(pushkey="k" * 513), "M_INVALID_PARAM"),
        (pusher(data={"url": "ftp://push.example.org/_matrix/push/v1/notify"}),
         "M_INVALID_PARAM"),
        (pusher(data={"url": "https://push.example.org/other"}), "M_INVALID_PARAM"),
        (pusher(data={}), "M_MISSING_PARAM"),
        (pusher(data={"url": GATEWAY, "format": "full"}), "M_INVALID_PARAM"),
        (pusher(data=[]), "M_BAD_JSON"),
        (pusher(append="yes"), "M_BAD_JSON"),
    ],
)
async def test_pusher_errors(api: MatrixApi, body: dict[str, Any], errcode: str) -> None:
    alice = await api.register("alice")
    status, answer = await api.request("POST", "pushers/set", json=body, token=alice.token)
    assert (status, answer["errcode"]) == (400, errcode), answer


# ---- hostile input ----------------------------------------------------------------------------

WRITES = [
    ("PUT", f"{RULES}/override/fuzz"), ("PUT", f"{RULES}/content/fuzz"),
    ("PUT", f"{RULES}/override/.m.rule.master/enabled"),
    ("PUT", f"{RULES}/underride/.m.rule.message/actions"), ("POST", "pushers/set"),
]


@pytest.mark.parametrize(("method", "path"), WRITES)
async def test_write_endpoints_survive_arbitrary_bodies(
    api: MatrixApi, method: str, path: str
) -> None:
    alice = await api.register("alice")
    for kind, value in collect(bodies):
        status, body = await send_body(api, method, path, alice.token, kind, value)
        assert_sane(status, body, (path, value))


async def test_rule_paths_survive_arbitrary_segments(api: MatrixApi) -> None:
    alice = await api.register("alice")
    for segment in collect(segments):
        part = quote(segment, safe="")
        for method, path in [
            ("PUT", f"{RULES}/override/{part}"), ("GET", f"{RULES}/{part}/x"),
            ("DELETE", f"{RULES}/room/{part}"), ("PUT", f"{RULES}/sender/{part}/enabled"),
        ]:
            status, body = await api.request(
                method, path, json={"actions": ["notify"], "enabled": True}, token=alice.token,
                params={"before": segment} if method == "PUT" else None,
            )
            assert_sane(status, body, (method, path))

"""Push rules against the spec text: the default ruleset, every condition, glob matching."""

from __future__ import annotations

from typing import Any

import pytest

from homeserver.protocol import push_rules as pr
from homeserver.protocol.push_rules import DefaultChange, EventContext, UserRule

ALICE = "@alice:example.org"
BOB = "@bob:example.org"
ROOM = "!room:example.org"


def message(body: str = "hello", **content: Any) -> dict[str, Any]:
    return {
        "type": "m.room.message", "sender": BOB, "room_id": ROOM,
        "content": {"msgtype": "m.text", "body": body, **content},
    }


def run(
    event: dict[str, Any], *, members: int = 3, sender_power: float = 0,
    power_levels: dict[str, Any] | None = None, user_rules: list[UserRule] | None = None,
    changes: dict[tuple[str, str], DefaultChange] | None = None, name: str | None = None,
) -> pr.Actions | None:
    ruleset = pr.build_ruleset(ALICE, user_rules or [], changes or {})
    ctx = EventContext(event, members, sender_power, power_levels)
    return pr.evaluate(pr.compile_ruleset(ruleset), ctx, name)


def test_default_rules_are_the_spec_set_in_order() -> None:
    rules = pr.default_rules(ALICE)
    assert [r["rule_id"] for r in rules["override"]] == [
        ".m.rule.master", ".m.rule.suppress_notices", ".m.rule.invite_for_me",
        ".m.rule.member_event", ".m.rule.is_user_mention", ".m.rule.is_room_mention",
        ".m.rule.tombstone", ".m.rule.reaction", ".m.rule.room.server_acl",
        ".m.rule.suppress_edits",
    ]
    assert [r["rule_id"] for r in rules["underride"]] == [
        ".m.rule.call", ".m.rule.encrypted_room_one_to_one", ".m.rule.room_one_to_one",
        ".m.rule.message", ".m.rule.encrypted",
    ]
    assert rules["content"] == rules["room"] == rules["sender"] == []
    master = rules["override"][0]
    assert master == {
        "rule_id": ".m.rule.master", "default": True, "enabled": False, "conditions": [],
        "actions": [],
    }
    mention = rules["override"][4]["conditions"][0]
    assert mention == {
        "kind": "event_property_contains", "key": "content.m\\.mentions.user_ids",
        "value": ALICE,
    }
    assert rules["override"][2]["conditions"][2]["pattern"] == ALICE


@pytest.mark.parametrize(
    ("topic", "matches"),
    [("Lunch plans", True), ("LUNCH", True), (" lunch", False), ("lunc", False), (None, False)],
)
def test_event_match_spec_example(topic: Any, matches: bool) -> None:
    event = {"type": "m.room.topic", "content": {"topic": topic}}
    condition = pr._compile_condition(
        {"kind": "event_match", "key": "content.topic", "pattern": "lunc?*"}
    )
    assert pr._holds(condition, EventContext(event, 2, 0, None)) is matches


@pytest.mark.parametrize(
    ("body", "matches"),
    [("An example event.", True), ("exple", True), ("An exciting triple-whammy", True),
     ("examples", False), ("counterexample", False)],
)
def test_content_body_matches_at_word_boundaries(body: str, matches: bool) -> None:
    assert pr.glob_matches("ex*ple", body, words=True) is matches


def test_event_match_needs_a_string_even_for_star() -> None:
    condition = pr._compile_condition({"kind": "event_match", "key": "content.x", "pattern": "*"})
    for value in (None, 1, ["a"]):
        ctx = EventContext({"content": {"x": value}}, 2, 0, None)
        assert not pr._holds(condition, ctx)
    assert not pr._holds(condition, EventContext({"content": {}}, 2, 0, None))


def test_dotted_paths_unescape_dots_and_backslashes() -> None:
    assert pr.split_path("content.m\\.relates_to.rel_type") == (
        "content", "m.relates_to", "rel_type"
    )
    assert pr.split_path("content.m\\\\foo") == ("content", "m\\foo")
    assert pr.split_path("content.a\\xb") == ("content", "a\\xb")


@pytest.mark.parametrize(
    ("value", "matches"), [(True, True), ("true", False), (1, False)],
)
def test_event_property_is_does_not_cast(value: Any, matches: bool) -> None:
    event = {"type": "m.room.create", "content": {"m.federate": value}}
    condition = pr._compile_condition(
        {"kind": "event_property_is", "key": "content.m\\.federate", "value": True}
    )
    assert pr._holds(condition, EventContext(event, 2, 0, None)) is matches


def test_event_property_contains_matches_whole_values() -> None:
    event = {"content": {"alt_aliases": ["#somewhere:example.org", "#myroom:example.com"]}}
    ctx = EventContext(event, 2, 0, None)
    for value, matches in (("#myroom:example.com", True), (":example.com", False)):
        condition = pr._compile_condition(
            {"kind": "event_property_contains", "key": "content.alt_aliases", "value": value}
        )
        assert pr._holds(condition, ctx) is matches


@pytest.mark.parametrize(
    ("spec", "count", "matches"),
    [("2", 2, True), ("==2", 3, False), ("<10", 9, True), ("<10", 10, False),
     (">2", 3, True), (">=3", 3, True), ("<=3", 4, False), ("abc", 2, False), ("", 2, False)],
)
def test_room_member_count(spec: str, count: int, matches: bool) -> None:
    assert pr.member_count_matches(spec, count) is matches


def test_plain_group_message_notifies_without_highlight() -> None:
    actions = run(message())
    assert actions == ("notify",)
    assert pr.notifies(actions) and not pr.highlights(actions)


def test_one_to_one_message_plays_a_sound() -> None:
    assert run(message(), members=2) == ("notify", {"set_tweak": "sound", "value": "default"})


def test_user_mention_highlights() -> None:
    actions = run(message("hi", **{"m.mentions": {"user_ids": [ALICE]}}))
    assert pr.notifies(actions) and pr.highlights(actions)
    other = run(message("hi", **{"m.mentions": {"user_ids": [BOB]}}))
    assert not pr.highlights(other)


def test_room_mention_needs_the_notification_power_level() -> None:
    event = message("@room", **{"m.mentions": {"room": True}})
    assert not pr.highlights(run(event, sender_power=0))
    assert pr.highlights(run(event, sender_power=50))
    levels = {"notifications": {"room": 10}}
    assert pr.highlights(run(event, sender_power=10, power_levels=levels))


def test_suppressed_kinds_do_not_notify() -> None:
    assert run(message(msgtype="m.notice")) == ()
    assert run({"type": "m.reaction", "sender": BOB, "content": {}}) == ()
    edit = message("fix", **{"m.relates_to": {"rel_type": "m.replace", "event_id": "$x"}})
    assert run(edit) == ()
    assert run({"type": "m.room.member", "state_key": BOB, "content": {"membership": "join"}}) == ()


def test_invite_for_me_notifies_only_the_invitee() -> None:
    invite = {
        "type": "m.room.member", "sender": BOB, "state_key": ALICE,
        "content": {"membership": "invite"},
    }
    assert pr.notifies(run(invite))
    assert not pr.notifies(run({**invite, "state_key": "@carol:example.org"}))


def test_encrypted_events_are_counted() -> None:
    encrypted = {"type": "m.room.encrypted", "sender": BOB, "content": {"ciphertext": "x"}}
    assert run(encrypted, members=5) == ("notify",)
    assert pr.notifies(run(encrypted, members=2))


def test_tombstone_highlights() -> None:
    event = {"type": "m.room.tombstone", "state_key": "", "sender": BOB, "content": {}}
    assert pr.highlights(run(event))


def test_master_rule_silences_everything() -> None:
    changes = {("override", ".m.rule.master"): DefaultChange(enabled=True)}
    assert run(message("hi", **{"m.mentions": {"user_ids": [ALICE]}}), changes=changes) == ()


def test_changed_default_actions_are_used() -> None:
    changes = {("underride", ".m.rule.message"): DefaultChange(actions=[])}
    assert run(message(), changes=changes) == ()
    disabled = {("underride", ".m.rule.message"): DefaultChange(enabled=False)}
    assert run(message(), changes=disabled) is None


def test_user_rules_outrank_defaults_and_master_stays_first() -> None:
    mute_room = UserRule("room", ROOM, [])
    loud_word = UserRule("content", "cake", ["notify", {"set_tweak": "highlight"}],
                         pattern="cake")
    assert run(message("cake time"), user_rules=[mute_room, loud_word]) == (
        "notify", {"set_tweak": "highlight"}
    )
    assert run(message("tea time"), user_rules=[mute_room, loud_word]) == ()
    mine = UserRule("override", "mine", [], conditions=[])
    ruleset = pr.build_ruleset(ALICE, [mine], {})
    assert [r["rule_id"] for r in ruleset["override"][:3]] == [
        ".m.rule.master", "mine", ".m.rule.suppress_notices"
    ]


def test_sender_rule_matches_the_sender_exactly() -> None:
    rule = UserRule("sender", BOB, ["notify", {"set_tweak": "highlight"}])
    assert pr.highlights(run(message(), user_rules=[rule]))
    assert not pr.highlights(run({**message(), "sender": "@bobby:x"}, user_rules=[rule]))


def test_contains_display_name_condition() -> None:
    rule = UserRule(
        "override", "name", ["notify", {"set_tweak": "highlight"}],
        conditions=[{"kind": "contains_display_name"}],
    )
    assert pr.highlights(run(message("hey Alice Smith!"), user_rules=[rule], name="Alice Smith"))
    assert not pr.highlights(run(message("Alice Smithers"), user_rules=[rule], name="Alice Smith"))
    assert not pr.highlights(run(message("Alice"), user_rules=[rule], name=None))


def test_unknown_conditions_never_match() -> None:
    rule = UserRule("override", "odd", ["notify", {"set_tweak": "highlight"}],
                    conditions=[{"kind": "org.example.future"}])
    assert not pr.highlights(run(message(), user_rules=[rule]))


def test_highlight_tweak_values() -> None:
    assert pr.highlights(("notify", {"set_tweak": "highlight"}))
    assert not pr.highlights(("notify", {"set_tweak": "highlight", "value": False}))
    assert not pr.highlights(("notify",))


def test_historical_actions_are_stripped() -> None:
    assert pr.validate_actions(["dont_notify", "coalesce"]) == []
    rule = UserRule("override", "old", ["dont_notify"], conditions=[])
    assert run(message(), user_rules=[rule]) == ()


@pytest.mark.parametrize(
    ("kind", "rule_id", "body", "errcode"),
    [
        ("override", ".m.rule.mine", {"actions": []}, "M_INVALID_PARAM"),
        ("override", "a/b", {"actions": []}, "M_INVALID_PARAM"),
        ("override", "a\\b", {"actions": []}, "M_INVALID_PARAM"),
        ("override", "x", {}, "M_MISSING_PARAM"),
        ("override", "x", {"actions": "notify"}, "M_INVALID_PARAM"),
        ("override", "x", {"actions": ["shout"]}, "M_INVALID_PARAM"),
        ("override", "x", {"actions": [{"value": 1}]}, "M_INVALID_PARAM"),
        ("override", "x", {"actions": [], "conditions": [{"kind": "event_match"}]},
         "M_INVALID_PARAM"),
        ("override", "x", {"actions": [], "conditions": [
            {"kind": "event_property_is", "key": "a", "value": [1]}]}, "M_INVALID_PARAM"),
        ("override", "x", {"actions": [], "conditions": {}}, "M_INVALID_PARAM"),
        ("content", "x", {"actions": []}, "M_MISSING_PARAM"),
    ],
)
def test_invalid_rules_are_refused(
    kind: str, rule_id: str, body: dict[str, Any], errcode: str
) -> None:
    with pytest.raises(pr.InvalidPushRule) as e:
        pr.parse_user_rule(kind, rule_id, body)
    assert e.value.errcode == errcode


def test_glob_has_no_catastrophic_backtracking() -> None:
    """A client-chosen pattern with many stars against a long body stays linear."""
    import time

    from homeserver.protocol.push_rules import glob_matches

    body = "a" * 60_000
    start = time.perf_counter()
    assert not glob_matches("*a*a*a*a*a*a*a*a*a*a*b", body, words=True)
    assert not glob_matches("*a*a*a*a*a*a*a*a*a*a*b", body)
    assert time.perf_counter() - start < 1.0  # a backtracking regex takes minutes here


def test_glob_semantics() -> None:
    from homeserver.protocol.push_rules import glob_matches

    assert glob_matches("cake*lie", "CakeIsALie")
    assert not glob_matches("cake*lie", "cake is a lie!")
    assert glob_matches("lie", "the cake is a lie!", words=True)
    assert not glob_matches("lie", "believe", words=True)
    assert glob_matches("ca?e", "cake")
    assert glob_matches("*", "")
    assert glob_matches("a*b*c", "a-b-b-c")
    assert not glob_matches("a*b*c", "a-c-b")
    assert glob_matches("be*not", "to be or not", words=True)
    assert glob_matches("m.room.*", "m.room.message")


# ---- evaluating a whole room at once ----------------------------------------------------------

ROOM_USERS = [f"@user{i}:example.org" for i in range(12)]


def _room_rulesets() -> dict[str, pr.CompiledRuleset]:
    """Default rulesets for most users; a few with their own rules or changed defaults."""
    out = {}
    for i, user in enumerate(ROOM_USERS):
        rules: list[UserRule] = []
        changes: dict[tuple[str, str], DefaultChange] = {}
        if i == 3:  # mutes the room
            rules = [UserRule("room", ROOM, [], True, None, None)]
        if i == 4:  # a keyword
            rules = [UserRule("content", "kw", ["notify"], True, None, "lunch")]
        if i == 5:  # no plain-message notifications
            changes = {("underride", ".m.rule.message"): DefaultChange(False, None)}
        if i == 6:  # the mention rule switched off
            changes = {("override", ".m.rule.is_user_mention"): DefaultChange(False, None)}
        if i == 8:  # a condition carrying the owner's ID in a field its kind ignores
            rules = [UserRule("override", "odd", ["notify"], True, [{
                "kind": "event_property_is", "key": "content.body", "value": "hi", "is": user,
            }], None)]
        if i == 9:  # a custom rule matching the owner's ID as a glob
            rules = [UserRule("override", "me", ["notify"], True, [{
                "kind": "event_match", "key": "content.body", "pattern": user,
            }], None)]
        built = pr.build_ruleset(user, rules, changes)
        out[user] = pr.compile_ruleset(built, user)
    return out


@pytest.mark.parametrize("event", [
    message(),
    message("lunch time"),
    message(ROOM_USERS[9]),
    message("hi", **{"m.mentions": {"user_ids": [ROOM_USERS[1], ROOM_USERS[6], "@x:y"]}}),
    message("all", **{"m.mentions": {"room": True}}),
    message("note", msgtype="m.notice"),
    {"type": "m.room.member", "sender": BOB, "room_id": ROOM, "state_key": ROOM_USERS[2],
     "content": {"membership": "invite"}},
    {"type": "m.room.encrypted", "sender": BOB, "room_id": ROOM, "content": {}},
])
def test_evaluate_many_agrees_with_each_user_evaluated_alone(event: dict[str, Any]) -> None:
    rulesets = _room_rulesets()
    names = {ROOM_USERS[7]: "Lunch"}
    pl = {"notifications": {"room": 0}}
    together = pr.evaluate_many(rulesets, EventContext(event, 12, 100, pl), names)
    for user, ruleset in rulesets.items():
        alone = pr.evaluate_rule(ruleset, EventContext(event, 12, 100, pl), names.get(user))
        assert together.get(user) == alone, user


def test_default_rulesets_share_one_shape_and_mentions_still_reach_only_the_mentioned() -> None:
    rulesets = {u: pr.compile_ruleset(pr.build_ruleset(u, [], {}), u) for u in ROOM_USERS}
    assert len({r.shape for r in rulesets.values()}) == 1
    event = message("hi", **{"m.mentions": {"user_ids": [ROOM_USERS[0]]}})
    matched = pr.evaluate_many(rulesets, EventContext(event, 12, 0, None))
    assert matched[ROOM_USERS[0]].rule_id == ".m.rule.is_user_mention"
    assert {matched[u].rule_id for u in ROOM_USERS[1:]} == {".m.rule.message"}

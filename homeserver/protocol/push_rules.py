"""Push rules: Client-Server API "Push Notifications" ("Push Rules", "Conditions", "Actions",
"Predefined Rules") and the appendices "Glob-style matching" and "Dot-separated property paths".

Theory of operation. A user's *ruleset* (the JSON shape the API serves) is built from the
spec's server-default rules, the user's own rules and the user's changes to the defaults
(`build_ruleset`). For evaluation it is *compiled* once (`compile_ruleset`) into the ordered
list of enabled rules — override (with `.m.rule.master` always first), content, room, sender,
underride — whose conditions are parsed values, so evaluating an event for a room of 256 members
is mostly dictionary lookups: conditions that do not depend on the member (`type`, `msgtype`,
member count, sender power...) are memoized per event in its `EventContext`. The first enabled
rule whose conditions all hold decides the actions; no match means no notification.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

KINDS = ("override", "content", "room", "sender", "underride")
MASTER = ".m.rule.master"
HISTORICAL_ACTIONS = frozenset({"dont_notify", "coalesce"})
MAX_SAFE_INT = 2**53 - 1
_USER = "[the user's Matrix ID]"
_MEMBER_COUNT = re.compile(r"(==|<=|>=|<|>)?([0-9]{1,15})")
_WORD = "A-Za-z0-9_"

Actions = tuple[Any, ...]

_SOUND = {"set_tweak": "sound", "value": "default"}
_HIGHLIGHT = {"set_tweak": "highlight"}


def _match(key: str, pattern: str) -> dict[str, Any]:
    return {"kind": "event_match", "key": key, "pattern": pattern}


# The spec's server-default rules in priority order; _USER is replaced by the owner's ID.
_DEFAULTS: dict[str, list[tuple[str, bool, list[dict[str, Any]], list[Any]]]] = {
    "override": [
        (MASTER, False, [], []),
        (".m.rule.suppress_notices", True, [_match("content.msgtype", "m.notice")], []),
        (".m.rule.invite_for_me", True, [
            _match("type", "m.room.member"), _match("content.membership", "invite"),
            _match("state_key", _USER),
        ], ["notify", _SOUND]),
        (".m.rule.member_event", True, [_match("type", "m.room.member")], []),
        (".m.rule.is_user_mention", True, [{
            "kind": "event_property_contains", "key": "content.m\\.mentions.user_ids",
            "value": _USER,
        }], ["notify", _SOUND, _HIGHLIGHT]),
        (".m.rule.is_room_mention", True, [
            {"kind": "event_property_is", "key": "content.m\\.mentions.room", "value": True},
            {"kind": "sender_notification_permission", "key": "room"},
        ], ["notify", _HIGHLIGHT]),
        (".m.rule.tombstone", True, [
            _match("type", "m.room.tombstone"), _match("state_key", ""),
        ], ["notify", _HIGHLIGHT]),
        (".m.rule.reaction", True, [_match("type", "m.reaction")], []),
        (".m.rule.room.server_acl", True, [
            _match("type", "m.room.server_acl"), _match("state_key", ""),
        ], []),
        (".m.rule.suppress_edits", True, [{
            "kind": "event_property_is", "key": "content.m\\.relates_to.rel_type",
            "value": "m.replace",
        }], []),
    ],
    "content": [],
    "room": [],
    "sender": [],
    "underride": [
        (".m.rule.call", True, [_match("type", "m.call.invite")],
         ["notify", {"set_tweak": "sound", "value": "ring"}]),
        (".m.rule.encrypted_room_one_to_one", True, [
            {"kind": "room_member_count", "is": "2"}, _match("type", "m.room.encrypted"),
        ], ["notify", _SOUND]),
        (".m.rule.room_one_to_one", True, [
            {"kind": "room_member_count", "is": "2"}, _match("type", "m.room.message"),
        ], ["notify", _SOUND]),
        (".m.rule.message", True, [_match("type", "m.room.message")], ["notify"]),
        (".m.rule.encrypted", True, [_match("type", "m.room.encrypted")], ["notify"]),
    ],
}


class InvalidPushRule(ValueError):
    """A client-supplied rule, condition or action is malformed; `errcode` says how."""

    def __init__(self, message: str, errcode: str = "M_INVALID_PARAM") -> None:
        super().__init__(message)
        self.errcode = errcode


def _substitute(value: Any, user_id: str) -> Any:
    if isinstance(value, dict):
        return {k: _substitute(v, user_id) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, user_id) for v in value]
    return user_id if value == _USER else value


def default_rules(user_id: str) -> dict[str, list[dict[str, Any]]]:
    """The server-default rules of `user_id`, by kind, in priority order (fresh dicts)."""
    out: dict[str, list[dict[str, Any]]] = {}
    for kind, rules in _DEFAULTS.items():
        out[kind] = []
        for rule_id, enabled, conditions, actions in rules:
            rule: dict[str, Any] = {
                "rule_id": rule_id, "default": True, "enabled": enabled,
                "actions": _substitute(actions, user_id),
            }
            if kind in ("override", "underride"):
                rule["conditions"] = _substitute(conditions, user_id)
            out[kind].append(rule)
    return out


def is_default_rule_id(kind: str, rule_id: str) -> bool:
    return any(r[0] == rule_id for r in _DEFAULTS.get(kind, ()))


@dataclass(frozen=True, slots=True)
class UserRule:
    """A rule the user defined (`default: false`), as stored."""

    kind: str
    rule_id: str
    actions: list[Any]
    enabled: bool = True
    conditions: list[dict[str, Any]] | None = None
    pattern: str | None = None

    def to_json(self) -> dict[str, Any]:
        rule: dict[str, Any] = {
            "rule_id": self.rule_id, "default": False, "enabled": self.enabled,
            "actions": self.actions,
        }
        if self.kind in ("override", "underride"):
            rule["conditions"] = self.conditions or []
        elif self.kind == "content":
            rule["pattern"] = self.pattern or ""
        return rule


@dataclass(frozen=True, slots=True)
class DefaultChange:
    """A user's change to a server-default rule: None leaves that part as the spec has it."""

    enabled: bool | None = None
    actions: list[Any] | None = None


def build_ruleset(
    user_id: str, user_rules: Iterable[UserRule],
    changes: Mapping[tuple[str, str], DefaultChange],
) -> dict[str, list[dict[str, Any]]]:
    """The ruleset served by `GET /pushrules/global/`: user rules (most important first, as
    given) above the server defaults of each kind, except `.m.rule.master`, which stays first."""
    defaults = default_rules(user_id)
    for kind, rules in defaults.items():
        for rule in rules:
            change = changes.get((kind, rule["rule_id"]))
            if change is not None and change.enabled is not None:
                rule["enabled"] = change.enabled
            if change is not None and change.actions is not None:
                rule["actions"] = change.actions
    own: dict[str, list[dict[str, Any]]] = {kind: [] for kind in KINDS}
    for user_rule in user_rules:
        own[user_rule.kind].append(user_rule.to_json())
    out = {kind: own[kind] + defaults[kind] for kind in KINDS}
    master = [r for r in out["override"] if r["rule_id"] == MASTER and r["default"]]
    out["override"] = master + [r for r in out["override"] if r not in master]
    return out


# ---- validation of client input --------------------------------------------------------------

def _is_scalar(value: Any) -> bool:
    """A non-compound canonical JSON value: string, safe integer, boolean or null."""
    if value is None or isinstance(value, bool | str):
        return True
    return isinstance(value, int) and -MAX_SAFE_INT <= value <= MAX_SAFE_INT


def validate_actions(actions: Any) -> list[Any]:
    """Checked actions with the historical `dont_notify`/`coalesce` stripped, as the spec asks."""
    if not isinstance(actions, list):
        raise InvalidPushRule("'actions' must be an array")
    out: list[Any] = []
    for action in actions:
        if isinstance(action, str):
            if action in HISTORICAL_ACTIONS:
                continue
            if action != "notify":
                raise InvalidPushRule(f"Unrecognised action {action!r}")
        elif isinstance(action, dict):
            if not isinstance(action.get("set_tweak"), str):
                raise InvalidPushRule("An object action needs a string 'set_tweak'")
        else:
            raise InvalidPushRule("Each action must be a string or an object")
        out.append(action)
    return out


MAX_CONDITION_TEXT = 1024  # patterns, keys and counts: bounded work per evaluation

_CONDITION_FIELDS: dict[str, tuple[str, ...]] = {
    "event_match": ("key", "pattern"),
    "event_property_is": ("key",),
    "event_property_contains": ("key",),
    "room_member_count": ("is",),
    "sender_notification_permission": ("key",),
    "contains_display_name": (),
}


def validate_conditions(conditions: Any) -> list[dict[str, Any]]:
    """Known condition kinds must carry their parameters; unknown kinds are kept (they never
    match, as the spec requires)."""
    if not isinstance(conditions, list):
        raise InvalidPushRule("'conditions' must be an array")
    for condition in conditions:
        if not isinstance(condition, dict) or not isinstance(condition.get("kind"), str):
            raise InvalidPushRule("Each condition must be an object with a string 'kind'")
        for name in _CONDITION_FIELDS.get(condition["kind"], ()):
            if not isinstance(condition.get(name), str):
                raise InvalidPushRule(f"{condition['kind']} conditions need a string '{name}'")
            if len(condition[name]) > MAX_CONDITION_TEXT:
                raise InvalidPushRule(f"'{name}' is longer than {MAX_CONDITION_TEXT} characters")
        if condition["kind"] == "room_member_count" and not _MEMBER_COUNT.fullmatch(
            condition["is"]
        ):
            raise InvalidPushRule("room_member_count 'is' must look like ==2, <10 or >=3")
        if condition["kind"] in ("event_property_is", "event_property_contains") and (
            "value" not in condition or not _is_scalar(condition["value"])
        ):
            raise InvalidPushRule(
                f"{condition['kind']} needs a 'value': string, integer, boolean or null"
            )
    return conditions


def validate_rule_id(rule_id: str) -> None:
    if not rule_id or rule_id.startswith("."):
        raise InvalidPushRule("Rule IDs starting with '.' are reserved for server-default rules")
    if "/" in rule_id or "\\" in rule_id:
        raise InvalidPushRule("Rule IDs may not contain '/' or '\\'")


def parse_user_rule(kind: str, rule_id: str, body: Mapping[str, Any]) -> UserRule:
    """The body of `PUT /pushrules/global/{kind}/{ruleId}` as a new, enabled rule."""
    validate_rule_id(rule_id)
    if "actions" not in body:
        raise InvalidPushRule("'actions' is required", "M_MISSING_PARAM")
    actions = validate_actions(body["actions"])
    if kind == "content":
        pattern = body.get("pattern")
        if not isinstance(pattern, str):
            raise InvalidPushRule("Content rules need a string 'pattern'", "M_MISSING_PARAM")
        return UserRule(kind, rule_id, actions, pattern=pattern)
    if kind in ("override", "underride"):
        conditions = validate_conditions(body.get("conditions", []))
        return UserRule(kind, rule_id, actions, conditions=conditions)
    return UserRule(kind, rule_id, actions)


# ---- evaluation -------------------------------------------------------------------------------

_MISSING = object()


def split_path(key: str) -> tuple[str, ...]:
    """A dot-separated property path, honouring `\\.` and `\\\\` escapes."""
    parts: list[str] = []
    current: list[str] = []
    i = 0
    while i < len(key):
        char = key[i]
        if char == "\\" and i + 1 < len(key) and key[i + 1] in ".\\":
            current.append(key[i + 1])
            i += 2
            continue
        if char == ".":
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
        i += 1
    parts.append("".join(current))
    return tuple(parts)


def lookup(event: Mapping[str, Any], path: Sequence[str]) -> Any:
    value: Any = event
    for part in path:
        # `type(...) is dict` first: parsed JSON is plain dicts, and the ABC check is slow.
        if not (type(value) is dict or isinstance(value, Mapping)) or part not in value:
            return _MISSING
        value = value[part]
    return value


@lru_cache(maxsize=4096)
def _segment(text: str, before: bool, after: bool) -> re.Pattern[str]:
    """One star-free piece of a glob: fixed length (`?` is one character), so searching for
    it cannot backtrack; `before`/`after` demand a word boundary on that side."""
    body = "".join("." if c == "?" else re.escape(c) for c in text)
    if before:
        body = f"(?<![{_WORD}]){body}"
    if after:
        body = f"{body}(?![{_WORD}])"
    return re.compile(body, re.IGNORECASE | re.DOTALL)


def glob_matches(pattern: str, value: str, *, words: bool = False) -> bool:
    """`*`/`?` glob match, case-insensitive: the whole value, or with `words` any substring
    bounded by word boundaries (content.body).

    Theory of operation: the pattern is split at its stars into fixed-length pieces, matched
    left to right, each at its leftmost possible place. Taking the leftmost place never loses
    a match (anything later leaves less room for the rest), so the match costs one scan of
    the value per piece. A regular expression with `.*?` per star would backtrack, and a
    client-chosen pattern over a 64 KiB body could stall the server.
    """
    pieces = pattern.split("*")
    first, last = pieces[0], pieces[-1]
    if len(pieces) == 1:
        rx = _segment(first, words, words)
        return bool(rx.search(value) if words else rx.fullmatch(value))
    if words:
        found = _segment(first, True, False).search(value) if first else None
        if first and found is None:
            return False
        pos = found.end() if found is not None else 0
    else:
        found = _segment(first, False, False).match(value)
        if found is None:
            return False
        pos = found.end()
    for piece in pieces[1:-1]:
        if piece:
            found = _segment(piece, False, False).search(value, pos)
            if found is None:
                return False
            pos = found.end()
    if not last:
        return True
    if words:
        return _segment(last, False, True).search(value, pos) is not None
    start = len(value) - len(last)
    return start >= pos and _segment(last, False, False).fullmatch(value, start) is not None


def _strict_equal(a: Any, b: Any) -> bool:
    """JSON equality: `true` is not `1`."""
    return type(a) is type(b) and a == b and _is_scalar(a)


@dataclass(frozen=True, slots=True, eq=False)
class Condition:
    """A parsed condition. Built only through `_condition`, which interns equal ones, so the
    per-event memo can key on identity (hashing the fields per lookup cost more than the
    evaluation itself)."""

    kind: str
    path: tuple[str, ...] = ()
    pattern: str = ""
    value: Any = None
    words: bool = False


@lru_cache(maxsize=65_536)
def _condition(
    kind: str, path: tuple[str, ...] = (), pattern: str = "", value: Any = None,
    value_type: str = "", words: bool = False,
) -> Condition:
    """The one Condition for these parameters (`value_type` keeps `true` and `1` apart)."""
    return Condition(kind, path, pattern, value, words)


@dataclass(frozen=True, slots=True)
class CompiledRule:
    rule_id: str
    conditions: tuple[Condition, ...]  # the same for every user whose ruleset has this shape
    personal: tuple[Condition, ...]  # those naming the owner, or their display name
    actions: Actions
    actions_json: str  # the actions as stored with a notification

    @property
    def notifies(self) -> bool:
        return "notify" in self.actions

    @property
    def highlight(self) -> bool:
        return highlights(self.actions)


@dataclass(frozen=True, slots=True)
class CompiledRuleset:
    rules: tuple[CompiledRule, ...]
    uses_display_name: bool
    # Equal (the same object) for rulesets that differ only in their personal conditions, as
    # the server-default rulesets of all users do: an event is matched against a shape once.
    shape: object


def _compile_condition(raw: Mapping[str, Any]) -> Condition:
    """A parsed condition; a malformed or unknown one compiles to a kind that never holds."""
    kind = raw.get("kind")
    fields = _CONDITION_FIELDS.get(kind) if isinstance(kind, str) else None
    if fields is None or any(not isinstance(raw.get(f), str) for f in fields):
        return _condition("unknown")
    assert isinstance(kind, str)
    value = raw.get("value")
    if kind in ("event_property_is", "event_property_contains") and not _is_scalar(value):
        return _condition("unknown")
    key = raw.get("key")
    path = split_path(key) if isinstance(key, str) else ()
    if kind == "sender_notification_permission":
        return _condition(kind, pattern=raw["key"])
    pattern = raw.get("pattern") if kind == "event_match" else raw.get("is", "")
    return _condition(
        kind, path, pattern if isinstance(pattern, str) else "", value, type(value).__name__,
        words=key == "content.body",
    )


def _actions(actions: Sequence[Any]) -> Actions:
    return tuple(a for a in actions if not (isinstance(a, str) and a in HISTORICAL_ACTIONS))


@lru_cache(maxsize=4096)
def _shape_token(key: tuple[Any, ...]) -> object:
    """One small object per distinct shape, so that per-event lookups hash an identity."""
    return object()


def _is_personal(condition: Condition, owner: str | None) -> bool:
    """Whether the condition names its owner (so it differs from user to user)."""
    if condition.kind == "contains_display_name":
        return True
    if owner is None:
        return False
    if condition.kind == "event_match":
        return condition.pattern == owner
    return bool(condition.value == owner)


def _personal_form(condition: Condition, owner: str | None) -> tuple[str, tuple[str, ...], bool]:
    """What a personal condition tests, the same for every user: kind, path, and whether it
    compares the path's value with the owner's ID (then its holders can be read off the event)."""
    return condition.kind, condition.path, owner is not None and condition.value == owner


def compile_ruleset(
    ruleset: Mapping[str, Sequence[Mapping[str, Any]]], owner: str | None = None
) -> CompiledRuleset:
    """The enabled rules in evaluation order with parsed conditions; conditions naming
    `owner` are kept apart so that users' rulesets can share a shape."""
    rules: list[CompiledRule] = []
    for kind in KINDS:
        for rule in ruleset.get(kind, ()):
            if not rule.get("enabled", True):
                continue
            rule_id = rule["rule_id"]
            if kind == "content":
                conditions: tuple[Condition, ...] = (
                    _condition("event_match", ("content", "body"), rule.get("pattern", ""),
                               words=True),
                )
            elif kind == "room":
                conditions = (_condition("event_property_is", ("room_id",), "", rule_id, "str"),)
            elif kind == "sender":
                conditions = (_condition("event_property_is", ("sender",), "", rule_id, "str"),)
            else:
                conditions = tuple(_compile_condition(c) for c in rule.get("conditions", ()))
            actions = _actions(rule.get("actions", ()))
            rules.append(CompiledRule(
                rule_id, tuple(c for c in conditions if not _is_personal(c, owner)),
                tuple(c for c in conditions if _is_personal(c, owner)), actions,
                json.dumps(actions, sort_keys=True),
            ))
    uses = any(c.kind == "contains_display_name" for r in rules for c in r.personal)
    shape = _shape_token(tuple(
        (r.rule_id, r.actions_json, r.conditions,
         tuple(_personal_form(c, owner) for c in r.personal))
        for r in rules
    ))
    return CompiledRuleset(tuple(rules), uses, shape)


@dataclass(frozen=True, slots=True)
class EventContext:
    """One event and the room facts its conditions read, shared by every member evaluated."""

    event: Mapping[str, Any]
    member_count: int
    sender_power: float
    power_levels: Mapping[str, Any] | None
    memo: dict[Condition, bool] = field(default_factory=dict)
    # ruleset shape -> indexes of its rules whose shared conditions hold for this event
    candidates: dict[object, list[int]] = field(default_factory=dict)
    values: dict[tuple[str, ...], Any] = field(default_factory=dict)  # path -> event value

    def value(self, path: tuple[str, ...]) -> Any:
        try:
            return self.values[path]
        except KeyError:
            found = self.values[path] = lookup(self.event, path)
            return found

    def strings_in(self, path: tuple[str, ...]) -> frozenset[str]:
        """The strings of the array at `path` (a mention list, read once per event)."""
        key = ("\0strings", *path)
        found = self.values.get(key)
        if found is None:
            values = self.value(path)
            found = self.values[key] = frozenset(
                v for v in values if isinstance(v, str)
            ) if isinstance(values, list) else frozenset()
        return found


def _notification_level(power_levels: Mapping[str, Any] | None, key: str) -> int:
    default = 50
    notifications = power_levels.get("notifications") if power_levels else None
    level = notifications.get(key, default) if isinstance(notifications, Mapping) else default
    return level if isinstance(level, int) and not isinstance(level, bool) else default


def _holds(condition: Condition, ctx: EventContext) -> bool:
    """Conditions that do not depend on who is notified (all but contains_display_name)."""
    kind = condition.kind
    if kind == "event_match":
        value = ctx.value(condition.path)
        return isinstance(value, str) and glob_matches(
            condition.pattern, value, words=condition.words
        )
    if kind == "event_property_is":
        return _strict_equal(ctx.value(condition.path), condition.value)
    if kind == "event_property_contains":
        if isinstance(condition.value, str):
            return condition.value in ctx.strings_in(condition.path)
        values = ctx.value(condition.path)
        return isinstance(values, list) and any(
            _strict_equal(v, condition.value) for v in values
        )
    if kind == "room_member_count":
        return member_count_matches(condition.pattern, ctx.member_count)
    if kind == "sender_notification_permission":
        return ctx.sender_power >= _notification_level(ctx.power_levels, condition.pattern)
    return False


def member_count_matches(spec: str, count: int) -> bool:
    match = _MEMBER_COUNT.fullmatch(spec)
    if match is None:
        return False
    op, number = match.group(1) or "==", int(match.group(2))
    return {
        "==": count == number, "<": count < number, ">": count > number,
        "<=": count <= number, ">=": count >= number,
    }[op]


@lru_cache(maxsize=4096)
def _literal_words(text: str) -> re.Pattern[str]:
    return re.compile(f"(?<![{_WORD}]){re.escape(text)}(?![{_WORD}])", re.IGNORECASE)


def _display_name_in_body(event: Mapping[str, Any], display_name: str | None) -> bool:
    body = lookup(event, ("content", "body"))
    if not display_name or not isinstance(body, str):
        return False
    return _literal_words(display_name).search(body) is not None


def _memo_holds(condition: Condition, ctx: EventContext) -> bool:
    cached = ctx.memo.get(condition)
    if cached is None:
        cached = ctx.memo[condition] = _holds(condition, ctx)
    return cached


def evaluate_rule(
    ruleset: CompiledRuleset, ctx: EventContext, display_name: str | None = None
) -> CompiledRule | None:
    """The first matching rule, or None when no rule matches.

    The rules whose shared conditions hold are found once per event and shape; for each user
    only their personal conditions (a mention of them, their display name) remain to check.
    """
    for i in _candidates(ruleset, ctx):
        rule = ruleset.rules[i]
        if _personal_holds(rule, ctx, display_name):
            return rule
    return None


def _candidates(ruleset: CompiledRuleset, ctx: EventContext) -> list[int]:
    """Indexes of the rules whose shared conditions hold for the event (once per shape)."""
    candidates = ctx.candidates.get(ruleset.shape)
    if candidates is None:
        candidates = ctx.candidates[ruleset.shape] = [
            i for i, rule in enumerate(ruleset.rules)
            if all(_memo_holds(c, ctx) for c in rule.conditions)
        ]
    return candidates


def _personal_holds(rule: CompiledRule, ctx: EventContext, display_name: str | None) -> bool:
    for condition in rule.personal:
        if condition.kind == "contains_display_name":
            holds = _display_name_in_body(ctx.event, display_name)
        else:  # not memoized: a personal condition is this user's alone
            holds = _holds(condition, ctx)
        if not holds:
            return False
    return True


def _owners_holding(rule: CompiledRule, ctx: EventContext) -> frozenset[str] | None:
    """The users for whom the rule's personal conditions all hold, when each compares a value
    of the event with the owner's ID (a mention); None when one must be checked per user."""
    holders: frozenset[str] | None = None
    for condition in rule.personal:
        if not isinstance(condition.value, str) or condition.kind == "event_match":
            return None
        if condition.kind == "event_property_contains":
            found = ctx.strings_in(condition.path)
        elif condition.kind == "event_property_is":
            value = ctx.value(condition.path)
            found = frozenset((value,)) if isinstance(value, str) else frozenset()
        else:
            return None
        holders = found if holders is None else holders & found
    return holders


def evaluate_many(
    rulesets: Mapping[str, CompiledRuleset], ctx: EventContext,
    display_names: Mapping[str, str] | None = None,
) -> dict[str, CompiledRule]:
    """user -> the first rule of theirs that matches (users matching none are left out).

    The same as `evaluate_rule` per user, but a shape's rules are walked once for all its
    users: a rule without personal conditions takes every user still unmatched, and a mention
    rule takes just the users the event mentions.
    """
    names = display_names or {}
    by_shape: dict[object, list[str]] = {}
    for user_id, ruleset in rulesets.items():
        by_shape.setdefault(ruleset.shape, []).append(user_id)
    out: dict[str, CompiledRule] = {}
    for users in by_shape.values():
        template = rulesets[users[0]]
        remaining = users
        for i in _candidates(template, ctx):
            if not remaining:
                break
            rule = template.rules[i]
            if not rule.personal:
                for user_id in remaining:
                    out[user_id] = rulesets[user_id].rules[i]
                break
            holders = _owners_holding(rule, ctx)
            if holders is not None and not holders:
                continue
            unmatched = []
            for user_id in remaining:
                own = rulesets[user_id].rules[i]
                if (user_id in holders) if holders is not None else _personal_holds(
                    own, ctx, names.get(user_id)
                ):
                    out[user_id] = own
                else:
                    unmatched.append(user_id)
            remaining = unmatched
    return out


def evaluate(
    ruleset: CompiledRuleset, ctx: EventContext, display_name: str | None = None
) -> Actions | None:
    """The actions of the first matching rule, or None when no rule matches."""
    rule = evaluate_rule(ruleset, ctx, display_name)
    return rule.actions if rule is not None else None


def notifies(actions: Actions | None) -> bool:
    return actions is not None and "notify" in actions


def highlights(actions: Actions | None) -> bool:
    """The `highlight` tweak: true when given without a value, false when absent."""
    for action in actions or ():
        if isinstance(action, dict) and action.get("set_tweak") == "highlight":
            return action.get("value", True) is True
    return False

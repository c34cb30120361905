"""homeserver/protocol/relations.py against the spec's "Validity of replacement events",
"Server-side aggregation of `m.replace` relationships" and threading's "Validation"."""

from __future__ import annotations

from homeserver.protocol.relations import Edit, latest_valid_edit, may_start_thread, relation_of

ALICE, BOB = "@alice:hs", "@bob:hs"
MESSAGE = "m.room.message"


def edit(event_id: str, ts: int, *, sender: str = ALICE, type_: str = MESSAGE,
         is_state: bool = False, new_content: bool = True) -> Edit:
    return Edit(event_id, sender, type_, is_state, ts, new_content)


def latest(*edits: Edit, content: dict[str, object] | None = None,
           original_type: str = MESSAGE, is_state: bool = False) -> str | None:
    return latest_valid_edit(ALICE, original_type, is_state, content or {}, edits)


def test_the_most_recent_by_timestamp_then_largest_event_id() -> None:
    assert latest(edit("$b", 2), edit("$a", 3)) == "$a"
    assert latest(edit("$a", 5), edit("$c", 5), edit("$b", 5)) == "$c"


def test_invalid_replacements_are_ignored() -> None:
    assert latest(edit("$z", 9, sender=BOB), edit("$a", 1)) == "$a"
    assert latest(edit("$z", 9, type_="m.sticker"), edit("$a", 1)) == "$a"
    assert latest(edit("$z", 9, is_state=True), edit("$a", 1)) == "$a"
    assert latest(edit("$z", 9, new_content=False), edit("$a", 1)) == "$a"


def test_encrypted_replacements_need_no_visible_new_content() -> None:
    encrypted = "m.room.encrypted"
    only = edit("$e", 1, type_=encrypted, new_content=False)
    assert latest(only, original_type=encrypted) == "$e"


def test_state_events_and_edits_are_never_edited() -> None:
    assert latest(edit("$a", 1), is_state=True) is None
    an_edit = {"m.relates_to": {"rel_type": "m.replace", "event_id": "$o"}}
    assert latest(edit("$a", 1), content=an_edit) is None
    a_reply = {"m.relates_to": {"rel_type": "m.thread", "event_id": "$o"}}
    assert latest(edit("$a", 1), content=a_reply) == "$a"


def test_threads_start_only_from_events_without_a_relation() -> None:
    assert may_start_thread({"body": "hi"})
    assert may_start_thread({"m.relates_to": {"m.in_reply_to": {"event_id": "$x"}}})
    assert not may_start_thread({"m.relates_to": {"rel_type": "m.thread", "event_id": "$x"}})
    assert not may_start_thread({"m.relates_to": {"rel_type": "org.example", "event_id": "$x"}})


def test_relation_of_reads_only_well_formed_relations() -> None:
    assert relation_of({"m.relates_to": {"rel_type": "m.thread", "event_id": "$r"}}) == (
        "m.thread", "$r")
    assert relation_of({"m.relates_to": {"rel_type": 5, "event_id": "$r"}}) is None
    assert relation_of({"m.relates_to": "nope"}) is None
    assert relation_of({}) is None

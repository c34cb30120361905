"""The pure rules of outbound federation: the backoff schedule, who an event goes to, and
transaction IDs."""

from __future__ import annotations

from federation.sender import destinations_for, transaction_id
from homeserver.protocol.backoff import Backoff
from storage.outbox import Batch, QueuedEdu, QueuedPdu

OWN = "own.example"


def test_backoff_doubles_from_the_base_up_to_the_cap() -> None:
    backoff = Backoff(base_s=1.0, max_s=300.0)
    assert [backoff.delay_s(n) for n in range(0, 11)] == [
        0.0, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 300.0,
    ]
    assert backoff.delay_s(10_000) == 300.0  # no overflow after a very long outage


def test_backoff_resets_to_nothing_and_is_due_at_once() -> None:
    backoff = Backoff(base_s=0.5, max_s=60.0)
    assert backoff.delay_s(0) == 0.0
    assert backoff.retry_at_ms(0, 1_000) == 1_000
    assert backoff.retry_at_ms(1, 1_000) == 1_500
    assert backoff.retry_at_ms(4, 1_000) == 5_000
    assert backoff.retry_at_ms(50, 1_000) == 61_000


def test_an_event_goes_to_every_other_server_with_a_joined_member() -> None:
    members = {"@a:own.example", "@b:one.example", "@c:one.example", "@d:two.example:8448"}
    message = {"type": "m.room.message", "content": {}}
    assert destinations_for(message, members, OWN) == ["one.example", "two.example:8448"]
    assert destinations_for(message, {"@a:own.example"}, OWN) == []


def test_a_membership_event_also_goes_to_its_target_server() -> None:
    members = {"@a:own.example", "@b:one.example"}
    invite = {"type": "m.room.member", "state_key": "@new:three.example",
              "content": {"membership": "invite"}}
    assert destinations_for(invite, members, OWN) == ["one.example", "three.example"]
    # A leave of the last member of a server: it is no longer joined, but still hears of it.
    leave = {"type": "m.room.member", "state_key": "@b:one.example", "content": {}}
    assert destinations_for(leave, {"@a:own.example"}, OWN) == ["one.example"]
    # A join is not sent back to the joiner's server, which made it through send_join.
    join = {"type": "m.room.member", "state_key": "@new:three.example",
            "content": {"membership": "join"}}
    assert destinations_for(join, members, OWN) == ["one.example"]
    # A non-member state event with a user-ID-like state key adds nobody.
    other = {"type": "m.room.power_levels", "state_key": "@x:four.example", "content": {}}
    assert destinations_for(other, members, OWN) == ["one.example"]


def _batch(pdus: list[int], edus: list[int]) -> Batch:
    return Batch(
        [QueuedPdu(p, f"$e{p}", "{}", 0) for p in pdus],
        [QueuedEdu(e, "m.typing", {}, 0) for e in edus],
    )


def test_transaction_ids_name_the_batch() -> None:
    assert transaction_id(_batch([3, 4, 9], [])) == "3-9-0-0"
    assert transaction_id(_batch([], [7])) == "0-0-7-7"
    # The same rows, the same ID (a retry); more rows after a restart, another one.
    assert transaction_id(_batch([3, 4], [1])) == transaction_id(_batch([3, 4], [1]))
    assert transaction_id(_batch([3, 4, 5], [1])) != transaction_id(_batch([3, 4], [1]))

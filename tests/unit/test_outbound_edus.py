"""The pure parts of sending EDUs: which servers users are on, and the message_id a client's
to-device send keeps across its retries."""

from __future__ import annotations

from homeserver.services.outbound_edus import servers_of
from homeserver.services.requester import Requester
from homeserver.services.to_device import MESSAGE_ID_LENGTH, message_id


def test_servers_of_users_skips_what_names_no_server() -> None:
    users = ["@a:one.example", "@b:one.example", "@c:two.example:8448", "not a user", "@",
             "@empty:", "no.sigil:three.example"]
    assert servers_of(users) == {"one.example", "two.example:8448"}


def test_a_sends_message_id_is_stable_short_and_distinct() -> None:
    alice = Requester("@alice:one.example", "DEVICE", False)
    first = message_id(alice, "txn1")
    assert first == message_id(alice, "txn1")  # a retry of the same send
    assert len(first) == MESSAGE_ID_LENGTH  # the spec's limit
    others = {
        message_id(alice, "txn2"),
        message_id(Requester("@alice:one.example", "OTHER", False), "txn1"),
        message_id(Requester("@bob:one.example", "DEVICE", False), "txn1"),
    }
    assert first not in others and len(others) == 3

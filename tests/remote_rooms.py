"""A room that lives on made-up remote servers and that a test server's user joined, fed with
signed events built by a `RoomBuilder` (as federation hands them over once signatures are
checked)."""

from __future__ import annotations

from homeserver.services.rooms.remote import Outcome, RemoteEvents
from tests.conftest import RunningServer
from tests.helpers import MatrixApi, User
from tests.unit.room_builder import RoomBuilder

# Servers named by loopback addresses, which the test server's address policy refuses at once:
# what it queues for them never waits on a DNS lookup of a made-up name.
ALICE, BOB, CAROL = "@alice:127.0.0.1:9", "@bob:127.0.0.1:10", "@carol:127.0.0.1:11"


async def joined(homeserver: RunningServer, api: MatrixApi, version: str = "11") -> tuple[
    RoomBuilder, User, RemoteEvents
]:
    """A room of a.example that our user joins (the join answered by a send_join)."""
    me = await api.register("me")
    builder = RoomBuilder.standard(version, ALICE)
    builder.join(BOB)
    incoming, federation = homeserver.hs.incoming, homeserver.hs.federation
    assert incoming is not None and federation is not None
    state = [builder.events[i] for i in builder.state_ids.values()]
    join_id, join = builder.make(me.user_id, "m.room.member", {"membership": "join"},
                                 me.user_id)
    outcome = await federation.outbound.joins.memberships.join_room(
        room_of(builder), builder.rv, join, state, list(builder.events.values())
    )
    assert (outcome.event_id, outcome.outcome) == (join_id, Outcome.ACCEPTED)
    builder.apply(join_id, join)
    return builder, me, incoming


def room_of(builder: RoomBuilder) -> str:
    assert builder.room_id is not None
    return builder.room_id

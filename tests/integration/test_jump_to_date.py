"""Jump to date across servers: federation `GET /timestamp_to_event/{roomId}` served (to servers
with a user in the room), and the client endpoint asking the room's other servers where this
server's copy has nothing that way or a gap next to what it found (history from before its
join), then holding the event they name so that the client can read it."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import aiohttp

from tests.federation_helpers import validate_ss_response
from tests.federation_peers import Peers
from tests.helpers import MatrixApi, User, validate_response
from tests.shared_rooms import Room, shared_room

PATH = "/_matrix/client/v1/rooms/{}/timestamp_to_event"


async def nearest(api: MatrixApi, user: User, room_id: str, ts: int, direction: str) -> Any:
    status, body = await api.request("GET", PATH.format(quote(room_id)), token=user.token,
                                     params={"ts": str(ts), "dir": direction})
    if status == 200:
        validate_response("room_event_by_timestamp.yaml", "/rooms/{roomId}/timestamp_to_event",
                          "get", 200, body)
    return status, body


async def history_before_the_join(room: Room) -> list[dict[str, Any]]:
    """Two messages on a before Bob of b joins (`before_join` of `shared_room`)."""
    return [
        await room.api.ok("GET", f"rooms/{room.room}/event/{quote(event_id)}",
                          token=room.alice.token)
        for event_id in [await room.api.send_message(room.alice, room.room_id, text)
                         for text in ("first", "second")]
    ]


async def test_the_federation_endpoint(peers: Peers, peer_http: aiohttp.ClientSession) -> None:
    history: list[dict[str, Any]] = []

    async def before_join(room: Room) -> None:
        history.extend(await history_before_the_join(room))

    room = await shared_room(peers, peer_http, before_join)
    first = history[0]
    path = f"/timestamp_to_event/{room.room}"
    body = await room.ok("GET", path, query={"ts": str(first["origin_server_ts"]), "dir": "f"})
    validate_ss_response("events.yaml", "/timestamp_to_event/{roomId}", "get", 200, body)
    assert body["origin_server_ts"] >= first["origin_server_ts"]
    # a answers as its own client endpoint does (the same events, the same order).
    local = await room.api.ok("GET", PATH.format(room.room), token=room.alice.token,
                              params={"ts": str(first["origin_server_ts"]), "dir": "f"})
    assert body == local
    for query, expected in (
        ({"ts": "0", "dir": "b"}, (404, "M_NOT_FOUND")),
        ({"ts": "1", "dir": "x"}, (400, "M_INVALID_PARAM")),
        ({"ts": "soon", "dir": "f"}, (400, "M_INVALID_PARAM")),
        ({"dir": "f"}, (400, "M_MISSING_PARAM")),
    ):
        status, error = await room.ask("GET", path, query=query)
        assert (status, error["errcode"]) == expected, query
    c = await peers.new("c")  # no user in the room
    status, error = await room.ask("GET", path, query={"ts": "1", "dir": "f"}, asker=c)
    assert (status, error["errcode"]) == (403, "M_FORBIDDEN")


async def test_history_only_other_servers_hold_is_found_there(
    peers: Peers, peer_http: aiohttp.ClientSession
) -> None:
    history: list[dict[str, Any]] = []

    async def before_join(room: Room) -> None:
        history.extend(await history_before_the_join(room))

    room = await shared_room(peers, peer_http, before_join)
    first, second = history
    api_b, bob = room.api_b, room.bob

    # Going back from the first message's time: b holds nothing that old; a does.
    ts = first["origin_server_ts"]
    expected = await room.api.ok("GET", PATH.format(room.room), token=room.alice.token,
                                 params={"ts": str(ts), "dir": "b"})
    status, body = await nearest(api_b, bob, room.room_id, ts, "b")
    assert (status, body) == (200, expected)
    # b now holds the event, so Bob can read it (and around it).
    event = await api_b.ok("GET", f"rooms/{room.room}/event/{quote(body['event_id'])}",
                           token=bob.token)
    assert event["origin_server_ts"] == body["origin_server_ts"]

    # Bob scrolls back, as a client does: b backfills what came before his join, so the join
    # is no longer next to a gap and b's own answer stands; it must count that history.
    await api_b.ok("GET", f"rooms/{room.room}/messages", token=bob.token,
                   params={"dir": "b", "limit": "50"})

    # Going forward from before the second message: a holds the second message; so does b now
    # (backfilled), nearer than Bob's join.
    ts = second["origin_server_ts"]
    expected = await room.api.ok("GET", PATH.format(room.room), token=room.alice.token,
                                 params={"ts": str(ts), "dir": "f"})
    assert expected["origin_server_ts"] <= second["origin_server_ts"]
    status, body = await nearest(api_b, bob, room.room_id, ts, "f")
    assert (status, body) == (200, expected)

    # After the join, b's own answer stands.
    now = await api_b.send_message(bob, room.room_id, "late")
    late = await api_b.ok("GET", f"rooms/{room.room}/event/{quote(now)}", token=bob.token)
    status, body = await nearest(api_b, bob, room.room_id, late["origin_server_ts"] + 1, "b")
    assert (status, body["event_id"]) == (200, now)

    # Element shows the event it jumped to through /context and pages forward from its `end`:
    # from a backfilled event that reads on through the history into the stream, up to now.
    context = await api_b.ok("GET", f"rooms/{room.room}/context/{quote(first['event_id'])}",
                             token=bob.token, params={"limit": "2"})
    validate_response("event_context.yaml", "/rooms/{roomId}/context/{eventId}", "get",
                      200, context)
    seen = [e["event_id"] for e in context["events_after"]]
    token = context["end"]
    for _ in range(20):
        page = await api_b.ok("GET", f"rooms/{room.room}/messages", token=bob.token,
                              params={"dir": "f", "from": token, "limit": "2"})
        seen += [e["event_id"] for e in page["chunk"]]
        if "end" not in page:
            break
        token = page["end"]
    assert second["event_id"] in seen and seen[-1] == now
    assert seen.index(second["event_id"]) < seen.index(now)

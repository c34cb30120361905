"""A server the room's `m.room.server_acl` denies takes no part in the room through the
membership handshakes or the gap-filling reads either (server-server-api.md "Server Access
Control Lists": such requests are refused with 403 `M_FORBIDDEN`): make_join, send_join,
make_leave, send_leave (v1 and v2 alike), make_knock and get_missing_events.
"""

from __future__ import annotations

from urllib.parse import quote

import aiohttp

from federation.client import HttpResponseError, path_segment
from tests.federation_peers import Peers
from tests.shared_rooms import shared_room

V1, V2 = "/_matrix/federation/v1", "/_matrix/federation/v2"


async def test_a_denied_server_may_not_join_leave_or_fill_gaps(
    peers: Peers, peer_http: aiohttp.ClientSession
) -> None:
    room = await shared_room(peers, peer_http)
    message = await room.api.send_message(room.alice, room.room_id, "before the ACL")
    carol = await room.api_b.register("carol")
    client, r = room.b.federation.outbound.client, room.room
    user, bob = quote(carol.user_id, safe=""), quote(room.bob.user_id, safe="")
    # The join a real make_join would have templated: enough for the refusal, which comes
    # before the event is looked at.
    join = {"type": "m.room.member", "room_id": room.room_id, "sender": carol.user_id,
            "state_key": carol.user_id, "content": {"membership": "join"}}
    leave = {**join, "content": {"membership": "leave"}}
    event = path_segment("$" + "a" * 43)
    requests = [
        ("GET", f"{V1}/make_join/{r}/{user}", None),
        ("PUT", f"{V2}/send_join/{r}/{event}", join),
        ("PUT", f"{V1}/send_join/{r}/{event}", join),
        ("GET", f"{V1}/make_leave/{r}/{bob}", None),
        ("PUT", f"{V2}/send_leave/{r}/{event}", leave),
        ("PUT", f"{V1}/send_leave/{r}/{event}", leave),
        ("GET", f"{V1}/make_knock/{r}/{user}", None),
        ("POST", f"{V1}/get_missing_events/{r}",
         {"earliest_events": [], "latest_events": [message], "limit": 10}),
    ]

    async def status_of(method: str, path: str, body: object) -> tuple[int, str | None]:
        """The status and errcode, the errcode only for a refusal that names the ACL."""
        try:
            query = {"ver": [room.version.identifier]} if method == "GET" else None
            await client.request(method, room.a.name, path, query=query, content=body)
        except HttpResponseError as e:
            said = e.body.get("error", "") if isinstance(e.body, dict) else ""
            return e.status, e.errcode if "ACL" in said else None
        return 200, None

    # Admitted before the ACL: the handshakes start and the gap is served (a knock on a
    # public room is refused, for another reason than the ACL).
    for method, path, body in requests:
        if method != "PUT" and "make_knock" not in path:
            assert await status_of(method, path, body) == (200, None), path

    # Every peer here is an IP literal: refusing those refuses b, though Bob is joined.
    await room.set_state("m.room.server_acl", {"allow": ["*"], "allow_ip_literals": False})
    for method, path, body in requests:
        assert await status_of(method, path, body) == (403, "M_FORBIDDEN"), path

"""Generated bad input from a peer to issue 15's federation reads, `GET /hierarchy/{roomId}` and
`GET /timestamp_to_event/{roomId}`: arbitrary room ID segments and query parameters, in requests
that b signs as a peer does (X-Matrix), so that each gets past authentication to the handler.
Every answer is a Matrix error or a 200, never a 5xx (and nothing is logged as an error).

Two real servers: a holds a public room that a user of b joined, so b may ask a about it and
the handlers reach their lookups rather than stopping at "your server is not in the room".
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlencode

import aiohttp
import pytest
import yarl
from hypothesis import strategies as st

from federation.request_auth import authorization_header
from tests.bad_input import assert_sane, collect, query_values, segments
from tests.federation_peers import Peer, Peers
from tests.shared_rooms import shared_room

pytestmark = pytest.mark.usefixtures("no_server_errors")

ROUTES = ("/_matrix/federation/v1/hierarchy/{}", "/_matrix/federation/v1/timestamp_to_event/{}")
EXAMPLES = 30
# What the two routes read, and the client hierarchy's paging parameters a peer might pass on.
queries = st.dictionaries(
    st.sampled_from(["ts", "dir", "suggested_only", "limit", "from", "max_depth"]),
    query_values, min_size=1, max_size=3,
)


async def signed_get(
    http: aiohttp.ClientSession, sender: Peer, receiver: Peer, path: str, params: dict[str, str]
) -> tuple[int, Any]:
    """`GET path?params` from `sender` to `receiver`, signed with `sender`'s key over the URI
    exactly as it goes on the request line (percent-encoded once, never re-encoded)."""
    uri = path + ("?" + urlencode(params, quote_via=quote) if params else "")
    header = authorization_header("GET", uri, sender.name, receiver.name, None,
                                  sender.signing_key)
    url = yarl.URL(receiver.federation_url + uri, encoded=True)
    async with http.get(url, headers={"Authorization": header}) as resp:
        return resp.status, await resp.json(content_type=None)


async def test_generated_room_ids_and_queries_are_answered_sanely(
    peers: Peers, peer_http: aiohttp.ClientSession
) -> None:
    room = await shared_room(peers, peer_http)
    requests: list[tuple[str, dict[str, str]]] = []
    for segment in collect(segments, EXAMPLES):
        requests += [(route.format(quote(segment, safe="")), {"ts": "1", "dir": "f"})
                     for route in ROUTES]
    for params in collect(queries, EXAMPLES):
        requests += [(route.format(room.room), params) for route in ROUTES]
    for path, params in requests:
        status, body = await signed_get(peer_http, room.b, room.a, path, params)
        assert status != 401, (path, params, body)  # signed as a peer signs: authenticated
        assert_sane(status, body, (path, params))

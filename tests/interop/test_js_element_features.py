"""What Element Web builds on, end to end with its SDK: matrix-js-sdk on Node, syncing.

tests/js/element_features_e2e.mjs drives two matrix-js-sdk clients through `/sync` (threads
on): feature detection from `/versions` (threads stable, relations recursion, room summary,
extended profiles: Moot by v1.16, Synapse by its MSC4133 flag); an extended profile field
(`m.tz`) set by one user and read by the other; a thread with replies, as the other client
builds it from `/sync`, through the root's bundled `m.thread` and through the threads list; an
edit and a reaction (the edit through the bundled `m.replace` on `/event`, `/messages` and in
the synced timeline, the reaction through `/relations`); a space read with the SDK's own
`RoomHierarchy`; a room upgrade whose tombstone B's client follows into the new room. The same
script runs against Synapse from PyPI and against Moot: if it passes on Synapse and fails on
Moot, Moot is wrong.

tests/js_e2e.py runs the script (Node 22 and the pinned SDK from npm in tests/js/node_modules,
`make js`).
"""

from __future__ import annotations

import aiohttp
import pytest

from tests.conftest import RunningServer
from tests.helpers import MatrixApi
from tests.js_e2e import run_script, two_users
from tests.synapse_peer import SynapsePeer

SCRIPT = "element_features_e2e.mjs"

EXPECTED_STEPS = [
    "feature detection from /versions",
    "an extended profile field (m.tz) set by A and read by B",
    "a thread with replies and the threads list",
    "an edit and a reaction through bundled aggregations",
    "a space and its hierarchy",
    "a room upgrade followed by the client",
]


async def test_js_sdk_element_features_on_synapse(synapse: SynapsePeer) -> None:
    """The reference: the script's expectations hold against Synapse."""
    user_a, user_b = await two_users(synapse.api, "js_el")
    result = await run_script(SCRIPT, synapse.client_url, user_a, user_b)
    assert [s["name"] for s in result["steps"]] == EXPECTED_STEPS


@pytest.mark.usefixtures("no_server_errors")  # a 500 the client retried past still fails
async def test_js_sdk_element_features_on_moot(
    homeserver: RunningServer, http: aiohttp.ClientSession
) -> None:
    user_a, user_b = await two_users(MatrixApi(homeserver.url, http), "js_el")
    result = await run_script(SCRIPT, homeserver.url, user_a, user_b)
    assert [s["name"] for s in result["steps"]] == EXPECTED_STEPS
    # Moot claims v1.16, so the SDK reaches extended profiles by the spec's version (Synapse
    # 1.163.2, the reference, claims v1.15 and offers them by its MSC4133 flag instead).
    assert result["v1_16"] is True

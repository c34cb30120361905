"""An application service written with the unmodified mautrix-python library, run against Moot
and, for the same tests, against a real Synapse (tests/synapse_peer.py).

The bridge (tests/mautrix_bridge.py) is registered by the file a mautrix bridge generates:
Synapse reads it from `app_service_config_files`, Moot from `appservices.registration_files`.
Each test drives it the way a bridge does: transactions in, ghosts registered with
`m.login.application_service`, history imported with `?ts=`, portals made on alias queries.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import aiohttp
import pytest
from mautrix.types import EventType, MessageType, RoomID, TextMessageEventContent

from tests.conftest import MakeServer
from tests.federation_helpers import free_port
from tests.federation_peers import eventually
from tests.helpers import MatrixApi, User
from tests.mautrix_bridge import BridgeRegistration, MautrixBridge, new_registration
from tests.synapse_peer import SynapsePeer, run_synapse

# mautrix 0.21 still hands aiohttp the event loop its AppService runs on.
pytestmark = pytest.mark.filterwarnings("ignore:loop argument is deprecated:DeprecationWarning")

# 2020-09-13T12:26:40Z: far enough in the past that no server clock would give it by chance.
IMPORTED_TS = 1_600_000_000_000
_NAMES = itertools.count()  # one Synapse serves the module: user names must not repeat


@dataclass
class Target:
    """The homeserver under test as the bridge sees it: its client API and the registration."""

    url: str
    api: MatrixApi
    registration: BridgeRegistration

    async def new_user(self, localpart: str) -> User:
        return await self.api.register(f"{localpart}{next(_NAMES)}")


@pytest.fixture(scope="module")
async def synapse_with_bridge(
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[tuple[SynapsePeer, BridgeRegistration]]:
    """One Synapse for the module, with the bridge's registration in app_service_config_files
    (the registration names the server, so the federation port is chosen first)."""
    directory = tmp_path_factory.mktemp("synapse")
    federation_port = free_port()
    registration = new_registration(f"127.0.0.1:{federation_port}", free_port())
    path = registration.write(directory / "registration.yaml")
    async with run_synapse(
        directory, {"app_service_config_files": [str(path)]}, federation_port
    ) as peer:
        yield peer, registration


@pytest.fixture
async def moot_with_bridge(
    make_homeserver: MakeServer, tmp_path: Path, http: aiohttp.ClientSession
) -> Target:
    registration = new_registration("localhost", free_port())
    path = registration.write(tmp_path / "registration.yaml")
    server = await make_homeserver({"appservices.registration_files": [str(path)]})
    return Target(server.url, MatrixApi(server.url, http), registration)


@pytest.fixture(params=["moot", pytest.param("synapse", marks=pytest.mark.synapse)])
def target(request: pytest.FixtureRequest) -> Target:
    if request.param == "moot":
        moot: Target = request.getfixturevalue("moot_with_bridge")
        return moot
    peer, registration = request.getfixturevalue("synapse_with_bridge")
    return Target(peer.client_url, peer.api, registration)


@pytest.fixture
async def bridge(target: Target, tmp_path: Path) -> AsyncIterator[MautrixBridge]:
    bridge = MautrixBridge(target.registration, target.url, tmp_path)
    await bridge.start()
    yield bridge
    await bridge.stop()


async def test_a_users_message_reaches_the_bridge_in_a_transaction(
    target: Target, bridge: MautrixBridge
) -> None:
    alice = await target.new_user("alice")
    room_id = await target.api.create_room(alice)
    await target.api.ok("POST", f"rooms/{quote(room_id)}/invite", token=alice.token,
                        json={"user_id": target.registration.bot_user_id})
    await bridge.appservice.intent.join_room(RoomID(room_id))
    event_id = await target.api.send_message(alice, room_id, "hello, bridge")

    async def delivered() -> list[object]:
        return [e for e in bridge.received("m.room.message", room_id) if e.event_id == event_id]

    [event] = await eventually(delivered, "the message in a transaction to the bridge")
    assert event.sender == alice.user_id
    assert event.content["body"] == "hello, bridge"


async def test_the_bridge_registers_a_ghost_and_acts_as_it(
    target: Target, bridge: MautrixBridge
) -> None:
    alice = await target.new_user("alice")
    ghost = bridge.ghost("remote")
    await ghost.ensure_registered()  # m.login.application_service, inhibit_login
    assert (await ghost.whoami()).user_id == target.registration.ghost_user_id("remote")
    await ghost.set_displayname("Remote Person")

    profile = await target.api.ok(
        "GET", f"profile/{quote(ghost.mxid)}", token=alice.token
    )
    assert profile["displayname"] == "Remote Person"


async def test_a_ghost_imports_history_with_its_original_timestamp(
    target: Target, bridge: MautrixBridge
) -> None:
    alice = await target.new_user("alice")
    ghost = bridge.ghost("historian")
    await ghost.ensure_registered()
    room_id = await ghost.create_room(invitees=[alice.user_id])
    await target.api.join(alice, quote(room_id))
    content = TextMessageEventContent(msgtype=MessageType.TEXT, body="said in 2020")
    event_id = await ghost.send_message_event(
        room_id, EventType.ROOM_MESSAGE, content, timestamp=IMPORTED_TS
    )

    event = await target.api.ok(
        "GET", f"rooms/{quote(room_id)}/event/{quote(event_id)}", token=alice.token
    )
    assert event["sender"] == ghost.mxid
    assert event["origin_server_ts"] == IMPORTED_TS


async def test_an_alias_in_the_namespace_is_resolved_by_asking_the_bridge(
    target: Target, bridge: MautrixBridge
) -> None:
    alice = await target.new_user("alice")
    alias = target.registration.portal_alias("lobby")

    found = await target.api.ok("GET", f"directory/room/{quote(alias)}", token=alice.token)
    assert found["room_id"] == bridge.portals[alias]
    await target.api.join(alice, quote(alias))
    state = await target.api.ok(
        "GET", f"rooms/{quote(found['room_id'])}/state/m.room.canonical_alias", token=alice.token
    )
    assert state["alias"] == alias

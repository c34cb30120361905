"""Push notifications end to end through Sygnal, the reference push gateway, on Moot and Synapse.

Homeserver → Sygnal (its webpush pushkin, run from the vendored release, tests/sygnal_gateway.py)
→ a loopback web push service that decrypts what it receives (tests/web_push.py). A user holds
an http pusher whose `data.url` is Sygnal's notify URL and whose `data.endpoint`/`data.auth`
and pushkey are a web push subscription; another user writes into their room. Every test runs
unchanged against Moot (`push.allow_private_addresses: true`, since everything is on loopback)
and against Synapse from PyPI (tests/synapse_peer.py: its IP blocklist is empty, so it reaches
loopback, and it counts `unread` in messages as the spec does, not in rooms), so what Moot sends
is read by the same gateway the same way as what Synapse sends. While Sygnal is down, a stand-in
on its port answers 503 and counts, so the test knows the homeserver tried before Sygnal
returns.

Covered: one web push per notifying event and none for a non-notifying one, in order; the
fields that reach the device in the full format and in `event_id_only`; Sygnal's TTL and
Urgency headers (a message in a room of two notifies with a sound, so `prio` is high and the
urgency normal); a pushkey the push service expires is rejected by Sygnal and the homeserver
drops the pusher; and Sygnal down while a message is sent: the push arrives once it is back,
exactly once.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest
from aiohttp import web

from tests.conftest import MakeServer
from tests.federation_peers import eventually
from tests.helpers import MatrixApi, User
from tests.sygnal_gateway import APP_ID, WEBPUSH_TTL_S, SygnalGateway
from tests.synapse_peer import SynapsePeer
from tests.web_push import Subscription, WebPushService, run_web_push_service

DELIVERY_DEADLINE_S = 60.0  # a gateway that was down is retried with a backoff of seconds
_USER_NUMBERS = itertools.count()  # one Synapse serves the module: every user name is new
SENDER_NAME = "Bob Sender"
ROOM_NAME = "Push test room"
FULL_ONLY_FIELDS = ("content", "sender", "type", "sender_display_name", "room_name")


@dataclass
class PushServer:
    """A homeserver under test and one client of it (transaction IDs count per client)."""

    name: str
    api: MatrixApi

    async def new_user(self, localpart: str) -> User:
        return await self.api.register(f"{localpart}{next(_USER_NUMBERS)}")


@pytest.fixture
async def moot_server(make_homeserver: MakeServer, http: aiohttp.ClientSession) -> PushServer:
    """Moot in process, allowed to reach gateways on loopback."""
    moot = await make_homeserver({"push.allow_private_addresses": True})
    return PushServer("moot", MatrixApi(moot.url, http))


@pytest.fixture
def synapse_server(synapse: SynapsePeer) -> PushServer:
    """The module's Synapse."""
    return PushServer("synapse", synapse.api)


@pytest.fixture(params=["moot", pytest.param("synapse", marks=pytest.mark.synapse)])
def server(request: pytest.FixtureRequest) -> PushServer:
    """Each test runs against Moot and against Synapse."""
    chosen: PushServer = request.getfixturevalue(f"{request.param}_server")
    return chosen


@pytest.fixture
async def push_service() -> AsyncIterator[WebPushService]:
    async with run_web_push_service() as service:
        yield service


@dataclass
class Conversation:
    """Alice holds a pusher; Bob writes into their room of two."""

    server: PushServer
    alice: User
    bob: User
    room_id: str
    subscription: Subscription

    async def send(self, text: str) -> str:
        return await self.server.api.send_message(self.bob, self.room_id, text)

    async def pushers(self) -> list[dict[str, Any]]:
        body = await self.server.api.ok("GET", "pushers", token=self.alice.token)
        pushers: list[dict[str, Any]] = body["pushers"]
        return pushers


async def start_conversation(
    server: PushServer, sygnal: SygnalGateway, service: WebPushService,
    pusher_format: str | None = None,
) -> Conversation:
    """Alice's room with Bob (named, Bob with a display name), then Alice's pusher through
    Sygnal to a new web push subscription (so nothing before it is pushed)."""
    api = server.api
    alice, bob = await server.new_user("alice"), await server.new_user("bob")
    await api.ok("PUT", f"profile/{quote(bob.user_id)}/displayname",
                 json={"displayname": SENDER_NAME}, token=bob.token)
    room_id = await api.create_room(alice, preset="public_chat", name=ROOM_NAME)
    await api.join(bob, room_id)
    subscription = service.subscribe()
    data = {"url": sygnal.notify_url, "endpoint": subscription.endpoint, "auth": subscription.auth}
    if pusher_format is not None:
        data["format"] = pusher_format
    await api.ok("POST", "pushers/set", token=alice.token, json={
        "kind": "http", "app_id": APP_ID, "pushkey": subscription.p256dh,
        "app_display_name": "Moot tests", "device_display_name": "a browser", "lang": "en",
        "data": data,
    })
    return Conversation(server, alice, bob, room_id, subscription)


def pushed_event_ids(service: WebPushService, subscription: Subscription) -> list[str]:
    return [p.get("event_id") for p in service.payloads_for(subscription)]


async def wait_for_push(service: WebPushService, conversation: Conversation, event_id: str) -> None:
    await service.wait_for(
        f"a push for {event_id} from {conversation.server.name}",
        lambda: event_id in pushed_event_ids(service, conversation.subscription),
        DELIVERY_DEADLINE_S,
    )


@pytest.mark.parametrize("pusher_format", [None, "event_id_only"])
async def test_one_web_push_per_notifying_event(
    server: PushServer, sygnal: SygnalGateway, push_service: WebPushService,
    pusher_format: str | None,
) -> None:
    conversation = await start_conversation(server, sygnal, push_service, pusher_format)
    api, bob, room_id = server.api, conversation.bob, conversation.room_id
    # No default push rule notifies for an event of a type of its own: no push for it.
    await api.ok("PUT", f"rooms/{quote(room_id)}/send/org.example.note/n1", token=bob.token,
                 json={"body": "not a notification"})
    first = await conversation.send("first message")
    second = await conversation.send("second message")
    await wait_for_push(push_service, conversation, second)

    # Delivery is ordered per pusher: once the second is in, the first came exactly once before.
    assert pushed_event_ids(push_service, conversation.subscription) == [first, second]
    payloads = push_service.payloads_for(conversation.subscription)
    assert [p.get("unread") for p in payloads] == [1, 2]
    texts = ["first message", "second message"]
    for payload, event_id, text in zip(payloads, [first, second], texts, strict=True):
        assert payload["room_id"] == room_id
        if pusher_format == "event_id_only":
            assert not set(FULL_ONLY_FIELDS) & payload.keys(), payload
        else:
            assert payload["type"] == "m.room.message"
            assert payload["sender"] == bob.user_id
            assert payload["sender_display_name"] == SENDER_NAME
            assert payload["room_name"] == ROOM_NAME
            assert payload["content"] == {"msgtype": "m.text", "body": text}, event_id
    for request in push_service.requests_for(conversation.subscription):
        assert request.headers["TTL"] == str(WEBPUSH_TTL_S)
        assert request.headers["Urgency"] == "normal"  # prio high: a message in a room of two
        assert request.headers["Content-Encoding"] == "aes128gcm"
        assert f"k={sygnal.vapid_public_key}" in request.headers["Authorization"]


async def test_pushkey_rejected_through_sygnal_removes_the_pusher(
    server: PushServer, sygnal: SygnalGateway, push_service: WebPushService,
) -> None:
    conversation = await start_conversation(server, sygnal, push_service)
    pushkey = conversation.subscription.p256dh
    assert [p["pushkey"] for p in await conversation.pushers()] == [pushkey]
    push_service.expire(conversation.subscription)  # 410 Gone: Sygnal rejects the pushkey
    await conversation.send("to an expired subscription")

    async def pusher_gone() -> bool:
        return await conversation.pushers() == []

    await eventually(pusher_gone, f"{server.name} dropping the rejected pusher")
    assert len(push_service.requests_for(conversation.subscription)) >= 1


@dataclass
class DownGateway:
    """Stands on the port of a stopped Sygnal and answers 503, counting the attempts, so a test
    can see the homeserver try a gateway that is down before it comes back."""

    attempts: int = 0

    async def handle(self, request: web.Request) -> web.Response:
        self.attempts += 1
        return web.Response(status=503)


async def test_push_arrives_once_after_sygnal_was_down(
    server: PushServer, sygnal: SygnalGateway, push_service: WebPushService,
) -> None:
    conversation = await start_conversation(server, sygnal, push_service)
    await sygnal.stop()
    down = DownGateway()
    app = web.Application()
    app.router.add_post("/_matrix/push/v1/notify", down.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", sygnal.port).start()
        during = await conversation.send("sent while the gateway is down")

        async def tried() -> bool:
            return down.attempts >= 1

        await eventually(tried, f"{server.name} trying the gateway while it is down")
    finally:
        await runner.cleanup()
    await sygnal.start()
    await wait_for_push(push_service, conversation, during)
    after = await conversation.send("sent once it is back")
    await wait_for_push(push_service, conversation, after)
    assert pushed_event_ids(push_service, conversation.subscription) == [during, after]

"""Erasure (`POST /account/deactivate` with `erase: true`, and the admin deactivation with
`erase`): everything about the user that is not an event is gone from the database and the
media store; their events reach later joiners and other servers redacted, and stay whole for
those who were in the room when they were sent."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import aiohttp
import pytest

from federation.client import path_segment
from storage.erasure import GET_ERASED
from tests.admin_api import admin_ok, make_admin
from tests.auth_flows import with_uia
from tests.database_dump import dump_text
from tests.federation_peers import Peers
from tests.helpers import MatrixApi, User
from tests.shared_rooms import shared_room
from tests.statements import counting, pool_statements

if TYPE_CHECKING:
    from tests.conftest import RunningServer

pytestmark = pytest.mark.usefixtures("no_server_errors")

DEACTIVATE_PATH = ("account_deactivation.yaml", "/account/deactivate")
# One marker per place the user's data goes; none may survive outside the events table.
MARKERS = {
    name: f"zq{name}marker71"
    for name in (
        "displayname", "avatar", "accountdata", "roomdata", "tag", "device", "backup",
        "pusher", "media", "message", "status", "filter",
    )
}


def without_events_table(dump: str) -> str:
    """The dump without the `events` table's rows (signed events stay: they are served
    redacted instead)."""
    kept, skipping = [], False
    for line in dump.splitlines():
        if line.startswith("COPY public.events "):
            skipping = True
        elif skipping and line == "\\.":
            skipping = False
            continue
        if not skipping:
            kept.append(line)
    return "\n".join(kept)


def files_holding(root: Path, marker: str) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and marker.encode() in p.read_bytes()]


async def upload(api: MatrixApi, user: User, data: bytes) -> str:
    body = await api.ok(
        "POST", "/_matrix/media/v3/upload", raw=data, token=user.token,
        headers={"Content-Type": "application/octet-stream"},
    )
    uri: str = body["content_uri"]
    return uri


async def fill_account(api: MatrixApi, alice: User, room_id: str) -> list[str]:
    """Put a marker in every kind of data Alice has; the IDs of her messages."""
    uid, m = quote(alice.user_id), MARKERS
    mxc = await upload(api, alice, f"file {m['media']} bytes".encode())
    await api.ok("PUT", f"profile/{uid}/displayname", token=alice.token,
                 json={"displayname": m["displayname"]})
    await api.ok("PUT", f"profile/{uid}/avatar_url", token=alice.token, json={"avatar_url": mxc})
    await api.ok("PUT", f"profile/{uid}/org.example.{m['avatar']}", token=alice.token,
                 json={f"org.example.{m['avatar']}": m["avatar"]})
    await api.ok("PUT", f"user/{uid}/account_data/org.example.a", token=alice.token,
                 json={"note": m["accountdata"]})
    room = quote(room_id)
    await api.ok("PUT", f"user/{uid}/rooms/{room}/account_data/org.example.r", token=alice.token,
                 json={"note": m["roomdata"]})
    await api.ok("PUT", f"user/{uid}/rooms/{room}/tags/u.{m['tag']}", token=alice.token, json={})
    await api.ok("PUT", f"devices/{quote(alice.device_id)}", token=alice.token,
                 json={"display_name": m["device"]})
    version = (await api.ok("POST", "room_keys/version", token=alice.token, json={
        "algorithm": "m.megolm_backup.v1.curve25519-aes-sha2",
        "auth_data": {"public_key": "pubkey", "signatures": {}},
    }))["version"]
    await api.ok("PUT", f"room_keys/keys/{room}/session1", token=alice.token,
                 params={"version": version}, json={
                     "first_message_index": 0, "forwarded_count": 0, "is_verified": True,
                     "session_data": {"ephemeral": m["backup"], "ciphertext": "c", "mac": "m"},
                 })
    await api.ok("POST", "pushers/set", token=alice.token, json={
        "kind": "http", "app_id": "org.example.app", "pushkey": m["pusher"],
        "app_display_name": m["pusher"], "device_display_name": m["pusher"], "lang": "en",
        "data": {"url": "https://push.example.org/_matrix/push/v1/notify"},
    })
    await api.ok("PUT", f"presence/{uid}/status", token=alice.token,
                 json={"presence": "online", "status_msg": m["status"]})
    await api.ok("POST", f"user/{uid}/filter", token=alice.token,
                 json={"event_fields": [f"content.{m['filter']}"]})
    return [await api.send_message(alice, room_id, f"{m['message']} {i}") for i in range(3)]


async def erase(api: MatrixApi, alice: User) -> None:
    status, body = await with_uia(
        api, alice, "post", "account/deactivate", {"erase": True}, DEACTIVATE_PATH
    )
    assert status == 200, body


def message_contents(chunk: list[dict[str, Any]], sender: str) -> list[dict[str, Any]]:
    return [e["content"] for e in chunk if e["type"] == "m.room.message" and e["sender"] == sender]


async def test_erasure_leaves_no_trace_outside_events_and_the_media_store(
    homeserver: RunningServer, api: MatrixApi, database_url: str,
) -> None:
    alice, carol = await api.register("alice"), await api.register("carol")
    room_id = await api.create_room(carol, preset="public_chat")
    await api.join(alice, room_id)
    await fill_account(api, alice, room_id)
    media_root = homeserver.data_dir / "media"
    assert files_holding(media_root, MARKERS["media"])
    assert MARKERS["device"] in without_events_table(await dump_text(database_url))

    await erase(api, alice)

    dump = without_events_table(await dump_text(database_url))
    assert [m for m in MARKERS.values() if m in dump] == []
    assert files_holding(media_root, MARKERS["media"]) == []
    # The profile is empty, the account is out of the user directory and has left the room,
    # by a leave that names no one.
    profile = await api.ok("GET", f"profile/{quote(alice.user_id)}", token=carol.token)
    assert profile == {}
    found = await api.ok("POST", "user_directory/search", token=carol.token,
                         json={"search_term": "alice"})
    assert found["results"] == []
    leave = await api.ok(
        "GET", f"rooms/{quote(room_id)}/state/m.room.member/{quote(alice.user_id)}",
        token=carol.token,
    )
    assert leave == {"membership": "leave"}
    # The room still works.
    await api.send_message(carol, room_id, "still here")


async def test_later_joiners_see_an_erased_users_events_redacted(api: MatrixApi) -> None:
    alice, carol = await api.register("alice"), await api.register("carol")
    room_id = await api.create_room(carol, preset="public_chat")
    # Named before joining: her join event carries the name.
    await api.ok("PUT", f"profile/{quote(alice.user_id)}/displayname", token=alice.token,
                 json={"displayname": MARKERS["displayname"]})
    await api.join(alice, room_id)
    sent = [await api.send_message(alice, room_id, f"{MARKERS['message']} {i}") for i in range(2)]
    await erase(api, alice)
    dave = await api.register("dave")
    await api.join(dave, room_id)
    room = quote(room_id)

    async def messages(user: User) -> list[dict[str, Any]]:
        body = await api.ok("GET", f"rooms/{room}/messages", token=user.token,
                            params={"dir": "b", "limit": "50"})
        return message_contents(body["chunk"], alice.user_id)

    # Carol was there when they were sent: she sees them as before.
    assert [c["body"] for c in await messages(carol)] == [
        f"{MARKERS['message']} 1", f"{MARKERS['message']} 0"
    ]
    assert await messages(dave) == [{}, {}]
    for event_id in sent:
        event = await api.ok("GET", f"rooms/{room}/event/{quote(event_id)}", token=dave.token)
        assert event["content"] == {} and event["sender"] == alice.user_id
        context = await api.ok("GET", f"rooms/{room}/context/{quote(event_id)}",
                               token=dave.token, params={"limit": "10"})
        assert context["event"]["content"] == {}
        around = context["events_before"] + context["events_after"]
        assert message_contents(around, alice.user_id) == [{}]
        # The state at the event names Alice's join without her display name.
        [joined] = [e["content"] for e in context["state"]
                    if e["type"] == "m.room.member" and e["state_key"] == alice.user_id]
        assert joined == {"membership": "join"}
        whole = await api.ok("GET", f"rooms/{room}/event/{quote(event_id)}", token=carol.token)
        assert whole["content"]["body"].startswith(MARKERS["message"])
    sync = await api.ok("GET", "sync", token=dave.token,
                        params={"filter": '{"room": {"timeline": {"limit": 50}}}'})
    timeline = sync["rooms"]["join"][room_id]["timeline"]["events"]
    assert message_contents(timeline, alice.user_id) == [{}, {}]
    # Alice's join (her display name) reaches Dave redacted too: the membership only.
    joins = [e["content"] for e in timeline
             if e["type"] == "m.room.member" and e["state_key"] == alice.user_id]
    assert {"membership": "join"} in joins
    # Search finds her words for no one.
    for user in (carol, dave):
        found = await api.ok("POST", "search", token=user.token, json={
            "search_categories": {"room_events": {"search_term": MARKERS["message"]}}
        })
        assert found["search_categories"]["room_events"]["results"] == []


async def test_reads_ask_the_database_who_is_erased_only_after_an_erasure(
    homeserver: RunningServer, api: MatrixApi,
) -> None:
    """Every /messages and /sync serves its events through the erased-sender check: the
    erased users are held in memory, read again only after an erasure (or reactivation)."""
    assert homeserver.hs.db is not None
    alice, carol = await api.register("alice"), await api.register("carol")
    room_id = await api.create_room(carol, preset="public_chat")
    await api.join(alice, room_id)
    await api.send_message(alice, room_id, MARKERS["message"])
    path = f"rooms/{quote(room_id)}/messages"
    params = {"dir": "b", "limit": "50"}
    await api.ok("GET", path, token=carol.token, params=params)  # the first read loads them
    async with pool_statements(homeserver.hs.db) as statements:
        for _ in range(3):
            await api.ok("GET", path, token=carol.token, params=params)
            await api.ok("GET", "sync", token=carol.token)
    assert counting(statements, GET_ERASED) == 0

    await erase(api, alice)
    dave = await api.register("dave")
    await api.join(dave, room_id)
    async with pool_statements(homeserver.hs.db) as statements:
        for _ in range(3):
            body = await api.ok("GET", path, token=dave.token, params=params)
            assert message_contents(body["chunk"], alice.user_id) == [{}]
    assert counting(statements, GET_ERASED) == 1


async def test_an_admin_erasure_does_the_same(
    homeserver: RunningServer, api: MatrixApi, database_url: str,
) -> None:
    admin = await make_admin(homeserver, api)
    alice, carol = await api.register("alice"), await api.register("carol")
    room_id = await api.create_room(carol, preset="public_chat")
    await api.join(alice, room_id)
    await fill_account(api, alice, room_id)
    await admin_ok(api, admin, "POST", f"/v1/deactivate/{quote(alice.user_id)}",
                   json={"erase": True})
    dump = without_events_table(await dump_text(database_url))
    assert [m for m in MARKERS.values() if m in dump] == []
    assert files_holding(homeserver.data_dir / "media", MARKERS["media"]) == []
    details = await admin_ok(api, admin, "GET", f"/v2/users/{quote(alice.user_id)}")
    assert details["erased"] is True


async def test_a_deactivation_without_erase_keeps_the_events_whole(api: MatrixApi) -> None:
    alice, carol = await api.register("alice"), await api.register("carol")
    room_id = await api.create_room(carol, preset="public_chat")
    await api.join(alice, room_id)
    await api.send_message(alice, room_id, MARKERS["message"])
    status, body = await with_uia(api, alice, "post", "account/deactivate", {}, DEACTIVATE_PATH)
    assert status == 200, body
    dave = await api.register("dave")
    await api.join(dave, room_id)
    body = await api.ok("GET", f"rooms/{quote(room_id)}/messages", token=dave.token,
                        params={"dir": "b", "limit": "50"})
    assert message_contents(body["chunk"], alice.user_id) == [
        {"msgtype": "m.text", "body": MARKERS["message"]}
    ]


async def test_erase_must_be_a_boolean(api: MatrixApi) -> None:
    alice = await api.register("alice")
    status, body = await api.request(
        "POST", "account/deactivate", json={"erase": "yes"}, token=alice.token
    )
    assert (status, body["errcode"]) == (400, "M_BAD_JSON")
    assert (await api.ok("GET", "account/whoami", token=alice.token))["user_id"] == alice.user_id


async def test_other_servers_get_an_erased_users_events_redacted(
    peers: Peers, peer_http: aiohttp.ClientSession
) -> None:
    room = await shared_room(peers, peer_http)
    await room.api.ok("PUT", f"profile/{quote(room.alice.user_id)}/displayname",
                      token=room.alice.token, json={"displayname": MARKERS["displayname"]})
    message = await room.api.send_message(room.alice, room.room_id, MARKERS["message"])
    [whole] = (await room.ok("GET", f"/event/{path_segment(message)}"))["pdus"]
    assert whole["content"]["body"] == MARKERS["message"]

    await erase(room.api, room.alice)

    [pdu] = (await room.ok("GET", f"/event/{path_segment(message)}"))["pdus"]
    # Redacted, and still the same event: its ID and signatures verify.
    assert pdu["content"] == {} and room.event_id(pdu) == message
    assert pdu["signatures"] == whole["signatures"]
    backfill = await room.ok("GET", f"/backfill/{room.room}",
                             query={"v": message, "limit": "50"})
    alices = [p for p in backfill["pdus"] if p["sender"] == room.alice.user_id]
    assert [p["content"] for p in alices if p["type"] == "m.room.message"] == [{}]
    joins = [p["content"] for p in alices if p["type"] == "m.room.member"]
    assert {"membership": "join"} in joins
    assert not [m for m in MARKERS.values() if m in str(backfill)]
    missing = await room.ok("POST", f"/get_missing_events/{room.room}", body={
        "earliest_events": [], "latest_events": [message], "limit": 10,
    })
    assert not [m for m in MARKERS.values() if m in str(missing)]


async def test_a_server_joining_after_the_erasure_gets_her_events_redacted(
    peers: Peers, peer_http: aiohttp.ClientSession
) -> None:
    """c joins after the erasure: send_join's state and auth chain, /state and the history
    it backfills carry none of Alice's words nor her display name."""
    a, c = await peers.new("a"), await peers.new("c")
    api_a, api_c = a.api(peer_http), c.api(peer_http)
    alice, carol = await api_a.register("alice"), await api_a.register("carol")
    room_id = await api_a.create_room(carol, preset="public_chat")
    await api_a.ok("PUT", f"profile/{quote(alice.user_id)}/displayname", token=alice.token,
                   json={"displayname": MARKERS["displayname"]})
    await api_a.join(alice, room_id)
    sent = await api_a.send_message(alice, room_id, MARKERS["message"])
    await erase(api_a, alice)
    last = await api_a.send_message(carol, room_id, "after the erasure")

    eve = await api_c.register("eve")
    await api_c.ok("POST", f"join/{quote(room_id)}", token=eve.token, json={},
                   params={"server_name": a.name})
    marked = (MARKERS["message"], MARKERS["displayname"])

    async def held_by_c() -> list[str]:
        """The JSON of the room's events c holds."""
        assert c.hs is not None and c.hs.db is not None
        rows = await c.hs.db.run(lambda conn: conn.fetch(
            "SELECT json FROM events WHERE room_id = $1", room_id
        ))
        return [row["json"] for row in rows]

    # What send_join gave (read before any backfill, whose redacted copies would replace
    # whole ones: c would find their content hashes off).
    joined_with = await held_by_c()
    assert any(alice.user_id in pdu for pdu in joined_with)
    assert not [pdu for pdu in joined_with if any(m in pdu for m in marked)]
    history = await api_c.ok("GET", f"rooms/{quote(room_id)}/messages", token=eve.token,
                             params={"dir": "b", "limit": "50"})
    assert sent in {e["event_id"] for e in history["chunk"]}  # backfilled from a
    assert message_contents(history["chunk"], alice.user_id) == [{}]
    assert not [pdu for pdu in await held_by_c() if any(m in pdu for m in marked)]

    state = await c.federation.outbound.client.get_json(
        a.name, f"/_matrix/federation/v1/state/{path_segment(room_id)}", {"event_id": last}
    )
    [joined] = [e["content"] for e in state["auth_chain"]
                if e["type"] == "m.room.member" and e["state_key"] == alice.user_id
                and e["content"]["membership"] == "join"]
    assert joined == {"membership": "join"}
    assert not [m for m in marked if m in str(state)]

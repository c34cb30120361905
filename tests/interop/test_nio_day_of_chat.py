"""Issue 3 acceptance in one scenario with an unmodified matrix-nio client: an image is
uploaded and shared, its thumbnail comes back, a mention raises `notification_count` and a
read receipt clears it, and the password is changed through user-interactive auth."""

from __future__ import annotations

import io

import nio
from nio.api import ResizingMethod

from tests.conftest import RunningServer
from tests.helpers import PASSWORD
from tests.images import image_of, png
from tests.nio_clients import (
    NEW_PASSWORD,
    change_password,
    new_client,
    ok,
    register,
    sync_counts_until,
)


async def test_a_day_of_chat(homeserver: RunningServer) -> None:
    alice, bob = new_client(homeserver, "alice"), new_client(homeserver, "bob")
    try:
        await register(alice)
        await register(bob)
        created = ok(await alice.room_create(visibility=nio.RoomVisibility.public), "create")
        room_id = created.room_id
        ok(await bob.join(room_id), "join")
        await sync_counts_until(alice, room_id, lambda c: c == (0, 0), "the room")

        # Bob shares a picture; Alice's client fetches a thumbnail of it.
        picture = png(640, 480)
        uploaded, _ = await bob.upload(
            io.BytesIO(picture), "image/png", "lunch.png", filesize=len(picture)
        )
        uploaded = ok(uploaded, "upload")
        ok(await bob.room_send(room_id, "m.room.message", {
            "msgtype": "m.image", "body": "lunch.png", "url": uploaded.content_uri,
            "info": {"mimetype": "image/png", "size": len(picture), "w": 640, "h": 480},
        }), "send image")
        server, media_id = uploaded.content_uri.removeprefix("mxc://").split("/")
        thumb = ok(await alice.thumbnail(server, media_id, 320, 240, ResizingMethod.scale), "t")
        assert isinstance(thumb, nio.ThumbnailResponse)
        assert image_of(thumb.body).size == (320, 240)

        # A mention raises Alice's counts; her read receipt clears them.
        sent = ok(await bob.room_send(room_id, "m.room.message", {
            "msgtype": "m.text", "body": "alice, is this yours?",
            "m.mentions": {"user_ids": [alice.user_id]},
        }), "mention")
        counts = await sync_counts_until(alice, room_id, lambda c: (c[1] or 0) > 0, "mention")
        assert counts[0] is not None and counts[0] >= 2  # the picture and the mention
        assert counts[1] == 1  # only the mention highlights
        ok(await alice.update_receipt_marker(room_id, sent.event_id), "receipt")
        assert await sync_counts_until(alice, room_id, lambda c: c[0] == 0, "reset") == (0, 0)

        # Alice changes her password with user-interactive auth and logs in with it.
        await change_password(alice, PASSWORD, NEW_PASSWORD)
        fresh = new_client(homeserver, "alice")
        try:
            assert isinstance(ok(await fresh.login(NEW_PASSWORD), "login"), nio.LoginResponse)
        finally:
            await fresh.close()
    finally:
        await alice.close()
        await bob.close()

"""The media admin API: a user's media listed, paged and sorted; quarantine hiding media from
everyone on every download path; protection; deletion by ID, by user and by age and size,
removing a file only when no other media ID shares its bytes."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client import REGISTRY

from homeserver.services.media_store import ContentStore
from tests.admin_api import ADMIN, admin_ok, make_admin
from tests.conftest import MakeServer, RunningServer
from tests.fake_clock import START_MS, FakeClock
from tests.helpers import MatrixApi, User
from tests.images import png

pytestmark = pytest.mark.usefixtures("no_server_errors")

V1 = "/_matrix/client/v1/media"
V3 = "/_matrix/media/v3"
DAY_S = 24 * 60 * 60


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def homeserver(make_homeserver: MakeServer, clock: FakeClock) -> RunningServer:
    return await make_homeserver(clock=clock)


@pytest.fixture
async def admin(homeserver: RunningServer, api: MatrixApi) -> User:
    return await make_admin(homeserver, api)


@pytest.fixture
async def alice(api: MatrixApi) -> User:
    return await api.register("alice")


async def upload(
    api: MatrixApi, user: User, data: bytes, content_type: str = "application/octet-stream",
    filename: str | None = None,
) -> str:
    params = {"filename": filename} if filename is not None else None
    body = await api.ok(
        "POST", f"{V3}/upload", raw=data, token=user.token,
        headers={"Content-Type": content_type}, params=params,
    )
    return str(body["content_uri"].rsplit("/", 1)[1])


def download_paths(server: str, media_id: str) -> list[str]:
    """Every path that serves the media's bytes or a thumbnail of them."""
    thumb = "?width=32&height=32&method=crop"
    return [
        f"{V1}/download/{server}/{media_id}",
        f"{V1}/download/{server}/{media_id}/name.png",
        f"{V3}/download/{server}/{media_id}",
        f"{V3}/download/{server}/{media_id}/name.png",
        f"{V1}/thumbnail/{server}/{media_id}{thumb}",
        f"{V3}/thumbnail/{server}/{media_id}{thumb}",
    ]


async def statuses(
    http: aiohttp.ClientSession, api: MatrixApi, server: str, media_id: str, token: str
) -> set[tuple[int, str | None]]:
    """The (status, errcode) answers of every download path for the holder of `token`."""
    seen = set()
    for path in download_paths(server, media_id):
        async with http.get(
            api.base_url + path, headers={"Authorization": f"Bearer {token}"}
        ) as resp:
            errcode = (await resp.json())["errcode"] if resp.status != 200 else None
            seen.add((resp.status, errcode))
    return seen


def file_of(server: RunningServer, data: bytes) -> Path:
    config = server.hs.config
    store = ContentStore(config.path(config.media.store_path))
    return store.path_of(hashlib.sha256(data).hexdigest())


async def admin_error(
    api: MatrixApi, user: User, method: str, path: str, **kwargs: Any
) -> tuple[int, str]:
    status, body = await api.request(method, ADMIN + path, token=user.token, **kwargs)
    return status, body["errcode"]


# -- listing -----------------------------------------------------------------------------------


async def test_a_users_media_is_listed_paged_and_sorted(
    homeserver: RunningServer, api: MatrixApi, admin: User, alice: User, clock: FakeClock,
) -> None:
    first = await upload(api, alice, b"x" * 30, "text/plain", "b.txt")
    clock.advance(10)
    second = await upload(api, alice, b"y" * 10, "image/png", "c.png")
    clock.advance(10)
    third = await upload(api, alice, b"z" * 20, "application/pdf")
    await upload(api, admin, b"not alice's")
    clock.advance(120)
    await api.ok("GET", f"{V3}/download/{homeserver.server_name}/{second}")

    path = f"/v1/users/{alice.user_id}/media"
    body = await admin_ok(api, admin, "GET", path)
    assert body["total"] == 3 and "next_token" not in body
    assert [m["media_id"] for m in body["media"]] == [third, second, first]  # newest first
    assert body["media"][2] == {
        "media_id": first, "media_type": "text/plain", "media_length": 30,
        "upload_name": "b.txt", "created_ts": START_MS, "last_access_ts": None,
        "quarantined_by": None, "safe_from_quarantine": False,
    }
    assert body["media"][1]["last_access_ts"] == START_MS + 140_000

    page = await admin_ok(
        api, admin, "GET", path, params={"order_by": "media_length", "limit": "2"}
    )
    assert [m["media_id"] for m in page["media"]] == [second, third]
    assert (page["total"], page["next_token"]) == (3, 2)
    rest = await admin_ok(api, admin, "GET", path, params={
        "order_by": "media_length", "limit": "2", "from": str(page["next_token"]),
    })
    assert [m["media_id"] for m in rest["media"]] == [first] and "next_token" not in rest
    by_type = await admin_ok(
        api, admin, "GET", path, params={"order_by": "media_type", "dir": "b"}
    )
    assert [m["media_id"] for m in by_type["media"]] == [first, second, third]
    for order_by in ("media_id", "upload_name", "created_ts", "last_access_ts",
                     "quarantined_by", "safe_from_quarantine"):
        sorted_ = await admin_ok(api, admin, "GET", path, params={"order_by": order_by})
        assert sorted({m["media_id"] for m in sorted_["media"]}) == sorted({first, second, third})

    for params, errcode in [
        ({"order_by": "size"}, "M_INVALID_PARAM"), ({"dir": "up"}, "M_INVALID_PARAM"),
        ({"limit": "-1"}, "M_INVALID_PARAM"), ({"from": "abc"}, "M_INVALID_PARAM"),
        ({"limit": "1e3"}, "M_INVALID_PARAM"), ({"from": "9" * 30}, "M_INVALID_PARAM"),
    ]:
        assert await admin_error(api, admin, "GET", path, params=params) == (400, errcode)
    assert await admin_error(api, admin, "GET", "/v1/users/alice/media") == (
        400, "M_INVALID_PARAM"
    )
    assert await admin_error(api, admin, "GET", "/v1/users/@alice:elsewhere.example/media") == (
        400, "M_INVALID_PARAM"
    )
    assert await admin_error(
        api, admin, "GET", f"/v1/users/@nobody:{homeserver.server_name}/media"
    ) == (404, "M_NOT_FOUND")


# -- quarantine and protection -----------------------------------------------------------------


def touches() -> float:
    """How many times the media service went to the database to record a download."""
    value = REGISTRY.get_sample_value(
        "moot_db_transaction_duration_seconds_count", {"name": "media_touch"}
    )
    return value or 0.0


async def test_downloads_record_an_access_once_a_minute_without_a_write_each(
    homeserver: RunningServer, api: MatrixApi, admin: User, alice: User, clock: FakeClock,
) -> None:
    """`last_access_ts` moves at most once a minute, and a download within the minute costs
    no database round trip for it: the row the download reads already tells it is recent."""
    media_id = await upload(api, alice, b"popular")
    url = f"{V3}/download/{homeserver.server_name}/{media_id}"
    before = touches()
    await api.ok("GET", url)
    assert touches() == before + 1
    for _ in range(5):
        clock.advance(5)
        await api.ok("GET", url)
    assert touches() == before + 1
    clock.advance(60)
    await api.ok("GET", url)
    assert touches() == before + 2
    body = await admin_ok(api, admin, "GET", f"/v1/users/{alice.user_id}/media")
    assert body["media"][0]["last_access_ts"] == START_MS + 85_000


async def test_quarantined_media_is_hidden_from_everyone_until_released(
    homeserver: RunningServer, api: MatrixApi, http: aiohttp.ClientSession, admin: User,
    alice: User,
) -> None:
    server = homeserver.server_name
    media_id = await upload(api, alice, png(64, 64), "image/png")
    assert await statuses(http, api, server, media_id, alice.token) == {(200, None)}

    assert await admin_ok(api, admin, "POST", f"/v1/media/quarantine/{server}/{media_id}",
                          json={}) == {}
    for user in (alice, admin):
        assert await statuses(http, api, server, media_id, user.token) == {
            (404, "M_NOT_FOUND")
        }
    info = await admin_ok(api, admin, "GET", f"/v1/media/{server}/{media_id}")
    assert info["media_info"]["quarantined_by"] == admin.user_id
    listed = await admin_ok(api, admin, "GET", f"/v1/users/{alice.user_id}/media")
    assert listed["media"][0]["quarantined_by"] == admin.user_id

    await admin_ok(api, admin, "POST", f"/v1/media/unquarantine/{server}/{media_id}", json={})
    assert await statuses(http, api, server, media_id, alice.token) == {(200, None)}

    for action in ("quarantine", "unquarantine"):
        for path, expected in [
            (f"/v1/media/{action}/{server}/unknownmedia", (404, "M_NOT_FOUND")),
            (f"/v1/media/{action}/elsewhere.example/{media_id}", (404, "M_NOT_FOUND")),
            (f"/v1/media/{action}/{server}/bad!id", (400, "M_INVALID_PARAM")),
            (f"/v1/media/{action}/bad^server/{media_id}", (400, "M_INVALID_PARAM")),
        ]:
            assert await admin_error(api, admin, "POST", path, json={}) == expected


async def test_protected_media_cannot_be_quarantined(
    homeserver: RunningServer, api: MatrixApi, http: aiohttp.ClientSession, admin: User,
    alice: User,
) -> None:
    server = homeserver.server_name
    media_id = await upload(api, alice, png(8, 8), "image/png")
    assert await admin_ok(api, admin, "POST", f"/v1/media/protect/{media_id}", json={}) == {}
    info = await admin_ok(api, admin, "GET", f"/v1/media/{server}/{media_id}")
    assert info["media_info"]["safe_from_quarantine"] is True

    await admin_ok(api, admin, "POST", f"/v1/media/quarantine/{server}/{media_id}", json={})
    user_body = await admin_ok(
        api, admin, "POST", f"/v1/user/{alice.user_id}/media/quarantine", json={}
    )
    assert user_body == {"num_quarantined": 0}
    assert await statuses(http, api, server, media_id, alice.token) == {(200, None)}

    assert await admin_ok(api, admin, "POST", f"/v1/media/unprotect/{media_id}", json={}) == {}
    await admin_ok(api, admin, "POST", f"/v1/media/quarantine/{server}/{media_id}", json={})
    assert await statuses(http, api, server, media_id, alice.token) == {(404, "M_NOT_FOUND")}

    for action in ("protect", "unprotect"):
        assert await admin_error(api, admin, "POST", f"/v1/media/{action}/unknownmedia",
                                 json={}) == (404, "M_NOT_FOUND")
        assert await admin_error(api, admin, "POST", f"/v1/media/{action}/bad!id",
                                 json={}) == (400, "M_INVALID_PARAM")


async def test_room_and_user_quarantine(
    homeserver: RunningServer, api: MatrixApi, http: aiohttp.ClientSession, admin: User,
    alice: User,
) -> None:
    server = homeserver.server_name
    bob = await api.register("bob")
    image, thumb, avatar, unposted, bobs = [
        await upload(api, user, png(4, 4 + n), "image/png")
        for n, user in enumerate([alice, alice, alice, alice, bob])
    ]
    room_id = await api.create_room(alice)
    await api.ok("PUT", f"rooms/{room_id}/send/m.room.message/t1", token=alice.token, json={
        "msgtype": "m.image", "body": "cat.png", "url": f"mxc://{server}/{image}",
        "info": {"thumbnail_url": f"mxc://{server}/{thumb}"},
    })
    await api.ok("PUT", f"rooms/{room_id}/state/m.room.avatar", token=alice.token,
                 json={"url": f"mxc://{server}/{avatar}"})
    await api.ok("PUT", f"rooms/{room_id}/send/m.room.message/t2", token=alice.token, json={
        "msgtype": "m.image", "body": "far away", "url": "mxc://elsewhere.example/remote1",
    })

    body = await admin_ok(api, admin, "POST", f"/v1/room/{room_id}/media/quarantine", json={})
    assert body == {"num_quarantined": 3}
    for media_id in (image, thumb, avatar):
        assert await statuses(http, api, server, media_id, bob.token) == {
            (404, "M_NOT_FOUND")
        }
    for media_id in (unposted, bobs):
        assert await statuses(http, api, server, media_id, bob.token) == {(200, None)}

    body = await admin_ok(api, admin, "POST", f"/v1/user/{bob.user_id}/media/quarantine",
                          json={})
    assert body == {"num_quarantined": 1}
    assert await statuses(http, api, server, bobs, bob.token) == {(404, "M_NOT_FOUND")}
    assert await statuses(http, api, server, unposted, bob.token) == {(200, None)}

    for path, expected in [
        (f"/v1/room/!unknown:{server}/media/quarantine", (404, "M_NOT_FOUND")),
        ("/v1/room/not-a-room/media/quarantine", (400, "M_INVALID_PARAM")),
        (f"/v1/user/@nobody:{server}/media/quarantine", (404, "M_NOT_FOUND")),
        ("/v1/user/@bob:elsewhere.example/media/quarantine", (400, "M_INVALID_PARAM")),
        ("/v1/user/bob/media/quarantine", (400, "M_INVALID_PARAM")),
    ]:
        assert await admin_error(api, admin, "POST", path, json={}) == expected


# -- deletion ----------------------------------------------------------------------------------


async def test_deleting_media_keeps_bytes_another_media_id_shares(
    homeserver: RunningServer, api: MatrixApi, http: aiohttp.ClientSession, admin: User,
    alice: User,
) -> None:
    server = homeserver.server_name
    data = png(200, 200)
    first = await upload(api, alice, data, "image/png", "one.png")
    second = await upload(api, alice, data, "image/png", "two.png")
    assert await statuses(http, api, server, first, alice.token) == {(200, None)}  # thumbnails
    info = (await admin_ok(api, admin, "GET", f"/v1/media/{server}/{first}"))["media_info"]
    assert info["sha256"] == hashlib.sha256(data).hexdigest()
    assert (info["media_origin"], info["user_id"], info["media_length"]) == (
        server, alice.user_id, len(data)
    )
    media_dir = file_of(homeserver, data).parents[2]
    files_with_thumbnails = {p for p in media_dir.rglob("*") if p.is_file()}
    assert len(files_with_thumbnails) > 1

    body = await admin_ok(api, admin, "DELETE", f"/v1/media/{server}/{first}", json={})
    assert body == {"deleted_media": [first], "total": 1}
    assert await statuses(http, api, server, first, alice.token) == {(404, "M_NOT_FOUND")}
    assert await statuses(http, api, server, second, alice.token) == {(200, None)}
    assert file_of(homeserver, data).is_file()

    # A media ID whose bytes are those of a thumbnail keeps that file too.
    async with http.get(
        f"{api.base_url}{V3}/thumbnail/{server}/{second}?width=32&height=32&method=crop"
    ) as resp:
        thumb_copy = await upload(api, alice, await resp.read(), "image/png")
    await admin_ok(api, admin, "DELETE", f"/v1/media/{server}/{second}", json={})
    assert await statuses(http, api, server, second, alice.token) == {(404, "M_NOT_FOUND")}
    assert not file_of(homeserver, data).exists()
    assert await statuses(http, api, server, thumb_copy, alice.token) == {(200, None)}

    await admin_ok(api, admin, "DELETE", f"/v1/media/{server}/{thumb_copy}", json={})
    assert not any(p.is_file() and p.parent.name != "tmp" for p in media_dir.rglob("*"))

    for method, path, expected in [
        ("DELETE", f"/v1/media/{server}/{first}", (404, "M_NOT_FOUND")),
        ("DELETE", f"/v1/media/elsewhere.example/{first}", (400, "M_INVALID_PARAM")),
        ("DELETE", f"/v1/media/{server}/bad!id", (400, "M_INVALID_PARAM")),
        ("GET", f"/v1/media/{server}/{first}", (404, "M_NOT_FOUND")),
        ("GET", f"/v1/media/elsewhere.example/{first}", (404, "M_NOT_FOUND")),
    ]:
        assert await admin_error(api, admin, method, path) == expected


async def test_deleting_a_users_media(
    homeserver: RunningServer, api: MatrixApi, admin: User, alice: User, clock: FakeClock,
) -> None:
    media = []
    for n in range(3):
        media.append(await upload(api, alice, bytes([n]) * 10))
        clock.advance(1)
    kept = await upload(api, admin, b"the admin's own")
    path = f"/v1/users/{alice.user_id}/media"

    body = await admin_ok(api, admin, "DELETE", path, params={"limit": "1"})
    assert body == {"deleted_media": [media[2]], "total": 1}  # newest first
    body = await admin_ok(api, admin, "DELETE", path)
    assert sorted(body["deleted_media"]) == sorted(media[:2]) and body["total"] == 2
    assert (await admin_ok(api, admin, "GET", path))["total"] == 0
    await api.ok("GET", f"{V3}/download/{homeserver.server_name}/{kept}")
    for params in ({"limit": "x"}, {"order_by": "nope"}):
        assert await admin_error(api, admin, "DELETE", path, params=params) == (
            400, "M_INVALID_PARAM"
        )
    assert await admin_error(
        api, admin, "DELETE", f"/v1/users/@nobody:{homeserver.server_name}/media"
    ) == (404, "M_NOT_FOUND")


async def test_deleting_media_by_age_and_size(
    homeserver: RunningServer, api: MatrixApi, admin: User, alice: User, clock: FakeClock,
) -> None:
    server = homeserver.server_name
    big = b"b" * 1000
    old_small = await upload(api, alice, b"s" * 10)
    old_big = await upload(api, alice, big + b"1")
    read_lately = await upload(api, alice, big + b"2")
    avatar = await upload(api, alice, big + b"3")
    room_avatar = await upload(api, alice, big + b"4")
    protected = await upload(api, alice, big + b"5")
    await api.ok("PUT", f"profile/{alice.user_id}/avatar_url", token=alice.token,
                 json={"avatar_url": f"mxc://{server}/{avatar}"})
    room_id = await api.create_room(alice)
    await api.ok("PUT", f"rooms/{room_id}/state/m.room.avatar", token=alice.token,
                 json={"url": f"mxc://{server}/{room_avatar}"})
    await admin_ok(api, admin, "POST", f"/v1/media/protect/{protected}", json={})
    clock.advance(DAY_S)
    before_ts = str(START_MS + 1000)
    await api.ok("GET", f"{V3}/download/{server}/{read_lately}")
    new_big = await upload(api, alice, big + b"6")

    body = await admin_ok(api, admin, "POST", "/v1/media/delete",
                          params={"before_ts": before_ts, "size_gt": "100"}, json={})
    assert body == {"deleted_media": [old_big], "total": 1}

    body = await admin_ok(api, admin, "POST", f"/v1/media/{server}/delete", json={}, params={
        "before_ts": before_ts, "size_gt": "100", "keep_profiles": "false",
    })
    assert sorted(body["deleted_media"]) == sorted([avatar, room_avatar])

    body = await admin_ok(api, admin, "POST", "/v1/media/delete",
                          params={"before_ts": before_ts}, json={})
    assert body == {"deleted_media": [old_small], "total": 1}
    listed = await admin_ok(api, admin, "GET", f"/v1/users/{alice.user_id}/media")
    assert {m["media_id"] for m in listed["media"]} == {read_lately, protected, new_big}

    for params in ({"before_ts": "-1"}, {"before_ts": "1700000000"}, {"before_ts": "soon"},
                   {"before_ts": before_ts, "size_gt": "-5"},
                   {"before_ts": before_ts, "keep_profiles": "yes"}):
        assert await admin_error(api, admin, "POST", "/v1/media/delete", params=params,
                                 json={}) == (400, "M_INVALID_PARAM")
    assert await admin_error(api, admin, "POST", "/v1/media/delete", json={}) == (
        400, "M_MISSING_PARAM"
    )
    assert await admin_error(api, admin, "POST", "/v1/media/elsewhere.example/delete",
                             params={"before_ts": before_ts}, json={}) == (400, "M_INVALID_PARAM")


# -- access ------------------------------------------------------------------------------------


async def test_every_media_admin_endpoint_is_for_admins_only(
    homeserver: RunningServer, api: MatrixApi, alice: User,
) -> None:
    server = homeserver.server_name
    media_id = await upload(api, alice, b"mine")
    room_id = await api.create_room(alice)
    for method, path in [
        ("GET", f"/v1/users/{alice.user_id}/media"),
        ("DELETE", f"/v1/users/{alice.user_id}/media"),
        ("GET", f"/v1/media/{server}/{media_id}"),
        ("DELETE", f"/v1/media/{server}/{media_id}"),
        ("POST", f"/v1/media/quarantine/{server}/{media_id}"),
        ("POST", f"/v1/media/unquarantine/{server}/{media_id}"),
        ("POST", f"/v1/room/{room_id}/media/quarantine"),
        ("POST", f"/v1/quarantine_media/{room_id}"),
        ("POST", f"/v1/user/{alice.user_id}/media/quarantine"),
        ("POST", f"/v1/media/protect/{media_id}"),
        ("POST", f"/v1/media/unprotect/{media_id}"),
        ("POST", f"/v1/media/delete?before_ts={START_MS}"),
        ("POST", f"/v1/media/{server}/delete?before_ts={START_MS}"),
    ]:
        assert await admin_error(api, alice, method, path, json={}) == (403, "M_FORBIDDEN")
    await api.ok("GET", f"{V3}/download/{server}/{media_id}")

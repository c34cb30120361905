"""Hostile input to the admin API from an admin: no body, query or path segment may cause a
500 (the admins' tools send wrong types too, and Synapse answers some of them with 500s).

As test_bad_input.py does for the Client-Server API, the routes come from the admin route
table, so a new admin endpoint is covered without being listed here. The path parameters name
things that exist (a room, a user, an event, a media item) so that requests get past the
lookups; the user and room they name are a victim's, never the admin's own."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import quote

import pytest
from hypothesis import strategies as st

from homeserver.api.admin import admin_routes
from tests.admin_api import ADMIN, admin_ok, make_admin
from tests.bad_input import assert_sane, bodies, collect, json_values, query_values, send_body
from tests.conftest import RunningServer
from tests.helpers import MatrixApi, User

EXAMPLES_PER_ROUTE = 12
# Fields and query parameters the admin endpoints read, for generated values to land on.
ADMIN_KEYS = [
    "admin", "password", "logout_devices", "displayname", "avatar_url", "deactivated", "erase",
    "new_password", "user_id", "block", "purge", "force_purge", "new_room_user_id",
    "room_name", "message", "purge_up_to_ts", "delete_local_events", "purge_up_to_event_id",
    "token", "uses_allowed", "expiry_time", "length", "content", "type", "state_key",
    "devices", "device_id", "display_name", "nonce", "username", "mac", "user_type",
    "threepids", "external_ids", "locked",
]
QUERY_KEYS = [
    "from", "limit", "dir", "order_by", "name", "guests", "deactivated", "admins", "user_id",
    "search_term", "room_id", "destination", "valid", "before_ts", "size_gt", "keep_profiles",
    "to", "filter", "event_sender_user_id", "locked",
]
admin_bodies = st.one_of(
    bodies, st.dictionaries(st.sampled_from(ADMIN_KEYS), json_values, max_size=5)
    .map(lambda v: ("json", v)),
)
queries = st.dictionaries(st.sampled_from(QUERY_KEYS), query_values, min_size=1, max_size=4)


def _routes(methods: tuple[str, ...]) -> list[tuple[str, str]]:
    found = {
        (route.method, route.path) for route in admin_routes()
        if route.method in methods and isinstance(getattr(route, "path", None), str)
    }
    return sorted(found)


@dataclass
class Scene:
    admin: User
    victim: User
    room: str
    event: str
    server: str


@pytest.fixture
async def scene(homeserver: RunningServer, api: MatrixApi) -> Scene:
    admin = await make_admin(homeserver, api)
    victim = await api.register("victim")
    room = await api.create_room(victim, preset="public_chat")
    event = await api.send_message(victim, room, "target")
    return Scene(admin, victim, room, event, homeserver.server_name)


@pytest.fixture(autouse=True)
def no_server_errors(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    yield
    errors = [r for r in caplog.get_records("call") if r.levelno >= logging.ERROR]
    assert not errors, [r.getMessage()[:300] for r in errors]


def fill(scene: Scene, template: str, i: int) -> str:
    values = {
        "userId": scene.victim.user_id, "user_id": scene.victim.user_id,
        "roomId": scene.room, "room_id": scene.room, "roomIdOrAlias": scene.room,
        "eventId": scene.event, "event_id": scene.event, "serverName": scene.server,
        "deviceId": scene.victim.device_id, "txnId": f"t{i}", "destination": "example.org",
    }
    return re.sub(
        r"{(\w+)}", lambda m: quote(values.get(m.group(1), "x"), safe=""), template
    )


def test_the_admin_route_table_is_read() -> None:
    assert ("GET", ADMIN + "/v1/server_version") in _routes(("GET",))


async def test_admin_routes_survive_arbitrary_bodies(api: MatrixApi, scene: Scene) -> None:
    for method, template in _routes(("PUT", "POST", "DELETE")):
        for i, (kind, value) in enumerate(collect(admin_bodies, EXAMPLES_PER_ROUTE)):
            path = fill(scene, template, i)
            status, body = await send_body(api, method, path, scene.admin.token, kind, value)
            assert_sane(status, body, (method, template, value))
    await admin_ok(api, scene.admin, "GET", "/v1/server_version")


async def test_admin_routes_survive_arbitrary_queries(api: MatrixApi, scene: Scene) -> None:
    for method, template in _routes(("GET", "PUT", "POST", "DELETE")):
        for i, params in enumerate(collect(queries, EXAMPLES_PER_ROUTE // 2)):
            path = fill(scene, template, i)
            status, body = await api.request(
                method, path, token=scene.admin.token, params=params, json={}
            )
            assert_sane(status, body, (method, template, params))


async def test_admin_path_segments_survive_arbitrary_text(api: MatrixApi, scene: Scene) -> None:
    """Every path parameter of every admin route replaced by generated text."""
    routes = _routes(("GET", "PUT", "POST", "DELETE"))
    for segment in collect(st.text(min_size=1, max_size=30), 8):
        part = quote(segment, safe="")
        for method, template in routes:
            if "{" not in template:
                continue
            path = re.sub(r"{\w+}", part, template)
            status, body = await api.request(method, path, token=scene.admin.token, json={})
            assert_sane(status, body, (method, template, segment))

"""A user who joins an upgraded room is joined even when copying their settings of the old room
fails for a reason nobody foresaw (here the database refusing the write): the join has been
made, so the failure is logged, not answered as a 500."""

from __future__ import annotations

import logging
from urllib.parse import quote

import aiohttp
import pytest

from tests.conftest import RunningServer
from tests.helpers import MatrixApi
from tests.room_upgrades import upgrade

# Refuses, from inside PostgreSQL, any tag written for the room named in the function.
REFUSE_TAGS = """
CREATE FUNCTION refuse_tags() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.type = 'm.tag' AND NEW.room_id = '{room}' THEN
        RAISE EXCEPTION 'refused by the test';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER refuse_tags BEFORE INSERT OR UPDATE ON account_data
    FOR EACH ROW EXECUTE FUNCTION refuse_tags();
"""


async def test_a_failure_carrying_settings_leaves_the_join_standing(
    homeserver: RunningServer, http: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    api = MatrixApi(homeserver.url, http)
    alice, bob = await api.register("alice"), await api.register("bob")
    old = await api.create_room(alice, preset="public_chat", room_version="11")
    await api.join(bob, old)
    await api.ok("PUT", f"user/{quote(bob.user_id)}/rooms/{quote(old)}/tags/u.work",
                 json={"order": 0.5}, token=bob.token)
    new = await upgrade(api, alice, old, new_version="12")
    db = homeserver.hs.db
    assert db is not None
    await db.run(lambda conn: conn.execute(REFUSE_TAGS.replace("{room}", new)))

    with caplog.at_level(logging.INFO):
        joined = await api.ok("POST", f"join/{quote(new)}", json={}, token=bob.token)
    assert joined == {"room_id": new}
    members = await api.ok("GET", f"rooms/{quote(new)}/joined_members", token=bob.token)
    assert bob.user_id in members["joined"]
    assert any("not carried" in r.getMessage() and bob.user_id in r.getMessage()
               for r in caplog.records)

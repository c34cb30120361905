"""`moot export-user @user:server DIR`: everything the server holds of one local user, as JSON
files in a new directory (a data-portability request, an account being moved or closed).

What DIR holds:
- `profile.json`: `user_id`, `displayname`, `avatar_url` and the other profile `fields`;
- `account_data.json`: `{"global": {type: content}, "rooms": {room_id: {type: content}}}`;
- `devices.json`: each device's ID, name and where it was last seen (never a token or a key);
- `rooms.json`: each room the user has a membership in, with the membership and its event;
- `events.jsonl`: every timeline event the user sent, oldest first, one a line as
  `{"room_id": …, "event": <the stored PDU>}` (a v12 room's create event names no room);
- `media.json` and `media/<media_id>`: what the user uploaded, the files copied;
- `push_rules.json` (the ruleset as `GET /pushrules/` serves it) and `pushers.json`.

Everything is read in one repeatable-read transaction, so the files agree with each other even
while the server runs. The directory is made readable by its owner only: it is the user's
private data.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg

from homeserver.config import Config
from homeserver.protocol.identifiers import parse_user_id
from homeserver.services.media_store import ContentStore
from homeserver.services.push import read_ruleset
from storage import account_data, accounts, events, media, profiles, push, state
from storage.database import Database

EVENTS_PER_READ = 500
EVENTS_FILE = "events.jsonl"
MEDIA_DIR = "media"


class ExportError(Exception):
    """The export cannot go on; the message says why."""


@dataclass(frozen=True, slots=True)
class Exported:
    rooms: int
    events: int
    media_files: int


def _check_user(config: Config, user_id: str) -> None:
    try:
        _, server_name = parse_user_id(user_id)
    except ValueError:
        raise ExportError(f"{user_id!r} is not a user ID (@localpart:server)") from None
    if server_name != config.server.server_name:
        raise ExportError(f"{user_id} is not a user of {config.server.server_name}")


def _new_directory(target: Path) -> None:
    if target.exists() and any(target.iterdir()):
        raise ExportError(f"{target} is not empty: export into a new directory")
    (target / MEDIA_DIR).mkdir(mode=0o700, parents=True, exist_ok=True)
    target.chmod(0o700)


def _write_json(path: Path, value: Any) -> None:
    path.write_text(json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True) + "\n")


async def _write(path: Path, value: Any) -> None:
    await asyncio.to_thread(_write_json, path, value)


async def export_user(config: Config, db: Database, user_id: str, target: Path) -> Exported:
    """Write the user's data into `target` (new or empty)."""
    _check_user(config, user_id)
    async with db.connection() as conn, conn.transaction(
        isolation="repeatable_read", readonly=True
    ):
        if await accounts.get_user(conn, user_id) is None:
            raise ExportError(f"{user_id} has no account on this server")
        await asyncio.to_thread(_new_directory, target)
        await _write(target / "profile.json", await _profile(conn, user_id))
        await _write(target / "account_data.json", await _account_data(conn, user_id))
        devices = await accounts.get_devices(conn, user_id)
        await _write(target / "devices.json", [dict(row) for row in devices])
        memberships = await state.get_memberships_of(conn, user_id)
        await _write(target / "rooms.json", [dict(row) for row in memberships])
        sent = await _events(conn, user_id, target / EVENTS_FILE)
        uploads = await media.get_uploaded_by(conn, user_id)
        await _write(target / "push_rules.json", {"global": await read_ruleset(conn, user_id)})
        pushers = await push.get_pushers(conn, user_id)
        await _write(target / "pushers.json", [dataclasses.asdict(p) for p in pushers])
    await _write(target / "media.json", [_media_json(row) for row in uploads])
    store = ContentStore(config.path(config.media.store_path))
    for row in uploads:
        assert row.content_hash is not None  # get_uploaded_by leaves out empty IDs
        await asyncio.to_thread(
            shutil.copyfile, store.path_of(row.content_hash), target / MEDIA_DIR / row.media_id
        )
    return Exported(len(memberships), sent, len(uploads))


async def _profile(conn: asyncpg.Connection, user_id: str) -> dict[str, Any]:
    row = await profiles.get_profile(conn, user_id)
    if row is None:
        return {"user_id": user_id}
    return {
        "user_id": user_id, "displayname": row["displayname"], "avatar_url": row["avatar_url"],
        "fields": row["fields"] or {},
    }


async def _account_data(conn: asyncpg.Connection, user_id: str) -> dict[str, Any]:
    rooms: dict[str, dict[str, Any]] = {}
    global_data: dict[str, Any] = {}
    for row in await account_data.get_all_account_data(conn, user_id):
        into = global_data if row["room_id"] == "" else rooms.setdefault(row["room_id"], {})
        into[row["type"]] = row["content"]
    return {"global": global_data, "rooms": rooms}


async def _events(conn: asyncpg.Connection, user_id: str, path: Path) -> int:
    """Stream the user's events into `path`, a read at a time; how many there were."""
    count, after = 0, 0
    with path.open("w", encoding="utf-8") as out:
        while batch := await events.get_events_sent_by(conn, user_id, after, EVENTS_PER_READ):
            # The stored JSON is canonical (one line) already: it goes in as kept.
            lines = "".join(
                f'{{"room_id": {json.dumps(room_id)}, "event": {pdu}}}\n'
                for _, room_id, pdu in batch
            )
            await asyncio.to_thread(out.write, lines)
            count += len(batch)
            after = batch[-1][0]
    return count


def _media_json(row: media.MediaRow) -> dict[str, Any]:
    return {
        "media_id": row.media_id, "content_type": row.content_type,
        "upload_name": row.upload_name, "size_bytes": row.size_bytes,
        "created_ts": row.created_ts, "file": f"{MEDIA_DIR}/{row.media_id}",
    }

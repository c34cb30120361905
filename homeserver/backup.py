"""`moot backup` and `moot restore`: a running server to a directory, and that directory into a
new data directory and an empty database, on this machine or a fresh one.

Theory of operation. A backup directory holds `database.dump` (pg_dump's custom format),
`media/` (the content store), the server's `signing.key`, `tls.crt` and `tls.key`, the config
file as `homeserver.yaml`, and `manifest.json`, written last: a directory without it is an
interrupted backup, and restore refuses it.

Consistent while the server runs, by order: the database first, then the media store. pg_dump
reads one snapshot. A media file is named by the SHA-256 of its bytes, written whole and renamed
into place before the row naming it commits, and never changed or deleted afterwards; so every
file a row in the snapshot names exists before the copy starts, and files uploaded during the
copy are at worst copied without a row naming them (harmless). Copying media first would miss the
files of rows committed between the copy and the dump.

After a restore, two things the lost server handed out since the backup must not come again.
One is the one-time keys: every device's unclaimed ones are forgotten, and its fallback keys.
Keys the server handed out after the backup were consumed by the devices that made them (they
drop a one-time key's private half once a message used it), yet the restored database offers
them again: a session started on one would fail to decrypt. Which keys those are is unknowable,
so all unclaimed ones go; /sync then reports a count of 0 and no unused fallback key, which makes
clients upload new ones (the spec: a fallback key type missing from
`device_unused_fallback_key_types` is replaced). A fallback key is dropped rather than kept
because a device keeps only its current and previous fallback keys: one it replaced twice since
the backup has no private half left, and until the device uploads a new one, a claim that finds
no key is better than one on a key nobody can answer. The other is the outbound federation
queue's positions, which make the transaction IDs: peers remember the IDs they received (a
day, in Synapse) and answer a repeated one from memory, dropping what it carries; so they
continue far above any the lost server can have taken (`OUTBOX_POSITIONS_PER_MS`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import time
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass
from pathlib import Path

import asyncpg

from homeserver.config import Config
from homeserver.setup import write_private_file
from storage import dump, outbox
from storage.e2e_keys import delete_all_one_time_and_fallback_keys
from storage.embedded import EmbeddedPostgres
from storage.migrations import available_migrations

MANIFEST = "manifest.json"
DATABASE_FILE = "database.dump"
MEDIA_DIR = "media"
CONFIG_FILE = "homeserver.yaml"
FORMAT = 1  # of the directory; bumped when restore must tell layouts apart


class BackupError(Exception):
    """The backup or restore cannot go on; the message says why and what to do."""


@dataclass(frozen=True, slots=True)
class Manifest:
    format: int
    server_name: str
    created_ts: int  # ms since the epoch, when the database snapshot was taken
    schema_version: int  # the newest Moot migration in the dump
    pg_dump_major: int  # a pg_restore at least this new can read the dump
    media_files: int
    key_files: list[str]  # of signing.key, tls.crt, tls.key: those the server had


def _key_files(config: Config) -> dict[str, Path]:
    """The backup's name for each key file -> where this config keeps it."""
    return {
        "signing.key": config.path(config.server.signing_key_path),
        "tls.crt": config.path(config.listeners.federation.tls_certificate_path),
        "tls.key": config.path(config.listeners.federation.tls_private_key_path),
    }


@contextlib.asynccontextmanager
async def _database(config: Config) -> AsyncIterator[str]:
    """The DSN of the configured database; the embedded one is started if it is not running
    (and then stopped again), or borrowed from the server running on it."""
    if config.database.url is not None:
        yield config.database.url
        return
    embedded = EmbeddedPostgres(
        config.path(config.database.embedded_dir), config.database.embedded_bindir
    )
    dsn = await embedded.start()
    try:
        yield dsn
    finally:
        await embedded.stop()


def _copy_media(source: Path, target: Path) -> int:
    """Copy a content store (not its `tmp/` of uploads in progress); return the file count.
    A file already in `target` at its full size is skipped (same name, same bytes). Each copy
    is made under a hidden name and renamed into place, so an interrupted backup or restore
    leaves no short file under a content hash: a re-run would skip it, and the store would
    serve it as the content for good."""
    count = 0
    for file in sorted(source.glob("??/??/*")):
        if file.name.startswith("."):
            continue  # a copy an earlier, interrupted run left unfinished
        dest = target / file.relative_to(source)
        if not dest.exists() or dest.stat().st_size != file.stat().st_size:
            dest.parent.mkdir(parents=True, exist_ok=True)
            partial = dest.with_name(f".{dest.name}.partial")
            shutil.copy2(file, partial)
            os.replace(partial, dest)
        count += 1
    return count


def _empty_directory(target: Path) -> None:
    """Make `target` an empty directory only its owner can enter: it will hold the signing key,
    and pg_dump writes the database (password hashes, access tokens) with the umask's mode,
    so a directory the operator made beforehand (0755 is usual) is closed too."""
    if target.exists() and any(target.iterdir()):
        raise BackupError(f"{target} is not empty: back up into a new directory")
    target.mkdir(mode=0o700, parents=True, exist_ok=True)
    target.chmod(0o700)


def _save_files(config: Config, config_path: Path, target: Path) -> tuple[int, list[str]]:
    """Copy the media store, the key files and the config; return the media file count and
    the names of the key files the server has."""
    media = _copy_media(config.path(config.media.store_path), target / MEDIA_DIR)
    keys = {name: path for name, path in _key_files(config).items() if path.exists()}
    for name, path in {**keys, CONFIG_FILE: config_path}.items():
        write_private_file(target / name, path.read_bytes())
    return media, sorted(keys)


async def backup(config: Config, config_path: Path, target: Path) -> Manifest:
    """Back the server up into `target`, a new or empty directory."""
    await asyncio.to_thread(_empty_directory, target)
    async with _database(config) as dsn:
        conn = await asyncpg.connect(dsn)
        try:
            server_major = conn.get_server_version().major
            schema_version = await dump.get_schema_version(conn)
        finally:
            await conn.close()
        tools = await asyncio.to_thread(dump.find_tools, "pg_dump", config.database.embedded_bindir)
        tool = dump.choose_tool("pg_dump", tools, server_major)
        created_ts = int(time.time() * 1000)
        await dump.dump_database(tool, dsn, target / DATABASE_FILE)
    media, keys = await asyncio.to_thread(_save_files, config, config_path, target)
    manifest = Manifest(FORMAT, config.server.server_name, created_ts, schema_version,
                        tool.major, media, keys)
    text = json.dumps(asdict(manifest), indent=2).encode()
    await asyncio.to_thread(write_private_file, target / MANIFEST, text)
    return manifest


def read_manifest(source: Path) -> Manifest:
    try:
        raw = json.loads((source / MANIFEST).read_text())
        manifest = Manifest(**raw)
    except FileNotFoundError as e:
        raise BackupError(f"no {MANIFEST} in {source}: not a backup, or an interrupted one") from e
    except (ValueError, TypeError) as e:
        raise BackupError(f"{source / MANIFEST} is not a Moot backup manifest: {e}") from e
    if manifest.format != FORMAT:
        raise BackupError(f"backup format {manifest.format} is not {FORMAT}: use that Moot")
    return manifest


def _check_fits(config: Config, manifest: Manifest) -> None:
    if manifest.server_name != config.server.server_name:
        raise BackupError(
            f"the backup is of {manifest.server_name!r} but server.server_name is "
            f"{config.server.server_name!r}: a server's name cannot change (it is in every "
            "user ID and signed event); restore with the backup's homeserver.yaml"
        )
    newest = available_migrations()[-1].version
    if manifest.schema_version > newest:
        raise BackupError(f"the backup's schema version {manifest.schema_version} is newer "
                          f"than this Moot's ({newest}): restore with the Moot that made it")


def _place_key_file(data: bytes, path: Path) -> str | None:
    """Write a key file where the config wants it; an existing different one is kept beside
    it as `<name>.before-restore`. Returns what was done, None if the file was already there."""
    if path.exists() and path.read_bytes() == data:
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    note = f"wrote {path}"
    if path.exists():
        kept = path.with_name(path.name + ".before-restore")
        shutil.copy2(path, kept)
        note += f" (the previous file is {kept})"
    write_private_file(path, data)
    return note


def _place_files(config: Config, source: Path, manifest: Manifest) -> list[str]:
    """Put the key files and the media store where `config` wants them; notes on what the
    key files replaced."""
    _copy_media(source / MEDIA_DIR, config.path(config.media.store_path))
    return [note for name, path in _key_files(config).items() if name in manifest.key_files
            and (note := _place_key_file((source / name).read_bytes(), path))]


@dataclass(frozen=True, slots=True)
class Reset:
    one_time_keys: int  # unclaimed one-time keys forgotten
    fallback_keys: int  # fallback keys forgotten
    outbox_floor: int  # outbound federation positions continue above this


@dataclass(frozen=True, slots=True)
class Restored:
    manifest: Manifest
    notes: list[str]  # the key files written
    reset: Reset


async def restore(config: Config, source: Path) -> Restored:
    """Restore the backup in `source` into the database and paths `config` names. The
    database must be empty: a restore never mixes a backup into existing data."""
    manifest = await asyncio.to_thread(read_manifest, source)
    _check_fits(config, manifest)
    async with _database(config) as dsn:
        conn = await asyncpg.connect(dsn)
        try:
            if not await dump.is_empty(conn):
                raise BackupError("the database is not empty: restore into a new database "
                                  "(createdb) or a new database.embedded_dir")
            server_major = conn.get_server_version().major
        finally:
            await conn.close()
        if server_major < manifest.pg_dump_major:
            raise BackupError(
                f"the backup was dumped by PostgreSQL {manifest.pg_dump_major}'s pg_dump, which "
                f"older servers cannot load; this database runs PostgreSQL {server_major}: "
                f"restore into PostgreSQL {manifest.pg_dump_major} or newer"
            )
        # The pg_restore first: without one, nothing on this machine is touched yet.
        bindir = config.database.embedded_bindir
        tools = await asyncio.to_thread(dump.find_tools, "pg_restore", bindir)
        tool = dump.choose_tool("pg_restore", tools, server_major, manifest.pg_dump_major)
        notes = await asyncio.to_thread(_place_files, config, source, manifest)
        await dump.restore_database(tool, dsn, source / DATABASE_FILE)
        reset = await _reset_at(dsn)
    return Restored(manifest, notes, reset)


# More outbound federation positions than a server takes in a millisecond, by far. Positions
# after a restore continue from the current time times this: above every position the lost
# server took, which started below its own start time times this (from 1, or from an earlier
# restore) and grew more slowly.
OUTBOX_POSITIONS_PER_MS = 1000


async def _reset_at(dsn: str) -> Reset:
    """Forget the one-time and fallback keys and advance the outbox positions (see the module
    docstring), in one transaction."""
    floor = int(time.time() * 1000) * OUTBOX_POSITIONS_PER_MS
    conn = await asyncpg.connect(dsn)
    try:
        async with conn.transaction():
            one_time, fallback = await delete_all_one_time_and_fallback_keys(conn)
            continued = await outbox.advance_positions(conn, floor)
    finally:
        await conn.close()
    return Reset(one_time, fallback, continued)


async def reset_after_restore(config: Config) -> Reset:
    """`moot reset-after-restore`: the reset alone, for a database restored some other way (a
    file-system snapshot, point-in-time recovery). Run it before starting the server."""
    async with _database(config) as dsn:
        return await _reset_at(dsn)

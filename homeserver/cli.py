"""`python -m homeserver init | run [--worker NAME] | migrate | register-user | backup | restore |
reset-after-restore | export-user` (also `moot`).

Scripts and operators depend on these subcommands and flags; change them only compatibly.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import gc
import getpass
import logging
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import asyncpg

from homeserver.config import Config, ConfigError, load_config
from homeserver.logs import setup_logging

if TYPE_CHECKING:
    from homeserver.backup import Reset


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="moot", description="Moot Matrix homeserver")
    sub = parser.add_subparsers(dest="command", required=True)

    init = sub.add_parser("init", help="write a config, signing key and TLS certificate")
    init.add_argument("--data-dir", required=True, type=Path)
    init.add_argument("--server-name", required=True)
    init.add_argument("--client-port", type=int, default=8008)
    init.add_argument("--federation-port", type=int, default=8448)
    init.add_argument("--metrics-port", type=int, default=None)
    init.add_argument("--database-url", default=None)
    init.add_argument("--open-registration", action="store_true")
    init.add_argument("--no-rate-limits", action="store_true")
    init.add_argument(
        "--insecure-federation", action="store_true",
        help="accept self-signed peer certificates and peers on loopback and private addresses "
        "(servers federating on one machine, in tests)",
    )

    run = sub.add_parser("run", help="run the server until SIGTERM or SIGINT")
    run.add_argument("--config", required=True, type=Path)
    run.add_argument(
        "--worker", metavar="NAME", default=None,
        help="run as worker NAME of the config's `workers:` (serves /sync only)",
    )

    mig = sub.add_parser("migrate", help="apply pending database migrations and exit")
    mig.add_argument("--config", required=True, type=Path)

    for name, text in (
        ("backup", "back up the database, media store and keys into a new directory DIR"),
        ("restore", "restore the backup in DIR into an empty database (see the README)"),
    ):
        cmd = sub.add_parser(name, help=text)
        cmd.add_argument("--config", required=True, type=Path)
        cmd.add_argument("dir", type=Path, metavar="DIR")
    reset = sub.add_parser(
        "reset-after-restore",
        help="after restoring the database by other means: forget every unclaimed one-time "
        "and fallback key, and number federation transactions past the lost server's",
    )
    reset.add_argument("--config", required=True, type=Path)

    reg = sub.add_parser("register-user", help="create an account (password from stdin)")
    reg.add_argument("--config", required=True, type=Path)
    reg.add_argument("user", help="localpart or full user ID")
    reg.add_argument("--admin", action="store_true")

    export = sub.add_parser(
        "export-user", help="write everything the server holds of a local user into a new "
        "directory DIR (JSON files and their media)",
    )
    export.add_argument("--config", required=True, type=Path)
    export.add_argument("user", help="the full user ID")
    export.add_argument("dir", type=Path, metavar="DIR")
    return parser


def cmd_init(args: argparse.Namespace) -> int:
    from homeserver.setup import init_data_dir

    path = init_data_dir(
        args.data_dir, args.server_name, client_port=args.client_port,
        federation_port=args.federation_port, metrics_port=args.metrics_port,
        database_url=args.database_url, open_registration=args.open_registration,
        rate_limits=not args.no_rate_limits, insecure_federation=args.insecure_federation,
    )
    print(f"wrote {path}")
    return 0


def freeze_startup_heap() -> None:
    """Move what start-up allocated (modules, configuration, services: most of the objects
    the garbage collector tracks) out of its reach for good. A full collection walks every
    tracked object while holding the GIL, stalling the event loop as long: tens of ms at
    start-up size, every request in flight delayed by it (the latency tail under load).
    Frozen, a collection walks only what serving allocated since. Only a served process
    freezes (`run`): in-process servers of the tests come and go."""
    gc.collect()
    gc.freeze()


# A full collection once per 100 collections of the middle generation rather than 10.
# Measured (bench/sliding_first.py, 500 rooms, /tmp/perf2 in the perf2 findings): with
# Python's default, two full collections of ~21-23 ms CPU fell inside the 200 measured first
# requests (p50 3.4 ms), i.e. they were its p99; objects that serving keeps (caches) reach
# the oldest generation, which every full collection walks. The young generations are
# collected as before, so most cyclic garbage still goes as soon.
FULL_COLLECTION_EVERY = 100


def space_full_collections() -> None:
    """Fewer full collections for a served process (`run`), each of which holds the GIL for
    as long as it walks every object serving allocated and kept."""
    young, middle, _ = gc.get_threshold()
    gc.set_threshold(young, middle, FULL_COLLECTION_EVERY)


async def _run(config: Config, worker: str | None) -> None:
    from homeserver.app import Homeserver

    server = Homeserver(config, worker=worker)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await server.start()
        freeze_startup_heap()
        space_full_collections()
        await stop.wait()
        logging.getLogger(__name__).info("signal received, stopping")
    finally:
        await server.stop()


async def _with_database(config: Config, args: argparse.Namespace, password: str | None) -> int:
    """Run a one-off command against the configured (or embedded) database.

    `password` is None for `migrate`; `register-user` reads it before connecting, so a typo
    in it is reported without waiting for the database.
    """
    from homeserver.app import open_database

    db, embedded = await open_database(config)
    try:
        if password is None:
            print("database is up to date")
            return 0
        from homeserver.services.accounts import AccountsService, NoDeviceChanges
        from homeserver.services.clock import SystemClock
        from homeserver.services.ratelimit import RateLimiter
        from homeserver.services.remote_queries import NoRemoteQueries

        clock = SystemClock()
        accounts = AccountsService(
            db, config, RateLimiter(config.rate_limits, clock), clock, NoDeviceChanges(),
            remote=NoRemoteQueries(),
        )
        localpart = args.user
        if localpart.startswith("@"):
            localpart = localpart[1:].split(":", 1)[0]
        user_id = await accounts.create_user(localpart, password, admin=args.admin)
        print(f"created {user_id}")
        return 0
    finally:
        await db.close()
        if embedded is not None:
            await embedded.stop()


BACKUP_COMMANDS = ("backup", "restore", "reset-after-restore")


async def _backup_command(config: Config, args: argparse.Namespace) -> int:
    """`backup`, `restore` and `reset-after-restore` (homeserver/backup.py)."""
    from homeserver import backup

    if args.command == "backup":
        made = await backup.backup(config, args.config, args.dir)
        print(f"backed up {made.server_name} into {args.dir}: the database, "
              f"{made.media_files} media files, {', '.join(made.key_files)} and the config")
        return 0
    if args.command == "restore":
        done = await backup.restore(config, args.dir)
        for note in done.notes:
            print(note)
        taken = datetime.datetime.fromtimestamp(done.manifest.created_ts / 1000, datetime.UTC)
        print(f"restored {done.manifest.server_name} as of {taken:%Y-%m-%d %H:%M:%S} UTC")
        _print_reset(done.reset)
        return 0
    _print_reset(await backup.reset_after_restore(config))
    return 0


async def _export_user(config: Config, args: argparse.Namespace) -> int:
    from homeserver.app import open_database
    from homeserver.user_export import export_user

    db, embedded = await open_database(config)
    try:
        done = await export_user(config, db, args.user, args.dir)
    finally:
        await db.close()
        if embedded is not None:
            await embedded.stop()
    print(f"exported {args.user} into {args.dir}: {done.rooms} rooms, {done.events} events, "
          f"{done.media_files} media files")
    return 0


def _print_reset(reset: Reset) -> None:
    print(f"forgot {reset.one_time_keys} one-time and {reset.fallback_keys} fallback keys; "
          f"federation transactions continue from position {reset.outbox_floor}")


def _read_password() -> str:
    if not sys.stdin.isatty():
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = getpass.getpass("Password: ")
        if getpass.getpass("Again: ") != password:
            raise SystemExit("passwords differ")
    if not password:
        raise SystemExit("an empty password is not allowed")
    return password


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "init":
        return cmd_init(args)
    try:
        config = load_config(args.config)
        if getattr(args, "worker", None) is not None:
            config.worker(args.worker)
    except ConfigError as e:
        print(f"configuration error: {e}", file=sys.stderr)
        return 2
    setup_logging(config.logging.level, config.logging.format, getattr(args, "worker", None))
    password = _read_password() if args.command == "register-user" else None
    try:
        if args.command == "run":
            asyncio.run(_run(config, args.worker))
            return 0
        if args.command in BACKUP_COMMANDS:
            return asyncio.run(_backup_command(config, args))
        if args.command == "export-user":
            return asyncio.run(_export_user(config, args))
        return asyncio.run(_with_database(config, args, password))
    except Exception as e:
        from homeserver.backup import BackupError
        from homeserver.errors import MatrixError
        from homeserver.user_export import ExportError
        from storage.dump import DumpError

        if isinstance(e, ConfigError):  # an appservice registration file, read at start
            print(f"configuration error: {e}", file=sys.stderr)
            return 2
        if isinstance(e, BackupError | DumpError | ExportError):
            print(f"error: {e}", file=sys.stderr)
            return 1
        from storage.embedded import EmbeddedPostgresError
        from storage.migrations import MigrationError

        if isinstance(e, MatrixError | MigrationError | EmbeddedPostgresError):
            print(f"error: {getattr(e, 'error', e)}", file=sys.stderr)
            return 1
        if isinstance(e, OSError | asyncpg.PostgresError):
            print(f"error: cannot use the database: {e}", file=sys.stderr)
            return 1
        raise

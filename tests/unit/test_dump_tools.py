"""Which pg_dump / pg_restore a backup or restore runs (storage/dump.py), and how a DSN's
password reaches them: pure choices, no programs run."""

from __future__ import annotations

from pathlib import Path

import pytest

from storage.dump import DumpError, Tool, _without_password, choose_tool

TOOLS = [Tool(Path(f"/pg{major}/pg_dump"), major) for major in (18, 16, 15)]


def test_the_servers_own_major_version_is_preferred() -> None:
    assert choose_tool("pg_dump", TOOLS, 15).major == 15
    assert choose_tool("pg_dump", TOOLS, 16).major == 16


def test_else_the_newest_newer_one() -> None:
    assert choose_tool("pg_dump", TOOLS, 17).major == 18
    assert choose_tool("pg_dump", TOOLS[1:], 14).major == 16


def test_a_restore_needs_a_pg_restore_that_reads_the_archive() -> None:
    assert choose_tool("pg_restore", TOOLS, 16, at_least=15).major == 16
    assert choose_tool("pg_restore", TOOLS, 16, at_least=18).major == 18


def test_none_new_enough_names_the_fix() -> None:
    with pytest.raises(DumpError, match="postgresql-client-19"):
        choose_tool("pg_dump", TOOLS, 19)


def test_the_password_travels_in_the_environment_not_the_arguments() -> None:
    dsn, env = _without_password("postgresql://moot:p%40ss@db.example:5433/moot?sslmode=require")
    assert dsn == "postgresql://moot@db.example:5433/moot?sslmode=require"
    assert env == {"PGPASSWORD": "p@ss"}
    assert _without_password("postgresql://moot@/moot?host=/run/pg") == (
        "postgresql://moot@/moot?host=/run/pg", {}
    )


def test_a_password_given_as_a_parameter_travels_in_the_environment_too() -> None:
    dsn, env = _without_password(
        "postgresql://moot@db.example/moot?sslmode=require&password=s%26cret"
    )
    assert dsn == "postgresql://moot@db.example/moot?sslmode=require"
    assert env == {"PGPASSWORD": "s&cret"}

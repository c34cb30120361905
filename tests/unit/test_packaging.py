"""What an installed Moot carries besides code: the PEP 561 marker that tells type checkers of
code importing these packages to use their annotations, and the SQL migrations."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

CHECKOUT = Path(__file__).resolve().parents[2]
PACKAGES = ("homeserver", "federation", "storage")


def package_data() -> dict[str, list[str]]:
    with (CHECKOUT / "pyproject.toml").open("rb") as f:
        data: dict[str, list[str]] = tomllib.load(f)["tool"]["setuptools"]["package-data"]
        return data


@pytest.mark.parametrize("package", PACKAGES)
def test_each_package_ships_its_py_typed_marker(package: str) -> None:
    assert (CHECKOUT / package / "py.typed").is_file()
    assert "py.typed" in package_data().get(package, [])


def test_the_migrations_are_package_data() -> None:
    assert "migrations/*.sql" in package_data()["storage"]
    assert list((CHECKOUT / "storage" / "migrations").glob("*.sql"))

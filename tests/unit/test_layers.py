"""The layers of ARCHITECTURE.md, kept: imports point down only.

Each rule names the packages that may not be imported from a layer; a violation lists the module
and what it imports, so the fix (move the code down, or hand the part in from `app.py`) is plain.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _imports(path: Path) -> Iterator[tuple[str, list[str]]]:
    """(module, imported names) for every absolute import of a file."""
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, []
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module, [alias.name for alias in node.names]


def _offenders(layer: str, forbidden: tuple[str, ...]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for path in sorted((ROOT / layer).rglob("*.py")):
        bad = [
            module for module, _ in _imports(path)
            if any(module == f or module.startswith(f + ".") for f in forbidden)
        ]
        if bad:
            found[str(path.relative_to(ROOT))] = bad
    return found


def test_the_protocol_core_imports_no_other_layer() -> None:
    assert _offenders(
        "homeserver/protocol",
        ("homeserver.services", "homeserver.api", "homeserver.app", "storage", "federation"),
    ) == {}


def test_storage_imports_only_the_protocol_core_of_the_server() -> None:
    assert _offenders(
        "storage", ("homeserver.services", "homeserver.api", "homeserver.app", "federation")
    ) == {}


def test_services_never_import_federation_or_the_routes() -> None:
    """Services reach other servers through `Outward`, which app.py fills from federation."""
    assert _offenders(
        "homeserver/services", ("federation", "homeserver.api", "homeserver.app")
    ) == {}


def test_routes_call_services_not_storage() -> None:
    """A route may name a storage type or constant (`from storage.push import Pusher`), never
    a storage module whose functions it would call."""
    found: dict[str, list[str]] = {}
    for layer in ("homeserver/api", "federation/api"):
        for path in sorted((ROOT / layer).rglob("*.py")):
            bad = [
                f"{module}: {', '.join(names) or '*'}" for module, names in _imports(path)
                if (module == "storage" or module.startswith("storage."))
                and (not names or any(not name[0].isupper() for name in names))
            ]
            if bad:
                found[str(path.relative_to(ROOT))] = bad
    assert found == {}


def test_the_rule_sees_a_violation(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("from federation.sender import FederationSender\nimport storage.events\n")
    assert [name for name, _ in _imports(module)] == ["federation.sender", "storage.events"]

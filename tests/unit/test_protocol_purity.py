"""The protocol core is sans-IO: no module under homeserver/protocol imports I/O or clocks."""

from __future__ import annotations

import ast
from pathlib import Path

FORBIDDEN = {
    "asyncio", "aiohttp", "asyncpg", "socket", "time", "datetime", "random", "secrets", "os",
    "logging", "threading", "subprocess", "http", "urllib", "ssl",
}
PROTOCOL = Path(__file__).resolve().parents[2] / "homeserver" / "protocol"


def _imported_roots(tree: ast.AST) -> set[str]:
    roots: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
        elif isinstance(node, ast.Call) and getattr(node.func, "id", None) == "__import__":
            roots.add("__import__")
    return roots


def test_protocol_modules_exist() -> None:
    assert len(list(PROTOCOL.glob("*.py"))) >= 10


def test_protocol_imports_no_io_modules() -> None:
    offenders = {}
    for path in sorted(PROTOCOL.rglob("*.py")):
        bad = _imported_roots(ast.parse(path.read_text(), str(path))) & (FORBIDDEN | {"__import__"})
        if bad:
            offenders[path.name] = sorted(bad)
    assert offenders == {}


def test_detector_catches_forbidden_imports() -> None:
    tree = ast.parse("import os.path\nfrom time import monotonic\nimport json\n")
    assert _imported_roots(tree) & FORBIDDEN == {"os", "time"}

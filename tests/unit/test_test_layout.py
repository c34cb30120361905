"""The test tree's own rules: what tests share lives in helper modules, never in a `test_*` module.

Importing from a test module couples two test files (moving or deleting one breaks the other),
runs the imported module's fixtures and module-level setup a second time under another name, and
hides shared code where nobody looks for it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parents[1]


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """(line, dotted module) of every import in `path`; relative ones keep their leading dots."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            module = "." * node.level + (node.module or "")
            found.append((node.lineno, module))
            # `from tests.unit import test_x` names the test module in the imported names.
            found.extend((node.lineno, f"{module}.{alias.name}") for alias in node.names)
    return found


def imports_of_test_modules(root: Path) -> list[str]:
    """`file:line module` for every import, anywhere under `root`, of one of our `test_*`
    modules (a library's, such as `aiohttp.test_utils`, is no test of ours; nor is anything
    npm installed under `tests/js/node_modules`)."""
    return [
        f"{path.relative_to(root.parent)}:{line} {module}"
        for path in sorted(root.rglob("*.py")) if "node_modules" not in path.parts
        for line, module in imported_modules(path)
        if module.startswith(("tests.", ".")) and module.rsplit(".", 1)[-1].startswith("test_")
    ]


def test_no_module_imports_from_a_test_module() -> None:
    assert imports_of_test_modules(TESTS) == []


def test_the_check_sees_absolute_relative_and_submodule_imports(tmp_path: Path) -> None:
    (tmp_path / "test_a.py").write_text(
        "from tests.integration.test_media import png\n"
        "from .test_b import x\n"
        "import tests.unit.test_c\n"
        "from tests.unit import test_d\n"
        "from tests.helpers import MatrixApi\n"
        "from aiohttp.test_utils import TestClient\n"
    )
    assert [entry.split(" ", 1)[1] for entry in imports_of_test_modules(tmp_path)] == [
        "tests.integration.test_media", ".test_b", "tests.unit.test_c", "tests.unit.test_d",
    ]


def test_a_test_carries_the_marker_of_its_directory(request: pytest.FixtureRequest) -> None:
    """tests/conftest.py marks by directory; `make test-fast` selects on these markers."""
    markers = {mark.name for mark in request.node.iter_markers()}
    assert "unit" in markers
    assert not markers & {"storage", "integration", "interop", "synapse"}

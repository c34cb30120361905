"""Every module of the server imports cleanly on its own.

The other tests import what they exercise; a module nothing imports any more (or only a code
path no test takes) could stop importing (a renamed name, a removed dependency) unnoticed until
an operator's server hits it. `__main__` modules are left out: importing one runs the program.
"""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path

import pytest

PACKAGES = ("homeserver", "federation", "storage")
CHECKOUT = Path(__file__).resolve().parents[2]


def modules_on_disk() -> list[str]:
    """The dotted name of every .py file under the packages."""
    names = []
    for package in PACKAGES:
        for path in sorted((CHECKOUT / package).rglob("*.py")):
            parts = path.relative_to(CHECKOUT).with_suffix("").parts
            names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return [name for name in names if not name.endswith("__main__")]


def modules_walked() -> list[str]:
    """The modules pkgutil finds walking the packages (it recurses into regular packages only)."""
    names = list(PACKAGES)
    for package in PACKAGES:
        path = [str(CHECKOUT / package)]
        names += [info.name for info in pkgutil.walk_packages(path, f"{package}.")]
    return [name for name in names if not name.endswith("__main__")]


@pytest.mark.parametrize("module", modules_walked())
def test_module_imports(module: str) -> None:
    importlib.import_module(module)


def test_every_directory_of_code_is_a_package() -> None:
    """A directory without __init__.py is a namespace package: pkgutil (and the walk above)
    never look inside it, and neither does anything else that walks packages."""
    assert sorted(modules_walked()) == sorted(modules_on_disk())

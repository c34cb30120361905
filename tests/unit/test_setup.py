"""`init` writes the signing key, TLS key and config readable by their owner only, from the
first byte (issue 22: they were created 0644 and chmod'ed afterwards)."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from homeserver.setup import init_data_dir

SECRET_FILES = ("signing.key", "tls.key", "homeserver.yaml")


@pytest.fixture
def open_umask() -> Iterator[None]:
    """umask 0: whatever mode a file is created with is the mode it gets."""
    previous = os.umask(0)
    try:
        yield
    finally:
        os.umask(previous)


def test_secret_files_end_up_owner_only_under_umask_0(tmp_path: Path, open_umask: None) -> None:
    init_data_dir(tmp_path, "example.test")
    init_data_dir(tmp_path, "example.test")  # again: the config is replaced, keys kept
    for name in SECRET_FILES:
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o600, name
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*SECRET_FILES, "tls.crt"])


def test_secret_files_are_created_with_mode_0600(
    tmp_path: Path, open_umask: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each secret's bytes go into a file that the open(2) call itself made 0600 and
    exclusive, so no moment exists where another user could open it."""
    opened: dict[str, tuple[int, int]] = {}
    real_open = os.open

    def recording_open(path: Any, flags: int, mode: int = 0o777, **kw: Any) -> int:
        opened[os.fspath(path)] = (flags, mode)
        return real_open(path, flags, mode, **kw)

    monkeypatch.setattr(os, "open", recording_open)
    init_data_dir(tmp_path, "example.test")
    for name in SECRET_FILES:
        created = [(f, m) for p, (f, m) in opened.items() if Path(p).name.startswith(f".{name}.")]
        assert len(created) == 1, (name, opened)
        flags, mode = created[0]
        assert flags & os.O_CREAT and flags & os.O_EXCL, name
        assert mode == 0o600, (name, oct(mode))

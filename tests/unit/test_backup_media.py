"""How `moot backup` and `moot restore` copy a content store (homeserver/backup.py): a file
an interrupted run left short under its content hash is copied again, not trusted."""

from __future__ import annotations

import hashlib
from pathlib import Path

from homeserver.backup import _copy_media

CONTENT = b"media bytes " * 1000


def store_file(root: Path, data: bytes, written: bytes | None = None) -> Path:
    """`data`'s place in the store at `root`, holding `written` (by default `data` itself)."""
    digest = hashlib.sha256(data).hexdigest()
    path = root / digest[:2] / digest[2:4] / digest
    path.parent.mkdir(parents=True)
    path.write_bytes(data if written is None else written)
    return path


def test_a_short_copy_left_by_an_interrupted_run_is_replaced(tmp_path: Path) -> None:
    source = store_file(tmp_path / "backup", CONTENT)
    short = store_file(tmp_path / "store", CONTENT, written=CONTENT[:100])
    assert _copy_media(tmp_path / "backup", tmp_path / "store") == 1
    assert short.read_bytes() == CONTENT
    assert source.read_bytes() == CONTENT
    assert [p.name for p in short.parent.iterdir()] == [short.name]  # no leftover

"""Media bytes on disk, one file per SHA-256 of the content.

Addressing files by their hash deduplicates for free (two uploads of the same bytes share one
file) and makes a file immutable once it exists. Every file is written to `tmp/` first and
flushed to disk (`Staged`), then linked into place (`place`), so a reader never sees a partial
file and a crash leaves at most a stray temporary file, never a wrong one. Layout:
`<root>/ab/cd/abcd…` (two levels of fan-out keep directories small).

Placing is separate from writing because a shared file may be removed (`remove`) once no media
ID uses it: the media service places a file and inserts the row that uses it in one
transaction holding the file's lock, the same lock a deletion holds while it checks that
nothing uses a file and removes it. The temporary file is kept until that transaction is over,
so a retried transaction can place it again.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import tempfile
from collections.abc import AsyncIterable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from homeserver.errors import too_large

# Bytes gathered in memory before one write in a worker thread: few thread hops, small buffer.
WRITE_BUFFER_BYTES = 1 << 20


@dataclass(frozen=True, slots=True)
class Staged:
    """Bytes written and made durable in a temporary file, not yet placed under their hash."""

    content_hash: str
    size: int
    tmp: Path


class ContentStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self._tmp = root / "tmp"

    def path_of(self, content_hash: str) -> Path:
        return self.root / content_hash[:2] / content_hash[2:4] / content_hash

    async def stage_stream(
        self, chunks: AsyncIterable[bytes], limit: int,
        refuse: Callable[[str], Exception] = too_large,
    ) -> Staged:
        """Write a stream of at most `limit` bytes to a temporary file.

        A stream longer than `limit` is refused (413 M_TOO_LARGE, or `refuse`'s error) as soon
        as it passes the limit, and nothing of it is kept.
        """
        file, tmp = await asyncio.to_thread(self._open_temp)
        hasher = hashlib.sha256()
        size = 0
        buffer = bytearray()
        try:
            async for chunk in chunks:
                size += len(chunk)
                if size > limit:
                    raise refuse(f"Content is limited to {limit} bytes")
                hasher.update(chunk)
                buffer += chunk
                if len(buffer) >= WRITE_BUFFER_BYTES:
                    await asyncio.to_thread(file.write, buffer)
                    buffer.clear()
            await asyncio.to_thread(_finish, file, buffer)
        except BaseException:
            await asyncio.to_thread(_discard, file, tmp)
            raise
        return Staged(hasher.hexdigest(), size, tmp)

    def stage_bytes(self, data: bytes) -> Staged:
        """Write `data` to a temporary file (blocking: for worker threads)."""
        file, tmp = self._open_temp()
        try:
            _finish(file, data)
        except BaseException:
            _discard(file, tmp)
            raise
        return Staged(hashlib.sha256(data).hexdigest(), len(data), tmp)

    def place(self, staged: Staged) -> None:
        """Make the staged bytes the file of their hash, unless it exists (blocking; may be
        called again, say by a retried transaction)."""
        final = self.path_of(staged.content_hash)
        if final.exists():  # the same bytes were stored before: keep one copy
            return
        final.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(staged.tmp, final)
        except FileExistsError:  # placed by another upload of the same bytes meanwhile
            return
        _fsync_dir(final.parent)

    def discard(self, staged: Staged) -> None:
        """Remove the temporary file (blocking); the placed file, if any, stays."""
        staged.tmp.unlink(missing_ok=True)

    def remove(self, content_hash: str) -> None:
        """Remove the file of `content_hash` (blocking); the caller checked nothing uses it."""
        self.path_of(content_hash).unlink(missing_ok=True)

    def _open_temp(self) -> tuple[BinaryIO, Path]:
        self._tmp.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=self._tmp)
        return os.fdopen(fd, "wb"), Path(name)


def _finish(file: BinaryIO, tail: bytes | bytearray) -> None:
    """Write the last bytes and make them durable."""
    file.write(tail)
    file.flush()
    os.fsync(file.fileno())
    file.close()


def _discard(file: BinaryIO, tmp: Path) -> None:
    file.close()
    tmp.unlink(missing_ok=True)


def _fsync_dir(directory: Path) -> None:
    """Make a new entry in `directory` survive a power cut."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

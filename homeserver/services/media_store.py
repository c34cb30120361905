"""Media bytes on disk, one file per SHA-256 of the content.

Addressing files by their hash deduplicates for free (two uploads of the same bytes share one
file) and makes a file immutable once it exists. Every file is written to `tmp/` first, flushed
to disk and renamed into place, so a reader never sees a partial file and a crash leaves at
most a stray temporary file, never a wrong one. Layout: `<root>/ab/cd/abcd…` (two levels of
fan-out keep directories small).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import tempfile
from collections.abc import AsyncIterable
from pathlib import Path
from typing import BinaryIO

from homeserver.errors import too_large

# Bytes gathered in memory before one write in a worker thread: few thread hops, small buffer.
WRITE_BUFFER_BYTES = 1 << 20


class ContentStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self._tmp = root / "tmp"

    def path_of(self, content_hash: str) -> Path:
        return self.root / content_hash[:2] / content_hash[2:4] / content_hash

    async def put_stream(self, chunks: AsyncIterable[bytes], limit: int) -> tuple[str, int]:
        """Store a stream of at most `limit` bytes; return its hash and length.

        A stream longer than `limit` is refused with 413 M_TOO_LARGE as soon as it passes the
        limit, and nothing of it is kept.
        """
        file, tmp = await asyncio.to_thread(self._open_temp)
        hasher = hashlib.sha256()
        size = 0
        buffer = bytearray()
        try:
            async for chunk in chunks:
                size += len(chunk)
                if size > limit:
                    raise too_large(f"Uploads are limited to {limit} bytes")
                hasher.update(chunk)
                buffer += chunk
                if len(buffer) >= WRITE_BUFFER_BYTES:
                    await asyncio.to_thread(file.write, buffer)
                    buffer.clear()
            content_hash = hasher.hexdigest()
            await asyncio.to_thread(self._commit, file, buffer, tmp, content_hash)
        except BaseException:
            await asyncio.to_thread(_discard, file, tmp)
            raise
        return content_hash, size

    def put_bytes(self, data: bytes) -> str:
        """Store `data` and return its hash (blocking: for worker threads)."""
        file, tmp = self._open_temp()
        content_hash = hashlib.sha256(data).hexdigest()
        try:
            self._commit(file, data, tmp, content_hash)
        except BaseException:
            _discard(file, tmp)
            raise
        return content_hash

    def _open_temp(self) -> tuple[BinaryIO, Path]:
        self._tmp.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=self._tmp)
        return os.fdopen(fd, "wb"), Path(name)

    def _commit(
        self, file: BinaryIO, tail: bytes | bytearray, tmp: Path, content_hash: str
    ) -> None:
        """Write the last bytes, make them durable, and move the file to its hash's place."""
        file.write(tail)
        file.flush()
        os.fsync(file.fileno())
        file.close()
        final = self.path_of(content_hash)
        if final.exists():  # the same bytes were stored before: keep one copy
            tmp.unlink()
            return
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, final)
        _fsync_dir(final.parent)


def _discard(file: BinaryIO, tmp: Path) -> None:
    file.close()
    tmp.unlink(missing_ok=True)


def _fsync_dir(directory: Path) -> None:
    """Make a rename in `directory` survive a power cut."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

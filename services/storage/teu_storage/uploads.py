"""Byte streams from clients (an import's tar, an archive to load, a tar to copy in), spooled to tmp/.

What a caller may rely on: a spool never grows past :data:`MAX_UPLOAD` (InvalidArgument), is hashed
as it arrives, and is deleted by :meth:`Upload.discard` or, after a crash, by the next start-up,
which empties tmp/.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import tempfile
from collections.abc import AsyncIterable
from pathlib import Path
from typing import BinaryIO

from teu_api.errors import InvalidArgument
from teu_storage import archive

__all__ = ["MAX_UPLOAD", "Upload", "fill", "receive"]

# The spooled tar may carry headers and padding on top of the content archive.MAX_TOTAL_SIZE caps.
MAX_UPLOAD = archive.MAX_TOTAL_SIZE + (1 << 30)


class Upload:
    """A tar stream being received: spooled to a file in ``tmp`` and hashed as it arrives."""

    def __init__(self, tmp: Path) -> None:
        fd, name = tempfile.mkstemp(prefix="upload-", suffix=".tar", dir=tmp)
        self.path = Path(name)
        self._file: BinaryIO = os.fdopen(fd, "wb")
        self._hash = hashlib.sha256()
        self._size = 0

    def write(self, chunk: bytes) -> None:
        """Appends ``chunk``; InvalidArgument once the stream exceeds the size cap."""
        self._size += len(chunk)
        if self._size > MAX_UPLOAD:
            raise InvalidArgument(f"image tar exceeds {MAX_UPLOAD} bytes")
        self._file.write(chunk)
        self._hash.update(chunk)

    def finish(self) -> str:
        """Closes the spool file and returns the diff id, "sha256:<hex>" of every byte received."""
        self._file.close()
        return "sha256:" + self._hash.hexdigest()

    def discard(self) -> None:
        """Deletes the spool file; safe to call more than once."""
        self._file.close()
        self.path.unlink(missing_ok=True)


async def fill(upload: Upload, chunks: AsyncIterable[bytes]) -> None:
    """Writes every chunk of ``chunks`` to ``upload`` (in threads); discards it if that fails."""
    try:
        async for chunk in chunks:
            await asyncio.to_thread(upload.write, chunk)
    except BaseException:
        upload.discard()  # directly: the task may be cancelled, and this is quick
        raise


async def receive(tmp: Path, chunks: AsyncIterable[bytes]) -> Path:
    """Spools a client's byte stream to a file in ``tmp`` (load, cp); the caller deletes it."""
    upload = await asyncio.to_thread(Upload, tmp)
    await fill(upload, chunks)
    try:
        await asyncio.to_thread(upload.finish)
    except BaseException:
        upload.discard()
        raise
    return upload.path

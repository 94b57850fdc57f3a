"""Where container logs live: ``<root>/<container id>/ctr.log``, one directory per container."""

from __future__ import annotations

import asyncio
import re
import shutil
from collections.abc import AsyncGenerator
from contextlib import aclosing
from pathlib import Path

import structlog

from teu.errors import InvalidArgument, NotFound
from teu.logs.reader import Batch, read_log

log = structlog.get_logger()

LOG_NAME = "ctr.log"
_ID = re.compile(r"[0-9a-f]{64}")


class LogStore:
    """The log directories under one root; conmon writes the files, this class serves them."""

    def __init__(self, root: Path) -> None:
        self.root = root.absolute()

    def _dir(self, container_id: str) -> Path:
        """The log directory of ``container_id``; InvalidArgument unless it is 64 lowercase hex digits."""
        if not _ID.fullmatch(container_id):
            raise InvalidArgument(f"invalid container id {container_id!r}: want 64 lowercase hex digits")
        return self.root / container_id

    async def prepare(self, container_id: str) -> Path:
        """Creates the container's log directory and returns the path conmon must write the log to."""
        directory = self._dir(container_id)
        await asyncio.to_thread(directory.mkdir, mode=0o700, parents=True, exist_ok=True)
        log.info("log_prepared", container_id=container_id)
        return directory / LOG_NAME

    async def read(self, container_id: str, *, offset: int, tail: int, follow: bool) -> AsyncGenerator[Batch, None]:
        """Batches of the container's log; see :func:`teu.logs.reader.read_log`. NotFound if it has no log."""
        directory = self._dir(container_id)
        if offset < 0:
            raise InvalidArgument(f"offset must not be negative, got {offset}")
        if tail < 0:
            raise InvalidArgument(f"tail must not be negative, got {tail}")
        if not await asyncio.to_thread(directory.is_dir):
            raise NotFound(f"no log for container {container_id}")
        async with aclosing(read_log(directory / LOG_NAME, offset=offset, tail=tail, follow=follow)) as batches:
            async for batch in batches:
                yield batch

    async def remove(self, container_id: str) -> bool:
        """Deletes the container's log directory; False if there was none."""
        directory = self._dir(container_id)
        try:
            await asyncio.to_thread(shutil.rmtree, directory)
        except FileNotFoundError:
            return False
        log.info("log_removed", container_id=container_id)
        return True

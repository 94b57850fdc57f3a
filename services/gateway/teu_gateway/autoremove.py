"""``--rm``: the one place where containers are removed because they exited.

The operations hand a container over with :meth:`AutoRemover.watch` once nothing of theirs still
needs it (a detached run once started, an attached run or attach once its output is streamed, a start
that failed); from then on it is removed as soon as it is not running. What the gateway must remember
across its own restarts is read back from the runtime (:meth:`AutoRemover.resume`): every started
``--rm`` container is watched again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable

import structlog

from teu_api.errors import FailedPrecondition, NotFound, TeuError, Unavailable
from teu_api.runtime.v1 import runtime_pb2 as rt

log = structlog.get_logger()
#: Pause before a removal is repeated because a back end was unavailable.
RETRY_DELAY = 0.5

Wait = Callable[[str], Awaitable[rt.Container]]
Remove = Callable[[str], Awaitable[object]]


class AutoRemover:
    """Removes handed-over containers once they are not running (one task per container)."""

    def __init__(self, wait: Wait, remove: Remove) -> None:
        self._wait = wait
        self._remove = remove
        self._tasks: dict[str, asyncio.Task[None]] = {}

    def watch(self, cid: str) -> asyncio.Task[None]:
        """Removes ``cid`` once it is not running (at once if it is not); idempotent."""
        task = self._tasks.get(cid)
        if task is None:
            task = self._tasks[cid] = asyncio.create_task(self._remove_when_stopped(cid))
        return task

    async def removed(self, cid: str) -> None:
        """Hands ``cid`` over and returns once it is gone (a caller that goes away does not stop it)."""
        await asyncio.shield(self.watch(cid))

    def resume(self, containers: Iterable[rt.Container]) -> None:
        """After a gateway restart: watches every ``--rm`` container that was started."""
        for c in containers:
            if c.spec.auto_remove and c.started_at:
                self.watch(c.id)

    async def _remove_when_stopped(self, cid: str) -> None:
        tried = False  # a removal was sent: the runtime may have deleted the record and died before answering
        try:
            while True:
                try:
                    await self._wait(cid)
                    tried = True
                    await self._remove(cid)
                    return
                except FailedPrecondition:
                    continue  # started again meanwhile: remove it after this run
                except Unavailable:
                    await asyncio.sleep(RETRY_DELAY)  # a back end restarts: the wait and removal are repeated
        except NotFound:
            if tried:  # the record went with a removal whose answer was lost: its snapshot and log go now
                await self._finish_lost_removal(cid)
        except TeuError as exc:
            log.warning("auto_remove_failed", container=cid[:12], error=exc.message)
        finally:
            self._tasks.pop(cid, None)

    async def _finish_lost_removal(self, cid: str) -> None:
        """The removal repeated for a record the runtime no longer has: the remover then releases what
        the other services hold of ``cid`` and says NotFound."""
        try:
            await self._remove(cid)
        except NotFound:
            pass
        except TeuError as exc:
            log.warning("auto_remove_failed", container=cid[:12], error=exc.message)

"""What a service is waiting on: ``kill -USR1 <pid>`` logs every pending asyncio task with the chain
of coroutines it is suspended in (py-spy shows threads only, and an async service is mostly idle
threads while a call waits)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import structlog

__all__ = ["awaiting", "dump"]

log = structlog.get_logger()


def awaiting(coro: Any) -> Iterator[str]:
    """``file:line function`` of each coroutine (or async generator) in the chain ``coro`` awaits."""
    while coro is not None:
        frame = getattr(coro, "cr_frame", None) or getattr(coro, "ag_frame", None)
        if frame is not None:
            yield f"{frame.f_code.co_filename}:{frame.f_lineno} {frame.f_code.co_name}"
        coro = getattr(coro, "cr_await", None) or getattr(coro, "ag_await", None)


def dump() -> None:
    """Logs each pending task of the running loop and where it is suspended."""
    for task in asyncio.all_tasks():
        log.warning("task_dump", task=task.get_name(), awaiting=list(awaiting(task.get_coro())))

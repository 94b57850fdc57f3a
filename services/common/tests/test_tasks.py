"""The task dump names where each pending task is suspended, down the chain of awaited coroutines."""

from __future__ import annotations

import asyncio

from structlog.testing import capture_logs

from teu_common import tasks


async def _inner(event: asyncio.Event) -> None:
    await event.wait()


async def _outer(event: asyncio.Event) -> None:
    await _inner(event)


def test_dump_shows_the_awaited_chain() -> None:
    """A task suspended in _outer -> _inner -> Event.wait is logged with all three."""

    async def main() -> list[str]:
        event = asyncio.Event()
        task = asyncio.create_task(_outer(event), name="stuck")
        await asyncio.sleep(0)
        with capture_logs() as logs:
            tasks.dump()
        event.set()
        await task
        return next(entry["awaiting"] for entry in logs if entry["task"] == "stuck")

    chain = asyncio.run(main())
    assert [line.split()[-1] for line in chain] == ["_outer", "_inner", "wait"]

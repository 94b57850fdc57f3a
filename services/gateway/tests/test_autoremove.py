"""--rm removals ride out a runtime that dies after deleting a record and before answering."""

from __future__ import annotations

import asyncio

import pytest

from teu_api.errors import NotFound, Unavailable
from teu_api.runtime.v1 import runtime_pb2 as rt
from teu_gateway import autoremove
from teu_gateway.autoremove import AutoRemover


class _Runtime:
    """A container that exits at once; the first removal deletes the record but its answer is lost."""

    def __init__(self) -> None:
        self.record = True
        self.removals = 0
        self.released = False

    async def wait(self, cid: str) -> rt.Container:
        if not self.record:
            raise NotFound(f"No such container: {cid}")
        return rt.Container(id=cid)

    async def remove(self, cid: str) -> object:
        self.removals += 1
        if not self.record:
            self.released = True  # what Flows.remove does for a record the runtime no longer has
            raise NotFound(f"No such container: {cid}")
        self.record = False
        raise Unavailable("the runtime service stopped before it answered")


def test_a_removal_whose_answer_was_lost_still_releases_the_snapshot_and_log(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(autoremove, "RETRY_DELAY", 0)
    runtime = _Runtime()

    async def scenario() -> None:
        await AutoRemover(runtime.wait, runtime.remove).watch("c1")

    asyncio.run(scenario())
    assert runtime.removals == 2 and runtime.released


def test_a_container_removed_by_someone_else_is_left_alone() -> None:
    runtime = _Runtime()
    runtime.record = False  # gone before the auto-remover looked: nothing was sent, nothing to finish

    async def scenario() -> None:
        await AutoRemover(runtime.wait, runtime.remove).watch("c2")

    asyncio.run(scenario())
    assert runtime.removals == 0

"""The public event stream's pure parts: cursors and Docker's filters."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator

import pytest

from teu_api.errors import InvalidArgument
from teu_api.types.v1 import types_pb2
from teu_gateway import events


def event(type_: str, action: str, actor: str, seq: int = 0, **attributes: str) -> types_pb2.Event:
    return types_pb2.Event(seq=seq, type=type_, action=action, actor_id=actor, attributes=attributes)


def test_cursor_round_trip_and_refusals() -> None:
    assert events.parse_cursor(events.cursor({"r": 12, "s": 0})) == {"r": 12, "s": 0}
    for bad in ("", "r1", "s1-r2", "r-1-s2", "r1-s2-x", "r" + "9" * 30 + "-s1"):
        with pytest.raises(InvalidArgument):
            events.parse_cursor(bad)


def keep(*filters: str) -> list[str]:
    sample = [
        event("container", "start", "abc123", name="web", image="busybox:latest", tier="front"),
        event("container", "exec_start: sh -c date", "abc123", name="web", image="busybox"),
        event("container", "die", "def456", name="db", image="postgres:16", exitCode="1"),
        event("image", "tag", "sha256:1", name="busybox:latest"),
        event("network", "connect", "n1", name="back", container="abc123"),
        event("volume", "create", "data", driver="local"),
    ]
    match = events.matcher(events.parse_filters(filters))
    return [f"{e.type}/{e.action}" for e in sample if match(e)]


def test_filters_follow_docker() -> None:
    assert keep("type=volume") == ["volume/create"]
    assert keep("event=exec_start") == ["container/exec_start: sh -c date"]
    assert keep("event=start", "event=die") == ["container/start", "container/die"]
    assert keep("container=web") == ["container/start", "container/exec_start: sh -c date"]
    assert keep("container=def") == ["container/die"]  # an id prefix
    assert keep("image=busybox") == ["container/start", "container/exec_start: sh -c date", "image/tag"]
    assert keep("label=tier=front") == ["container/start"]
    assert keep("label=tier", "container=db") == []
    assert keep("network=back") == ["network/connect"]
    assert keep("volume=data", "type=volume") == ["volume/create"]


def test_bad_filters_and_times_are_invalid() -> None:
    for bad in ("colour=red", "type=pod", "event"):
        with pytest.raises(InvalidArgument):
            events.parse_filters([bad])
    with pytest.raises(InvalidArgument, match="before since"):
        events.request("", since_ns=20, until_ns=10, filters=[])
    with pytest.raises(InvalidArgument):
        events.request("", since_ns=-1, until_ns=0, filters=[])


class FakeReader(events.Reader):
    """A journal in memory behind the Reader seam: follow streams wake when events are appended."""

    def __init__(self) -> None:
        self.journal: dict[str, list[types_pb2.Event]] = {"r": [], "s": []}
        self.grew = asyncio.Event()
        self.reads = 0

    def append(self, source: str, n: int) -> None:
        for _ in range(n):
            log = self.journal[source]
            log.append(event("container", "start", f"{source}{len(log) + 1}", seq=len(log) + 1))
        self.grew.set()
        self.grew = asyncio.Event()

    async def read(
        self, source: str, query: types_pb2.JournalQuery, patience: float | None
    ) -> AsyncGenerator[types_pb2.JournalBatch, None]:  # type: ignore[override]
        self.reads += 1
        log = self.journal[source]
        after = len(log) if query.from_now else query.after_seq
        if query.from_now:
            yield types_pb2.JournalBatch(position=after)
        while True:
            grew = self.grew
            if new := [e for e in log if e.seq > after]:
                after = new[-1].seq
                yield types_pb2.JournalBatch(events=new, position=after)
            if not query.follow:
                return
            await grew.wait()


def test_the_hub_follows_each_journal_once_for_every_subscriber(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(events, "HUB_KEPT", 8)

    async def main() -> None:
        reader = FakeReader()
        reader.append("r", 3)
        hub = events.Hub(reader)

        async def take(pos: int, n: int) -> list[int]:
            got: list[int] = []
            async for batch in hub.follow("r", pos, 0):
                got.extend(e.seq for e in batch.events)
                if len(got) >= n:
                    return got
            return got

        subscribers = [asyncio.create_task(take(3, 20)) for _ in range(10)]
        await asyncio.sleep(0.01)
        for _ in range(4):
            reader.append("r", 5)
            await asyncio.sleep(0.01)
        assert [await s for s in subscribers] == [list(range(4, 24))] * 10
        assert reader.reads == 1  # one follow of the journal for the ten of them
        # one far behind (before what the hub keeps) reads the journal, then the hub: each event once
        assert await take(0, 23) == list(range(1, 24))
        assert reader.reads == 2

    asyncio.run(main())

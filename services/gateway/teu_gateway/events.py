"""The public event stream: the back ends' journals merged, with a cursor that resumes exactly.

Each back end (runtime, storage) records the events of what it owns in its own journal, numbered
by a ``seq`` that only grows (teu_common.journal). The gateway keeps nothing: the cursor it gives
with each event is the position reached in every journal (``r<seq>-s<seq>``), so a client that
comes back with it, to this gateway or to one restarted since, gets every later event exactly
once. A back end that goes away for a moment is asked again from its position when it returns.

Recorded events (from a cursor or a time) are sent in time order across the back ends; new ones
in the order they arrive. Filters are Docker's (moby's events filter): values of one key are
alternatives, different keys must all match.
"""

from __future__ import annotations

import asyncio
import bisect
import heapq
import re
import time
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final

import grpc
import structlog

from teu_api.errors import InvalidArgument
from teu_api.runtime.v1 import runtime_pb2 as rt
from teu_api.storage.v1 import storage_pb2 as st
from teu_api.types.v1 import types_pb2
from teu_gateway.backends import Backends, translate, unreachable
from teu_gateway.limits import shown

log = structlog.get_logger()
SOURCES: Final = ("r", "s")  # runtime, storage: the order of the cursor's parts
_NAMES: Final = {"r": "runtime", "s": "storage"}
_CURSOR: Final = re.compile(r"r(\d{1,19})-s(\d{1,19})")
KEYS: Final = frozenset({"type", "event", "container", "image", "label", "network", "volume"})
TYPES: Final = frozenset({"container", "image", "network", "volume"})
_RETRY: Final = 0.2  # seconds between two attempts to reach a back end that is down
HUB_KEPT: Final = 4096  # new events the hub keeps per back end for subscribers that lag

Positions = dict[str, int]
Sent = tuple[types_pb2.Event | None, str]  # an event (None: the opening message) and its cursor


def cursor(positions: Mapping[str, int]) -> str:
    """The cursor of ``positions``."""
    return "-".join(f"{s}{positions[s]}" for s in SOURCES)


def parse_cursor(text: str) -> Positions:
    """The positions of a cursor; InvalidArgument for anything else."""
    m = _CURSOR.fullmatch(text)
    if m is None:
        raise InvalidArgument(f"invalid cursor {shown(text)}: give back the cursor of an event as it was sent")
    return dict(zip(SOURCES, (int(g) for g in m.groups()), strict=True))


# -- filters ----------------------------------------------------------------------------------


def parse_filters(filters: Sequence[str]) -> dict[str, list[str]]:
    """``key=value`` strings by key; InvalidArgument for an unknown key or type."""
    out: dict[str, list[str]] = {}
    for f in filters:
        key, eq, value = f.partition("=")
        if not eq or key not in KEYS:
            raise InvalidArgument(f"invalid filter {shown(f)}: want one of {', '.join(sorted(KEYS))} as KEY=VALUE")
        if key == "type" and value not in TYPES:
            raise InvalidArgument(f"invalid filter 'type={shown(value)}': want {', '.join(sorted(TYPES))}")
        out.setdefault(key, []).append(value)
    return out


def matcher(wanted: Mapping[str, Sequence[str]]) -> Callable[[types_pb2.Event], bool]:
    """Whether an event passes the filters ``wanted`` (moby's rules)."""

    def exact(key: str, *candidates: str) -> bool:
        return key not in wanted or any(c in wanted[key] for c in candidates)

    def fuzzy(key: str, e: types_pb2.Event, kind: str) -> bool:
        if key not in wanted:
            return True
        if e.type != kind:
            return False
        name = e.attributes.get("name", "")
        return any(e.actor_id.startswith(v) or name == v for v in wanted[key])

    def labels(e: types_pb2.Event) -> bool:
        for want in wanted.get("label", ()):
            key, eq, value = want.partition("=")
            if key not in e.attributes or (eq and e.attributes[key] != value):
                return False
        return True

    def image(e: types_pb2.Event) -> bool:
        name = e.attributes.get("name" if e.type == "image" else "image", "")
        return exact("image", e.actor_id, name, _untagged(e.actor_id), _untagged(name))

    def match(e: types_pb2.Event) -> bool:
        action = e.action.partition(":")[0]
        return (exact("event", e.action, action) and exact("type", e.type) and fuzzy("container", e, "container")
                and fuzzy("network", e, "network") and fuzzy("volume", e, "volume") and image(e) and labels(e))  # fmt: skip

    return match


def _untagged(ref: str) -> str:
    """``ref`` without its tag (``busybox:1`` → ``busybox``; a registry's port stays)."""
    name, colon, tag = ref.rpartition(":")
    return name if colon and "/" not in tag else ref


# -- the stream -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    """What a client asked for: where to start, when to stop, what to keep."""

    start: Positions | None  # None: from now, or from ``since_ns``
    since_ns: int
    until_ns: int
    keep: Callable[[types_pb2.Event], bool]


def request(req_cursor: str, since_ns: int, until_ns: int, filters: Sequence[str]) -> Request:
    """The checked request; InvalidArgument for a bad cursor, filter or time range."""
    if since_ns < 0 or until_ns < 0:
        raise InvalidArgument("since and until are Unix times: they cannot be negative")
    if since_ns and until_ns and until_ns < since_ns:
        raise InvalidArgument("until is before since")
    start = parse_cursor(req_cursor) if req_cursor else None
    if start is None and until_ns and not since_ns and until_ns <= time.time_ns():
        since_ns = 1  # a past --until alone replays what is kept (Docker's)
    return Request(start, since_ns, until_ns, matcher(parse_filters(filters)))


class Reader:
    """Reads the back ends' journals."""

    def __init__(self, backends: Backends) -> None:
        self.b = backends

    def _open(self, source: str, query: types_pb2.JournalQuery) -> AsyncIterator[types_pb2.JournalBatch]:
        if source == "r":
            return _batches(self.b.runtime.Events(rt.EventsRequest(query=query)))
        return _batches(self.b.storage.Events(st.EventsRequest(query=query)))

    async def read(
        self, source: str, query: types_pb2.JournalQuery, patience: float | None
    ) -> AsyncGenerator[types_pb2.JournalBatch, None]:
        """The batches of ``query``, asked again from the position reached whenever the back end is
        down (forever if ``patience`` is None, else for that many seconds in a row)."""
        loop = asyncio.get_running_loop()
        down_since = 0.0
        while True:
            try:
                async for batch in self._open(source, query):
                    down_since = 0.0
                    if query.from_now:
                        query = types_pb2.JournalQuery(after_seq=batch.position, follow=query.follow)
                    query.after_seq = max(query.after_seq, batch.position)
                    yield batch
                return
            except grpc.aio.AioRpcError as exc:
                down_since = down_since or loop.time()
                if not unreachable(exc) or (patience is not None and loop.time() - down_since > patience):
                    raise translate(exc, _NAMES[source]) from None
                await asyncio.sleep(_RETRY)


class _Feed:
    """One back end's new events, followed once for every subscriber of this gateway: the events
    after ``floor`` (at most about twice HUB_KEPT of them) and the position reached."""

    def __init__(self) -> None:
        self.floor = self.position = 0
        self.events: list[types_pb2.Event] = []
        self.ready = asyncio.Event()
        self.next = asyncio.Event()  # set (and replaced) when events arrive or the feed fails
        self.error: Exception | None = None
        self.task: asyncio.Task[None] | None = None

    def add(self, batch: types_pb2.JournalBatch) -> None:
        if not self.ready.is_set():
            self.floor = self.position = batch.position
            self.ready.set()
        self.events.extend(batch.events)
        if len(self.events) > 2 * HUB_KEPT:
            self.floor = self.events[-HUB_KEPT - 1].seq
            del self.events[: len(self.events) - HUB_KEPT]
        self.position = max(self.position, batch.position)
        self.wake()

    def wake(self) -> None:
        woken, self.next = self.next, asyncio.Event()
        woken.set()

    def after(self, pos: int) -> list[types_pb2.Event]:
        return self.events[bisect.bisect_right(self.events, pos, key=lambda e: e.seq) :]


class Hub:
    """The live part of every Events stream of this gateway: one follow of each back end's journal,
    whatever the number of subscribers (each of whom reads it at its own pace; one that falls more
    than HUB_KEPT events behind reads the journal itself until it has caught up)."""

    def __init__(self, reader: Reader) -> None:
        self.reader = reader
        self._feeds: dict[str, _Feed] = {}

    async def feed(self, source: str) -> _Feed:
        """The running feed of ``source`` (started, or started again after a failure, now)."""
        feed = self._feeds.get(source)
        if feed is None or feed.error is not None:
            feed = self._feeds[source] = _Feed()
            feed.task = asyncio.create_task(self._pump(source, feed), name=f"events-{source}")
        await feed.ready.wait()
        if feed.error is not None:
            raise feed.error
        return feed

    async def _pump(self, source: str, feed: _Feed) -> None:
        try:
            async for batch in self.reader.read(source, types_pb2.JournalQuery(from_now=True, follow=True), patience=None):
                feed.add(batch)
        except Exception as exc:  # the subscribers end with it; the next one starts a new feed
            feed.error = exc
            feed.ready.set()
            feed.wake()
            log.warning("event_feed_failed", source=_NAMES[source], error=str(exc))

    async def follow(self, source: str, pos: int, since_ns: int) -> AsyncIterator[types_pb2.JournalBatch]:
        """Every batch of ``source`` after ``pos`` (not older than ``since_ns``), for ever."""
        while True:
            feed = await self.feed(source)
            woken = feed.next
            if pos < feed.floor:  # before what the feed holds: from the journal itself
                query = types_pb2.JournalQuery(after_seq=pos, since_unix_nano=since_ns)
                async for batch in self.reader.read(source, query, patience=None):
                    pos = max(pos, batch.position)
                    yield batch
                pos = max(pos, feed.floor)  # nothing else up to there is kept, or wanted
                continue
            if new := feed.after(pos):
                pos = new[-1].seq
                yield types_pb2.JournalBatch(events=new, position=pos)
                continue
            await woken.wait()
            if feed.error is not None:
                raise feed.error


class Merger:
    """One client's stream: what the journals hold from its start, then the hub's new events."""

    def __init__(self, reader: Reader, hub: Hub) -> None:
        self.reader = reader
        self.hub = hub

    async def stream(self, r: Request) -> AsyncIterator[Sent]:
        """The opening cursor, then each event the client keeps with the cursor after it."""
        if r.start is not None:
            positions = dict(r.start)
        elif r.since_ns:
            positions = dict.fromkeys(SOURCES, 0)
        else:
            positions = {s: (await self.hub.feed(s)).position for s in SOURCES}
        async for sent in self._replay(positions, r):  # the opening cursor first
            yield sent
        if r.until_ns and r.until_ns <= time.time_ns():
            return
        async for sent in self._follow(positions, r):
            yield sent

    async def _replay(self, positions: Positions, r: Request) -> AsyncIterator[Sent]:
        """The opening cursor, then what the journals hold after ``positions`` (and from ``since``),
        in time order across them."""
        recorded: list[list[tuple[int, str, types_pb2.Event]]] = []
        for source in SOURCES:
            query = types_pb2.JournalQuery(after_seq=positions[source], since_unix_nano=r.since_ns)
            found = []
            async for batch in self.reader.read(source, query, 30.0):
                if not batch.events:  # where a query with since starts
                    positions[source] = max(positions[source], batch.position)
                found += [(e.time_unix_nano, source, e) for e in batch.events]
            recorded.append(found)
        yield None, cursor(positions)
        for _, source, e in heapq.merge(*recorded, key=lambda item: (item[0], item[1])):
            if r.until_ns and e.time_unix_nano > r.until_ns:
                continue
            positions[source] = e.seq
            if r.keep(e):
                yield e, cursor(positions)

    async def _follow(self, positions: Positions, r: Request) -> AsyncIterator[Sent]:
        """New events as the back ends record them, until ``until`` (or the client leaves)."""
        queue: asyncio.Queue[tuple[str, types_pb2.JournalBatch] | Exception] = asyncio.Queue(maxsize=64)

        async def pump(source: str) -> None:
            try:
                async for batch in self.hub.follow(source, positions[source], r.since_ns):
                    await queue.put((source, batch))
            except Exception as exc:  # the client's stream ends with it
                await queue.put(exc)

        pumps = [asyncio.create_task(pump(s)) for s in SOURCES]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (r.until_ns - time.time_ns()) / 1e9 if r.until_ns else None
        try:
            while True:
                try:
                    item = await asyncio.wait_for(queue.get(), None if deadline is None else max(deadline - loop.time(), 0))
                except TimeoutError:
                    return
                if isinstance(item, Exception):
                    raise item
                source, batch = item
                for e in batch.events:
                    if r.until_ns and e.time_unix_nano > r.until_ns:
                        return
                    if e.seq <= positions[source]:
                        continue
                    positions[source] = e.seq
                    if e.time_unix_nano >= r.since_ns and r.keep(e):
                        yield e, cursor(positions)
        finally:
            for task in pumps:
                task.cancel()
            await asyncio.gather(*pumps, return_exceptions=True)


async def _batches(
    call: AsyncIterable[rt.EventsResponse] | AsyncIterable[st.EventsResponse],
) -> AsyncIterator[types_pb2.JournalBatch]:
    async for response in call:
        yield response.batch
